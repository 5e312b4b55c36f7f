"""scikit-learn's own estimator checks, run on every detector family and the Ensemble.

The detectors follow pyod's outputs (``predict`` 0/1, ``decision_function``
higher = more abnormal), the opposite of scikit-learn's ``OutlierMixin``
(-1/1, negative = abnormal); they therefore declare no outlier-detector
type and scikit-learn runs its general estimator checks on them (see
:mod:`geoanom.detectors.base`). No check is expected to fail.
"""

import numpy as np
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.utils.estimator_checks import parametrize_with_checks

from geoanom.detectors import (
    DPMMDetector,
    Ensemble,
    EventDetector,
    GMMDetector,
    IForestDetector,
    KMeansDetector,
)

# Small models: scikit-learn's checks fit dozens of times on tiny data.
ESTIMATORS = [
    GMMDetector(max_iter=50),
    KMeansDetector(),
    DPMMDetector(max_iter=50),
    IForestDetector(n_estimators=10),
    EventDetector(),
    EventDetector(pairs=1),
    Ensemble(),  # the default families
]


@parametrize_with_checks(ESTIMATORS)
def test_scikit_learn_check(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_pyod_attributes_and_one_direction(estimator):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 2))
    with pytest.raises(NotFittedError):
        estimator.decision_function(X)
    fitted = type(estimator)(**estimator.get_params()).set_params(random_state=0).fit(X)
    assert fitted.n_features_in_ == 2
    assert fitted.threshold_ == 1.0
    np.testing.assert_array_equal(fitted.decision_scores_, fitted.decision_function(X))
    np.testing.assert_array_equal(fitted.labels_, fitted.predict(X))
    far, near = fitted.decision_function([[9.0, -9.0], [0.0, 0.0]])
    assert far > 1.0 > near  # higher = more abnormal, for every family
    np.testing.assert_array_equal(fitted.score_samples(X), -fitted.decision_function(X))


@pytest.mark.parametrize("family", [GMMDetector, KMeansDetector, DPMMDetector, IForestDetector, EventDetector])
def test_labels_are_the_decision_scores_above_the_threshold(family):
    X = np.random.default_rng(1).standard_t(3, size=(400, 3))
    detector = family(random_state=0).fit(X)
    np.testing.assert_array_equal(detector.labels_, detector.decision_scores_ > detector.threshold_)
    assert 0 < detector.labels_.sum() < len(X)


def test_one_dimensional_and_nan_input_are_refused_not_reshaped():
    X = np.random.default_rng(2).normal(size=(100, 1))
    detector = KMeansDetector(random_state=0).fit(X)
    with pytest.raises(ValueError, match="Reshape your data"):
        detector.irregularity(X[:, 0])
    with pytest.raises(ValueError, match="NaN"):
        detector.irregularity(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="Reshape your data"):
        KMeansDetector().fit(X[:, 0])


def test_dpmm_truncation_follows_set_params():
    X = np.random.default_rng(3).normal(size=(200, 2))
    detector = DPMMDetector(random_state=0).set_params(max_components=3).fit(X)
    assert len(detector.weights_) == 3
    assert "n_components" not in detector.get_params()
