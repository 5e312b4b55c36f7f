"""Batched EM: the same mixtures as scikit-learn, one tile independent of the others."""

import numpy as np
import pytest
from sklearn.mixture import GaussianMixture

from geoanom.detectors.mixture import fit_mixtures


def _tiles(n_tiles=6, seed=0):
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(n_tiles):
        n = 300 + 150 * i  # different sizes exercise the padding
        one = rng.normal([0, 0], 1.0, (int(n * 0.7), 2))
        two = rng.normal([5, 2], 0.6, (n - len(one), 2))
        X = np.concatenate([one, two]) if i % 2 == 0 else rng.normal(size=(n, 2))
        tiles.append((X - X.mean(axis=0)) / X.std(axis=0))
    return tiles


def test_same_likelihood_and_bic_as_scikit_learn():
    tiles = _tiles()
    fits = fit_mixtures(tiles, (1, 2, 3))
    for X, fit in zip(tiles, fits):
        k = len(fit.weights)
        reference = GaussianMixture(k, covariance_type="full", reg_covar=1e-4, n_init=3, random_state=0).fit(X)
        assert fit.mean_llk == pytest.approx(reference.score(X), abs=2e-3)
        assert fit.bic == pytest.approx(reference.bic(X), rel=1e-3)
        np.testing.assert_allclose(fit.weights.sum(), 1.0)
    # BIC picks the generating number of clusters
    assert [len(fit.weights) for fit in fits] == [2, 1, 2, 1, 2, 1]


def test_each_tile_is_independent_of_its_batch():
    tiles = _tiles()
    together = fit_mixtures(tiles)
    for X, fit in zip(tiles, together):
        alone = fit_mixtures([X])[0]
        # equal up to the rounding of sums over a padded sample: same iterations, same optimum
        np.testing.assert_allclose(alone.means, fit.means, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(alone.covariances, fit.covariances, rtol=1e-10, atol=1e-12)
        assert alone.mean_llk == pytest.approx(fit.mean_llk, rel=1e-12)


def test_too_small_samples_are_refused():
    with pytest.raises(ValueError, match="at least two observations"):
        fit_mixtures([np.zeros((1, 2))], (1,))
