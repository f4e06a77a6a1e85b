"""Score the engine on a JSONL gold set: hit@k, MRR, refusal accuracy, latency."""
from __future__ import annotations

import json
import statistics
from collections import defaultdict
from pathlib import Path

from .engine import Engine
from .textnorm import fold


def load_gold(path: Path) -> list[dict]:
    rows = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            missing = {"id", "question", "answerable", "evidence", "kind"} - row.keys()
            if missing:
                raise ValueError(f"{path}:{n}: missing keys {sorted(missing)}")
            rows.append(row)
    return rows


def first_hit(citations: list[dict], evidence: list[str]) -> int | None:
    """Rank of the first cited snippet holding any evidence substring (punctuation-folded)."""
    folded = [fold(e) for e in evidence]
    for c in citations:
        text = fold(c["text"])
        if any(e and e in text for e in folded):
            return c["rank"]
    return None


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def metrics(results: list[dict]) -> dict:
    ans = [r for r in results if r["gold_answerable"]]
    una = [r for r in results if not r["gold_answerable"]]
    lat = [r["latency_ms"] for r in results]
    def hit(r: dict, k: int) -> bool:
        return r["answered"] and r["hit_rank"] is not None and r["hit_rank"] <= k
    return {
        "n": len(results), "answerable": len(ans), "unanswerable": len(una),
        "hit@1": round(sum(hit(r, 1) for r in ans) / len(ans), 3) if ans else None,
        "hit@3": round(sum(hit(r, 3) for r in ans) / len(ans), 3) if ans else None,
        "mrr": round(sum(1 / r["hit_rank"] for r in ans if hit(r, 99)) / len(ans), 3) if ans else None,
        "refusal_accuracy": round(sum(not r["answered"] for r in una) / len(una), 3) if una else None,
        "false_refusals": round(sum(not r["answered"] for r in ans) / len(ans), 3) if ans else None,
        "p50_ms": round(_pct(lat, 0.5), 1), "p95_ms": round(_pct(lat, 0.95), 1),
    }


def evaluate(engine: Engine, gold: list[dict], retriever: str | None = None, top_k: int = 3) -> dict:
    results = []
    for row in gold:
        out = engine.answer(row["question"], retriever=retriever, top_k=top_k).to_dict()
        out.update(id=row["id"], kind=row["kind"], gold_answerable=row["answerable"],
                   hit_rank=first_hit(out["citations"], row["evidence"]) if row["answerable"] else None)
        results.append(out)
    by_kind = defaultdict(list)
    for r in results:
        by_kind[r["kind"]].append(r)
    summary = {"overall": metrics(results), **{k: metrics(v) for k, v in sorted(by_kind.items())}}
    return {"metrics": summary, "results": results}


def format_table(summaries: dict[str, dict]) -> str:
    """Markdown table: one row per (retriever, kind)."""
    cols = ["hit@1", "hit@3", "mrr", "refusal_accuracy", "false_refusals", "p50_ms", "p95_ms", "n"]
    lines = ["| retriever | kind | " + " | ".join(cols) + " |", "|" + "---|" * (len(cols) + 2)]
    for name, summary in summaries.items():
        for kind, m in summary.items():
            cells = ["" if m.get(c) is None else str(m[c]) for c in cols]
            lines.append(f"| {name} | {kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
