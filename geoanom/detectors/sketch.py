"""A mergeable summary of one tile's training observations.

Partial fits of a tile that spans several chunks are combined by a dask tree
reduction of these sketches, so a tile's data is never gathered in one place:

* exact moments (count, mean, scatter matrix), merged with Chan's parallel
  formulas, so merging the sketches of two halves equals sketching the whole;
* a uniform sample of at most ``capacity`` observations by *bottom-k*
  sampling: each observation carries a pseudo-random key hashed from its
  (time, cell) position and the seed, and a sketch keeps the ``capacity``
  smallest keys. Keeping the smallest keys of a union is associative and
  commutative, so the sample is the same whatever the chunking, the order of
  merges or the number of workers.

The detector families are then fitted on the sample (an isolation forest
needs only 256 observations per tree; a mixture of a few components is well
determined by a few thousand).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .hashing import GOLDEN_GAMMA, splitmix64_mix
from .limits import check_sample_size, check_seed
from .moments import pooled_moments

DEFAULT_CAPACITY = 4096


def seed_term(seed: int) -> np.uint64:
    """The seed's share of every observation key (see :func:`observation_keys`).

    Examples
    --------
    >>> int(seed_term(0))
    0
    """
    return np.uint64(seed * int(GOLDEN_GAMMA) % 2**64)


def observation_keys(time_index: np.ndarray, cell_index: np.ndarray, seed: int) -> np.ndarray:
    """Pseudo-random uint64 keys for the grid of (time, cell) positions.

    SplitMix64 (:mod:`.hashing`) of the position and the seed, so the key
    does not depend on how the cube is chunked.

    Examples
    --------
    >>> observation_keys(np.arange(2), np.arange(3), seed=0).shape
    (2, 3)
    """
    time_index = np.asarray(time_index, dtype=np.uint64)[:, None]
    cell_index = np.asarray(cell_index, dtype=np.uint64)[None, :]
    with np.errstate(over="ignore"):
        z = (time_index << np.uint64(32)) ^ cell_index ^ seed_term(seed)
        return splitmix64_mix(z + GOLDEN_GAMMA)


@dataclass
class TileSketch:
    """Exact moments and a bottom-k sample of one tile's observations."""

    count: int
    mean: np.ndarray
    scatter: np.ndarray
    keys: np.ndarray
    rows: np.ndarray
    capacity: int = DEFAULT_CAPACITY

    @classmethod
    def from_rows(cls, rows: np.ndarray, keys: np.ndarray, capacity: int = DEFAULT_CAPACITY) -> TileSketch:
        """Sketch of the observations ``rows`` (n, n_features) with their keys."""
        rows = np.asarray(rows, dtype=np.float64)
        mean = rows.mean(axis=0)
        deviations = rows - mean
        keep = _smallest(keys, capacity)
        return cls(len(rows), mean, deviations.T @ deviations, keys[keep], rows[keep], capacity)

    def merge(self, other: TileSketch) -> TileSketch:
        """The sketch of the union of both sets of observations."""
        count, mean, scatter = pooled_moments(self.count, self.mean, self.scatter, other.count, other.mean, other.scatter)
        keys = np.concatenate([self.keys, other.keys])
        rows = np.concatenate([self.rows, other.rows])
        # both samples are in key order (every sketch keeps its keys sorted): one linear merge finds the smallest
        keep = _merged_smallest(self.keys, other.keys, self.capacity)
        if keep.size and keep[0] < 0:  # not sorted after all (a sketch built by hand): sort the union
            keep = _smallest(keys, self.capacity)
        return TileSketch(count, mean, scatter, keys[keep], rows[keep], self.capacity)

    @property
    def covariance(self) -> np.ndarray:
        """Bessel-corrected covariance of all observations."""
        return self.scatter / max(self.count - 1, 1)


def _smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` smallest keys, in increasing key order."""
    if len(keys) > k:
        candidates = np.argpartition(keys, k - 1)[:k]
        return candidates[np.argsort(keys[candidates], kind="stable")]
    return np.argsort(keys, kind="stable")


def merge_sketch_maps(*maps: dict[str, TileSketch]) -> dict[str, TileSketch]:
    """Merge dictionaries of tile sketches, tile by tile (a tree-reduction step)."""
    merged: dict[str, TileSketch] = {}
    for sketches in maps:
        for tile, sketch in sketches.items():
            merged[tile] = merged[tile].merge(sketch) if tile in merged else sketch
    return merged


def sketch_tiles(features: np.ndarray, groups: list[tuple[int, np.ndarray]], time_index: np.ndarray,
                 cell_index: np.ndarray, seed: int, capacity: int = DEFAULT_CAPACITY) -> dict[int, TileSketch]:
    """The sketch of every tile of a block of features, in one compiled pass.

    The same sketches as ``TileSketch.from_rows`` of each tile's valid rows
    (every feature finite) keyed by :func:`observation_keys`: the same count
    and sample (keys, rows and their order); the moments are the same up to
    rounding (their summation order differs). In numpy each tile was a Python
    step of gathers, a hash of the whole block and sorts, holding the GIL
    (2 s for a block of 419 x 100 x 100 observations and 729 tiles); here the
    keys are hashed as the rows are gathered and the GIL is released.

    Parameters
    ----------
    features : ndarray (feature, time, cell)
    groups : list of (tile code, ndarray of cell indices)
        As from :func:`geoanom.tiling.group_cells`.
    time_index : ndarray (time,)
        Each step's index in the whole cube.
    cell_index : ndarray (cell,)
        Each cell's flat index in the whole grid.
    seed : int
        0 or more (:func:`~geoanom.detectors.limits.check_seed`).
    capacity : int
        Sample size of a sketch: geoanom.fit's ``sample_size``, at least
        ``MIN_TILE_ROWS`` (:func:`~geoanom.detectors.limits.check_sample_size`).

    Returns
    -------
    dict
        {tile code: TileSketch} of the tiles with any valid row.

    Examples
    --------
    >>> import numpy as np
    >>> features = np.arange(12.0).reshape(1, 3, 4)
    >>> sketches = sketch_tiles(features, [(7, np.array([0, 2]))], np.arange(3), np.arange(4), seed=0)
    >>> sketches[7].count, sketches[7].rows.shape
    (6, (6, 1))
    """
    # geoanom.fit's seed and sample_size arrive here unchecked: one sentence, not numpy's TypeError or LinAlgError
    seed, capacity = check_seed(seed), check_sample_size(capacity)
    if not groups:
        return {}
    order = np.concatenate([np.asarray(cells, dtype=np.int64) for _, cells in groups])
    starts = np.concatenate([[0], np.cumsum([len(cells) for _, cells in groups])]).astype(np.int64)
    counts, means, scatters, bounds, kept, rows, keys = _sketch_kernel(
        np.asarray(features, dtype=np.float64), np.asarray(time_index, dtype=np.uint64),
        np.asarray(cell_index, dtype=np.uint64), order, starts, seed_term(seed), capacity)
    out = {}
    for g, (code, _) in enumerate(groups):
        if counts[g]:
            part = slice(bounds[g], bounds[g] + kept[g])
            out[int(code)] = TileSketch(int(counts[g]), means[g], scatters[g], keys[part], rows[part], capacity)
    return out


@njit(cache=True, nogil=True)
def _splitmix64(z):  # pragma: no cover  (compiled twin of hashing.splitmix64_mix, for one value)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _sketch_kernel(features, time_index, cell_index, order, starts, seed_bits, capacity):  # pragma: no cover
    """Per group of cells: count, mean, scatter, and the ``capacity`` rows of smallest key, in key order."""
    n_features, n_times = features.shape[0], features.shape[1]
    n_groups = starts.size - 1
    bounds = np.zeros(n_groups + 1, dtype=np.int64)
    for g in range(n_groups):
        bounds[g + 1] = bounds[g] + min(capacity, n_times * (starts[g + 1] - starts[g]))
    counts = np.zeros(n_groups, dtype=np.int64)
    kept = np.zeros(n_groups, dtype=np.int64)
    means = np.zeros((n_groups, n_features))
    scatters = np.zeros((n_groups, n_features, n_features))
    out_rows = np.empty((bounds[n_groups], n_features))
    out_keys = np.empty(bounds[n_groups], dtype=np.uint64)
    gamma = np.uint64(0x9E3779B97F4A7C15)
    for g in range(n_groups):
        cells = order[starts[g]:starts[g + 1]]
        rows = np.empty((n_times * cells.size, n_features))
        keys = np.empty(n_times * cells.size, dtype=np.uint64)
        n = 0
        for t in range(n_times):  # time-major, as the rows of numpy's gather
            high = np.uint64(time_index[t]) << np.uint64(32)
            for c in cells:
                valid = True
                for f in range(n_features):
                    if not np.isfinite(features[f, t, c]):
                        valid = False
                        break
                if valid:
                    for f in range(n_features):
                        rows[n, f] = features[f, t, c]
                    keys[n] = _splitmix64(((high ^ cell_index[c]) ^ seed_bits) + gamma)
                    n += 1
        counts[g] = n
        if n == 0:
            continue
        _moments(rows, n, means[g], scatters[g])
        # keys are distinct (SplitMix64 is a bijection of distinct positions): any sort gives the same order
        chosen = _key_order(keys, n)[:capacity]
        kept[g] = chosen.size
        for i in range(chosen.size):
            out_keys[bounds[g] + i] = keys[chosen[i]]
            for f in range(n_features):
                out_rows[bounds[g] + i, f] = rows[chosen[i], f]
    return counts, means, scatters, bounds, kept, out_rows, out_keys


@njit(cache=True, nogil=True)
def _moments(rows, n, mean, scatter):  # pragma: no cover - compiled; tested through sketch_tiles
    """Mean and scatter of ``rows[:n]`` into ``mean`` and ``scatter`` (zeros), each sum over the rows in order.

    Each sum is a local (a register), not the array element: stored and
    loaded at every row, the sums waited on memory. Every sum still adds
    the same terms in the same order, so the same bits; two features (the
    default) take their six sums in two passes over the rows.
    """
    n_features = rows.shape[1]
    if n_features == 2:
        total0 = total1 = 0.0
        for i in range(n):
            total0 += rows[i, 0]
            total1 += rows[i, 1]
        mean[0], mean[1] = total0 / n, total1 / n
        m0, m1 = mean[0], mean[1]
        s00 = s01 = s10 = s11 = 0.0
        for i in range(n):
            d0, d1 = rows[i, 0] - m0, rows[i, 1] - m1
            s00 += d0 * d0
            s01 += d0 * d1
            s10 += d1 * d0
            s11 += d1 * d1
        scatter[0, 0], scatter[0, 1], scatter[1, 0], scatter[1, 1] = s00, s01, s10, s11
        return
    for f in range(n_features):
        total = 0.0
        for i in range(n):
            total += rows[i, f]
        mean[f] = total / n
    for a in range(n_features):
        for b in range(n_features):
            total = 0.0
            for i in range(n):
                total += (rows[i, a] - mean[a]) * (rows[i, b] - mean[b])
            scatter[a, b] = total


@njit(cache=True, nogil=True)
def _key_order(keys, n):  # pragma: no cover - compiled; tested against numpy's argsort
    """Indices of keys[:n] in increasing key order, for distinct, uniformly spread keys (hashes).

    A bucket sort on the leading bits, about one key a bucket, then an
    insertion sort within each bucket: linear in n, where numba's argsort
    took most of a sketch's time (0.4 ms for 3,344 keys).
    """
    bits = 1
    while (1 << bits) < n:
        bits += 1
    shift = np.uint64(64 - bits)
    starts = np.zeros((1 << bits) + 1, dtype=np.int64)
    for i in range(n):
        starts[np.int64(keys[i] >> shift) + 1] += 1
    for b in range(1 << bits):
        starts[b + 1] += starts[b]
    filled = starts[:-1].copy()
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        bucket = np.int64(keys[i] >> shift)
        out[filled[bucket]] = i
        filled[bucket] += 1
    for b in range(1 << bits):
        for j in range(starts[b] + 1, starts[b + 1]):  # insertion sort of the bucket's few keys
            index = out[j]
            k = j - 1
            while k >= starts[b] and keys[out[k]] > keys[index]:
                out[k + 1] = out[k]
                k -= 1
            out[k + 1] = index
    return out


@njit(cache=True, nogil=True)
def _merged_smallest(a, b, k):  # pragma: no cover - compiled; tested against _smallest
    """Indices, into the concatenation of a and b, of its k smallest keys in increasing order.

    a and b must each be increasing; if either is not, the answer is [-1].
    """
    for keys in (a, b):
        for i in range(1, keys.size):
            if keys[i] < keys[i - 1]:
                return np.full(1, -1, dtype=np.int64)
    n = min(k, a.size + b.size)
    out = np.empty(n, dtype=np.int64)
    i = j = 0
    for m in range(n):
        if j >= b.size or (i < a.size and a[i] <= b[j]):  # ties: a first, as a stable sort of the union
            out[m] = i
            i += 1
        else:
            out[m] = a.size + j
            j += 1
    return out
