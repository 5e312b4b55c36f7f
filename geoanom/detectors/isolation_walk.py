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

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

# Rows walked through every tree before the next block (copied feature after
# feature: 32 KB at 2 features), each tree padded once per block.
WALK_BLOCK = 4096
# Rows walked side by side through a tree (written out in _walk_tree).
GROUP = 16
# The deepest tree the walk pads to a complete tree: 2**24 leaf slots (268 MB
# of scratch), as grown from 2**24 points per tree; deeper trees are refused.
MAX_WALK_DEPTH = 24
# The vector walk (AVX-512): rows per vector, vectors walked side by side, the deepest tree and the most features it
# takes (each level's table is at most 8 registers of 16 thresholds; each feature is one more select per level).
LANES = 16
SIMD_UNROLL = 4
# Rows of a vector walk's block (a multiple of 4 x 16): each tree is padded once per block, and the block's columns
# and sums (192 KB at 2 features) stream from L2 at that size, so fewer, larger blocks pad less often (a monthly
# throughput tile scored in one call holds about 12 000 rows: 1 padding per tree instead of 3).
SIMD_BLOCK = 16384
SIMD_DEPTH = 8
SIMD_FEATURES = 4
# Words of a feature bit plane (see _pad_tree): 2**SIMD_DEPTH nodes, 32 to a word, padded to one register.
PLANE_WORDS = 16


def simd_available() -> bool:
    """Whether numba compiles for a processor with AVX-512F (the vector walk's instructions).

    False when numba targets another processor than this one
    (``NUMBA_CPU_NAME``) unless its features (``NUMBA_CPU_FEATURES``) list
    ``+avx512f``, and when numba does not compile (``NUMBA_DISABLE_JIT``:
    the vector walk's intrinsics exist only in compiled code).

    Examples
    --------
    >>> isinstance(simd_available(), bool)
    True
    """
    if numba.config.DISABLE_JIT:
        return False
    if numba.config.CPU_NAME or numba.config.CPU_FEATURES:
        return "+avx512f" in (numba.config.CPU_FEATURES or "").split(",")
    return "+avx512f" in llvmlite.binding.get_host_cpu_features().flatten().split(",")


# Set once at import; tests switch it off to compare the scalar walk.
USE_SIMD = simd_available()


def forest_depth(X: np.ndarray, state: dict[str, Any], depths: np.ndarray | None = None) -> np.ndarray:
    """Each row's weighted mean over trees of its path length relative to the tree's c(psi).

    The anomaly score of Liu et al. is ``2 ** -forest_depth``. ``X`` (finite,
    as :func:`~geoanom.detectors.base.check_features` ensures) is compared as
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
    walk = _walk_forest_simd if simd else _walk_forest
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

    Each tree is first padded (:func:`_pad_tree`) to a complete binary tree
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
    heap = np.empty(_largest_tree(roots, len(left)), dtype=np.int64)  # the padded position of each node
    columns = np.empty(n_features * block_rows, dtype=np.float32)
    no_planes = np.empty(0, dtype=np.uint32)  # the scalar walk reads the columns' starts (offset)
    for start in range(0, n, block_rows):
        rows = min(block_rows, n - start)
        for j in range(n_features):
            columns[j * block_rows : j * block_rows + rows] = X[start : start + rows, j]
        for t in range(len(roots)):
            stop = roots[t + 1] if t + 1 < len(roots) else len(left)
            _pad_tree(feature, threshold, left, path, roots[t], stop, depths[t], weights[t], norm[t], block_rows,
                      offset, cut, value, heap, no_planes)
            _walk_tree(columns, rows, offset, cut, value, depths[t], out[start : start + rows])


@numba.njit(cache=True, nogil=True)
def _pad_tree(feature, threshold, left, path, root, stop, depth, weight, norm, block_rows,  # noqa: PLR0913
              offset, cut, value, heap, planes):
    """Lay out the tree of nodes ``root`` to ``stop`` as a complete tree of ``depth`` levels, in heap order.

    Node h's children are 2h and 2h + 1, the root is 1. Inner node h holds
    ``offset[h]`` (where its feature's column starts in the block) and
    ``cut[h]``; a leaf above the last level becomes a chain of pass-through
    nodes (threshold +inf: every row goes left) down to its leaf slot
    ``value[h - 2**depth]``, which holds ``weight * (path / norm)`` rounded
    as the compact walk added it. Slots under a pass-through's right child
    are never reached and keep what they held. One pass in node order: the
    compact layout puts children after their node. About 0.5-0.8 us per
    tree of 256 points (a branch-free variant and one filling the
    thresholds first were slower).

    ``planes``, unless empty, receives bits 0 and 1 of each inner node's
    feature for the vector walk: word ``w`` of plane ``b``
    (``planes[b * PLANE_WORDS + w]``) holds nodes ``32 w`` to ``32 w + 31``,
    node ``h`` at bit ``h % 32`` (pass-through and unreached nodes: 0). The
    vector walk shifts a level's word by each row's node instead of
    permuting a table of features (its kernel 1.63 -> 1.45 ns per row and
    tree).
    """
    bottom = 1 << depth
    heap[0] = 1
    planes[:] = 0
    for node in range(root, stop):
        h = heap[node - root]
        child = left[node]
        if child != node:
            offset[h] = feature[node] * block_rows
            cut[h] = threshold[node]
            if planes.size:
                bit = np.uint32(h & 31)
                planes[h >> 5] |= (np.uint32(feature[node]) & np.uint32(1)) << bit
                planes[PLANE_WORDS + (h >> 5)] |= ((np.uint32(feature[node]) >> np.uint32(1)) & np.uint32(1)) << bit
            heap[child - root] = 2 * h
            heap[child - root + 1] = 2 * h + 1
        else:
            while h < bottom:
                offset[h] = 0
                cut[h] = np.inf
                h *= 2
            value[h - bottom] = weight * (np.float64(path[node]) / norm)


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
def _largest_tree(roots, n_nodes):
    """The number of nodes of the forest's largest tree."""
    largest = n_nodes - roots[-1]
    for t in range(len(roots) - 1):
        largest = max(largest, roots[t + 1] - roots[t])
    return largest


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


@numba.njit(cache=True, nogil=True)
def _walk_forest_simd(X, feature, threshold, left, path, roots, depths, norm, weights, out, block_rows):  # noqa: PLR0913
    """:func:`_walk_forest` with the vector walk (:func:`_vector_walk`): the same padded trees, the same sums.

    Each tree is padded as for the scalar walk, holding each node's feature
    index instead of where its column starts. A block's rows are summed in
    ``acc`` from 0.0, tree after tree, then added to ``out`` (which holds
    0.0): every row gets the float64 sum the scalar walk gives, bit for bit.
    Rows past the block's end, up to a whole vector, walk zeros and are
    not kept. ``benchmarks/iforest_walk.py`` (243 tiles, 100 trees of 8
    levels, 2 features, 2900 rows each; CPU time, best of 7 alternating on
    the shared 2-core AMD EPYC, Zen 4): 1.79 against 4.57 ns per row and
    tree (0.39), padding (about 1 us a tree) included; the annual
    throughput model's own forests and rows: 2.02 against 4.52 before the
    feature bit planes.
    """
    n, n_features = X.shape
    block_rows = (block_rows + LANES - 1) // LANES * LANES
    slots = max(1 << depths.max(), 64)  # a level's 16-threshold load reads up to node 31
    feat = np.zeros(slots, dtype=np.int32)
    # bits 0 and 1 of each node's feature, 32 nodes a word (see _pad_tree); one feature needs none
    planes = np.zeros(2 * PLANE_WORDS if n_features > 1 else 0, dtype=np.uint32)
    cut = np.zeros(slots, dtype=np.float32)
    value = np.zeros(slots, dtype=np.float64)
    heap = np.empty(_largest_tree(roots, len(left)), dtype=np.int64)
    columns = np.zeros(n_features * block_rows, dtype=np.float32)
    acc = np.empty(block_rows, dtype=np.float64)
    for start in range(0, n, block_rows):
        rows = min(block_rows, n - start)
        for j in range(n_features):
            columns[j * block_rows : j * block_rows + rows] = X[start : start + rows, j]
        acc[:] = 0.0
        vectors = (rows + LANES - 1) // LANES
        for t in range(len(roots)):
            stop = roots[t + 1] if t + 1 < len(roots) else len(left)
            # a column stride of 1: each padded node holds its feature's index
            _pad_tree(feature, threshold, left, path, roots[t], stop, depths[t], weights[t], norm[t], 1,
                      feat, cut, value, heap, planes)
            if n_features == 1:
                _vector_walk_1(columns, block_rows, cut, planes, value, depths[t], vectors, acc)
            elif n_features == 2:
                _vector_walk_2(columns, block_rows, cut, planes, value, depths[t], vectors, acc)
            elif n_features == 3:
                _vector_walk_3(columns, block_rows, cut, planes, value, depths[t], vectors, acc)
            else:
                _vector_walk_4(columns, block_rows, cut, planes, value, depths[t], vectors, acc)
        out[start : start + rows] += acc[:rows]


_F32, _I32, _I64 = ir.FloatType(), ir.IntType(32), ir.IntType(64)
_VF, _VI = ir.VectorType(_F32, LANES), ir.VectorType(_I32, LANES)
_VD, _VI8, _M8 = ir.VectorType(ir.DoubleType(), 8), ir.VectorType(_I32, 8), ir.VectorType(ir.IntType(1), 8)


def _vector_walk(n_features: int):
    """A numba intrinsic adding the leaf values of ``vectors`` x 16 rows of one padded tree into ``acc`` (AVX-512).

    ``_vector_walk_<n>(columns, block_rows, cut, planes, value, depth, vectors,
    acc)``: the arrays as :func:`_walk_forest_simd` fills them. A vector of
    16 node indices ``j`` within the level steps ``j = 2 j + (x > cut)``
    (``fcmp ogt``: false for NaN, as the scalar ``>``); level ``l``'s
    thresholds are the padded tree's nodes ``2**l`` to ``2**(l+1) - 1``,
    looked up by ``vpermps`` (levels 0-4, one register) or ``vpermi2ps``
    (32 nodes per pair of registers, chosen between by the index's higher
    bits), never gathered: Zen 4's gathers took 12.8 ns per row and tree
    where the scalar walk took 4.8. The feature's value is selected among
    the row's ``n_features`` columns by the node's feature bits, shifted
    out of a word of the tree's bit planes (see :func:`_pad_tree`). Only the leaf values
    (256 float64) are gathered, then added to ``acc``. Four vectors walk
    side by side, so their chains of dependent steps overlap (one vector:
    3.0 ns per row and tree; four: 1.7; six: 1.7). One loop per depth (0 to
    ``SIMD_DEPTH``) with its levels written out.
    """

    @intrinsic
    def walk(typingctx, columns, block_rows, cut, planes, value, depth, vectors, acc):
        sig = types.void(columns, block_rows, cut, planes, value, depth, vectors, acc)

        def codegen(context, builder, signature, args):
            return _emit_vector_walk(context, builder, signature, args, n_features)

        return sig, codegen

    return walk


def _emit_vector_walk(context, builder, signature, args, n_features):  # noqa: PLR0915
    """The LLVM IR of :func:`_vector_walk` (see there)."""
    columns, block_rows, cuts, planes, values, depth, vectors, acc = (
        context.make_array(kind)(context, builder, arg).data if isinstance(kind, types.Array) else arg
        for kind, arg in zip(signature.args, args))

    def function(name, result, arguments):
        return cgutils.get_or_insert_function(builder.module, ir.FunctionType(result, arguments), name)

    permute = {_VF: function("llvm.x86.avx512.permvar.sf.512", _VF, [_VF, _VI]),
               _VI: function("llvm.x86.avx512.permvar.si.512", _VI, [_VI, _VI])}
    permute2 = {_VF: function("llvm.x86.avx512.vpermi2var.ps.512", _VF, [_VF, _VI, _VF]),
                _VI: function("llvm.x86.avx512.vpermi2var.d.512", _VI, [_VI, _VI, _VI])}
    gather = function("llvm.x86.avx512.mask.gather.dpd.512", _VD, [_VD, ir.PointerType(ir.IntType(8)), _VI8, _M8, _I32])
    every = ir.Constant(_M8, [1] * 8)
    value_bytes = builder.bitcast(values, ir.PointerType(ir.IntType(8)))

    def splat(number, kind=_VI):
        return ir.Constant(kind, [number] * LANES)

    def load(pointer, index, kind, align):
        return builder.load(builder.bitcast(builder.gep(pointer, [index]), ir.PointerType(kind)), align=align)

    def lookup(table, level, j, kind):
        first = 1 << level  # the level's nodes in heap order: first to 2 first - 1
        if level <= 4:
            return builder.call(permute[kind], [load(table, ir.Constant(_I64, first), kind, 4), j])
        parts = [builder.call(permute2[kind], [load(table, ir.Constant(_I64, first + 32 * k), kind, 4), j,
                                               load(table, ir.Constant(_I64, first + 32 * k + 16), kind, 4)])
                 for k in range(first // 32)]
        bit = 5
        while len(parts) > 1:  # pairs of 32 nodes chosen between by the index's next bit
            high = builder.icmp_unsigned("!=", builder.and_(j, splat(1 << bit)), splat(0))
            parts = [builder.select(high, parts[k + 1], parts[k]) for k in range(0, len(parts), 2)]
            bit += 1
        return parts[0]

    def feature_bit(plane, level, j):
        """Bit ``plane`` of the feature of each lane's node ``2**level + j``, as a mask (see _pad_tree)."""
        node = builder.add(j, splat(1 << level))
        first = plane * PLANE_WORDS
        if level <= 5:  # the level's nodes lie in one word: broadcast it
            word = builder.load(builder.gep(planes, [ir.Constant(_I64, first + (level == 5))]), align=4)
            words = builder.insert_element(ir.Constant(_VI, ir.Undefined), word, ir.Constant(_I32, 0))
            words = builder.shuffle_vector(words, words, ir.Constant(_VI, [0] * LANES))
        else:  # each lane's word, from the plane's words in one register
            words = builder.call(permute[_VI], [load(planes, ir.Constant(_I64, first), _VI, 4),
                                                builder.lshr(node, splat(5))])
        shifted = builder.lshr(words, builder.and_(node, splat(31)))
        return builder.icmp_unsigned("!=", builder.and_(shifted, splat(1)), splat(0))

    def walk_vectors(first_row, levels, count):
        rows = [builder.add(first_row, ir.Constant(_I64, LANES * u)) for u in range(count)]
        x = [[load(columns, builder.add(builder.mul(block_rows, ir.Constant(_I64, f)), row), _VF, 4)
              for f in range(n_features)] for row in rows]
        js = [splat(0)] * count
        for level in range(levels):
            for u in range(count):
                cut = lookup(cuts, level, js[u], _VF)
                chosen = x[u][0]
                if n_features > 1:
                    low = feature_bit(0, level, js[u])
                    chosen = builder.select(low, x[u][1], x[u][0])
                    if n_features > 2:  # features 2 and 3: bit 1 set
                        upper = builder.select(low, x[u][3], x[u][2]) if n_features > 3 else x[u][2]
                        chosen = builder.select(feature_bit(1, level, js[u]), upper, chosen)
                down = builder.shl(js[u], splat(1))  # the left child; the right one is 1 more
                js[u] = builder.select(builder.fcmp_ordered(">", chosen, cut), builder.or_(down, splat(1)), down)
        for u in range(count):
            for half in range(2):  # 8 float64 leaf values per gather
                index = builder.shuffle_vector(js[u], js[u], ir.Constant(_VI8, list(range(8 * half, 8 * half + 8))))
                leaf = builder.call(gather, [ir.Constant(_VD, [0.0] * 8), value_bytes, index, every, ir.Constant(_I32, 8)])
                sums = builder.bitcast(builder.gep(acc, [builder.add(rows[u], ir.Constant(_I64, 8 * half))]),
                                       ir.PointerType(_VD))
                builder.store(builder.fadd(builder.load(sums, align=8), leaf), sums, align=8)

    unroll = ir.Constant(_I64, SIMD_UNROLL)
    wide = builder.udiv(vectors, unroll)
    done = builder.function.append_basic_block("walk.done")
    by_depth = builder.switch(depth, done)
    for levels in range(SIMD_DEPTH + 1):
        block = builder.function.append_basic_block(f"walk.depth{levels}")
        by_depth.add_case(ir.Constant(depth.type, levels), block)
        builder.position_at_end(block)
        with cgutils.for_range(builder, wide) as loop:
            walk_vectors(builder.mul(loop.index, ir.Constant(_I64, LANES * SIMD_UNROLL)), levels, SIMD_UNROLL)
        with cgutils.for_range(builder, builder.sub(vectors, builder.mul(wide, unroll))) as loop:
            walk_vectors(builder.mul(builder.add(builder.mul(wide, unroll), loop.index), ir.Constant(_I64, LANES)),
                         levels, 1)
        builder.branch(done)
    builder.position_at_end(done)
    return context.get_dummy_value()


_vector_walk_1, _vector_walk_2, _vector_walk_3, _vector_walk_4 = (_vector_walk(n) for n in range(1, SIMD_FEATURES + 1))
