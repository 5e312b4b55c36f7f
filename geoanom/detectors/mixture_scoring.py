"""The density families' fitness score of many observations: two compiled passes around numpy's exp and log.

Scoring a tile's observations in numpy takes about a dozen array passes
(standardise, project on each component, log-sum-exp, assign, distance),
each allocating (k, n, d) temporaries; on the tiles of a cube (a thousand
or so observations each) that cost about 480 ns per observation, mostly
allocation and call overhead, for some 60 floating-point operations. One
loop over the rows, compiled with numba, keeps every intermediate in
registers: 109 ns per observation against 205 for the numpy passes (gmm;
dpmm 270 against 547), on a loaded 2-core machine
(``python benchmarks/mixture_scoring.py``).

That loop then spent most of its time in libm's ``exp`` and ``log``, one
call per component and row, which a compiled loop cannot vectorise. Now
the compiled pass (:func:`_components`) writes each row's log-densities
relative to its most probable component into a (rows, k) block, numpy's
SIMD ``exp`` and ``log`` run over whole blocks, and a second compiled pass
sums each row's terms in component order: gmm 0.049 -> 0.024 s, dpmm 0.082
-> 0.060 s for 300 tiles x 2900 rows of the annual throughput model (CPU,
in-process A/B, best of 7). numpy's ``exp`` and ``log`` give the same bits
for a value wherever it sits in an array (tested), so scores stay the same
across chunkings, threads and processes; they differ from libm's in the
last bit for about 5 % of values (scores moved by at most 3e-12 relative).
"""

from __future__ import annotations

import numba
import numpy as np

# |llk_model| is floored so that a model whose mean log-likelihood is close to
# zero (a tight, nearly singular cloud) does not blow the fitness score up.
MIN_MODEL_LLK = 1.0
# Rows per block of the (rows, k) temporaries: about 0.8 MB at k = 6.
FITNESS_BLOCK = 16_384
# Rows per inner block of the compiled pass, feature-major (a few KB per array: L1).
COLUMN_BLOCK = 256


def fitness_scores(X: np.ndarray, center: np.ndarray, scale: np.ndarray, precision_chol: np.ndarray,
                   means: np.ndarray, log_constant: np.ndarray, component_std: np.ndarray,
                   allowed: np.ndarray | None, model_llk: float) -> np.ndarray:
    """The reference paper's fitness rule ``f * X_dist`` of each row of ``X`` under a Gaussian mixture.

    Parameters
    ----------
    X : ndarray (n, d)
        Observations in the data's units.
    center, scale : ndarray (d,)
        The standardisation: ``z = (x - center) / scale``.
    precision_chol : ndarray (k, d, d)
        Cholesky factors of the precisions (scikit-learn's ``precisions_cholesky_``).
    means : ndarray (k, d)
        Component means (standardised units).
    log_constant : ndarray (k,)
        ``log(weight) + log det(precision_chol) - d/2 log(2 pi)`` of each component.
    component_std : ndarray (k, d)
        Each component's standard deviation along each feature.
    allowed : ndarray (k,) of bool, or None
        None: each row is assigned its most probable component; else the
        nearest (Mahalanobis) of the allowed components.
    model_llk : float
        The mean training log-likelihood.

    Returns
    -------
    ndarray (n,)
        ``(llk - model_llk) / max(|model_llk|, 1) * distance``, where
        ``distance`` is the normalised Euclidean distance to the assigned
        component's mean.

    Examples
    --------
    >>> import numpy as np
    >>> one = dict(center=np.zeros(1), scale=np.ones(1), precision_chol=np.ones((1, 1, 1)), means=np.zeros((1, 1)),
    ...            log_constant=np.array([-0.5 * np.log(2 * np.pi)]), component_std=np.ones((1, 1)), allowed=None)
    >>> round(float(fitness_scores(np.array([[2.0]]), model_llk=-1.0, **one)[0]), 4)  # (-0.92 - 2 + 1) * 2
    -3.8379
    """
    by_distance = allowed is not None
    mask = np.ones(len(means), dtype=np.bool_) if allowed is None else np.asarray(allowed, dtype=np.bool_)
    projected_means = np.einsum("kd,kde->ke", means, precision_chol)
    X = np.ascontiguousarray(X, dtype=np.float64)
    model_llk = float(model_llk)
    norm = max(abs(model_llk), MIN_MODEL_LLK)
    out = np.empty(len(X))
    for first in range(0, len(X), FITNESS_BLOCK):
        rows = X[first : first + FITNESS_BLOCK]
        terms = np.empty((len(rows), len(means)))
        peak, distance = np.empty(len(rows)), np.empty(len(rows))
        _components(rows, center, scale, precision_chol, projected_means, means, log_constant, component_std,
                    mask, by_distance, terms, peak, distance)
        np.exp(terms, out=terms)
        log_sums = _row_sums(terms)
        np.log(log_sums, out=log_sums)
        # the arithmetic after numpy's log in one compiled pass: each value the same operations in the same order
        # as numpy's (llk - model_llk) / norm * sqrt(distance), so the same bits, without four temporaries
        _fitness(peak, log_sums, model_llk, norm, distance, out[first : first + len(rows)])
    return out


@numba.njit(cache=True, nogil=True)
def _fitness(peak, log_sums, model_llk, norm, distance, out):  # pragma: no cover - compiled; tested through fitness_scores
    """``out = ((peak + log_sums) - model_llk) / norm * sqrt(distance)``, row by row."""
    for row in range(out.size):
        out[row] = ((peak[row] + log_sums[row]) - model_llk) / norm * np.sqrt(distance[row])


@numba.njit(cache=True, nogil=True)
def _components(X, center, scale, precision_chol, projected_means, means, log_constant, component_std, allowed,
                by_distance, terms, peaks, distances):  # pragma: no cover - compiled; tested through fitness_scores
    """Per row: each component's log-density minus the largest (``terms``), the largest, the squared distance.

    The distance is the normalised Euclidean one to the assigned component's
    mean: the most probable component (the first of equals), or the nearest
    (Mahalanobis) of the ``allowed`` ones when ``by_distance``.

    Rows are taken ``COLUMN_BLOCK`` at a time, feature-major, and every step
    runs over the block's rows in the innermost loop, which LLVM vectorises
    (8 rows to an AVX-512 register): each row still sees the same
    operations in the same order as one row at a time, so the same bits.
    The distance is found for every component and the assigned one's kept
    (a gather of each row's component would not vectorise). In-process, 729
    tiles x 2868 rows of the annual throughput model, CPU best of 7, the
    whole :func:`fitness_scores` against the row-at-a-time kernel: gmm (1-2
    components) 0.065 -> 0.052 s, dpmm (6) 0.146 -> 0.095 s; the same bits.
    """
    n, d = X.shape
    k = means.shape[0]
    z = np.empty((d, COLUMN_BLOCK))
    value = np.empty(COLUMN_BLOCK)
    total = np.empty(COLUMN_BLOCK)
    local = np.empty((k, COLUMN_BLOCK))  # terms, component-major
    mahalanobis = np.empty((k, COLUMN_BLOCK))
    top = np.empty(COLUMN_BLOCK, dtype=np.int64)
    best = np.empty(COLUMN_BLOCK, dtype=np.int64)
    peak = np.empty(COLUMN_BLOCK)
    for first in range(0, n, COLUMN_BLOCK):
        m = min(COLUMN_BLOCK, n - first)
        for i in range(d):
            for r in range(m):
                z[i, r] = (X[first + r, i] - center[i]) / scale[i]
        for c in range(k):
            total[:m] = 0.0
            for j in range(d):
                value[:m] = -projected_means[c, j]
                for i in range(d):
                    weight = precision_chol[c, i, j]
                    for r in range(m):
                        value[r] += z[i, r] * weight
                for r in range(m):
                    total[r] += value[r] * value[r]
            for r in range(m):
                mahalanobis[c, r] = total[r]
                local[c, r] = log_constant[c] - 0.5 * total[r]
            if c == 0:
                top[:m] = 0
                peak[:m] = local[0, :m]
            else:
                for r in range(m):
                    higher = local[c, r] > peak[r]  # strictly: the first of equals stays
                    top[r] = c if higher else top[r]
                    peak[r] = local[c, r] if higher else peak[r]
        if by_distance:
            best[:m] = -1
            for c in range(k):
                if allowed[c]:
                    for r in range(m):
                        nearer = best[r] < 0 or mahalanobis[c, r] < total[r]
                        total[r] = mahalanobis[c, r] if nearer else total[r]
                        best[r] = c if nearer else best[r]
            for r in range(m):  # none allowed: the last component, as an index of -1 took it
                best[r] = k - 1 if best[r] < 0 else best[r]
        else:
            best[:m] = top[:m]
        for c in range(k):
            for r in range(m):
                terms[first + r, c] = local[c, r] - peak[r]
            total[:m] = 0.0
            for i in range(d):
                mean, std = means[c, i], component_std[c, i]
                for r in range(m):
                    step = (z[i, r] - mean) / std
                    total[r] += step * step
            for r in range(m):
                if best[r] == c:
                    distances[first + r] = total[r]
        peaks[first : first + m] = peak[:m]


@numba.njit(cache=True, nogil=True)
def _row_sums(terms):  # pragma: no cover - compiled; tested through fitness_scores
    """Each row's sum, component after component (numpy's sum may pair the terms differently)."""
    out = np.empty(terms.shape[0])
    for row in range(terms.shape[0]):
        total = 0.0
        for c in range(terms.shape[1]):
            total += terms[row, c]
        out[row] = total
    return out
