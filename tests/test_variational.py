"""The batched variational Dirichlet-process mixture against scikit-learn's BayesianGaussianMixture."""

import warnings

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture

from geoanom.detectors import DPMMDetector
from geoanom.detectors.variational import fit_dirichlet_mixtures

SETTINGS = {"concentration": 0.01, "reg_covar": 1e-4, "max_iter": 200, "tol": 1e-3}
POPULATED = 0.01


def labelled_clusters(n_clusters: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """n rows of n_clusters well-separated 2-D Gaussians (centres 8 apart), standardised, and their cluster."""
    rng = np.random.default_rng(seed)
    centres = 8.0 * np.stack([np.cos(np.arange(n_clusters) * 2.1), np.sin(np.arange(n_clusters) * 2.1)], axis=1)
    labels = rng.integers(0, n_clusters, n)
    X = centres[labels] + rng.normal(size=(n, 2)) @ np.array([[1.0, 0.3], [0.0, 0.6]])
    return (X - X.mean(axis=0)) / X.std(axis=0), labels


def clusters(n_clusters: int, n: int, seed: int) -> np.ndarray:
    return labelled_clusters(n_clusters, n, seed)[0]


def scikit_learn(X: np.ndarray, seed: int, init_params: str = "kmeans", n_components: int = 6,
                 max_iter: int = 200) -> BayesianGaussianMixture:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BayesianGaussianMixture(
            n_components=min(n_components, len(X)), covariance_type="full",
            weight_concentration_prior_type="dirichlet_process", weight_concentration_prior=0.01,
            reg_covar=1e-4, max_iter=max_iter, tol=1e-3 * len(X), init_params=init_params, random_state=seed,
        ).fit(X)


def mean_llk(X: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> float:
    """Mean log-likelihood of X under the mixture with these parameters (what the detector scores with)."""
    log_densities = [np.log(w) + multivariate_normal(m, c).logpdf(X) for w, m, c in zip(weights, means, covariances)]
    return float(logsumexp(np.stack(log_densities), axis=0).mean())


def populated(weights: np.ndarray) -> np.ndarray:
    """Indices of the populated components (weight >= 1%)."""
    return np.flatnonzero(weights >= POPULATED)


def matched(means_a: np.ndarray, means_b: np.ndarray) -> np.ndarray:
    """For each of means_a, the index of the nearest of means_b."""
    return np.argmin(np.square(means_a[:, None] - means_b[None]).sum(axis=2), axis=1)


@pytest.mark.parametrize("n_clusters", [1, 2, 3])
def test_agrees_with_scikit_learn_on_separated_clusters(n_clusters):
    samples = [clusters(n_clusters, 1500, seed) for seed in range(3)]
    fits = fit_dirichlet_mixtures(samples, [0, 1, 2], 6, **SETTINGS)
    for seed, (X, fit) in enumerate(zip(samples, fits)):
        reference = scikit_learn(X, seed)
        ours, theirs = populated(fit.weights), populated(reference.weights_)
        assert len(ours) == len(theirs) >= n_clusters
        pairs = matched(fit.means[ours], reference.means_[theirs])
        np.testing.assert_allclose(fit.means[ours], reference.means_[theirs][pairs], atol=1e-3)
        np.testing.assert_allclose(fit.covariances[ours], reference.covariances_[theirs][pairs], atol=1e-3)
        np.testing.assert_allclose(fit.weights[ours], reference.weights_[theirs][pairs], atol=1e-3)
        assert mean_llk(X, fit.weights, fit.means, fit.covariances) == pytest.approx(
            mean_llk(X, reference.weights_, reference.means_, reference.covariances_), abs=1e-4)


@pytest.mark.parametrize("n_clusters", [1, 2, 3])
def test_populated_components_sit_on_the_clusters(n_clusters):
    X, labels = labelled_clusters(n_clusters, 2000, 7)
    fit = fit_dirichlet_mixtures([X], [0], 6, **SETTINGS)[0]
    # the weight of the components nearest each cluster's centre is the cluster's share of the data
    centres = np.stack([X[labels == c].mean(axis=0) for c in range(n_clusters)])
    shares = np.bincount(matched(fit.means, centres), weights=fit.weights, minlength=n_clusters)
    np.testing.assert_allclose(shares, np.bincount(labels) / len(X), atol=0.01)
    assert fit.weights.sum() == pytest.approx(1.0)


def test_same_initialisation_gives_scikit_learns_parameters():
    # init_params="random": soft responsibilities drawn from RandomState(seed), normalised by row
    X = clusters(3, 800, 11)
    seed = 4
    resp = np.random.RandomState(seed).uniform(size=(len(X), 6))
    resp /= resp.sum(axis=1, keepdims=True)
    fit = fit_dirichlet_mixtures([X], n_components=6, initial_responsibilities=[resp], **SETTINGS)[0]
    reference = scikit_learn(X, seed, init_params="random")
    assert fit.n_iter == reference.n_iter_ and fit.converged == reference.converged_
    np.testing.assert_allclose(fit.weights, reference.weights_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.means, reference.means_, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(fit.covariances, reference.covariances_, rtol=1e-6, atol=1e-9)
    assert fit.lower_bound == pytest.approx(reference.lower_bound_, rel=1e-9)


def test_k_means_initialisation_follows_scikit_learns_random_draws():
    X = clusters(2, 1000, 12)
    fit = fit_dirichlet_mixtures([X], [3], 6, **SETTINGS)[0]
    reference = scikit_learn(X, 3)
    assert fit.n_iter == reference.n_iter_
    np.testing.assert_allclose(fit.weights, reference.weights_, atol=1e-9)
    np.testing.assert_allclose(fit.means, reference.means_, atol=1e-9)
    np.testing.assert_allclose(fit.covariances, reference.covariances_, atol=1e-9)


def test_each_sample_stops_on_its_own_and_max_iter_is_reported():
    samples = [clusters(1, 300, 1), clusters(3, 900, 2)]
    fits = fit_dirichlet_mixtures(samples, [0, 1], 6, **SETTINGS)
    assert [fit.n_iter for fit in fits] == [scikit_learn(X, seed).n_iter_ for seed, X in enumerate(samples)]
    short = fit_dirichlet_mixtures(samples, [0, 1], 6, **dict(SETTINGS, max_iter=2))
    assert [(fit.n_iter, fit.converged) for fit in short] == [(2, False), (2, False)]
    np.testing.assert_allclose(short[1].means, scikit_learn(samples[1], 1, max_iter=2).means_, atol=1e-9)


def test_a_samples_fit_does_not_depend_on_its_batch():
    rng = np.random.default_rng(3)
    sizes = [2048, 2048, 1500, 37, 5, 2000, 700]  # ragged: several padded lengths, and k = 5 for 5 rows
    samples = [clusters(1 + i % 3, n, 20 + i) + rng.normal(scale=0.01, size=(n, 2)) for i, n in enumerate(sizes)]
    seeds = list(range(len(samples)))
    batch = fit_dirichlet_mixtures(samples, seeds, 6, **SETTINGS)
    reordered = fit_dirichlet_mixtures(samples[::-1], seeds[::-1], 6, **SETTINGS)[::-1]
    for i, (X, seed) in enumerate(zip(samples, seeds)):
        alone = fit_dirichlet_mixtures([X], [seed], 6, **SETTINGS)[0]
        for other in (batch[i], reordered[i]):
            np.testing.assert_array_equal(other.weights, alone.weights)
            np.testing.assert_array_equal(other.means, alone.means)
            np.testing.assert_array_equal(other.covariances, alone.covariances)
            assert (other.n_iter, other.lower_bound) == (alone.n_iter, alone.lower_bound)
    assert [len(fit.weights) for fit in batch] == [6, 6, 6, 6, 5, 6, 6]


def test_ragged_samples_each_match_scikit_learn():
    samples = [clusters(2, n, 30 + n) for n in (2048, 333, 64, 17)]
    fits = fit_dirichlet_mixtures(samples, [5] * len(samples), 6, **SETTINGS)
    for X, fit in zip(samples, fits):
        reference = scikit_learn(X, 5)
        np.testing.assert_allclose(fit.weights, reference.weights_, atol=1e-8)
        np.testing.assert_allclose(fit.means, reference.means_, atol=1e-8)


def test_detector_fit_and_fit_many_agree_exactly_and_match_scikit_learn():
    rng = np.random.default_rng(9)
    samples = [rng.normal(size=(3000, 2)) * [2.0, 0.5] + 10, clusters(3, 1200, 5) * 3, clusters(2, 90, 6)]
    many = DPMMDetector.fit_many(samples, [0, 1, 2])
    for seed, (X, batched) in enumerate(zip(samples, many)):
        single = DPMMDetector(random_state=seed).fit(X)
        for name in ("weights_", "means_", "covariances_", "center_", "scale_"):
            np.testing.assert_array_equal(getattr(batched, name), getattr(single, name))
        assert (batched.model_llk_, batched.native_threshold_) == (single.model_llk_, single.native_threshold_)
        # the subsample the detector fits on, fitted by scikit-learn with the same seed
        Z = (X - single.center_) / single.scale_
        if len(X) > single.max_samples:
            Z = Z[np.sort(np.random.default_rng(seed).choice(len(X), single.max_samples, replace=False))]
        reference = scikit_learn(Z, seed)
        np.testing.assert_allclose(single.weights_, reference.weights_, atol=1e-8)
        np.testing.assert_allclose(single.covariances_, reference.covariances_, atol=1e-8)


def test_mismatched_seeds_are_refused():
    with pytest.raises(ValueError, match="2 samples but 1 random states"):
        fit_dirichlet_mixtures([np.zeros((10, 2)), np.ones((10, 2))], [0])
