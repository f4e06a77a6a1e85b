"""The refusal forest is kept as plain arrays in JSON; served, it must decide as scikit-learn's would."""
import json

import numpy as np
from sklearn.ensemble import RandomForestClassifier

from index.fit import choose_threshold
from index.forest import LEAF, TREES, Forest, fit_forest


def test_forest_from_json_scores_as_scikit_learn_does():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(300, 5)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] + x[:, 2] > 0).astype(int)  # an interaction no single linear score captures
    forest = Forest.from_dict(json.loads(json.dumps(fit_forest(list("abcde"), x, y).to_dict())))
    sk = RandomForestClassifier(n_estimators=TREES, min_samples_leaf=LEAF, class_weight="balanced",
                                random_state=0).fit(x, y)
    new = rng.normal(size=(200, 5)).astype(np.float32)
    assert np.abs(forest.score(new) - sk.predict_proba(new)[:, 1]).max() < 1e-5
    assert ((forest.score(new) > 0.5) == (new[:, 0] * new[:, 1] + new[:, 2] > 0)).mean() > 0.8


def test_threshold_refuses_most_near_misses_within_the_false_refusal_cap():
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95] * 10)
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1, 1, 1] * 10)
    t, refused = choose_threshold(p, y, cap=0.0)
    assert t == 0.35 and refused == 0.75  # 0.4 would refuse every 0 but also a sixth of the answerable ones
    t, refused = choose_threshold(p, y, cap=0.2)
    assert refused == 1.0 and np.mean(p[y == 1] < t) <= 0.2
