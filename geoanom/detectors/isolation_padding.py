"""Padding an isolation tree to a complete tree in heap order, for the walks of :mod:`.isolation_walk`.

Shared by the scalar walk (:func:`~geoanom.detectors.isolation_walk.forest_depth`)
and the AVX-512 one (:mod:`.isolation_walk_avx512`): both walk the same padded
trees, so they add the same leaf values in the same order.
"""

from __future__ import annotations

import numba
import numpy as np

# Words of a feature bit plane (see _pad_tree): 2**SIMD_DEPTH nodes, 32 to a word, padded to one register.
PLANE_WORDS = 16


@numba.njit(cache=True, nogil=True)
def pad_tree(feature, threshold, left, path, root, stop, depth, weight, norm, block_rows,  # noqa: PLR0913
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
def largest_tree(roots, n_nodes):
    """The number of nodes of the forest's largest tree."""
    largest = n_nodes - roots[-1]
    for t in range(len(roots) - 1):
        largest = max(largest, roots[t + 1] - roots[t])
    return largest
