"""Edges of the detectors' contract a new user found: the ensemble's pyod labels, constant columns in the
isolation forest, merging mismatched detectors and detectors given as instances."""

import numpy as np
import pytest

from geoanom.detectors import Ensemble, GMMDetector, IForestDetector, KMeansDetector
from geoanom.detectors.base import MergeError
from geoanom.detectors.families import check_detector_names
from geoanom.detectors.fusion import majority
from geoanom.errors import GeoanomError


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


def test_isolation_forest_flags_a_departure_in_a_column_constant_in_training():
    X = np.random.default_rng(0).normal(size=(500, 2))
    X[:, 1] = 5.0
    probe = np.array([[0.0, 5.0], [0.0, 6.0], [0.0, 1000.0], [0.0, 4.9]])
    forest = IForestDetector(random_state=0).fit(X)
    np.testing.assert_array_equal(forest.native_score(probe)[1:], 1.0)  # was 0.63 everywhere: the column unseen
    np.testing.assert_array_equal(forest.predict(probe), [0, 1, 1, 1])
    # rows without a departure score as the trees say, bit for bit as a model saved before (no unsplit state)
    saved = forest.to_dict()
    before = {**saved, "state": {k: v for k, v in saved["state"].items() if not k.startswith("unsplit_")}}
    old = IForestDetector.from_dict(before)
    inside = np.c_[np.random.default_rng(1).normal(size=300), np.full(300, 5.0)]
    np.testing.assert_array_equal(forest.native_score(inside), old.native_score(inside))
    assert old.native_score(probe[1:2])[0] < 0.7
    rebuilt = IForestDetector.from_dict(saved)
    np.testing.assert_array_equal(rebuilt.native_score(probe), forest.native_score(probe))
    merged = forest.merge(IForestDetector(random_state=1).fit(X))
    assert merged.predict(probe).tolist() == [0, 1, 1, 1]
    forest.update(inside[:256])  # regrown from a reservoir that still holds the column constant
    assert forest.predict(probe).tolist() == [0, 1, 1, 1]


def test_isolation_forest_state_is_unchanged_without_constant_columns_and_reads_units():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 2))
    assert not any(name.startswith("unsplit_") for name in IForestDetector(random_state=0).fit(X).to_dict()["state"])
    X[:, 1] = 271.35 + rng.normal(scale=1e-6, size=400)  # a constant cell's rounding noise
    forest, = IForestDetector.fit_many([X], [0], feature_units=[1.0, 1.0])
    within, beyond = forest.native_score([[0.0, 271.3505], [0.0, 271.36]])
    assert within < 0.7 and beyond == 1.0  # within the column's resolution (1e-3 of its unit) the value is the constant


def test_merge_refuses_another_family_or_width_in_one_sentence_naming_both():
    X = np.random.default_rng(3).normal(size=(300, 3))
    forest = IForestDetector(n_estimators=10, random_state=0).fit(X[:, :2])
    with pytest.raises(MergeError, match=r"^cannot merge GMMDetector into IForestDetector: .*\.$"):
        forest.merge(GMMDetector(random_state=0).fit(X[:, :2]))  # was AttributeError: no attribute 'tree_weight_'
    with pytest.raises(ValueError, match="KMeansDetector of 3 features into KMeansDetector of 2"):
        KMeansDetector(random_state=0).fit(X[:, :2]).merge(KMeansDetector(random_state=0).fit(X))  # was numpy's
    pair = Ensemble(("gmm", "kmeans"), random_state=0).fit(X)
    with pytest.raises(MergeError, match="ensemble of gmm, iforest on 3 features into an ensemble of gmm, kmeans"):
        pair.merge(Ensemble(("gmm", "iforest"), random_state=0).fit(X))
    assert pair.merge(pair).names == ("gmm", "kmeans")


def test_ensemble_takes_detector_instances_and_says_names_are_expected_elsewhere():
    X = np.random.default_rng(4).normal(size=(300, 2))
    ensemble = Ensemble([GMMDetector(max_iter=20), "kmeans"], random_state=0).fit(X)  # was "unknown detector"
    assert ensemble.names == ("gmm", "kmeans") and ensemble.detectors_["gmm"].max_iter == 20
    fitted = Ensemble.fit_many([X], [IForestDetector(n_estimators=7)], random_states=[0])[0]
    assert len(fitted.detectors_["iforest"].tree_root_) == 7
    with pytest.raises(GeoanomError, match="two gmm detectors"):
        Ensemble([GMMDetector(), GMMDetector()]).fit(X)
    with pytest.raises(GeoanomError, match="given by name here, not as GMMDetector objects; known detectors: gmm"):
        check_detector_names([GMMDetector()])
