"""Duplicated and collinear feature columns (two products identical over the training period) fit with every family."""

import numpy as np
import pytest

import geoanom as ga
from geoanom.detectors import DPMMDetector, Ensemble
from geoanom.detectors.families import DEFAULT_DETECTORS

NAMES = tuple(DEFAULT_DETECTORS)


def _rows(rng, n):
    a = rng.normal(size=n)
    return np.c_[a, a, 0.6 * a + 0.8 * rng.normal(size=n), 2.0 * a + 1.0]  # a column twice, and a rescaled copy


def test_every_family_fits_and_scores_duplicated_columns():
    rng = np.random.default_rng(0)
    samples = [_rows(rng, n) for n in (40, 300, 1500)]  # out-of-fold, extrapolated and in-sample thresholds
    fitted = Ensemble.fit_many(samples, NAMES, [0, 1, 2])
    for ensemble in fitted:
        new = _rows(rng, 2000)
        irregularity = ensemble.irregularity(new)
        assert np.isfinite(irregularity).all()
        assert (irregularity > 1).mean(axis=1).max() < 0.05  # normal rows stay normal
        # a row off the line the copies share is anomalous for the families that model the joint shape
        off = new[:5].copy()
        off[:, 1] += 3.0
        assert (ensemble.irregularity(off)[[NAMES.index("gmm"), NAMES.index("dpmm")]] > 1).all()


def test_a_dirichlet_process_mixture_of_identical_columns_fits():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(40, 1))
    X = np.c_[a, a, rng.normal(size=(40, 1))]  # was LinAlgError "Matrix is not positive definite"
    detector = DPMMDetector(random_state=0).fit(X)
    assert np.isfinite(detector.decision_function(X)).all()


def test_a_dirichlet_process_mixture_of_full_rank_columns_is_unchanged():
    from geoanom.detectors.variational import _priors

    X = np.random.default_rng(2).normal(size=(1, 50, 3))
    mask, counts = np.ones((1, 50)), np.array([50.0])
    centred = X[0] - X[0].mean(axis=0)
    assert np.array_equal(_priors(X, mask, counts, 1e-4).covariance[0], centred.T @ centred / 49)


@pytest.mark.slow
def test_fit_of_two_identical_variables_scores_with_every_family():
    cube, _ = ga.testing.synthetic_cube(n_years=3, n_lat=8, n_lon=8, anomaly_rate=0.0, seed=4)
    name = next(iter(cube.data_vars))
    two = cube.assign(copy=cube[name] + 0.0)
    model = ga.fit(two.isel(time=slice(0, 24)), precision=2, min_observations=48)  # dpmm: LinAlgError before
    result = model.score(two.isel(time=slice(24, None))).compute()
    assert set(result.detector.values) == set(NAMES)
    assert float(result.ensemble.mean()) < 0.03
