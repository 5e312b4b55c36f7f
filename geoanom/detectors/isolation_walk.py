"""Walking isolation forests: each tree padded to a complete tree, many rows side by side, compiled.

The stored layout (:mod:`.isolation_trees`: breadth first, right child
``left + 1``, leaves pointing at themselves) is compact but its walk waits
on every load. While scoring, each tree is padded to a complete binary
tree of its depth (at most ``ceil(log2(max_samples))``, 8 for 256) in heap
order, so a walk is ``depth`` steps ``node = 2 node + (x[feature] >
threshold)`` with no data-dependent branch, and sixteen rows walk side by
side (:func:`_walk_forest`). The padded tree lives only during the call,
one tree at a time: the saved state keeps the compact layout (a padded
256-point tree takes about twice its bytes), and models saved before load
and score as they did, to the bit.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np

from .isolation_padding import largest_tree, pad_tree
from .isolation_walk_avx512 import SIMD_BLOCK, SIMD_DEPTH, SIMD_FEATURES, simd_available, walk_forest_simd

# Rows walked through every tree before the next block (copied feature after
# feature: 32 KB at 2 features), each tree padded once per block.
WALK_BLOCK = 4096
# Rows walked side by side through a tree (written out in _walk_tree).
GROUP = 16
# The deepest tree the walk pads to a complete tree: 2**24 leaf slots (268 MB
# of scratch), as grown from 2**24 points per tree; deeper trees are refused.
MAX_WALK_DEPTH = 24
# Set once at import; tests switch it off to compare the scalar walk.
USE_SIMD = simd_available()


def forest_depth(X: np.ndarray, state: dict[str, Any], depths: np.ndarray | None = None) -> np.ndarray:
    """Each row's weighted mean over trees of its path length relative to the tree's c(psi).

    The anomaly score of Liu et al. is ``2 ** -forest_depth``. ``X`` (finite,
    as :func:`~geoanom.detectors.inputs.check_features` ensures) is compared as
    float32 (thresholds are float32 values). ``state`` holds the node arrays
    in the compact layout of :mod:`.isolation_trees` (right child
    ``left + 1``), as ``IForestDetector.to_dict()["state"]``. Each tree is padded to a complete
    tree for the walk (see :func:`_walk_forest`); a tree deeper than
    ``MAX_WALK_DEPTH`` levels is refused with a ValueError. ``depths``, each
    tree's depth as :func:`tree_depths` gives it, spares that pass over the
    nodes (a detector keeps them: about 70 us a call, 0.25 s of scoring the
    annual throughput cube).

    Examples
    --------
    >>> from geoanom.detectors.isolation_trees import build_forests
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> state = build_forests([X], [7], n_estimators=10)[0]
    >>> depth = forest_depth(np.array([[0.0, 0.0], [9.0, 9.0]]), state)
    >>> bool(depth[0] > depth[1])
    True
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    weights = np.asarray(state["tree_weight_"], dtype=np.float64)
    weights = weights / weights.sum()
    left, roots = state["node_left_"], state["tree_root_"]
    if depths is None:
        depths = tree_depths(state)
    check_walk_depth(int(depths.max()))
    out = np.zeros(len(X))
    simd = USE_SIMD and X.shape[1] <= SIMD_FEATURES and int(depths.max()) <= SIMD_DEPTH
    walk = walk_forest_simd if simd else _walk_forest
    block = min(SIMD_BLOCK if simd else WALK_BLOCK, (2**32 - 1) // max(X.shape[1], 1))  # column starts fit in uint32
    walk(X, state["node_feature_"], state["node_threshold_"], left, state["node_path_"], roots, depths,
         np.asarray(state["tree_norm_"], dtype=np.float64), weights, out, block)
    return out


def tree_depths(state: dict[str, Any]) -> np.ndarray:
    """Each tree's depth (int64), from the node arrays of ``state`` in the compact layout.

    Examples
    --------
    >>> from geoanom.detectors.isolation_trees import build_forests
    >>> state = build_forests([np.arange(8.0).reshape(4, 2)], [0], n_estimators=2, max_samples=4)[0]
    >>> tree_depths(state).tolist()
    [2, 2]
    """
    return _tree_depths(state["node_left_"], state["tree_root_"])


def check_walk_depth(depth: int) -> None:
    """ValueError if a tree ``depth`` levels deep is too deep to walk (its complete tree would not fit in memory).

    Examples
    --------
    >>> check_walk_depth(MAX_WALK_DEPTH + 1)
    Traceback (most recent call last):
    ...
    ValueError: iforest detector: a tree is 25 levels deep, more than the 24 the walk pads (2**24 points per tree)
    """
    if depth > MAX_WALK_DEPTH:
        raise ValueError(f"iforest detector: a tree is {depth} levels deep, more than the {MAX_WALK_DEPTH} the walk "
                         f"pads (2**{MAX_WALK_DEPTH} points per tree)")


@numba.njit(cache=True, nogil=True)
def _walk_forest(X, feature, threshold, left, path, roots, depths, norm, weights, out, block_rows):  # noqa: PLR0913
    """Add each row's ``weight * path / norm`` of every tree to ``out``: blocks of rows outer, then trees, then rows.

    Each tree is first padded (:func:`pad_tree`) to a complete binary tree
    of its depth in heap order, so every walk takes exactly ``depth`` steps
    ``node = 2 node + (x[feature] > threshold)`` from node 1: no branch
    depends on the data, and ``GROUP`` rows walk side by side, so the
    processor overlaps their chains of dependent loads. The block is copied
    feature after feature (``columns``), and a padded node holds where its
    feature's column starts, so a row's value is one load at a constant
    offset from its group's first row. The padded tree (a few KB) stays in
    L1 while a block passes through it, and holds each leaf's
    ``weight * path / norm`` ready, so each row adds the same float64 values
    in the same tree order as the compact walk did: the scores are
    bit-for-bit those of that walk. Each tree is padded again for every
    block of rows, keeping one padded tree in memory at a time.

    ``benchmarks/iforest_kernels.py`` (CPU time, a shared and loaded 2-core
    machine), trees of 256 points: one 100-tree forest walked by 1 M rows,
    6.8 ns per row and tree against 25.1 for the compact walk (four rows
    side by side, stepping from ``left``), 3.7x; 729 tiles, each tile's
    1372 rows with its own forest, 8.7 against 25.3 ns (0.87 against 2.53 us
    per observation, 2.9x; 7.5 against 22.8 in a quieter run); in calls of
    100 rows, 18.7 against 28.3. In a tile's call, of 7.5 ns about 0.7 go to
    padding (0.5-1 us a tree, its nodes read from memory) and 0.5 to the
    call and the trees' depths.
    """
    n, n_features = X.shape
    slots = 1 << depths.max()
    offset = np.zeros(slots, dtype=np.uint32)  # block_rows * n_features < 2**32 (see forest_depth)
    cut = np.empty(slots, dtype=np.float32)
    value = np.empty(slots, dtype=np.float64)
    heap = np.empty(largest_tree(roots, len(left)), dtype=np.int64)  # the padded position of each node
    columns = np.empty(n_features * block_rows, dtype=np.float32)
    no_planes = np.empty(0, dtype=np.uint32)  # the scalar walk reads the columns' starts (offset)
    for start in range(0, n, block_rows):
        rows = min(block_rows, n - start)
        for j in range(n_features):
            columns[j * block_rows : j * block_rows + rows] = X[start : start + rows, j]
        for t in range(len(roots)):
            stop = roots[t + 1] if t + 1 < len(roots) else len(left)
            pad_tree(feature, threshold, left, path, roots[t], stop, depths[t], weights[t], norm[t], block_rows,
                      offset, cut, value, heap, no_planes)
            _walk_tree(columns, rows, offset, cut, value, depths[t], out[start : start + rows])


@numba.njit(cache=True, nogil=True)
def _step(columns, offset, cut, h, row):
    """One level down from heap node ``h`` for the block's row ``row`` (unsigned indices: no wraparound checks)."""
    return h + h + np.uint64(columns[offset[h] + row] > cut[h])


@numba.njit(cache=True, nogil=True)
def _walk_tree(columns, rows, offset, cut, value, depth, out):
    """Add to ``out`` the leaf values of the block's ``rows`` rows in the padded tree: GROUP rows side by side.

    Sixteen independent walks written out (numba keeps them in registers,
    an array of positions would not be): 5.0 ns per row and tree against
    6.6 for 8 rows, 6.8 for 16 rows kept in an array and 28 for one row at
    a time (one 100-tree forest, 131 072 rows, CPU time, best of 11, the
    same run on a loaded 2-core machine; the compact walk took 20.8 ns).
    Indices are unsigned so that numba adds no negative-index wraparound to
    each step; rows stored row after row (the feature's value one load from
    a per-row pointer) took 7.0 ns with 16 rows, the pointers not fitting
    in registers. The price: about 6 s of compiling on first use (1 s
    before), then loaded from numba's on-disk cache.
    """
    first = np.uint64(1 << depth)
    n = np.uint64(rows)
    r = np.uint64(0)
    while r + np.uint64(GROUP) <= n:
        h0 = h1 = h2 = h3 = h4 = h5 = h6 = h7 = h8 = h9 = h10 = h11 = h12 = h13 = h14 = h15 = np.uint64(1)
        for _ in range(depth):
            h0 = _step(columns, offset, cut, h0, r + np.uint64(0))
            h1 = _step(columns, offset, cut, h1, r + np.uint64(1))
            h2 = _step(columns, offset, cut, h2, r + np.uint64(2))
            h3 = _step(columns, offset, cut, h3, r + np.uint64(3))
            h4 = _step(columns, offset, cut, h4, r + np.uint64(4))
            h5 = _step(columns, offset, cut, h5, r + np.uint64(5))
            h6 = _step(columns, offset, cut, h6, r + np.uint64(6))
            h7 = _step(columns, offset, cut, h7, r + np.uint64(7))
            h8 = _step(columns, offset, cut, h8, r + np.uint64(8))
            h9 = _step(columns, offset, cut, h9, r + np.uint64(9))
            h10 = _step(columns, offset, cut, h10, r + np.uint64(10))
            h11 = _step(columns, offset, cut, h11, r + np.uint64(11))
            h12 = _step(columns, offset, cut, h12, r + np.uint64(12))
            h13 = _step(columns, offset, cut, h13, r + np.uint64(13))
            h14 = _step(columns, offset, cut, h14, r + np.uint64(14))
            h15 = _step(columns, offset, cut, h15, r + np.uint64(15))
        out[r + np.uint64(0)] += value[h0 - first]
        out[r + np.uint64(1)] += value[h1 - first]
        out[r + np.uint64(2)] += value[h2 - first]
        out[r + np.uint64(3)] += value[h3 - first]
        out[r + np.uint64(4)] += value[h4 - first]
        out[r + np.uint64(5)] += value[h5 - first]
        out[r + np.uint64(6)] += value[h6 - first]
        out[r + np.uint64(7)] += value[h7 - first]
        out[r + np.uint64(8)] += value[h8 - first]
        out[r + np.uint64(9)] += value[h9 - first]
        out[r + np.uint64(10)] += value[h10 - first]
        out[r + np.uint64(11)] += value[h11 - first]
        out[r + np.uint64(12)] += value[h12 - first]
        out[r + np.uint64(13)] += value[h13 - first]
        out[r + np.uint64(14)] += value[h14 - first]
        out[r + np.uint64(15)] += value[h15 - first]
        r += np.uint64(GROUP)
    while r < n:
        h = np.uint64(1)
        for _ in range(depth):
            h = _step(columns, offset, cut, h, r)
        out[r] += value[h - first]
        r += np.uint64(1)


@numba.njit(cache=True, nogil=True)
def _tree_depths(left, roots):
    """Each tree's depth, from its nodes (children come after their node); O(nodes), a small part of a walk."""
    n_nodes = len(left)
    level = np.zeros(n_nodes, dtype=np.int64)
    depths = np.zeros(len(roots), dtype=np.int64)
    for t in range(len(roots)):
        stop = roots[t + 1] if t + 1 < len(roots) else n_nodes
        for node in range(roots[t], stop):
            if left[node] != node:
                level[left[node]] = level[left[node] + 1] = level[node] + 1
            depths[t] = max(depths[t], level[node])
    return depths


