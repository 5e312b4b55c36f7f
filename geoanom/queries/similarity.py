"""Feature-similarity queries: how alike two tiles' fitted distributions are.

The reference paper's section 3.4 asks for the detector instances whose
underlying distributions resemble a given one. Each tile's distribution is
summarised by the Gaussian that matches its fitted model's first two moments
(the mean and covariance of the features, in the data's own units), and two
tiles are compared by the **Bhattacharyya distance** between those Gaussians::

    D_B = 1/8 (m1 - m2)' S^-1 (m1 - m2) + 1/2 ln(det S / sqrt(det S1 det S2)),  S = (S1 + S2) / 2

It is symmetric, zero for identical distributions, positive otherwise and
finite for any two positive-definite covariances (every family's covariances
are regularised). Unlike the Hellinger distance ``sqrt(1 - exp(-D_B))``,
which this module also gives and which is bounded by 1, it does not saturate
for very different tiles, so it still ranks them. Neither is a metric in the
strict sense (D_B breaks the triangle inequality); both are the usual
divergences between Gaussians.

The functions take plain arrays (or a fitted :class:`~geoanom.detectors.Ensemble`
for :func:`ensemble_moments`); :class:`geoanom.AnomalyModel` exposes them as
``similar_tiles`` and ``tile_distances``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..detectors import Ensemble
from ..errors import GeoanomError

# Variance added to every covariance, in units of each feature's mean variance over
# the tiles, so that a degenerate feature (constant in a tile) keeps the log-determinants finite.
RIDGE = 1e-9


def mixture_moments(weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
                    center: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of a Gaussian mixture fitted in standardised units, in data units.

    Parameters
    ----------
    weights : (k,) array
    means : (k, d) array
    covariances : (k, d, d) array
        The components, in units of ``(x - center) / scale``.
    center, scale : (d,) arrays
        The standardisation the mixture was fitted in.

    Returns
    -------
    mean : (d,) array
    covariance : (d, d) array

    Examples
    --------
    >>> import numpy as np
    >>> m, c = mixture_moments(np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]), np.ones((2, 1, 1)),
    ...                        np.array([10.0]), np.array([2.0]))
    >>> m.tolist(), c.tolist()  # variance (1 + 1) * 2**2
    ([10.0], [[8.0]])
    """
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    mean = weights @ means
    second = np.einsum("k,kij->ij", weights, covariances + np.einsum("ki,kj->kij", means, means))
    covariance = second - np.outer(mean, mean)
    return center + scale * mean, covariance * np.outer(scale, scale)


def cluster_moments(counts: np.ndarray, means: np.ndarray, scatter: np.ndarray,
                    center: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of the union of clusters (counts, centroids, scatter about each centroid), in data units.

    Examples
    --------
    >>> import numpy as np
    >>> m, c = cluster_moments(np.array([1.0, 1.0]), np.array([[-1.0], [1.0]]), np.zeros((2, 1, 1)),
    ...                        np.zeros(1), np.ones(1))
    >>> m.tolist(), c.tolist()
    ([0.0], [[1.0]])
    """
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    mean = counts @ means / total
    offsets = means - mean
    covariance = (scatter.sum(axis=0) + np.einsum("k,ki,kj->ij", counts, offsets, offsets)) / total
    return center + scale * mean, covariance * np.outer(scale, scale)


def ensemble_moments(ensemble: Ensemble, name: str = "the tile") -> tuple[np.ndarray, np.ndarray]:
    """The Gaussian moments of a fitted ensemble's feature distribution, in data units.

    From the first family that holds them: the mixtures (``gmm``, then
    ``dpmm``), the K-Means clusters, the event family's robust Gaussian
    (when it covers every feature in one group), or else the isolation
    forest's reservoir sample of its observations.

    Raises
    ------
    GeoanomError
        If no family of the ensemble describes the distribution; ``name`` names the tile.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(500, 2)) + 5
    >>> mean, covariance = ensemble_moments(Ensemble(("kmeans",), random_state=0).fit(X))
    >>> bool(np.allclose(mean, X.mean(axis=0))), bool(np.allclose(covariance, np.cov(X.T, bias=True)))
    (True, True)
    """
    families = ensemble.detectors_
    for family in ("gmm", "dpmm"):
        if family in families:
            d = families[family]
            return mixture_moments(d.weights_, d.means_, d.covariances_, d.center_, d.scale_)
    if "kmeans" in families:
        d = families["kmeans"]
        return cluster_moments(d.counts_, d.means_, d.scatter_, d.center_, d.scale_)
    event = families.get("event")
    if event is not None and event.means_.shape == (1, event.n_features_in_):  # one group over every feature
        return event.means_[0], event.covariances_[0]
    reservoir = getattr(families.get("iforest"), "reservoir_", None)
    if reservoir is not None and len(reservoir) > 1:
        reservoir = np.asarray(reservoir, dtype=np.float64)
        return reservoir.mean(axis=0), np.atleast_2d(np.cov(reservoir.T, bias=True))
    raise GeoanomError(f"{name}'s model ({', '.join(families)}) holds no moments of its features to compare.")


def bhattacharyya_distances(means: np.ndarray, covariances: np.ndarray,
                            other_means: np.ndarray | None = None,
                            other_covariances: np.ndarray | None = None) -> np.ndarray:
    """Bhattacharyya distances between Gaussians: all pairs of one set, or each of one set to each of another.

    Compiled, one small Cholesky factor per pair, on one core: all pairs of
    2,000 tiles take about 0.3 s with 2 features and 1 s with 6.

    Parameters
    ----------
    means : (n, d) array
    covariances : (n, d, d) array
        Positive-definite covariances.
    other_means, other_covariances : (m, d) and (m, d, d) arrays, optional
        A second set; by default the first one (a symmetric matrix with a zero diagonal).

    Returns
    -------
    (n, m) array, >= 0.

    Examples
    --------
    >>> import numpy as np
    >>> means, covariances = np.array([[0.0], [2.0]]), np.ones((2, 1, 1))
    >>> bhattacharyya_distances(means, covariances).round(3).tolist()  # (2**2) / 8
    [[0.0, 0.5], [0.5, 0.0]]
    """
    symmetric = other_means is None
    means, covariances = _checked(means, covariances)
    other_means, other_covariances = (means, covariances) if symmetric else _checked(other_means, other_covariances)
    # the distance is invariant under one change of units for all: each feature's mean variance as its unit keeps
    # the pivots near 1 and lets one relative ridge keep a degenerate feature finite whatever the units
    level = np.concatenate([np.einsum("nii->ni", covariances), np.einsum("nii->ni", other_covariances)]).mean(axis=0)
    scale = np.sqrt(np.where(level > 0, level, 1.0))
    means, covariances = _common_units(means, covariances, scale)
    other_means, other_covariances = _common_units(other_means, other_covariances, scale)
    return _pair_distances(means, covariances, _log_dets(covariances), other_means, other_covariances,
                           _log_dets(other_covariances), symmetric)


def hellinger(bhattacharyya: np.ndarray) -> np.ndarray:
    """The Hellinger distance of Gaussians from their Bhattacharyya distance: ``sqrt(1 - exp(-D_B))``, in [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> hellinger(np.array([0.0, np.inf])).tolist()
    [0.0, 1.0]
    """
    return np.sqrt(-np.expm1(-np.asarray(bhattacharyya, dtype=np.float64)))


def _checked(means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 copies, each covariance symmetrised."""
    covariances = np.asarray(covariances, dtype=np.float64)
    return np.asarray(means, dtype=np.float64), 0.5 * (covariances + np.swapaxes(covariances, 1, 2))


def _common_units(means: np.ndarray, covariances: np.ndarray, scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and covariances divided by ``scale`` per feature, each covariance given a ``RIDGE`` of variance."""
    covariances = covariances / np.outer(scale, scale) + RIDGE * np.eye(len(scale))
    return np.ascontiguousarray(means / scale), np.ascontiguousarray(covariances)


def _log_dets(covariances: np.ndarray) -> np.ndarray:
    sign, log_det = np.linalg.slogdet(covariances)
    if (sign <= 0).any():
        raise GeoanomError(f"covariance {int(np.argmax(sign <= 0))} is not positive definite; "
                           "its distribution cannot be compared.")
    return log_det


@njit(cache=True, nogil=True)
def _pair_distances(means_a, covs_a, log_det_a, means_b, covs_b, log_det_b, symmetric):  # pragma: no cover - compiled
    n_a, n_b, d = means_a.shape[0], means_b.shape[0], means_a.shape[1]
    out = np.zeros((n_a, n_b))
    factor = np.empty((d, d))
    solved = np.empty(d)
    for i in range(n_a):
        for j in range(i + 1 if symmetric else 0, n_b):
            # Cholesky factor of the mean covariance, in place, and its log-determinant
            det, log_det = 1.0, 0.0  # a product of the pivots, folded into the log only when it drifts far from 1
            for r in range(d):
                for c in range(r + 1):
                    total = 0.5 * (covs_a[i, r, c] + covs_b[j, r, c])
                    for m in range(c):
                        total -= factor[r, m] * factor[c, m]
                    if r == c:
                        total = max(total, 1e-300)
                        det *= total
                        if det > 1e100 or det < 1e-100:
                            log_det += np.log(det)
                            det = 1.0
                        factor[r, r] = np.sqrt(total)
                    else:
                        factor[r, c] = total / factor[c, c]
            # squared Mahalanobis distance of the means by forward substitution
            mahalanobis = 0.0
            for r in range(d):
                total = means_b[j, r] - means_a[i, r]
                for m in range(r):
                    total -= factor[r, m] * solved[m]
                solved[r] = total / factor[r, r]
                mahalanobis += solved[r] * solved[r]
            value = mahalanobis / 8.0 + 0.5 * (log_det + np.log(det) - 0.5 * (log_det_a[i] + log_det_b[j]))
            out[i, j] = max(value, 0.0)
            if symmetric:
                out[j, i] = out[i, j]
    return out
