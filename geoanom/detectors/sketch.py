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

from .hashing import GOLDEN_GAMMA, splitmix64_mix
from .moments import pooled_moments

DEFAULT_CAPACITY = 4096


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
        z = (time_index << np.uint64(32)) ^ cell_index ^ np.uint64(seed * int(GOLDEN_GAMMA) % 2**64)
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
