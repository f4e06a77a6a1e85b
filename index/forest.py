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
    trees: list[dict[str, list]]  # feature, threshold, left, right, p (share of "answerable" at the node)

    def score(self, x: np.ndarray) -> np.ndarray:
        """P(answerable) per row: the mean over trees of the leaf's share, as scikit-learn's predict_proba.
        Plain lists, walked row by row: one served question takes ~0.06 ms, a fit's few hundred rows
        a few milliseconds."""
        return np.array([self._one(row) for row in np.atleast_2d(np.asarray(x, np.float32)).tolist()])

    def _one(self, row: list[float]) -> float:
        total = 0.0
        for t in self.trees:
            feature, threshold, left, right = t["feature"], t["threshold"], t["left"], t["right"]
            node = 0
            while left[node] >= 0:
                node = left[node] if row[feature[node]] <= threshold[node] else right[node]
            total += t["p"][node]
        return total / len(self.trees)

    def to_dict(self) -> dict:
        return {"kind": "forest", "names": self.names,
                "trees": [{**t, "p": np.round(t["p"], 5).tolist()} for t in self.trees]}

    @classmethod
    def from_dict(cls, d: dict) -> "Forest":
        keys = ("feature", "threshold", "left", "right", "p")
        return cls(d["names"], [{k: list(t[k]) for k in keys} for t in d["trees"]])


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
        trees.append({"feature": np.where(t.children_left >= 0, t.feature, 0).tolist(),
                      "threshold": t.threshold.tolist(), "left": t.children_left.tolist(),
                      "right": t.children_right.tolist(),
                      "p": (value[:, col] / np.maximum(value.sum(axis=1), 1e-12)).tolist()})
    return Forest(names, trees)
