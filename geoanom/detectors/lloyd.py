"""Lloyd's K-Means for many small samples at once, step for step as scikit-learn runs it.

A model of a cube fits one K-Means per tile: hundreds or thousands of
samples of a few thousand rows in a handful of dimensions, each from its own
initial centres. Called once per tile, scikit-learn's ``KMeans`` spends most
of its time on per-call work (validation, thread-pool set-up, an OpenMP
region per iteration), not arithmetic: a tile takes 6 ms on a quiet 2-core
machine and 118 ms when other processes share the cores (the OpenMP regions
wait for a core), where the loop below spends 0.7 ms of CPU on a tile of
2048 rows and 8 centres (benchmarks/kmeans_fit.py).

The samples of a batch are laid end to end (rows and initial centres, with
offsets), and one compiled loop runs each sample's iterations on its own
slice. Tiles differ in size, in number of clusters and in the iteration at
which they stop, so a loop over tiles needs neither padding nor masks, and a
tile's result depends on its own rows and centres only, never on its batch.

Each sample follows ``sklearn.cluster.KMeans(init=centres, n_init=1,
algorithm="lloyd")`` (scikit-learn 1.9; tests/test_kmeans_batched.py checks
it against the installed one): the data and centres are shifted by the
sample mean; a row joins the centre minimising ``|c|^2 - 2 x.c``; an empty
cluster takes the rows farthest from their centres (``np.argpartition``, as
scikit-learn picks them); the loop stops when the labels repeat or when the
summed squared centre shift is at most ``tol`` times the mean feature
variance, after at most ``max_iter`` iterations, and the labels of a loop
that did not repeat them are computed again from the final centres. The
centres agree with scikit-learn's to the rounding of sums taken in another
order (scikit-learn adds per-thread partial sums, and its BLAS may fuse
multiply-adds); scikit-learn's warning about fewer distinct clusters than
centres is not raised.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit, objmode

MAX_ITER = 300  # scikit-learn's KMeans defaults
TOL = 1e-4


@dataclass
class LloydFit:
    """One sample's K-Means: centres (k, d), labels (n,), counts (k,), scatter (k, d, d), iterations."""

    centres: np.ndarray
    labels: np.ndarray
    counts: np.ndarray
    scatter: np.ndarray
    n_iter: int


def lloyd_many(
    samples: Sequence[np.ndarray],
    initial_centres: Sequence[np.ndarray],
    *,
    max_iter: int = MAX_ITER,
    tol: float = TOL,
) -> list[LloydFit]:
    """Run Lloyd's K-Means on every sample from its own initial centres.

    Parameters
    ----------
    samples : sequence of ndarray (n_i, n_features)
        One sample per problem; sizes may differ, the feature count not.
    initial_centres : sequence of ndarray (k_i, n_features)
        Each sample's initial centres, ``1 <= k_i <= n_i``.
    max_iter, tol : int, float
        As in scikit-learn's ``KMeans`` (``tol`` is relative to the mean
        feature variance of the sample).

    Returns
    -------
    list of LloydFit
        Per sample: the final centres, the label of every row, the rows per
        cluster and each cluster's scatter about its centre (sum of outer
        products of the deviations).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.array([[0.0, 0.0], [0.0, 1.0], [5.0, 5.0], [5.0, 6.0]])
    >>> fit = lloyd_many([X], [X[[0, 2]]])[0]
    >>> fit.centres.tolist(), fit.labels.tolist(), fit.n_iter
    ([[0.0, 0.5], [5.0, 5.5]], [0, 0, 1, 1], 2)
    """
    if not len(samples):
        return []
    rows, row_offsets = _end_to_end(samples)
    centres, centre_offsets = _end_to_end(initial_centres)
    _check_sizes(row_offsets, centre_offsets)
    labels, counts, scatter, n_iter = _lloyd_tiles(rows, row_offsets, centres, centre_offsets,
                                                   int(max_iter), float(tol))
    # copies: a detector owns its arrays, rather than views of the whole batch's
    return [
        LloydFit(centres[c0:c1].copy(), labels[r0:r1].copy(), counts[c0:c1].copy(), scatter[c0:c1].copy(),
                 int(n_iter[i]))
        for i, (r0, r1, c0, c1) in enumerate(zip(row_offsets[:-1], row_offsets[1:],
                                                 centre_offsets[:-1], centre_offsets[1:]))
    ]


def _end_to_end(arrays: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Arrays stacked along their rows (one float64 C array) and the offsets where each starts."""
    sizes = np.fromiter((len(a) for a in arrays), dtype=np.int64, count=len(arrays))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    return np.ascontiguousarray(np.concatenate(arrays), dtype=np.float64), offsets


def _check_sizes(row_offsets: np.ndarray, centre_offsets: np.ndarray) -> None:
    """Every sample needs at least one centre and no more centres than rows (scikit-learn's rule)."""
    n, k = np.diff(row_offsets), np.diff(centre_offsets)
    if len(n) != len(k):
        raise ValueError(f"{len(n)} samples but {len(k)} sets of initial centres")
    bad = np.flatnonzero((k < 1) | (k > n))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"sample {i} has {n[i]} rows and {k[i]} initial centres; it needs 1 to {n[i]} centres")


@njit(cache=True, nogil=True)  # the GIL released: dask threads fit and score other tiles meanwhile
def _lloyd_tiles(rows, row_offsets, centres, centre_offsets, max_iter, tol):  # pragma: no cover - compiled
    """Every sample's Lloyd loop in turn; ``centres`` is refined in place.

    Returns the labels (n_rows,), counts (n_centres,), scatter
    (n_centres, d, d) and the iterations of each sample.
    """
    n_features = rows.shape[1]
    labels = np.empty(len(rows), dtype=np.int32)
    counts = np.zeros(len(centres))
    scatter = np.zeros((len(centres), n_features, n_features))
    n_iter = np.zeros(len(row_offsets) - 1, dtype=np.int64)
    for t in range(len(row_offsets) - 1):
        r0, r1 = row_offsets[t], row_offsets[t + 1]
        c0, c1 = centre_offsets[t], centre_offsets[t + 1]
        n_iter[t] = _lloyd(rows[r0:r1], centres[c0:c1], labels[r0:r1], max_iter, tol)
        _cluster_scatter(rows[r0:r1], centres[c0:c1], labels[r0:r1], counts[c0:c1], scatter[c0:c1])
    return labels, counts, scatter, n_iter


@njit(cache=True, nogil=True)
def _lloyd(X, centres, labels, max_iter, tol):  # pragma: no cover - compiled
    """scikit-learn's ``_kmeans_single_lloyd`` on one sample; centres and labels in place, returns iterations."""
    mean = _column_means(X)
    Xc = X - mean  # scikit-learn centres the data "for more accurate distance computations"
    Xt = np.ascontiguousarray(Xc.T)
    dot = np.empty(len(X))
    best = np.empty(len(X))
    tolerance = _mean_variance(Xc) * tol
    old = centres - mean
    new = np.empty_like(old)
    weights = np.empty(len(old))
    labels_old = np.full(len(X), -1, dtype=np.int32)
    strict = False
    n_iter = 0
    for _ in range(max_iter):
        n_iter += 1
        _assign(Xt, old, labels, dot, best)
        _update_centres(Xc, old, labels, new, weights)
        old, new = new, old
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if _squared_shift(old, new) <= tolerance:
            break
        labels_old[:] = labels
    if not strict:
        _assign(Xt, old, labels, dot, best)  # scikit-learn's last E-step: labels of the final centres
    centres[:] = old + mean
    return n_iter


@njit(cache=True, nogil=True)
def _squared_shift(new, old):  # pragma: no cover - compiled
    """Sum over centres of the squared norm of each one's shift, as scikit-learn sums it (a norm, then squared)."""
    total = 0.0
    for j in range(len(new)):
        squared = 0.0
        for f in range(new.shape[1]):
            squared += (new[j, f] - old[j, f]) * (new[j, f] - old[j, f])
        shift = np.sqrt(squared)
        total += shift * shift
    return total


@njit(cache=True, nogil=True)
def _column_means(X):  # pragma: no cover - compiled
    """Column means, summed row after row as numpy reduces a C array over its first axis."""
    total = np.zeros(X.shape[1])
    for i in range(len(X)):
        total += X[i]
    return total / len(X)


@njit(cache=True, nogil=True)
def _mean_variance(Xc):  # pragma: no cover - compiled
    """Mean over features of the variance of each column (scikit-learn's scale for ``tol``)."""
    deviations = Xc - _column_means(Xc)
    return np.mean(_column_means(deviations * deviations))


@njit(cache=True, nogil=True)
def _assign(Xt, centres, labels, dot, best):  # pragma: no cover - compiled
    """Nearest centre of each row by ``|c|^2 - 2 x.c`` (scikit-learn's expansion; the first on ties).

    Rows are columns of ``Xt`` (d, n) so that each loop runs over rows and
    vectorises: the whole Lloyd loop 0.91 -> 0.72 ms of CPU a tile (2048 rows,
    8 centres, 27 iterations) against a loop over centres inside a loop over rows.
    ``dot`` and ``best`` are (n,) work arrays.
    """
    k, d = centres.shape
    for j in range(k):
        norm = 0.0
        for f in range(d):
            norm += centres[j, f] * centres[j, f]
        dot[:] = 0.0
        for f in range(d):
            for i in range(len(dot)):
                dot[i] += Xt[f, i] * centres[j, f]
        for i in range(len(dot)):
            # unconditional stores of selected values: the loop vectorises
            distance = norm - 2.0 * dot[i]
            closer = j == 0 or distance < best[i]
            best[i] = distance if closer else best[i]
            labels[i] = j if closer else labels[i]


@njit(cache=True, nogil=True)
def _update_centres(Xc, old, labels, new, weights):  # pragma: no cover - compiled
    """Cluster means of the labelled rows into ``new``, relocating empty clusters as scikit-learn does."""
    new[:] = 0.0
    weights[:] = 0.0
    for i in range(len(Xc)):  # written out: a row slice would allocate per row
        weights[labels[i]] += 1.0
        for f in range(Xc.shape[1]):
            new[labels[i], f] += Xc[i, f]
    if np.any(weights == 0.0):
        _relocate_empty(Xc, old, labels, new, weights)
    heaviest = np.argmax(weights)
    for j in range(len(new)):
        if weights[j] > 0:
            new[j] *= 1.0 / weights[j]  # scikit-learn multiplies by the reciprocal
        else:
            # only when every row sits on its centre; scikit-learn copies the heaviest
            # cluster's row as it stands at this point of the loop (a sum if not yet divided)
            new[j] = new[heaviest]


# Not nogil itself (its object-mode block takes the GIL): called from the nogil loops, it takes the GIL
# only for that block, when a cluster is empty.
@njit(cache=True)
def _relocate_empty(Xc, old, labels, new, weights):  # pragma: no cover - compiled
    """Give each empty cluster one of the rows farthest from their centres (scikit-learn's rule)."""
    empty = np.flatnonzero(weights == 0.0)
    distances = np.empty(len(Xc))
    for i in range(len(Xc)):
        distances[i] = np.sum((Xc[i] - old[labels[i]]) ** 2)
    if distances.max() == 0.0:
        return  # more centres than distinct rows: nothing to move
    n_empty = len(empty)
    with objmode(far="int64[:]"):
        far = _farthest(distances, n_empty)
    for e in range(n_empty):
        row = far[e]
        new[labels[row]] -= Xc[row]
        new[empty[e]] = Xc[row]
        weights[empty[e]] = 1.0
        weights[labels[row]] -= 1.0


def _farthest(distances: np.ndarray, n_empty: int) -> np.ndarray:
    """The ``n_empty`` largest distances' rows in scikit-learn's order (its very expression).

    Runs in object mode from the compiled loop: ``np.argpartition`` orders
    ties and the top rows in its own way, which only numpy reproduces.
    """
    return np.argpartition(distances, -n_empty)[: -n_empty - 1 : -1].astype(np.int64)


@njit(cache=True, nogil=True)
def _cluster_scatter(X, centres, labels, counts, scatter):  # pragma: no cover - compiled
    """Rows per cluster and the sum of outer products of their deviations from the final centre."""
    d = X.shape[1]
    deviation = np.empty(d)
    for i in range(len(X)):
        j = labels[i]
        counts[j] += 1.0
        for a in range(d):
            deviation[a] = X[i, a] - centres[j, a]
        for a in range(d):
            for b in range(d):
                scatter[j, a, b] += deviation[a] * deviation[b]


def nearest_distances(X: np.ndarray, means: np.ndarray, whitening: np.ndarray | None = None, *,
                      center: np.ndarray | None = None, scale: np.ndarray | None = None) -> np.ndarray:
    """Distance of each row to its nearest centre (Euclidean choice), whitened by that centre's matrix.

    One compiled pass over the rows, a block of them at a time: no
    standardised copy, no (k, n, d) offsets nor (n, d, d) gathered matrices,
    which made numpy spend ~250 ns per row on 8 clusters where this takes
    ~20 (benchmarks/kmeans_fit.py).

    Parameters
    ----------
    X : ndarray (n, d)
        Rows; standardised first as ``(X - center) / scale`` if those are given.
    means : ndarray (k, d)
        Centres; a row's nearest is the first of the smallest Euclidean distance.
    whitening : ndarray (k, d, d), optional
        Per centre, the matrix ``W`` whose ``|W (z - mean)|`` is the distance
        reported (an inverse Cholesky factor gives Mahalanobis distances);
        Euclidean distances without it.
    center, scale : ndarray (d,), optional
        Standardisation of the rows (none by default).

    Returns
    -------
    ndarray (n,)

    Examples
    --------
    >>> import numpy as np
    >>> nearest_distances(np.array([[3.0, 4.0], [9.0, 0.0]]), np.array([[0.0, 0.0], [10.0, 0.0]])).tolist()
    [5.0, 1.0]
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    d = X.shape[1]
    center = np.zeros(d) if center is None else np.ascontiguousarray(center, dtype=np.float64)
    scale = np.ones(d) if scale is None else np.ascontiguousarray(scale, dtype=np.float64)
    euclidean = whitening is None
    whitening = np.zeros((0, 0, 0)) if euclidean else np.ascontiguousarray(whitening, dtype=np.float64)
    return _nearest_distances(X, center, scale, np.ascontiguousarray(means, dtype=np.float64), whitening, euclidean)


def nearest_centres(Z: np.ndarray, means: np.ndarray) -> np.ndarray:
    """Index of each row's nearest centre (Euclidean; the first on ties).

    Examples
    --------
    >>> import numpy as np
    >>> nearest_centres(np.array([[3.0, 4.0], [9.0, 0.0]]), np.array([[0.0, 0.0], [10.0, 0.0]])).tolist()
    [0, 1]
    """
    return _nearest_labels(np.ascontiguousarray(Z, dtype=np.float64), np.ascontiguousarray(means, dtype=np.float64))


@njit(cache=True, nogil=True)  # threads (dask's) may score at once
def _nearest_labels(Z, means):  # pragma: no cover - compiled
    labels = np.empty(len(Z), dtype=np.int64)
    for i in range(len(Z)):
        labels[i] = _nearest(Z[i], means)
    return labels


@njit(cache=True, nogil=True)
def _nearest(z, means):  # pragma: no cover - compiled
    """Index of the centre nearest ``z``, by the squared offsets numpy's argmin of their sums would pick."""
    best, label = np.inf, 0
    for j in range(len(means)):
        distance = 0.0
        for f in range(len(z)):
            offset = z[f] - means[j, f]
            distance += offset * offset
        if j == 0 or distance < best:
            best, label = distance, j
    return label


# Rows per block of the scoring loop: the block's standardised rows and
# distances stay in L1 (256 x (d + 2) doubles), and loops over a block's rows vectorise.
SCORE_BLOCK = 256


@njit(cache=True, nogil=True)  # threads (dask's) may score at once
def _nearest_distances(X, center, scale, means, whitening, euclidean):  # pragma: no cover - compiled
    d = X.shape[1]
    out = np.empty(len(X))
    Z = np.empty((d, SCORE_BLOCK))
    best = np.empty(SCORE_BLOCK)
    label = np.empty(SCORE_BLOCK, dtype=np.int64)
    for start in range(0, len(X), SCORE_BLOCK):
        m = min(SCORE_BLOCK, len(X) - start)
        for f in range(d):
            for i in range(m):
                Z[f, i] = (X[start + i, f] - center[f]) / scale[f]
        _block_nearest(Z, m, means, best, label)
        if euclidean:
            out[start : start + m] = np.sqrt(best[:m])
        else:
            _whitened_norms(Z, m, means, whitening, label, out[start : start + m])
    return out


@njit(cache=True, nogil=True)
def _block_nearest(Z, m, means, best, label):  # pragma: no cover - compiled
    """Nearest centre of the block's ``m`` rows and its squared distance (offsets summed as numpy's einsum)."""
    distance = np.empty(m)
    for j in range(len(means)):
        distance[:] = 0.0
        for f in range(Z.shape[0]):
            for i in range(m):
                offset = Z[f, i] - means[j, f]
                distance[i] += offset * offset
        for i in range(m):
            if j == 0 or distance[i] < best[i]:
                best[i] = distance[i]
                label[i] = j


@njit(cache=True, nogil=True)
def _whitened_norms(Z, m, means, whitening, label, out):  # pragma: no cover - compiled
    """``|W_j (z_i - mean_j)|`` for the block's rows ``i``, ``j`` the nearest centre of each."""
    d = Z.shape[0]
    offset = np.empty(d)
    for i in range(m):
        j = label[i]
        for b in range(d):
            offset[b] = Z[b, i] - means[j, b]
        total = 0.0
        for a in range(d):
            value = 0.0
            for b in range(d):
                value += whitening[j, a, b] * offset[b]
            total += value * value
        out[i] = np.sqrt(total)
