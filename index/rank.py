"""The learned reranker and the refusal decision: weights are data, fitted on the dev split.

`data/rank/model.json` holds a standardised pairwise logistic regression for "this passage holds
the answer" over features.NAMES, and a random forest (index/forest.py, as arrays) for "the best
passage answers the question" over REFUSAL_NAMES with its threshold chosen out of fold. `planbot fit` writes it (index/fit.py). Without
the file the ranker is plain RRF and nothing is refused on scores.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .features import NAMES
from .forest import Forest
from .refusal import REFUSAL_NAMES


@dataclass
class Linear:
    names: list[str]
    coef: np.ndarray
    intercept: float
    mean: np.ndarray
    scale: np.ndarray

    def score(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean) / self.scale
        return 1 / (1 + np.exp(-(z @ self.coef + self.intercept)))

    def to_dict(self) -> dict:
        return {"names": self.names, "coef": self.coef.round(6).tolist(), "intercept": round(float(self.intercept), 6),
                "mean": self.mean.round(6).tolist(), "scale": self.scale.round(6).tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> "Linear":
        return cls(d["names"], np.array(d["coef"], np.float32), float(d["intercept"]),
                   np.array(d["mean"], np.float32), np.array(d["scale"], np.float32))


@dataclass
class RankModel:
    ranker: Linear | None
    refusal: Linear | Forest | None
    threshold: float
    info: dict

    @classmethod
    def load(cls, path: Path) -> "RankModel":
        if not Path(path).exists():
            return cls(None, None, 0.0, {"source": "none: plain RRF"})
        d = json.loads(Path(path).read_text(encoding="utf-8"))
        ranker = Linear.from_dict(d["ranker"])
        if ranker.names != NAMES:
            raise ValueError(f"{path} was fitted on other features; run `planbot fit` again")
        r = d.get("refusal")
        refusal = (Forest.from_dict(r) if r.get("kind") == "forest" else Linear.from_dict(r)) if r else None
        if refusal and refusal.names != REFUSAL_NAMES:
            raise ValueError(f"{path} was fitted on other refusal features; run `planbot fit` again")
        return cls(ranker, refusal, float(d.get("threshold", 0.0)), d.get("info", {}))

    def rank(self, x: np.ndarray) -> np.ndarray:
        if self.ranker is None:
            return x[:, NAMES.index("rrf")]
        return self.ranker.score(x)

    def answerable(self, r: np.ndarray) -> float:
        return float(self.refusal.score(r[None, :])[0]) if self.refusal is not None else 1.0
