"""Cross-fitting on the tuning sets, to choose features without touching a frozen split.

Leave one tuning set out: fit on the other two + the seed questions and score the one left out
(dev, dev2 against the article + corpus/; dev3 against the article + corpus/ + corpus2/).
Prints hit@1/hit@3/refused/false refusals at the fitted threshold, the refusal decision's AUC on
the held-out set, and the held-out seed set. Writes only a scratch model under var/eval/.
Usage: python tests/crossfit.py   (make crossfit; ~2 min)
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
TUNING = ("dev", "dev2", "dev3")


def refusal_auc(engine, path: Path) -> float:
    rx, ry = _refusal_rows(engine, load_gold(path))
    return float(roc_auc_score(np.array(ry), [engine.model.answerable(r) for r in rx]))


def main() -> None:
    big = corpus_engine([Path("data/docs"), EVAL / "corpus"])
    bigger = corpus_engine([Path("data/docs"), EVAL / "corpus", EVAL / "corpus2"])
    small = corpus_engine([Path("data/docs")])
    engines = {"dev": big, "dev2": big, "dev3": bigger}
    out = Path("var/eval/crossfit-model.json")
    for held in TUNING:
        train = [t for t in TUNING if t != held]
        sets = {}
        for t in train:
            sets.setdefault(id(engines[t]), (engines[t], []))[1].append(EVAL / f"{t}.jsonl")
        fit(list(sets.values()) + [(small, [EVAL / "questions.jsonl"])], out)
        model = RankModel.load(out)
        for e in (big, bigger, small):
            e._model = model
        m = evaluate(engines[held], load_gold(EVAL / f"{held}.jsonl"), retriever="hybrid")["metrics"]["overall"]
        print(f"fit {'+'.join(train)}+seed -> {held}: " + ", ".join(f"{k} {m[k]}" for k in KEYS)
              + f", refusal AUC {refusal_auc(engines[held], EVAL / f'{held}.jsonl'):.3f}")
        m = evaluate(small, load_gold(EVAL / "holdout.jsonl"), retriever="hybrid")["metrics"]["overall"]
        print("    holdout: " + ", ".join(f"{k} {m[k]}" for k in KEYS))


if __name__ == "__main__":
    main()
