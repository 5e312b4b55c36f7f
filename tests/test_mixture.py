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


@pytest.mark.parametrize("allowed", [None, np.array([True, False, True])])
def test_compiled_fitness_equals_the_formula_in_numpy(allowed):
    from scipy.special import logsumexp

    from geoanom.detectors.mixture_scoring import fitness_scores

    rng = np.random.default_rng(3)
    d, k = 2, 3
    means = rng.normal(size=(k, d))
    factors = rng.normal(size=(k, d, d))
    covariances = factors @ np.swapaxes(factors, 1, 2) + 0.5 * np.eye(d)
    weights = np.array([0.5, 0.3, 0.2])
    precision_chol = np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in covariances])
    center, scale, model_llk = np.array([1.0, -2.0]), np.array([2.0, 0.5]), -2.7
    X = center + scale * rng.normal(size=(500, d)) * 2
    Z = (X - center) / scale
    # the formula, component by component
    log_det = np.log(np.einsum("kii->ki", precision_chol)).sum(axis=1)
    constant = np.log(weights) + log_det - 0.5 * d * np.log(2 * np.pi)
    mahalanobis = np.stack([np.square((Z - means[c]) @ precision_chol[c]).sum(axis=1) for c in range(k)])
    weighted = constant[:, None] - 0.5 * mahalanobis
    assigned = (np.argmax(weighted, axis=0) if allowed is None
                else np.argmin(np.where(allowed[:, None], mahalanobis, np.inf), axis=0))
    std = np.sqrt(np.einsum("kii->ki", covariances))
    distance = np.sqrt(np.square((Z - means[assigned]) / std[assigned]).sum(axis=1))
    expected = (logsumexp(weighted, axis=0) - model_llk) / abs(model_llk) * distance
    found = fitness_scores(X, center, scale, precision_chol, means, constant, std, allowed, model_llk)
    np.testing.assert_allclose(found, expected, rtol=1e-10, atol=1e-12)
    if allowed is not None:  # the excluded component is never the one measured from
        assert not np.any(assigned == 1)
