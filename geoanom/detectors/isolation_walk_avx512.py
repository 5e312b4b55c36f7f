"""The isolation-forest walk in AVX-512 vectors: 16 rows to a register, four registers side by side.

Where numba compiles for a processor with AVX-512F, trees of at most
``SIMD_DEPTH`` levels and rows of at most ``SIMD_FEATURES`` features are
walked here instead of by the scalar walk of :mod:`.isolation_walk` (which
chooses, see ``USE_SIMD``): the same padded trees (:mod:`.isolation_padding`),
the same comparisons and float64 sums, so the same bits
(``tests/test_isolation_walk_simd.py``). numba cannot express the register
permutations the walk is built on, so :func:`_vector_walk` writes them as
LLVM IR (numba intrinsics); ``benchmarks/iforest_walk.py`` measures it
against the scalar walk.
"""

from __future__ import annotations

import llvmlite.binding
import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

from .isolation_padding import PLANE_WORDS, largest_tree, pad_tree

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


@numba.njit(cache=True, nogil=True)
def walk_forest_simd(X, feature, threshold, left, path, roots, depths, norm, weights, out, block_rows):  # noqa: PLR0913
    """The scalar walk (:mod:`.isolation_walk`) with the vector walk (:func:`_vector_walk`): the same padded trees,
    the same sums.

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
    # bits 0 and 1 of each node's feature, 32 nodes a word (see pad_tree); one feature needs none
    planes = np.zeros(2 * PLANE_WORDS if n_features > 1 else 0, dtype=np.uint32)
    cut = np.zeros(slots, dtype=np.float32)
    value = np.zeros(slots, dtype=np.float64)
    heap = np.empty(largest_tree(roots, len(left)), dtype=np.int64)
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
            pad_tree(feature, threshold, left, path, roots[t], stop, depths[t], weights[t], norm[t], 1,
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
    acc)``: the arrays as :func:`walk_forest_simd` fills them. A vector of
    16 node indices ``j`` within the level steps ``j = 2 j + (x > cut)``
    (``fcmp ogt``: false for NaN, as the scalar ``>``); level ``l``'s
    thresholds are the padded tree's nodes ``2**l`` to ``2**(l+1) - 1``,
    looked up by ``vpermps`` (levels 0-4, one register) or ``vpermi2ps``
    (32 nodes per pair of registers, chosen between by the index's higher
    bits), never gathered: Zen 4's gathers took 12.8 ns per row and tree
    where the scalar walk took 4.8. The feature's value is selected among
    the row's ``n_features`` columns by the node's feature bits, shifted
    out of a word of the tree's bit planes (see :func:`pad_tree`). Only the leaf values
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
        """Bit ``plane`` of the feature of each lane's node ``2**level + j``, as a mask (see pad_tree)."""
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
