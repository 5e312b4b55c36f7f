"""Growing isolation trees for many tiles at once, as plain node arrays.

scikit-learn's ``IsolationForest`` grows one tree at a time with per-tree
Python overhead (about 0.1 s per 100-tree forest), and a model holds a forest
per tile: hundreds of forests. Here the trees of every tile in a batch grow
together, level by level, in numpy (Liu et al., 2008: a subsample of
``max_samples`` per tree drawn without replacement, a random feature among
those that vary in the node, a split drawn uniformly between the node's
minimum and maximum, a height limit of ceil(log2(max_samples)); a leaf holds
its depth + c(n)). Each tile's random draws come from its own seed only, so
a tile's forest does not depend on the batch it was grown in.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import check_features
from .hashing import GOLDEN_GAMMA, splitmix64_mix

# Points grown together per call of _grow_trees: bounds the level arrays (a few
# hundred MB at most); 64 tiles x 100 trees x 256 points is 1.6 M.
GROW_POINTS = 2_000_000


def average_path_length(n_samples: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful search in a binary tree of n points."""
    n = np.asarray(n_samples, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


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

    Written by hand, not with scikit-learn's ``IsolationForest``: that grows
    one tree at a time in Python (about 1 ms of overhead per tree, 100 trees
    per tile, hundreds of tiles), while here the trees of all samples grow
    together, level by level, with numpy segment reductions.

    Every random draw depends only on the sample's own seed (the subsample
    from a ``numpy.random.Generator`` of the seed, the split draws from a
    counter-based hash of a per-tree key and the node's position), so a
    sample gets the same forest whichever other samples it is grown with.
    """
    samples = [check_features(X) for X in samples]
    plans = []
    for X, seed in zip(samples, seeds):
        n = len(X)
        if isinstance(max_samples, float) and max_samples <= 1.0:
            psi = max(1, int(max_samples * n))
        else:
            psi = int(min(max_samples, n))
        rng = np.random.default_rng(seed)
        if psi < n:
            picks = np.concatenate([rng.choice(n, psi, replace=False) for _ in range(n_estimators)])
        else:
            picks = np.tile(np.arange(n), n_estimators)
        keys = rng.integers(0, 2**64, size=n_estimators, dtype=np.uint64, endpoint=False)
        height = int(np.ceil(np.log2(max(psi, 2))))
        plans.append((X, picks, psi, keys, height))

    states: list[dict[str, Any]] = []
    start = 0
    while start < len(plans):
        stop, points = start, 0
        while stop < len(plans) and (stop == start or points + len(plans[stop][1]) <= GROW_POINTS):
            points += len(plans[stop][1])
            stop += 1
        chunk = plans[start:stop]
        # float32 values, as scikit-learn's trees see them and as decision_function compares them
        values = np.concatenate([X.astype(np.float32)[picks].astype(np.float64) for X, picks, *_ in chunk])
        sizes = np.concatenate([np.full(n_estimators, psi) for _, _, psi, _, _ in chunk])
        keys = np.concatenate([plan[3] for plan in chunk])
        heights = np.concatenate([np.full(n_estimators, plan[4]) for plan in chunk])
        nodes = _grow_trees(values, sizes, keys, heights)
        for plan, state in zip(chunk, _split_forests(nodes, [plan[2] for plan in chunk], n_estimators)):
            state.update(n_features_=plan[0].shape[1], n_samples_=float(len(plan[0])))
            states.append(state)
        start = stop
    return states


def _uniform(keys: np.ndarray, heap: np.ndarray, purpose: int) -> np.ndarray:
    """Uniform [0, 1) draws from (tree key, node heap position, purpose): splitmix64."""
    z = splitmix64_mix(keys + heap * GOLDEN_GAMMA + np.uint64(purpose * 0xD1B54A32D192ED03 % 2**64))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _floor_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 not above each value (so float32 comparisons stay exact)."""
    rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded.astype(np.float64)


def _grow_trees(values: np.ndarray, sizes: np.ndarray, keys: np.ndarray, heights: np.ndarray) -> dict[str, np.ndarray]:
    """Grow trees level by level; ``values`` holds each tree's points, tree after tree.

    Points stay grouped by node (contiguous segments); each level takes the
    nodes' minima and maxima with ``reduceat``, splits, and reorders the
    points of the children still to split by a stable partition in O(n).
    Returns node fields in creation order (breadth first within a tree).
    """
    n_trees = len(sizes)
    d = values.shape[1]
    fields: dict[str, list] = {k: [] for k in ("id", "tree", "depth", "feature", "threshold", "left", "right", "path")}

    def resolve(ids, tree, depth, feature, threshold, left, right, path):
        for name, value in zip(fields, (ids, tree, depth, feature, threshold, left, right, path)):
            fields[name].append(np.broadcast_to(value, ids.shape))

    def leaves(ids, tree, depth, counts):
        resolve(ids, tree, depth, 0, np.inf, ids, ids, depth + average_path_length(counts))

    n_nodes = n_trees
    ids = np.arange(n_trees)
    active = sizes >= 2
    leaves(ids[~active], ids[~active], np.zeros((~active).sum()), sizes[~active])
    seg_len, seg_id, seg_tree = sizes[active], ids[active], ids[active]
    seg_heap = np.ones(active.sum(), dtype=np.uint64)
    values = values[np.repeat(active, sizes)]
    depth = 0
    while len(seg_len):
        n_seg = len(seg_len)
        seg_start = np.zeros(n_seg, dtype=np.intp)
        np.cumsum(seg_len[:-1], out=seg_start[1:])
        lows = np.minimum.reduceat(values, seg_start, axis=0)
        highs = np.maximum.reduceat(values, seg_start, axis=0)
        varying = highs > lows
        n_varying = varying.sum(axis=1)
        split = n_varying > 0
        constant = ~split
        leaves(seg_id[constant], seg_tree[constant], np.full(constant.sum(), float(depth)), seg_len[constant])
        # a feature uniformly among the varying ones, a threshold uniformly in [low, high)
        key = keys[seg_tree]
        pick = np.floor(_uniform(key, seg_heap, 1) * n_varying).astype(np.intp)
        feature = np.argmax(np.cumsum(varying, axis=1) > pick[:, None], axis=1)
        rows = np.arange(n_seg)
        low, high = lows[rows, feature], highs[rows, feature]
        threshold = _floor_float32(low + _uniform(key, seg_heap, 2) * (high - low))
        threshold = np.where(threshold >= high, low, threshold)
        # route the points
        point_seg = np.repeat(rows, seg_len)
        right = values[np.arange(len(values)), feature[point_seg]] > threshold[point_seg]
        n_right = np.add.reduceat(right.astype(np.intp), seg_start)
        n_left = seg_len - n_right
        # children of the split nodes: left then right, in segment order
        s = np.flatnonzero(split)
        n_split = len(s)
        child_len = np.stack([n_left[s], n_right[s]], axis=1).ravel()
        child_id = n_nodes + np.arange(2 * n_split)
        n_nodes += 2 * n_split
        child_tree = np.repeat(seg_tree[s], 2)
        child_heap = (np.repeat(seg_heap[s], 2) * np.uint64(2)) + np.tile(np.array([0, 1], dtype=np.uint64), n_split)
        resolve(seg_id[s], seg_tree[s], np.full(n_split, float(depth)), feature[s], threshold[s],
                child_id[0::2], child_id[1::2], 0.0)
        child_depth = depth + 1
        grows = (child_len >= 2) & (child_depth < heights[child_tree])
        done = ~grows
        leaves(child_id[done], child_tree[done], np.full(done.sum(), float(child_depth)), child_len[done])
        # stable partition of the points into the growing children, O(n)
        split_rank = np.full(n_seg, -1, dtype=np.intp)
        split_rank[s] = np.arange(n_split)
        is_left = (~right).astype(np.intp)
        before_left = np.cumsum(is_left) - is_left
        before_right = np.arange(len(right)) - before_left
        rank = np.where(right, before_right - before_right[seg_start][point_seg],
                        before_left - before_left[seg_start][point_seg])
        child = 2 * split_rank[point_seg] + right
        keep = split[point_seg]
        keep[keep] = grows[child[keep]]
        kept_len = child_len[grows]
        child_start = np.zeros(len(child_len), dtype=np.intp)
        starts = np.zeros(len(kept_len), dtype=np.intp)
        np.cumsum(kept_len[:-1], out=starts[1:])
        child_start[grows] = starts
        moved = np.empty((int(kept_len.sum()), d))
        moved[child_start[child[keep]] + rank[keep]] = values[keep]
        values = moved
        seg_len, seg_id, seg_tree, seg_heap = kept_len, child_id[grows], child_tree[grows], child_heap[grows]
        depth = child_depth

    out = {name: np.concatenate(parts) for name, parts in fields.items()}
    order = np.argsort(out["id"])  # rows by node id
    return {name: value[order] for name, value in out.items()}


def _split_forests(nodes: dict[str, np.ndarray], psis: list[int], n_estimators: int) -> list[dict[str, Any]]:
    """One state per sample: nodes sorted by tree (breadth first within), local indices."""
    order = np.argsort(nodes["tree"], kind="stable")
    position = np.empty(len(order), dtype=np.intp)
    position[order] = np.arange(len(order))
    nodes = {name: value[order] for name, value in nodes.items()}
    tree = nodes["tree"]
    left, right = position[nodes["left"]], position[nodes["right"]]
    tree_start = np.searchsorted(tree, np.arange(len(psis) * n_estimators + 1))
    states = []
    for i, psi in enumerate(psis):
        lo, hi = tree_start[i * n_estimators], tree_start[(i + 1) * n_estimators]
        norm = float(average_path_length(np.array([psi]))[0]) or 1.0
        states.append({
            "node_feature_": nodes["feature"][lo:hi].astype(np.int32),
            "node_threshold_": nodes["threshold"][lo:hi].astype(np.float64),
            "node_left_": left[lo:hi] - lo,
            "node_right_": right[lo:hi] - lo,
            "node_path_": nodes["path"][lo:hi].astype(np.float64),
            "tree_root_": tree_start[i * n_estimators:(i + 1) * n_estimators] - lo,
            "tree_norm_": np.full(n_estimators, norm),
            "tree_weight_": np.ones(n_estimators),
            "max_depth_": int(nodes["depth"][lo:hi].max()),
        })
    return states
