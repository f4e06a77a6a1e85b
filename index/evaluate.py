"""Score the engine on a JSONL question set next to plain baselines on the same corpus.

Every table shows plain BM25, plain dense, plain RRF(BM25, dense) and planbot (the learned
ranker with its refusal decision) from the same run. A hit means a cited snippet holds an
evidence string, folded (NFKC, whitespace and punctuation removed; Traditional not folded). A
table-row evidence string ("2025年1月 | 15次 | 23个", as check.py extracts a docx row) counts
when one line of the snippet holds its cells in order: planbot labels each cell with its column
header ("15次（累计海上发射）"), which a plain substring test would miss."""
from __future__ import annotations

import hashlib
import json
import re
import statistics
import unicodedata
from collections import defaultdict
from pathlib import Path

from .config import IndexSettings
from .engine import Engine
from .store import IndexError_

RETRIEVERS = ["bm25", "dense", "rrf", "hybrid"]


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


def fold(s: str) -> str:
    """The question sets' own folding: NFKC, then whitespace and punctuation removed."""
    return re.sub(r"[\s\W_]+", "", unicodedata.normalize("NFKC", s))


def _row_in(cells: list[str], text: str) -> bool:
    """The cells, folded, in order on one line of the text."""
    for line in text.splitlines():
        line, at = fold(line), 0
        for cell in cells:
            at = line.find(cell, at)
            if at < 0:
                break
            at += len(cell)
        else:
            return True
    return False


def holds(text: str, evidence: list[str]) -> bool:
    """The text holds one of the evidence strings (a table row: its cells on one line)."""
    folded = fold(text)
    return any(e and (fold(e) in folded or (e.count("|") >= 2 and _row_in([fold(c) for c in e.split("|")], text)))
               for e in evidence)


def _answer_holds(answer: str, row: dict) -> bool:
    """The answer text holds the evidence; for a question in parts, the evidence of every part."""
    parts = row.get("evidence_parts") or []
    return all(holds(answer, p) for p in parts) if parts else holds(answer, row["evidence"])


def first_hit(citations: list[dict], evidence: list[str]) -> int | None:
    return next((c["rank"] for c in citations if holds(c["text"], evidence)), None)


def corpus_engine(doc_dirs: list[Path], var_root: Path = Path("var/eval")) -> Engine:
    """An engine over the union of `doc_dirs`, built once into var/eval/<hash> (symlinked docs),
    rebuilt incrementally when a document changes."""
    key = hashlib.sha1("|".join(str(Path(d).resolve()) for d in doc_dirs).encode()).hexdigest()[:10]
    root = var_root / key
    docs = root / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for old in docs.iterdir():
        old.unlink()
    for d in doc_dirs:
        for f in sorted(Path(d).iterdir()):
            if f.is_file():
                (docs / f.name).symlink_to(f.resolve())
    shared = IndexSettings()  # one model cache for every scratch corpus
    (root / "var").mkdir(exist_ok=True)
    models = root / "var" / "models"
    if not models.exists() and not models.is_symlink():
        shared.model_cache.mkdir(parents=True, exist_ok=True)
        models.symlink_to(shared.model_cache.resolve(), target_is_directory=True)
    settings = IndexSettings(docs_dir=docs, var_dir=root / "var")
    engine = Engine(settings)
    try:
        engine.load()
    except IndexError_:  # none yet, or built by another model: build it
        pass
    engine.build()  # embeds only what changed; picks up edited documents
    return engine


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def metrics(results: list[dict]) -> dict:
    ans = [r for r in results if r["gold_answerable"]]
    una = [r for r in results if not r["gold_answerable"]]
    lat = [r["latency_ms"] for r in results]
    snippets = [len(c["text"]) for r in results for c in r["citations"]]

    def hit(r: dict, k: int) -> bool:
        return r["answered"] and r["hit_rank"] is not None and r["hit_rank"] <= k
    first = [r for r in ans if hit(r, 1)]
    return {
        "n": len(results), "answerable": len(ans), "unanswerable": len(una),
        "hit@1": round(sum(hit(r, 1) for r in ans) / len(ans), 3) if ans else None,
        "hit@3": round(sum(hit(r, 3) for r in ans) / len(ans), 3) if ans else None,
        "mrr": round(sum(1 / r["hit_rank"] for r in ans if hit(r, 99)) / len(ans), 3) if ans else None,
        # of the questions cited first correctly, the share whose answer text itself holds the evidence
        "answer_holds": round(sum(r["answer_holds"] for r in first) / len(first), 3) if first else None,
        "refused": round(sum(not r["answered"] for r in una) / len(una), 3) if una else None,
        "false_refusals": round(sum(not r["answered"] for r in ans) / len(ans), 3) if ans else None,
        "snippet_median": int(statistics.median(snippets)) if snippets else 0,
        "snippet_max": max(snippets, default=0),
        "p50_ms": round(_pct(lat, 0.5), 1), "p95_ms": round(_pct(lat, 0.95), 1),
    }


def evaluate(engine: Engine, gold: list[dict], retriever: str | None = None, top_k: int = 3) -> dict:
    results = []
    for row in gold:
        out = engine.answer(row["question"], retriever=retriever, top_k=top_k).to_dict()
        out.update(id=row["id"], kind=row["kind"], gold_answerable=row["answerable"],
                   hit_rank=first_hit(out["citations"], row["evidence"]) if row["answerable"] else None,
                   answer_holds=_answer_holds(out["answer"], row))
        results.append(out)
    by_kind = defaultdict(list)
    for r in results:
        by_kind[r["kind"]].append(r)
    summary = {"overall": metrics(results), **{k: metrics(v) for k, v in sorted(by_kind.items())}}
    return {"metrics": summary, "results": results}


COLS = ["hit@1", "hit@3", "mrr", "answer_holds", "refused", "false_refusals", "snippet_median", "snippet_max", "p50_ms", "n"]


def format_table(summaries: dict[str, dict], kinds: bool = True) -> str:
    """Markdown: the overall row of every retriever first, then planbot's per-kind rows."""
    lines = ["| system | kind | " + " | ".join(COLS) + " |", "|" + "---|" * (len(COLS) + 2)]

    def row(name: str, kind: str, m: dict) -> str:
        cells = ["–" if m.get(c) is None else str(m[c]) for c in COLS]
        return f"| {name} | {kind} | " + " | ".join(cells) + " |"
    for name, summary in summaries.items():
        lines.append(row(name, "overall", summary["overall"]))
    last = list(summaries)[-1]
    if kinds:
        lines += [row(last, k, m) for k, m in summaries[last].items() if k != "overall"]
    return "\n".join(lines)
