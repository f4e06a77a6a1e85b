"""Fit the reranker and the refusal decision on a dev split; write them as data.

Ranker: logistic regression (scikit-learn) on every candidate of every answerable dev question,
label 1 where the passage holds an evidence string. Refusal: logistic regression on the
refusal features of each dev question's best passage, label "answerable"; its threshold is the
one that refuses most unanswerable questions while refusing at most MAX_FALSE_REFUSALS (3%) of
the answerable ones of each question set's corpus.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from .engine import Engine
from .evaluate import holds, load_gold
from .features import NAMES
from .rank import REFUSAL_NAMES, Linear, RankModel
from .vocab import curated

MAX_FALSE_REFUSALS = 0.03  # on each tuning set; unseen questions are refused more often than fitted ones


def _linear(names: list[str], x: np.ndarray, y: np.ndarray, c: float) -> Linear:
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=2000).fit((x - mean) / scale, y)
    return Linear(names, lr.coef_[0].astype(np.float32), float(lr.intercept_[0]), mean.astype(np.float32),
                  scale.astype(np.float32))


def _pairwise(names: list[str], x: np.ndarray, y: np.ndarray, groups: np.ndarray, c: float) -> Linear:
    """Pairwise logistic ranking (RankNet-style, linear): within each question, every passage
    holding the answer against every one that does not. Scores only need to order passages
    of one question, so features whose level differs between questions cancel out. Each
    question weighs the same in total: one over a large corpus has many more pairs than one
    over the article alone, and would otherwise drown it."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    diffs, weights = [], []
    for g in np.unique(groups):
        idx = np.where(groups == g)[0]
        pos, neg = idx[y[idx] == 1], idx[y[idx] == 0]
        pairs = [z[i] - z[neg] for i in pos]
        n = sum(len(p) for p in pairs)
        diffs += pairs
        weights += [np.full(n, 1.0 / n)] if n else []
    d, w = np.vstack(diffs), np.concatenate(weights)
    w = w * len(w) / w.sum()  # same total weight as unweighted, so C keeps its meaning
    lr = LogisticRegression(C=c, fit_intercept=False, max_iter=4000).fit(
        np.vstack([d, -d]), np.r_[np.ones(len(d)), np.zeros(len(d))], sample_weight=np.r_[w, w])
    return Linear(names, lr.coef_[0].astype(np.float32), 0.0, mean.astype(np.float32), scale.astype(np.float32))


def _ranker_rows(engine: Engine, gold: list[dict]) -> tuple[list, list, list]:
    live = engine._live
    passages = live.stored.passages
    xs, ys, groups = [], [], []
    engine._model = RankModel(None, None, 0.0, {})  # candidates in RRF order, features as served
    for row in gold:
        if not row["answerable"]:
            continue
        q = engine.analyse(row["question"], live)
        for _, _, x, pid in engine.search(q, k=10 ** 6, retriever="hybrid", live=live):
            xs.append(x)
            ys.append(int(holds(passages[pid].text, row["evidence"])))
            groups.append(f"{id(engine)}:{row['id']}")
    return xs, ys, groups


def _refusal_rows(engine: Engine, gold: list[dict]) -> tuple[list, list]:
    live = engine._live
    cues = curated(str(engine.settings.vocab_dir)).cues
    rx, ry = [], []
    for row in gold:
        q = engine.analyse(row["question"], live)
        hits = engine.search(q, k=5, retriever="hybrid", live=live)
        r, _, _ = engine.refusal_inputs(q, live, hits, cues)
        rx.append(r)
        ry.append(int(row["answerable"]))
    return rx, ry


def fit(sets: list[tuple[Engine, list[Path]]], out: Path, c_rank: float = 1.0, c_refuse: float = 1.0,
        command: str = "") -> dict:
    """`sets`: (engine over a corpus, question files about it). Every set adds rows to both fits."""
    golds = [(engine, [row for p in paths for row in load_gold(p)]) for engine, paths in sets]
    xs, ys, groups = [], [], []
    for engine, gold in golds:
        a, b, c = _ranker_rows(engine, gold)
        xs += a
        ys += b
        groups += c
    ranker = _pairwise(NAMES, np.vstack(xs), np.array(ys), np.array(groups), c_rank)
    rx, ry, rset = [], [], []
    for n, (engine, gold) in enumerate(golds):
        engine._model = RankModel(ranker, None, 0.0, {})
        a, b = _refusal_rows(engine, gold)
        rx += a
        ry += b
        rset += [n] * len(b)
    rx, ry, rset = np.vstack(rx), np.array(ry), np.array(rset)
    refusal = _linear(REFUSAL_NAMES, rx, ry, c_refuse)
    p = refusal.score(rx)
    best = (-1.0, 0.0)
    for t in sorted(set(np.round(p, 4))):
        # at most MAX_FALSE_REFUSALS on every corpus fitted on, not just pooled: a small corpus's
        # questions must not pay for a large one's
        false_ref = max(float(np.mean(p[(ry == 1) & (rset == n)] < t)) for n in set(rset.tolist())
                        if ((ry == 1) & (rset == n)).any())
        refused = float(np.mean(p[ry == 0] < t)) if (ry == 0).any() else 0.0
        if false_ref <= MAX_FALSE_REFUSALS and refused > best[0]:
            best = (refused, float(t))
    threshold = best[1]
    paths = [str(p) for _, ps in sets for p in ps]
    info = {
        "fitted_on": paths, "corpora": [{"documents": len(e.documents()), "passages": len(e._live.stored.passages),
                                          "questions": [str(p) for p in ps]} for e, ps in sets],
        "ranker_rows": len(ys), "ranker_positives": int(sum(ys)), "questions": int(len(ry)),
        "fit_refused": round(best[0], 3), "fit_false_refusals": round(float(np.mean(p[ry == 1] < threshold)), 3),
        "threshold": threshold, "date": dt.date.today().isoformat(),
        "command": command or "planbot fit " + " ".join(paths),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"ranker": ranker.to_dict(), "refusal": refusal.to_dict(), "threshold": threshold,
                               "info": info}, ensure_ascii=False, indent=1), encoding="utf-8")
    for engine, _ in sets:
        engine._model = None
    return info
