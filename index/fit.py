"""Fit the reranker and the refusal decision on a dev split; write them as data.

Ranker: pairwise logistic regression (scikit-learn) on every candidate of every answerable
question, label 1 where the passage holds an evidence string. Refusal: a random forest on the
refusal features of each question's best passage, label "answerable". A forest fits its own rows
almost perfectly, so its threshold comes from out-of-fold scores, one question file held out at a
time: the one refusing most unanswerable questions while refusing at most MAX_FALSE_REFUSALS of
the answerable ones.
"""
from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np

from .engine import Engine
from .evaluate import holds, load_gold
from .features import NAMES
from .forest import fit_forest
from .rank import REFUSAL_NAMES, Linear, RankModel
from .vocab import curated

C_RANK = 0.01  # leave one file out, hit@1: 0.782 at 0.01, 0.790 at 1, 0.793 at 10; only 0.01 keeps the seed at 56/58 (README)
MAX_FALSE_REFUSALS = 0.03  # out of fold; leaving one file out: 0.050 false refusals unseen at 0.04, see README


def _pairwise(names: list[str], x: np.ndarray, y: np.ndarray, groups: np.ndarray, c: float) -> Linear:
    """Pairwise logistic ranking (RankNet-style, linear): within each question, every passage
    holding the answer against every one that does not. Scores only need to order passages
    of one question, so features whose level differs between questions cancel out. Each
    question file weighs the same in total, and within it each question: a question over a large
    corpus has many more pairs than one over the article alone, and eight multi-document files
    would otherwise drown the article's own questions. `groups`: "file\tquestion"."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale == 0] = 1.0
    z = (x - mean) / scale
    diffs, files = [], []
    for g in np.unique(groups):
        idx = np.where(groups == g)[0]
        pos, neg = idx[y[idx] == 1], idx[y[idx] == 0]
        pairs = [z[i] - z[neg] for i in pos]
        if sum(len(p) for p in pairs):
            diffs.append(np.vstack(pairs))
            files.append(g.split("\t")[0])
    per_file = {f: files.count(f) for f in set(files)}
    weights = [np.full(len(d), 1.0 / len(d) / per_file[f]) for d, f in zip(diffs, files)]
    d, w = np.vstack(diffs), np.concatenate(weights)
    w = w * len(w) / w.sum()  # same total weight as unweighted, so C keeps its meaning
    lr = LogisticRegression(C=c, fit_intercept=False, max_iter=4000).fit(
        np.vstack([d, -d]), np.r_[np.ones(len(d)), np.zeros(len(d))], sample_weight=np.r_[w, w])
    return Linear(names, lr.coef_[0].astype(np.float32), 0.0, mean.astype(np.float32), scale.astype(np.float32))


def out_of_fold(x: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Each question file's scores from a forest fitted without it: what unseen questions look like."""
    p = np.zeros(len(y))
    for g in np.unique(groups):
        held = groups == g
        p[held] = fit_forest(REFUSAL_NAMES, x[~held], y[~held]).score(x[held])
    return p


def choose_threshold(p: np.ndarray, y: np.ndarray, cap: float = MAX_FALSE_REFUSALS) -> tuple[float, float]:
    """(threshold, share of unanswerable refused): most refused with at most `cap` answerable refused."""
    best = (0.0, 0.0)
    for t in np.unique(np.round(p, 4)):
        refused = float(np.mean(p[y == 0] < t)) if (y == 0).any() else 0.0
        if float(np.mean(p[y == 1] < t)) <= cap and refused > best[1]:
            best = (float(t), refused)
    return best


def _ranker_rows(engine: Engine, gold: list[dict], tag: str) -> tuple[list, list, list]:
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
            groups.append(f"{tag}\t{row['id']}")
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


def fit(sets: list[tuple[Engine, list[Path]]], out: Path, c_rank: float = C_RANK, command: str = "") -> dict:
    """`sets`: (engine over a corpus, question files about it). Every file adds rows to both fits."""
    golds = [(engine, load_gold(p)) for engine, paths in sets for p in paths]
    xs, ys, groups = [], [], []
    for n, (engine, gold) in enumerate(golds):
        a, b, c = _ranker_rows(engine, gold, str(n))
        xs += a
        ys += b
        groups += c
    ranker = _pairwise(NAMES, np.vstack(xs), np.array(ys), np.array(groups), c_rank)
    rx, ry, rset = [], [], []  # rset: which question file, the unit held out for the threshold
    for n, (engine, gold) in enumerate(golds):
        engine._model = RankModel(ranker, None, 0.0, {})
        a, b = _refusal_rows(engine, gold)
        rx += a
        ry += b
        rset += [n] * len(b)
    rx, ry, rset = np.vstack(rx), np.array(ry), np.array(rset)
    refusal = fit_forest(REFUSAL_NAMES, rx, ry)
    p = out_of_fold(rx, ry, rset)
    threshold, refused = choose_threshold(p, ry)
    paths = [str(p) for _, ps in sets for p in ps]
    info = {
        "fitted_on": paths, "corpora": [{"documents": len(e.documents()), "passages": len(e._live.stored.passages),
                                          "questions": [str(p) for p in ps]} for e, ps in sets],
        "ranker_rows": len(ys), "ranker_positives": int(sum(ys)), "questions": int(len(ry)),
        "oof_refused": round(refused, 3), "oof_false_refusals": round(float(np.mean(p[ry == 1] < threshold)), 3),
        "threshold": threshold, "date": dt.date.today().isoformat(),
        "command": command or "planbot fit " + " ".join(paths),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    head = json.dumps({"ranker": ranker.to_dict(), "threshold": threshold, "info": info}, ensure_ascii=False, indent=1)
    forest = refusal.to_dict()  # one tree per line: readable, and a refit diffs tree by tree
    trees = ",\n".join(json.dumps(t, separators=(",", ":")) for t in forest.pop("trees"))
    body = json.dumps(forest, ensure_ascii=False)[:-1] + ', "trees": [\n' + trees + "\n]}"
    out.write_text(head[:-2] + ',\n "refusal": ' + body + "\n}\n", encoding="utf-8")
    for engine, _ in sets:
        engine._model = None
    return info
