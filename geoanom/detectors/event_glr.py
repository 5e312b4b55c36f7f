"""The arithmetic of the event family (:mod:`geoanom.detectors.event`): robust moments and the closed-form GLR.

Groups of columns (every feature, or one (z_v, n_v) pair per variable), the
moments of the rows inside a chi-squared ellipse made consistent for a
Gaussian, and the compiled scoring passes.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit
from scipy.stats import chi2

from .moments import whitening

# Added to each covariance's diagonal, relative to its mean variance (plus an absolute
# floor): a constant feature must not make the precision infinite.
RIDGE = 1e-6
RIDGE_FLOOR = 1e-12


def group_columns(pairs: int | None, n_features: int, background: bool = False) -> np.ndarray:
    """The columns each group of the statistic reads, (groups, width) integers.

    ``pairs=None``: one group of every column; ``pairs=V``: the first 2V
    columns are ``[z_1..z_V, n_1..n_V]`` and group v reads ``(z_v, n_v)``;
    with ``background``, the next V columns are ``b_1..b_V`` and group v
    reads ``(z_v, n_v, b_v)``.

    Examples
    --------
    >>> group_columns(2, 5).tolist()
    [[0, 2], [1, 3]]
    >>> group_columns(2, 6, background=True).tolist()
    [[0, 2, 4], [1, 3, 5]]
    >>> group_columns(None, 3).tolist()
    [[0, 1, 2]]
    """
    if pairs is None:
        return np.arange(n_features)[None]
    width = 3 if background else 2
    if width * pairs > n_features:
        needed = f"z_1..z_{pairs}, n_1..n_{pairs}" + (f", b_1..b_{pairs}" if background else "")
        raise ValueError(f"event detector: pairs={pairs} needs at least {width * pairs} features "
                         f"({needed}), got n_features = {n_features}")
    variables = np.arange(pairs)
    return np.stack([variables + offset * pairs for offset in range(width)], axis=1)


@functools.lru_cache(maxsize=64)  # scipy's quantile costs ~0.2 ms a call, and every tile asks the same
def trim_cutoff(trim: float, width: int) -> tuple[float, float]:
    """The squared Mahalanobis cutoff of the ``trim`` ellipse and the factor making its covariance consistent.

    Examples
    --------
    >>> cutoff, factor = trim_cutoff(0.99, 2)
    >>> round(cutoff, 3), round(factor, 4)
    (9.21, 1.0488)
    >>> trim_cutoff(1.0, 2)
    (inf, 1.0)
    """
    if trim >= 1.0:
        return math.inf, 1.0
    cutoff = float(chi2.ppf(trim, width))
    return cutoff, float(trim / chi2.cdf(cutoff, width + 2))


@functools.lru_cache(maxsize=64)
def chi2_quantile(probability: float, dof: int) -> float:
    """chi2's ``probability`` quantile with ``dof`` degrees of freedom (cached).

    Examples
    --------
    >>> round(chi2_quantile(0.99, 2), 4)
    9.2103
    """
    return float(chi2.ppf(probability, dof))


def covariance(count: np.ndarray, scatter: np.ndarray, factor: float) -> np.ndarray:
    """Consistent, ridged covariances (g, k, k) of groups of inlier moments.

    Examples
    --------
    >>> covariance(np.array([2.0]), np.array([[[2.0]]]), 1.0).round(6).tolist()
    [[[1.000001]]]
    """
    raw = scatter / np.maximum(count, 1.0)[:, None, None] * factor
    width = raw.shape[-1]
    ridge = RIDGE * np.einsum("gii->g", raw) / width + RIDGE_FLOOR
    return raw + ridge[:, None, None] * np.eye(width)


def squared_distances(rows: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """Squared Mahalanobis distances (n,) of ``rows`` (n, k) from one mean and covariance.

    Examples
    --------
    >>> squared_distances(np.array([[2.0, 0.0]]), np.zeros(2), np.eye(2) * 4).tolist()
    [1.0]
    """
    projected = (rows - mean) @ whitening(cov[None])[0].T
    return np.einsum("ij,ij->i", projected, projected)


def trimmed_moments(rows: np.ndarray, cutoff: float) -> tuple[float, np.ndarray, np.ndarray]:
    """Count, mean and scatter of the rows inside the ``cutoff`` ellipse of their classical estimate.

    All rows when too few (no more than the width) lie inside.

    Examples
    --------
    >>> rows = np.r_[np.random.default_rng(0).normal(size=(200, 2)), [[50.0, -50.0]]]
    >>> count, mean, _ = trimmed_moments(rows, 9.21)
    >>> count < 201, bool(abs(mean).max() < 0.3)
    (True, True)
    """
    mean = rows.mean(axis=0)
    deviations = rows - mean
    scatter = deviations.T @ deviations
    if math.isinf(cutoff):
        return float(len(rows)), mean, scatter
    inside = squared_distances(rows, mean, covariance(np.array([len(rows)]), scatter[None], 1.0)[0]) <= cutoff
    if inside.sum() <= rows.shape[1]:
        return float(len(rows)), mean, scatter
    kept = rows[inside]
    mean = kept.mean(axis=0)
    deviations = kept - mean
    return float(len(kept)), mean, deviations.T @ deviations


def cone_covariances(precisions: np.ndarray) -> np.ndarray:
    """Per group, the covariance (g, 2, 2) of ``(z, n)`` given the group's other columns: ``inv(P[:2, :2])``.

    For a (z, n) pair it is the pair's covariance itself.

    Examples
    --------
    >>> cone_covariances(np.linalg.inv(np.array([[[1.0, 0.0, 0.5], [0.0, 1.0, 0.0], [0.5, 0.0, 1.0]]])))[0].round(2)
    array([[0.75, 0.  ],
           [0.  , 1.  ]])
    """
    return np.linalg.inv(precisions[:, :2, :2])


@njit(cache=True, nogil=True)  # threads (dask's) score blocks at once
def glr_of_groups(X, columns, means, precisions, cone_covariances, out):  # pragma: no cover - compiled
    """Per row, the largest event-direction GLR over the groups (see :mod:`.event`): one pass, no temporaries.

    With ``d`` a group's deviation, ``P`` its precision, ``g = (Pd)[:2]``
    and ``C = inv(P[:2, :2])`` (``cone_covariances``): ``g'Cg`` where the
    best direction ``w = Cg`` has ``0 <= w_n / w_z <= 1``, else the larger of
    the alpha = 0 and alpha = 1 ends. For a (z, n) pair ``w`` is ``d`` itself
    and ``g'Cg`` is ``d'Pd``; for (z, n, b) it is the Mahalanobis distance of
    (z, n) given the background b. ``tests/test_event.py`` checks it against a
    dense grid over alpha.

    Examples
    --------
    >>> out = np.empty(3)
    >>> glr_of_groups(np.array([[2.0, 1.0], [0.0, 2.0], [2.0, -2.0]]), np.array([[0, 1]]), np.zeros((1, 2)),
    ...               np.eye(2)[None], np.eye(2)[None], out)
    >>> out.tolist()
    [5.0, 2.0, 4.0]
    """
    width = columns.shape[1]
    for i in range(X.shape[0]):
        best = 0.0
        for g in range(columns.shape[0]):
            a = 0.0
            b = 0.0
            for j in range(width):
                deviation = X[i, columns[g, j]] - means[g, j]
                a += precisions[g, 0, j] * deviation
                b += precisions[g, 1, j] * deviation
            if width == 2:  # the best direction is the deviation itself
                w0 = X[i, columns[g, 0]] - means[g, 0]
                w1 = X[i, columns[g, 1]] - means[g, 1]
            else:
                w0 = cone_covariances[g, 0, 0] * a + cone_covariances[g, 0, 1] * b
                w1 = cone_covariances[g, 1, 0] * a + cone_covariances[g, 1, 1] * b
            if w0 * w1 >= 0.0 and abs(w1) <= abs(w0):
                score = a * w0 + b * w1  # 0 <= w_n / w_z <= 1: the unconstrained maximum
            else:
                p00, p01, p11 = precisions[g, 0, 0], precisions[g, 0, 1], precisions[g, 1, 1]
                score = max(a * a / p00, (a + b) * (a + b) / (p00 + 2.0 * p01 + p11))
            best = max(best, score)
        out[i] = best


@njit(cache=True, nogil=True)
def mahalanobis(X, mean, precision, out):  # pragma: no cover - compiled
    """Per row, the squared Mahalanobis distance d'Pd: one pass, no (n, d) temporaries."""
    width = mean.shape[0]
    deviation = np.empty(width)
    for i in range(X.shape[0]):
        for j in range(width):
            deviation[j] = X[i, j] - mean[j]
        total = 0.0
        for j in range(width):
            inner = 0.0
            for m in range(width):
                inner += precision[j, m] * deviation[m]
            total += deviation[j] * inner
        out[i] = total
