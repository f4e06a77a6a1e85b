"""A random forest (scikit-learn) kept as plain arrays in JSON, for the refusal decision.

Why a forest: whether the best passage answers a question depends on combinations (a figure is
there but the asked word is not; the word is there but for another year), which one linear
score cannot express. Why arrays: the fitted model must be data beside the index that anyone can
read and diff, not a pickle tied to one scikit-learn version. Serving needs numpy only.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TREES, LEAF = 200, 5  # min_samples_leaf 5 over 3/5/10 and extra-trees in leave-one-set-out (README)


@dataclass
class Forest:
    names: list[str]
    trees: list[dict[str, np.ndarray]]  # feature, threshold, left, right, p (share of "answerable" at the node)

    def score(self, x: np.ndarray) -> np.ndarray:
        """P(answerable) per row: the mean over trees of the leaf's share, as scikit-learn's predict_proba."""
        x = np.atleast_2d(np.asarray(x, np.float32))
        if len(x) == 1:  # one question as served: walking plain lists beats numpy on one row (~0.5 ms)
            return np.array([self._one(x[0].tolist())])
        total = np.zeros(len(x))
        for t in self.trees:
            node = np.zeros(len(x), np.int64)
            while True:
                inner = t["left"][node] >= 0
                if not inner.any():
                    break
                f, thr = t["feature"][node[inner]], t["threshold"][node[inner]]
                go_left = x[np.flatnonzero(inner), f] <= thr
                node[inner] = np.where(go_left, t["left"][node[inner]], t["right"][node[inner]])
            total += t["p"][node]
        return total / len(self.trees)

    def _one(self, row: list[float]) -> float:
        if not hasattr(self, "_lists"):
            self._lists = [tuple(t[k].tolist() for k in ("feature", "threshold", "left", "right", "p"))
                           for t in self.trees]
        total = 0.0
        for feature, threshold, left, right, p in self._lists:
            node = 0
            while left[node] >= 0:
                node = left[node] if row[feature[node]] <= threshold[node] else right[node]
            total += p[node]
        return total / len(self._lists)

    def to_dict(self) -> dict:
        return {"kind": "forest", "names": self.names,
                "trees": [{"feature": t["feature"].tolist(), "threshold": t["threshold"].tolist(),
                           "left": t["left"].tolist(), "right": t["right"].tolist(),
                           "p": np.round(t["p"], 5).tolist()} for t in self.trees]}

    @classmethod
    def from_dict(cls, d: dict) -> "Forest":
        trees = [{"feature": np.array(t["feature"], np.int64), "threshold": np.array(t["threshold"], np.float64),
                  "left": np.array(t["left"], np.int64), "right": np.array(t["right"], np.int64),
                  "p": np.array(t["p"], np.float64)} for t in d["trees"]]
        return cls(d["names"], trees)


def fit_forest(names: list[str], x: np.ndarray, y: np.ndarray, seed: int = 0) -> Forest:
    """Fit with scikit-learn (balanced classes: near misses are the minority) and export its trees."""
    from sklearn.ensemble import RandomForestClassifier

    rf = RandomForestClassifier(n_estimators=TREES, min_samples_leaf=LEAF, class_weight="balanced",
                                random_state=seed, n_jobs=2).fit(np.asarray(x, np.float32), y)
    col = list(rf.classes_).index(1)
    trees = []
    for est in rf.estimators_:
        t = est.tree_
        value = t.value[:, 0, :]
        trees.append({"feature": np.where(t.children_left >= 0, t.feature, 0).astype(np.int64),
                      "threshold": t.threshold.astype(np.float64), "left": t.children_left.astype(np.int64),
                      "right": t.children_right.astype(np.int64),
                      "p": value[:, col] / np.maximum(value.sum(axis=1), 1e-12)})
    return Forest(names, trees)
