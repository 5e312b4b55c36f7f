"""The batched K-Means fit (geoanom.detectors.lloyd) against scikit-learn, and its batch independence."""

import warnings

import numpy as np
import pytest
from sklearn.cluster import KMeans

from geoanom.detectors import KMeansDetector
from geoanom.detectors.lloyd import lloyd_many, nearest_centres, nearest_distances


def _sklearn(X, init):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "fewer distinct clusters" on duplicate rows
        return KMeans(len(init), init=init, n_init=1).fit(X)


def _assert_as_sklearn(fit, X, init):
    reference = _sklearn(X, init)
    np.testing.assert_array_equal(fit.labels, reference.labels_)
    np.testing.assert_allclose(fit.centres, reference.cluster_centers_, rtol=0, atol=1e-10)
    assert fit.n_iter == reference.n_iter_


def _blobs(rng, n, k, d=2):
    centres = rng.normal(scale=3.0, size=(k, d))
    return centres[rng.integers(0, k, n)] + rng.standard_t(4, size=(n, d))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_lloyd_equals_scikit_learn_from_the_same_centres(d):
    rng = np.random.default_rng(d)
    samples, inits = [], []
    for _ in range(40):
        n, k = int(rng.integers(10, 3000)), int(rng.integers(1, 9))
        X = _blobs(rng, n, k, d)
        samples.append(X)
        inits.append(X[rng.choice(n, k, replace=False)] + rng.normal(scale=0.3, size=(k, d)))
    fits = lloyd_many(samples, inits)
    for fit, X, init in zip(fits, samples, inits):
        _assert_as_sklearn(fit, X, init)
    assert max(fit.n_iter for fit in fits) > 5  # the stopping rule was exercised, not only strict repeats


def test_stopping_by_the_centre_shift_tolerance_equals_scikit_learn():
    # Overlapping clusters: labels keep flipping at the boundary, so the loop stops on tol * mean variance.
    rng = np.random.default_rng(7)
    X = rng.normal(size=(4000, 2))
    init = X[:6]
    fit = lloyd_many([X], [init])[0]
    _assert_as_sklearn(fit, X, init)
    assert fit.n_iter < 300
    fit = lloyd_many([X], [init], max_iter=3)[0]
    assert fit.n_iter == 3
    np.testing.assert_allclose(fit.centres, KMeans(6, init=init, n_init=1, max_iter=3).fit(X).cluster_centers_,
                               rtol=0, atol=1e-10)


def test_empty_clusters_are_relocated_to_the_farthest_rows_as_scikit_learn_does():
    rng = np.random.default_rng(3)
    X = _blobs(rng, 500, 3)
    # two centres far from every row: both clusters are empty after the first assignment
    init = np.vstack([X.mean(axis=0), [100.0, 100.0], [-200.0, 50.0]])
    first = nearest_centres(X, init)
    assert set(first.tolist()) == {0}
    fit = lloyd_many([X], [init])[0]
    _assert_as_sklearn(fit, X, init)
    assert (fit.counts > 0).all()


def test_more_centres_than_distinct_rows_equals_scikit_learn():
    X = np.vstack([np.ones((5, 2)), np.full((3, 2), 2.0)])
    init = np.array([[1.0, 1.0], [2.0, 2.0], [1.5, 1.5]])  # the third can take no distinct row
    fit = lloyd_many([X], [init])[0]
    _assert_as_sklearn(fit, X, init)
    assert fit.counts.tolist() == [5.0, 3.0, 0.0]


def test_counts_and_scatter_are_those_of_the_labels():
    rng = np.random.default_rng(5)
    X = _blobs(rng, 900, 3)
    fit = lloyd_many([X], [X[:3]])[0]
    for j, centre in enumerate(fit.centres):
        members = X[fit.labels == j]
        assert fit.counts[j] == len(members)
        np.testing.assert_allclose(fit.scatter[j], (members - centre).T @ (members - centre), rtol=1e-12, atol=1e-9)


def test_a_tile_does_not_depend_on_its_batch():
    rng = np.random.default_rng(11)
    samples = [_blobs(rng, int(n), int(k)) for n, k in zip(rng.integers(2, 4097, 12), rng.integers(1, 4, 12))]
    inits = [X[: min(len(X), 3)] for X in samples]
    together = lloyd_many(samples, inits)
    reversed_batch = lloyd_many(samples[::-1], inits[::-1])[::-1]
    for fit, other, X, init in zip(together, reversed_batch, samples, inits):
        alone = lloyd_many([X], [init])[0]
        for candidate in (other, alone):
            np.testing.assert_array_equal(candidate.centres, fit.centres)
            np.testing.assert_array_equal(candidate.labels, fit.labels)
            np.testing.assert_array_equal(candidate.scatter, fit.scatter)


def _states_equal(a, b):
    sa, sb = a.to_dict(), b.to_dict()
    assert sa["params"] == sb["params"]
    assert sa["state"].keys() == sb["state"].keys()
    for key, value in sa["state"].items():
        np.testing.assert_array_equal(value, sb["state"][key], err_msg=key)


def test_fit_many_equals_fit_and_does_not_depend_on_the_batch():
    rng = np.random.default_rng(2)
    sizes = [2, 3, 5, 40, 2048, 2500, 4096, 3001]  # ragged, some below max_samples, some above
    samples = [_blobs(rng, n, 2) for n in sizes]
    seeds = list(range(10, 10 + len(samples)))
    many = KMeansDetector.fit_many(samples, seeds)
    shuffled = KMeansDetector.fit_many(samples[::-1], seeds[::-1])[::-1]
    for detector, other, X, seed in zip(many, shuffled, samples, seeds):
        _states_equal(detector, KMeansDetector(random_state=seed).fit(X))
        _states_equal(detector, other)


@pytest.mark.parametrize("n", [2, 3, 5, 9])
def test_tiles_with_fewer_rows_than_canopies_fit_as_scikit_learn(n):
    # MAX_CANOPIES is 8: the canopy step must give at most n centres, and Lloyd agree with scikit-learn.
    rng = np.random.default_rng(n)
    X = rng.normal(size=(n, 2)) * 10  # spread out: every row may seed its own canopy
    detector = KMeansDetector(random_state=0)
    Z, init = KMeansDetector(random_state=0)._canopy_start(X)
    assert 1 <= len(init) <= n
    detector.fit(X)
    reference = _sklearn(Z, init)
    np.testing.assert_allclose(detector.means_, reference.cluster_centers_, rtol=0, atol=1e-10)
    np.testing.assert_array_equal(detector.counts_, np.bincount(reference.labels_, minlength=len(init)))


def test_more_centres_than_rows_is_refused():
    X = np.zeros((2, 2))
    with pytest.raises(ValueError, match="sample 1 has 2 rows and 3 initial centres"):
        lloyd_many([np.ones((4, 2)), X], [np.ones((1, 2)), np.ones((3, 2))])


def test_detector_clusters_equal_scikit_learn_on_its_own_canopies():
    rng = np.random.default_rng(8)
    for seed in range(6):
        X = _blobs(rng, int(rng.integers(2048, 4097)), 3) * [1.0, 4.0] + [5.0, -2.0]
        Z, init = KMeansDetector(random_state=seed)._canopy_start(X)
        reference = _sklearn(Z, init)
        detector = KMeansDetector(random_state=seed).fit(X)
        np.testing.assert_allclose(detector.means_, reference.cluster_centers_, rtol=0, atol=1e-10)
        np.testing.assert_array_equal(detector.counts_, np.bincount(reference.labels_, minlength=len(init)))


def _numpy_score(detector, X):
    """The scoring before it was compiled: numpy broadcasting over (k, n, d) offsets."""
    Z = (X - detector.center_) / detector.scale_
    offsets = Z[None] - detector.means_[:, None, :]
    nearest = np.argmin(np.einsum("knd,knd->kn", offsets, offsets), axis=0)
    own = offsets[nearest, np.arange(len(Z))]
    if detector.metric == "euclidean":
        return np.linalg.norm(own, axis=1), nearest
    return np.linalg.norm(np.einsum("nde,ne->nd", detector._whitening[nearest], own), axis=1), nearest


@pytest.mark.parametrize("metric", ["mahalanobis", "euclidean"])
@pytest.mark.parametrize("d", [1, 2, 4])
def test_compiled_scoring_equals_the_numpy_formula(metric, d):
    rng = np.random.default_rng(d)
    detector = KMeansDetector(metric=metric, random_state=0).fit(_blobs(rng, 3000, 3, d))
    X = rng.normal(scale=5.0, size=(20000, d))
    expected, nearest = _numpy_score(detector, X)
    np.testing.assert_allclose(detector.native_score(X), expected, rtol=1e-12, atol=0)
    Z = (X - detector.center_) / detector.scale_
    np.testing.assert_array_equal(nearest_centres(Z, detector.means_), nearest)


def test_nearest_distances_takes_any_layout():
    Z = np.asfortranarray(np.random.default_rng(0).normal(size=(50, 2)))
    means = np.array([[0.0, 0.0], [1.0, 1.0]])
    expected = np.sqrt(((Z[:, None] - means[None]) ** 2).sum(axis=2)).min(axis=1)
    np.testing.assert_allclose(nearest_distances(Z, means), expected, rtol=1e-14)
    np.testing.assert_allclose(nearest_distances(Z[::2], means), expected[::2], rtol=1e-14)
