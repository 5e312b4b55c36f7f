"""Edges of the detectors' contract a new user found: the ensemble's pyod labels, constant columns in the
isolation forest, merging mismatched detectors and detectors given as instances."""

import numpy as np

from geoanom.detectors import Ensemble
from geoanom.detectors.ensemble import majority


def test_ensemble_predict_is_the_fused_score_above_its_threshold_and_the_vote_stays_apart():
    rng = np.random.default_rng(0)
    X, new = rng.normal(size=(1000, 3)), rng.normal(size=(20000, 3))
    ensemble = Ensemble(random_state=0).fit(X)
    scores = ensemble.decision_function(new)
    np.testing.assert_array_equal(ensemble.predict(new), scores > ensemble.threshold_)  # 32 rows disagreed
    np.testing.assert_array_equal(ensemble.labels_, ensemble.decision_scores_ > ensemble.threshold_)
    vote = ensemble.majority_vote(new)
    np.testing.assert_array_equal(vote, majority((ensemble.irregularity(new) > 1).sum(axis=0), 5))
    assert (vote != ensemble.predict(new)).any()  # the two rules differ on some rows: both exist, named apart
    rebuilt = Ensemble.from_dict(ensemble.to_dict())  # as geoanom.fit's tiles are built
    assert rebuilt.threshold_ == 1.0
    np.testing.assert_array_equal(rebuilt.predict(new), ensemble.predict(new))
