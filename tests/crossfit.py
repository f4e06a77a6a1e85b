"""Cross-fitting on the tuning sets, to choose features without touching a frozen split.

Fit on dev + the seed questions and score dev2; fit on dev2 + the seed questions and score dev.
Prints hit@1/hit@3/refused/false refusals at the fitted threshold, the refusal decision's AUC on
the held-out half, and the held-out seed set. Writes only a scratch model under var/eval/.
Usage: python tests/crossfit.py   (make crossfit; ~1 min)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from index.evaluate import corpus_engine, evaluate, load_gold
from index.fit import _refusal_rows, fit
from index.rank import RankModel

EVAL = Path("data/eval")
KEYS = ("hit@1", "hit@3", "refused", "false_refusals")


def refusal_auc(engine, path: Path) -> float:
    rx, ry = _refusal_rows(engine, load_gold(path))
    return float(roc_auc_score(np.array(ry), [engine.model.answerable(r) for r in rx]))


def main() -> None:
    big = corpus_engine([Path("data/docs"), EVAL / "corpus"])
    small = corpus_engine([Path("data/docs")])
    out = Path("var/eval/crossfit-model.json")
    for train, held in (("dev", "dev2"), ("dev2", "dev")):
        fit([(big, [EVAL / f"{train}.jsonl"]), (small, [EVAL / "questions.jsonl"])], out)
        big._model = small._model = RankModel.load(out)
        m = evaluate(big, load_gold(EVAL / f"{held}.jsonl"), retriever="hybrid")["metrics"]["overall"]
        print(f"fit {train}+seed -> {held}: " + ", ".join(f"{k} {m[k]}" for k in KEYS)
              + f", refusal AUC {refusal_auc(big, EVAL / f'{held}.jsonl'):.3f}")
        m = evaluate(small, load_gold(EVAL / "holdout.jsonl"), retriever="hybrid")["metrics"]["overall"]
        print("    holdout: " + ", ".join(f"{k} {m[k]}" for k in KEYS))


if __name__ == "__main__":
    main()
