"""Isolation trees as plain node arrays, grown in a compiled loop (walked by :mod:`.isolation_walk`).

A model holds a forest per tile (hundreds of forests of 100 trees), so both
the builder and the walk are numba loops over flat arrays rather than
scikit-learn objects: scikit-learn grows one tree at a time with per-tree
Python overhead and persists forests only by pickling.

Layout of a forest: nodes tree after tree, breadth first within a tree; the
children of a node are consecutive (the right child is ``left + 1``); a leaf
points at itself (``left == own index``), has feature 0 and an infinite
threshold; ``x <= threshold`` goes left; a leaf's path length is its depth
plus c(n) of its observations, an inner node's is 0. Thresholds are float32
values and observations are compared as float32, as in scikit-learn.

The walk (:mod:`.isolation_walk`) pads each tree, while scoring, to a
complete binary tree; the saved state keeps this compact layout.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numba
import numpy as np

try:  # numba's draw of a 32-bit word from a numpy Generator's bit generator: not a documented API
    from numba.np.random.generator_core import next_uint32
except ImportError:  # pragma: no cover - another numba: the subsamples come from Generator.choice
    next_uint32 = None

from .hashing import GOLDEN_GAMMA
from .inputs import check_features

# Purposes of a node's two split draws (the hash's third input).
FEATURE_DRAW, THRESHOLD_DRAW = 1, 2
_PURPOSE_STEP = np.uint64(0xD1B54A32D192ED03)


def average_path_length(n_samples: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary tree of n points.

    Examples
    --------
    >>> average_path_length(np.array([1, 2, 256])).round(3).tolist()
    [0.0, 1.0, 10.245]
    """
    n = np.asarray(n_samples, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def subsample_size(max_samples: int | float, n: int) -> int:
    """Observations per tree: ``max_samples`` (a count, or a share of ``n`` when a float <= 1), at most ``n``.

    Examples
    --------
    >>> subsample_size(256, 100), subsample_size(0.5, 100)
    (100, 50)
    """
    if isinstance(max_samples, float) and max_samples <= 1.0:
        return max(1, int(max_samples * n))
    return int(min(max_samples, n))


def build_forests(samples: Sequence[np.ndarray], seeds: Sequence[int], n_estimators: int = 100,
                  max_samples: int | float = 256) -> list[dict[str, Any]]:
    """Isolation forests (Liu, Ting and Zhou 2008) of many samples, as node-array states.

    Each tree is grown on ``min(max_samples, n)`` observations drawn without
    replacement; a node is split on a feature drawn uniformly among those
    not constant in the node, at a threshold drawn uniformly between the
    node's minimum and maximum of that feature (scikit-learn's rule: a draw
    equal to the maximum becomes the minimum, and ``x <= threshold`` goes
    left); growth stops at one observation, at constant observations or at
    the height limit ``ceil(log2(max_samples))``; a leaf's path length is its
    depth plus c(n) of its observations. As in scikit-learn, observations are
    compared as float32.

    Every random draw depends only on the sample's own seed (the subsample
    from a ``numpy.random.Generator`` of the seed, the split draws from a
    counter-based hash of a per-tree key and the node's heap position), so
    a sample gets the same forest whichever other samples it is grown with.

    Examples
    --------
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> state = build_forests([X], [7], n_estimators=3, max_samples=64)[0]
    >>> len(state["tree_root_"]), state["max_depth_"] <= 6, state["node_threshold_"].dtype
    (3, True, dtype('float32'))
    """
    return [_build_forest(check_features(X), seed, n_estimators, max_samples) for X, seed in zip(samples, seeds)]


def _build_forest(X: np.ndarray, seed: int, n_estimators: int, max_samples: int | float) -> dict[str, Any]:
    """One sample's forest: the draws of the seed, then the compiled builder."""
    n = len(X)
    psi = subsample_size(max_samples, n)
    rng = np.random.default_rng(seed)
    picks = subsamples(rng, n, psi, n_estimators)
    keys = rng.integers(0, 2**64, size=n_estimators, dtype=np.uint64, endpoint=False)
    height = int(np.ceil(np.log2(max(psi, 2))))
    values = np.ascontiguousarray(X.astype(np.float32)[picks])
    capacity = n_estimators * (2 * psi - 1)  # a binary tree of psi points has at most 2 psi - 1 nodes
    feature = np.empty(capacity, dtype=feature_dtype(X.shape[1]))
    threshold = np.empty(capacity, dtype=np.float32)
    left = np.empty(capacity, dtype=np.int32)
    path = np.empty(capacity, dtype=np.float32)
    roots = np.empty(n_estimators, dtype=np.int32)
    # c(n) of every leaf size from numpy, not from the compiled loop: numpy's and libm's log may differ in the last bit
    leaf_path = average_path_length(np.arange(psi + 1))
    n_nodes, deepest = _grow_forest(values, psi, keys, height, leaf_path, feature, threshold, left, path, roots)
    norm = float(leaf_path[psi]) or 1.0
    return {
        "node_feature_": feature[:n_nodes].copy(),
        "node_threshold_": threshold[:n_nodes].copy(),
        "node_left_": left[:n_nodes].copy(),
        "node_path_": path[:n_nodes].copy(),
        "tree_root_": roots,
        "tree_norm_": np.full(n_estimators, norm),
        "tree_weight_": np.ones(n_estimators),
        "max_depth_": int(deepest),
        "n_features_": X.shape[1],
        "n_samples_": float(n),
    }


def subsamples(rng: np.random.Generator, n: int, psi: int, n_trees: int) -> np.ndarray:
    """``n_trees`` draws of ``rng.choice(n, psi, replace=False)``, concatenated: the same rows and the same stream.

    Each tree's subsample costs about 17 us through ``Generator.choice``
    (mostly the call); the compiled :func:`_floyd_subsamples` draws the
    same numbers from the same bit generator (numpy's Floyd branch and its
    shuffle, Lemire's bounded draws) in about 4 us, without the GIL. The
    branch numpy takes for large ``psi`` (``n > 10000`` and ``psi > n // 50``:
    a partial shuffle of ``arange(n)``) and populations of 2**32 - 1 rows or more (64-bit
    draws) are left to numpy, as is every draw if numba no longer offers
    ``next_uint32``. ``psi == n``
    draws nothing: every tree takes every row.

    Examples
    --------
    >>> picks = subsamples(np.random.default_rng(0), 1000, 8, 3)
    >>> expected = np.random.default_rng(0)
    >>> bool(np.array_equal(picks, np.concatenate([expected.choice(1000, 8, replace=False) for _ in range(3)])))
    True
    """
    if psi >= n:
        return np.tile(np.arange(n), n_trees)
    if next_uint32 is None or (n > 10000 and psi > n // 50) or n >= 2**32 - 1:
        return np.concatenate([rng.choice(n, psi, replace=False) for _ in range(n_trees)])
    picks = np.empty(n_trees * psi, dtype=np.int64)
    _floyd_subsamples(rng, n, psi, picks)
    return picks


@numba.njit(cache=True, nogil=True, inline="always")
def _bounded(bitgen, high: int) -> int:
    """A uniform integer in [0, high] (0 < high < 2**32 - 1) as numpy draws it: Lemire's rejection on 32-bit draws."""
    excl = np.uint64(high) + np.uint64(1)
    m = np.uint64(next_uint32(bitgen)) * excl
    leftover = m & np.uint64(0xFFFFFFFF)
    if leftover < excl:
        threshold = (np.uint64(0xFFFFFFFF) - np.uint64(high)) % excl
        while leftover < threshold:
            m = np.uint64(next_uint32(bitgen)) * excl
            leftover = m & np.uint64(0xFFFFFFFF)
    return np.int64(m >> np.uint64(32))


@numba.njit(cache=True, nogil=True)
def _floyd_subsamples(rng, n, psi, picks):
    """Fill ``picks`` with ``len(picks) // psi`` subsamples as numpy's ``choice(n, psi, replace=False)`` makes them.

    Floyd's algorithm (draw j in [0, i] for i from n - psi to n - 1; take i
    if j was taken), then the Fisher-Yates shuffle of the psi picks, from
    the generator's own bit generator: the rows, their order and the state
    left behind are numpy's (``tests/test_iforest_subsamples.py``).
    """
    bitgen = rng.bit_generator
    size = np.uint64(1)
    while size < np.uint64(2 * psi):
        size *= np.uint64(2)
    wrap = size - np.uint64(1)
    taken = np.empty(size, dtype=np.int64)  # open addressing: a set of the picks
    for tree in range(len(picks) // psi):
        taken[:] = -1
        out = picks[tree * psi : (tree + 1) * psi]
        for i in range(n - psi, n):
            value = _bounded(bitgen, i)
            slot = np.uint64(value) & wrap
            while taken[slot] != -1 and taken[slot] != value:
                slot = (slot + np.uint64(1)) & wrap
            if taken[slot] == value:  # taken already: take i, which no earlier draw could reach
                value = i
                slot = np.uint64(value) & wrap
                while taken[slot] != -1:
                    slot = (slot + np.uint64(1)) & wrap
            taken[slot] = value
            out[i - n + psi] = value
        for i in range(psi - 1, 0, -1):
            j = _bounded(bitgen, i)
            out[i], out[j] = out[j], out[i]


def feature_dtype(n_features: int) -> np.dtype:
    """The smallest signed integer type holding feature indices below ``n_features``.

    Examples
    --------
    >>> feature_dtype(2), feature_dtype(300)
    (dtype('int8'), dtype('int16'))
    """
    for dtype in (np.int8, np.int16):
        if n_features <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    return np.dtype(np.int32)


@numba.njit(cache=True, nogil=True)
def _draw(key: np.uint64, heap: np.uint64, purpose: np.uint64) -> float:
    """SplitMix64 of key + heap * gamma + purpose * step (wrapping), as a double in [0, 1)."""
    z = key + heap * np.uint64(GOLDEN_GAMMA) + purpose * _PURPOSE_STEP
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return float(z >> np.uint64(11)) * 2.0**-53


@numba.njit(cache=True, nogil=True)
def _floor_float32(value: float) -> np.float32:
    """The largest float32 not above ``value``, so float32 comparisons with it are exact."""
    rounded = np.float32(value)
    if np.float64(rounded) > value:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return rounded


@numba.njit(cache=True, nogil=True)
def _grow_forest(values, psi, keys, height, leaf_path, feature, threshold, left, path, roots):  # noqa: PLR0913
    """Grow ``len(keys)`` trees, tree t on rows ``t * psi`` to ``(t + 1) * psi`` of ``values``.

    Breadth first with a queue of nodes, each owning a slice of its tree's
    rows, which it partitions into the same slice of the other buffer
    (``values`` at even levels, ``scratch`` at odd ones; so a level costs
    O(psi), and the rows read are contiguous). Fills the node arrays from 0
    and ``roots``, a leaf's path as its depth plus ``leaf_path[its size]``
    (c(n), rounded to float32 as numpy rounds), an inner node's as 0;
    returns the number of nodes and the deepest leaf's depth. With the subsample draws,
    729 forests of 100 trees x 256 points grow in 4.4 s, against 13.7 s
    for the level-by-level numpy builder it replaces (same trees, same run;
    3.3 against 16.4 s in a run on a busier machine;
    benchmarks/iforest_kernels.py). Of that time this loop was about 40 %,
    the subsample draws through ``Generator.choice`` about 37 % (cProfile,
    100 tiles); the draws are now compiled too (:func:`subsamples`, the same rows).
    """
    d = values.shape[1]
    capacity = 2 * psi - 1
    start = np.empty(capacity, dtype=np.int64)
    size = np.empty(capacity, dtype=np.int64)
    heap = np.empty(capacity, dtype=np.uint64)
    level = np.empty(capacity, dtype=np.int64)
    low = np.empty(d)
    high = np.empty(d)
    scratch = np.empty_like(values)  # a level's rows move to the other buffer, partitioned
    offset = 0
    deepest = 0
    for t in range(len(keys)):
        start[0], size[0], heap[0], level[0] = t * psi, psi, np.uint64(1), 0
        roots[t] = offset
        n_nodes = 1
        node = 0
        while node < n_nodes:
            out = offset + node
            feature[out], threshold[out], left[out] = 0, np.inf, out
            path[out] = np.float32(np.float64(level[node]) + leaf_path[size[node]])
            deepest = max(deepest, level[node])
            if size[node] >= 2 and level[node] < height:
                if level[node] % 2 == 0:
                    split = _split(values, scratch, start[node], size[node], keys[t], heap[node], low, high)
                else:
                    split = _split(scratch, values, start[node], size[node], keys[t], heap[node], low, high)
                if split[0] >= 0:
                    f, cut, n_left = split
                    feature[out], threshold[out], left[out], path[out] = f, cut, offset + n_nodes, 0.0
                    start[n_nodes], size[n_nodes], heap[n_nodes] = start[node], n_left, heap[node] * np.uint64(2)
                    start[n_nodes + 1], size[n_nodes + 1] = start[node] + n_left, size[node] - n_left
                    heap[n_nodes + 1] = heap[node] * np.uint64(2) + np.uint64(1)
                    level[n_nodes] = level[n_nodes + 1] = level[node] + 1
                    n_nodes += 2
            node += 1
        offset += n_nodes
    return offset, deepest


@numba.njit(cache=True, nogil=True)
def _split(values, into, first, n, key, heap, low, high):  # noqa: PLR0913
    """Split one node: (feature, threshold, rows going left), feature -1 if every feature is constant.

    Copies rows ``first`` to ``first + n`` of ``values`` into the same rows of ``into``, the left child's first.
    """
    d = values.shape[1]
    n_varying = 0
    # One feature at a time, the extremes in local variables: 4.1 ms per 100-tree forest against 6.5
    # when updating low/high arrays row by row (median of 40, same run).
    for j in range(d):
        smallest = largest = values[first, j]
        for i in range(first + 1, first + n):
            smallest = min(smallest, values[i, j])
            largest = max(largest, values[i, j])
        low[j], high[j] = smallest, largest
        n_varying += largest > smallest
    if n_varying == 0:
        return -1, np.float32(0.0), 0
    # a feature uniformly among the varying ones, a threshold uniformly in [low, high)
    pick = int(np.floor(_draw(key, heap, np.uint64(FEATURE_DRAW)) * n_varying))
    f = -1
    for j in range(d):
        if high[j] > low[j]:
            if pick == 0:
                f = j
                break
            pick -= 1
    cut = _floor_float32(low[f] + _draw(key, heap, np.uint64(THRESHOLD_DRAW)) * (high[f] - low[f]))
    if cut >= high[f]:
        cut = np.float32(low[f])
    # partition without branches on the data (left rows from the front, right ones from the back): 9 % less
    # time per forest than swapping in place, whose branch on each row the processor mispredicts half the
    # time; order within a child does not matter (only its minima, maxima and count do)
    lo, hi = first, first + n - 1
    for i in range(first, first + n):
        right = values[i, f] > cut
        row = hi if right else lo
        for k in range(d):
            into[row, k] = values[i, k]
        lo += 1 - right
        hi -= right
    return f, cut, lo - first
