"""Cross-fitting: how the fit does on question files it did not see, without touching a frozen split.

Leave one question file out: fit on every other file `make fit` uses (the tuning sets dev, dev2,
dev3, the seed questions, and the spent splits test2-test8, each against its own corpus) and score
the one left out through the engine, as `planbot eval` does. Prints hit@1 / hit@3 / refused / false
refusals per file, the refusal decision's AUC there, and the pooled totals. test.jsonl and test9.jsonl
are never read. Writes only a scratch model under var/eval/.
Usage: python tests/crossfit.py   (make crossfit; ~18 min)
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

from index.evaluate import corpus_engine, evaluate, load_gold
from index.fit import _refusal_rows, fit
from index.rank import RankModel

EVAL = Path("data/eval")
CORPORA = [Path("data/docs")] + [EVAL / f"corpus{n}" for n in ("", 2, 3, 4, 5, 6, 7, 8)]
FILES = {"dev": 2, "dev2": 2, "dev3": 3, "test2": 3, "test3": 4, "test4": 5, "test5": 6, "test6": 7, "test7": 8, "test8": 9}  # corpora
KEYS = ("hit@1", "hit@3", "refused", "false_refusals")


def main() -> None:
    engines = {n: corpus_engine(CORPORA[:n]) for n in sorted(set(FILES.values()) | {1})}
    out = Path("var/eval/crossfit-model.json")
    totals = {"hit1": 0, "hit3": 0, "answerable": 0, "refused": 0, "unanswerable": 0, "false": 0}
    labels, scores = [], []
    for held in FILES:
        train = [(engines[n], [EVAL / f"{f}.jsonl"]) for f, n in FILES.items() if f != held]
        fit(train + [(engines[1], [EVAL / "questions.jsonl"])], out)
        model = RankModel.load(out)
        for e in engines.values():
            e._model = model
        engine, gold = engines[FILES[held]], load_gold(EVAL / f"{held}.jsonl")
        m = evaluate(engine, gold, retriever="hybrid")["metrics"]["overall"]
        rx, ry = _refusal_rows(engine, gold)
        p = [model.answerable(r) for r in rx]
        labels += ry
        scores += p
        print(f"{held}: " + ", ".join(f"{k} {m[k]}" for k in KEYS) + f", refusal AUC {roc_auc_score(ry, p):.3f}",
              flush=True)
        a, u = m["answerable"], m["unanswerable"]
        totals["hit1"] += round(m["hit@1"] * a)
        totals["hit3"] += round(m["hit@3"] * a)
        totals["false"] += round(m["false_refusals"] * a)
        totals["refused"] += round((m["refused"] or 0) * u)
        totals["answerable"] += a
        totals["unanswerable"] += u
    t = totals
    print(f"all {len(FILES)} files left out in turn: hit@1 {t['hit1']}/{t['answerable']} = "
          f"{t['hit1'] / t['answerable']:.3f}, hit@3 {t['hit3'] / t['answerable']:.3f}, refused "
          f"{t['refused']}/{t['unanswerable']} = {t['refused'] / t['unanswerable']:.3f}, false refusals "
          f"{t['false']}/{t['answerable']} = {t['false'] / t['answerable']:.3f}, refusal AUC "
          f"{roc_auc_score(labels, scores):.3f}")
    m = evaluate(engines[1], load_gold(EVAL / "holdout.jsonl"), retriever="hybrid")["metrics"]["overall"]
    print(f"holdout (fit without {held}): " + ", ".join(f"{k} {m[k]}" for k in KEYS))
    for e in engines.values():
        e._model = None
    np.save(out.with_suffix(".scores.npy"), np.array([labels, scores]))


if __name__ == "__main__":
    main()
