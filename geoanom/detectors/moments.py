"""Moments shared by the families: Chan's pooled update, sufficient statistics, MAP adaptation, whitening.

One implementation of each, used by the running updates of the gmm and
kmeans families, the tile sketches, the federated EM / Lloyd rounds
(:mod:`geoanom.model.federated_regions`) and the tiles' adaptation towards
their region (:mod:`geoanom.model.personalise`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Share of the data below which a component or cluster is dropped by an M-step.
EMPTY_SHARE = 1e-9


def pooled_moments(count_a: float, mean_a: np.ndarray, scatter_a: np.ndarray,
                   count_b: float, mean_b: np.ndarray, scatter_b: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Count, mean and scatter matrix of the union of two groups (Chan et al.'s parallel form).

    Exact for any split, so merging the moments of two halves equals the
    moments of the whole.

    Examples
    --------
    >>> import numpy as np
    >>> rows = np.arange(10.0).reshape(5, 2)
    >>> a, b = rows[:2], rows[2:]
    >>> scatter = lambda x: (x - x.mean(0)).T @ (x - x.mean(0))
    >>> n, mean, s = pooled_moments(2, a.mean(0), scatter(a), 3, b.mean(0), scatter(b))
    >>> bool(np.allclose(s, scatter(rows))), mean.tolist()
    (True, [4.0, 5.0])
    """
    count = count_a + count_b
    delta = mean_b - mean_a
    scatter = scatter_a + scatter_b + np.outer(delta, delta) * count_a * count_b / count
    return count, mean_a + delta * count_b / count, scatter


def add_rows(count: float, mean: np.ndarray, scatter: np.ndarray, rows: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """:func:`pooled_moments` of a group and new observations ``rows`` (n, d).

    Examples
    --------
    >>> import numpy as np
    >>> add_rows(1, np.zeros(1), np.zeros((1, 1)), np.array([[2.0]]))[1].tolist()
    [1.0]
    """
    new_mean = rows.mean(axis=0)
    deviations = rows - new_mean
    return pooled_moments(count, mean, scatter, len(rows), new_mean, deviations.T @ deviations)


@dataclass(frozen=True)
class SufficientStatistics:
    """Per-component sufficient statistics of a set of observations, in a model's standardised units.

    ``counts`` (k,), ``sums`` (k, d) and ``squares`` (k, d, d) are
    responsibility-weighted (gmm) or assignment-weighted (kmeans) counts,
    sums and sums of outer products; ``llk_sum`` is the summed
    log-likelihood (gmm only) and ``total`` the number of observations.
    Statistics of disjoint sets add up.

    Examples
    --------
    >>> import numpy as np
    >>> a = SufficientStatistics(np.ones(1), np.ones((1, 1)), np.ones((1, 1, 1)), 0.0, 1.0)
    >>> (a + a).total
    2.0
    """

    counts: np.ndarray
    sums: np.ndarray
    squares: np.ndarray
    llk_sum: float
    total: float

    def __add__(self, other: SufficientStatistics) -> SufficientStatistics:
        return SufficientStatistics(self.counts + other.counts, self.sums + other.sums, self.squares + other.squares,
                                    self.llk_sum + other.llk_sum, self.total + other.total)

    def kept(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Counts, means and second moments about the origin of the non-empty components.

        Examples
        --------
        >>> import numpy as np
        >>> stats = SufficientStatistics(np.array([2.0, 0.0]), np.array([[4.0], [0.0]]), np.ones((2, 1, 1)), 0.0, 2.0)
        >>> stats.kept()[1].tolist()
        [[2.0]]
        """
        keep = self.counts > EMPTY_SHARE * self.total
        counts, sums, squares = self.counts[keep], self.sums[keep], self.squares[keep]
        return counts, sums / counts[:, None], squares


def in_units_of(tile_center: np.ndarray, tile_scale: np.ndarray, region_center: np.ndarray,
                region_scale: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Means and covariances of one standardisation (a region's) expressed in another (a tile's).

    Examples
    --------
    >>> import numpy as np
    >>> m, c = in_units_of(np.zeros(1), np.ones(1), np.ones(1), 2 * np.ones(1), np.zeros((1, 1)), np.ones((1, 1, 1)))
    >>> m.tolist(), c.tolist()
    ([[1.0]], [[[4.0]]])
    """
    ratio = region_scale / tile_scale
    return (region_center + region_scale * means - tile_center) / tile_scale, covariances * np.outer(ratio, ratio)


def nearest_prior(means: np.ndarray, prior_means: np.ndarray, prior_covariances: np.ndarray,
                  prior_weights: np.ndarray) -> np.ndarray:
    """For each component mean, the prior component most likely to have produced it.

    Examples
    --------
    >>> import numpy as np
    >>> nearest_prior(np.array([[0.1], [5.0]]), np.array([[0.0], [4.0]]), np.ones((2, 1, 1)), np.ones(2) / 2).tolist()
    [0, 1]
    """
    offsets = means[:, None, :] - prior_means[None]  # (k, j, d)
    solved = np.linalg.solve(prior_covariances[None], offsets[..., None])[..., 0]
    _, log_det = np.linalg.slogdet(prior_covariances)
    log_density = np.log(prior_weights)[None] - 0.5 * (log_det[None] + np.einsum("kjd,kjd->kj", offsets, solved))
    return np.argmax(log_density, axis=1)


def map_shrink(counts: np.ndarray, means: np.ndarray, covariances: np.ndarray, prior_means: np.ndarray,
               prior_covariances: np.ndarray, relevance: float) -> tuple[np.ndarray, np.ndarray]:
    """MAP-adapted means and covariances (Reynolds, Quatieri and Dunn 2000).

    With ``alpha_k = n_k / (n_k + relevance)``, the mean and the second
    moment of component k become ``alpha_k`` times its own plus
    ``1 - alpha_k`` times its prior's. scikit-learn has no MAP adaptation of
    a fitted mixture, hence these lines.

    Examples
    --------
    >>> import numpy as np
    >>> m, _ = map_shrink(np.array([16.0]), np.zeros((1, 1)), np.ones((1, 1, 1)), np.ones((1, 1)), np.ones((1, 1, 1)), 16.0)
    >>> m.tolist()
    [[0.5]]
    """
    alpha = (counts / (counts + relevance))[:, None]
    moment = covariances + np.einsum("kd,ke->kde", means, means)
    prior_moment = prior_covariances + np.einsum("kd,ke->kde", prior_means, prior_means)
    adapted_means = alpha * means + (1 - alpha) * prior_means
    adapted_moment = alpha[..., None] * moment + (1 - alpha[..., None]) * prior_moment
    return adapted_means, adapted_moment - np.einsum("kd,ke->kde", adapted_means, adapted_means)


def whitening(covariances: np.ndarray) -> np.ndarray:
    """``L^-1`` of each covariance ``L L'`` (..., d, d): ``|L^-1 (x - mean)|`` is the Mahalanobis distance.

    The inverse of the Cholesky factor by forward substitution, a handful of
    numpy operations for the whole stack. scipy's ``solve_triangular``, one
    matrix at a time, costs about 100 us a call and 12 ms when OpenBLAS's
    threads compete for busy cores (a 2 x 2 factor), which made loading a
    729-tile model take minutes. The mixtures' precision factors
    (scikit-learn's ``precisions_cholesky_``) are its transposes.

    Examples
    --------
    >>> import numpy as np
    >>> covariance = np.array([[4.0, 2.0], [2.0, 3.0]])
    >>> bool(np.allclose(whitening(covariance[None])[0] @ covariance @ whitening(covariance[None])[0].T, np.eye(2)))
    True
    """
    factors = np.linalg.cholesky(covariances)
    inverse = np.zeros_like(factors, dtype=np.float64)
    for i in range(factors.shape[-1]):
        inverse[..., i, i] = 1.0 / factors[..., i, i]
        for j in range(i):
            inverse[..., i, j] = -np.einsum("...m,...m->...", factors[..., i, j:i], inverse[..., j:i, j]) / factors[..., i, i]
    return inverse
