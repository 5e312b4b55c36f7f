"""Isolation-forest kernels: the numba builder and walk against the numpy builder and scikit-learn walk they replaced.

Data: ``--tiles`` (729) tiles of 4096 training rows x 2 features, each a
seeded normal sample with its own correlation (rho uniform in [-0.9, 0.9]),
as the 4096-row sketches of a 729-tile cube; and 1 M rows to score, spread
evenly over the tiles (1372 per tile), 2 % of them injected outliers at a
Mahalanobis radius uniform in [2.5, 4.5] of the tile's own distribution
(moderate ones: about 4 % of normal rows lie beyond 2.5).

In the same run (ratios are same-run, the machine is shared), it measures:

* growing 729 forests of 100 trees x 256 points: the level-by-level numpy
  builder of geoanom before this change (copied below as the baseline) and
  :func:`geoanom.detectors.isolation_trees.build_forests`; the forests are
  checked identical (path lengths compared as float32);
* scoring the 1 M rows, each tile's rows with its own forest: the old walk
  (scikit-learn ``Tree`` objects rebuilt from the node arrays, then
  ``Tree.apply`` per tree and a numpy weighted mean, in batches of 16384;
  the rebuild timed apart) and the numba walk; ns per observation; the
  largest score difference (the new path lengths are float32);
* the walk before issue 14 (the compact walk: node arrays as stored, four
  rows side by side, copied below) against the padded walk of
  :mod:`geoanom.detectors.isolation_walk`, each tile's rows with its own
  forest, and again in calls of 100 rows (padding is paid per call): CPU
  time of this thread, best of at least 5 alternating runs (wall time too),
  ns per row and tree and us per observation; the scores are checked
  identical bit for bit;
* one forest walked by 1 M rows (ns per row and forest): the padded walk by
  blocks of rows of several sizes, the compact walk, scikit-learn's
  ``Tree.apply`` and the numpy walk (on 100 000 rows);
* peak resident memory of scoring all tiles (each in its own subprocess:
  the old walk keeps every tile's rebuilt trees, as detectors cached them);
* bytes per tile of the saved state (``to_dict`` arrays, and compressed in
  an .npz) before and after, and of the old in-memory scikit-learn trees;
* the first call's time (numba compiling) in a fresh process with an empty
  on-disk cache and again with the cache filled;
* ROC AUC of the injected outliers against cost for n_estimators in
  {25, 50, 100} x max_samples in {128, 256} (new kernels): growing and
  scoring seconds, bytes per tile, pooled AUC and the mean per-tile AUC.

Prints a table and writes ``benchmarks/results/iforest_kernels.json``. All
times are wall-clock ``time.perf_counter``, best of ``--repeat`` runs for
the kernel comparisons (CPU time for the walks). About 5 minutes on a 2-core machine.

Run from the repository root::

    python benchmarks/iforest_kernels.py [--tiles 729] [--repeat 2] [--out PATH]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numba
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geoanom.detectors import IForestDetector  # noqa: E402
from geoanom.detectors.hashing import GOLDEN_GAMMA, splitmix64_mix  # noqa: E402
from geoanom.detectors.iforest import _with_reservoir  # noqa: E402
from geoanom.detectors.isolation_trees import average_path_length, build_forests  # noqa: E402
from geoanom.detectors.isolation_walk import _tree_depths, _walk_forest, forest_depth  # noqa: E402

SEED = 14
TRAIN_ROWS = 4096
SCORED_ROWS = 1_000_000
OUTLIER_SHARE = 0.02
RESULT_MARK = "@@IFOREST@@ "


# --- data ------------------------------------------------------------------------------


def make_tiles(n_tiles: int, seed: int = SEED) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Per tile: training rows, rows to score and their labels (1 = injected outlier)."""
    rng = np.random.default_rng(seed)
    per_tile = -(-SCORED_ROWS // n_tiles)
    n_out = round(per_tile * OUTLIER_SHARE)
    train, test, labels = [], [], []
    for _ in range(n_tiles):
        rho = rng.uniform(-0.9, 0.9)
        chol = np.linalg.cholesky(np.array([[1.0, rho], [rho, 1.0]]))
        train.append(rng.normal(size=(TRAIN_ROWS, 2)) @ chol.T)
        angle, radius = rng.uniform(0, 2 * np.pi, n_out), rng.uniform(2.5, 4.5, n_out)
        outliers = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
        test.append(np.concatenate([rng.normal(size=(per_tile - n_out, 2)), outliers]) @ chol.T)
        labels.append(np.r_[np.zeros(per_tile - n_out), np.ones(n_out)])
    return train, test, labels


# --- baseline: geoanom's isolation forest before the numba kernels (commit 13449d1), copied ---

OLD_GROW_POINTS = 2_000_000
OLD_SCORE_BATCH = 16_384


def old_build_forests(samples, seeds, n_estimators=100, max_samples=256):
    """The level-by-level numpy builder (geoanom.detectors.isolation_trees.build_forests before)."""
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
    states = []
    start = 0
    while start < len(plans):
        stop, points = start, 0
        while stop < len(plans) and (stop == start or points + len(plans[stop][1]) <= OLD_GROW_POINTS):
            points += len(plans[stop][1])
            stop += 1
        chunk = plans[start:stop]
        values = np.concatenate([X.astype(np.float32)[picks].astype(np.float64) for X, picks, *_ in chunk])
        sizes = np.concatenate([np.full(n_estimators, psi) for _, _, psi, _, _ in chunk])
        keys = np.concatenate([plan[3] for plan in chunk])
        heights = np.concatenate([np.full(n_estimators, plan[4]) for plan in chunk])
        nodes = _old_grow_trees(values, sizes, keys, heights)
        for plan, state in zip(chunk, _old_split_forests(nodes, [plan[2] for plan in chunk], n_estimators)):
            state.update(n_features_=plan[0].shape[1], n_samples_=float(len(plan[0])))
            states.append(state)
        start = stop
    return states


def _old_uniform(keys, heap, purpose):
    z = splitmix64_mix(keys + heap * GOLDEN_GAMMA + np.uint64(purpose * 0xD1B54A32D192ED03 % 2**64))
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _old_floor_float32(values):
    rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded.astype(np.float64)


def _old_grow_trees(values, sizes, keys, heights):  # noqa: PLR0915
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
        key = keys[seg_tree]
        pick = np.floor(_old_uniform(key, seg_heap, 1) * n_varying).astype(np.intp)
        feature = np.argmax(np.cumsum(varying, axis=1) > pick[:, None], axis=1)
        rows = np.arange(n_seg)
        low, high = lows[rows, feature], highs[rows, feature]
        threshold = _old_floor_float32(low + _old_uniform(key, seg_heap, 2) * (high - low))
        threshold = np.where(threshold >= high, low, threshold)
        point_seg = np.repeat(rows, seg_len)
        right = values[np.arange(len(values)), feature[point_seg]] > threshold[point_seg]
        n_right = np.add.reduceat(right.astype(np.intp), seg_start)
        n_left = seg_len - n_right
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
    order = np.argsort(out["id"])
    return {name: value[order] for name, value in out.items()}


def _old_split_forests(nodes, psis, n_estimators):
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


def old_saved_state(state: dict[str, Any], reservoir: np.ndarray) -> dict[str, Any]:
    """What the old ``to_dict`` held: the dtypes of the old ``_set_state`` (int32 indices, float64 values)."""
    out = {name: np.asarray(state[name], dtype=np.int32)
           for name in ("node_feature_", "node_left_", "node_right_", "tree_root_")}
    out.update({name: np.asarray(state[name], dtype=np.float64)
                for name in ("node_threshold_", "node_path_", "tree_norm_", "tree_weight_")})
    out.update(max_depth_=state["max_depth_"], reservoir_=np.asarray(reservoir, dtype=np.float64))
    return out


def old_sklearn_trees(state: dict[str, Any], n_features: int) -> list:
    """scikit-learn Tree objects for the node arrays (the old ``_rebuild_sklearn_trees``)."""
    from sklearn.tree._tree import NODE_DTYPE, Tree

    bounds = [*state["tree_root_"], len(state["node_feature_"])]
    trees = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        own = np.arange(stop - start)
        left = state["node_left_"][start:stop] - start
        is_leaf = left == own
        nodes = np.zeros(stop - start, dtype=NODE_DTYPE)
        nodes["left_child"] = np.where(is_leaf, -1, left)
        nodes["right_child"] = np.where(is_leaf, -1, state["node_right_"][start:stop] - start)
        nodes["feature"] = np.where(is_leaf, -2, state["node_feature_"][start:stop])
        nodes["threshold"] = np.where(is_leaf, -2.0, state["node_threshold_"][start:stop])
        nodes["n_node_samples"] = 1
        tree = Tree(n_features, np.array([1], dtype=np.intp), 1)
        tree.__setstate__({"max_depth": state["max_depth_"], "node_count": len(nodes),
                           "nodes": nodes, "values": np.zeros((len(nodes), 1, 1))})
        trees.append(tree)
    return trees


def old_score(state: dict[str, Any], trees: list, X: np.ndarray) -> np.ndarray:
    """The old ``_native_score``: float32 rows, ``Tree.apply`` per tree, a weighted mean, by batches."""
    X = X.astype(np.float32)
    out = np.empty(len(X))
    weights = state["tree_weight_"] / state["tree_weight_"].sum()
    for start in range(0, len(X), OLD_SCORE_BATCH):
        batch = X[start:start + OLD_SCORE_BATCH]
        leaves = np.stack([tree.apply(batch) for tree in trees]) + state["tree_root_"][:, None]
        relative_depth = state["node_path_"][leaves] / state["tree_norm_"][:, None]
        out[start:start + OLD_SCORE_BATCH] = np.exp2(-(weights @ relative_depth))
    return out


def old_numpy_leaves(state: dict[str, Any], X: np.ndarray) -> np.ndarray:
    """The old numpy walk (the fallback when scikit-learn's Tree refused): max_depth_ vectorised steps."""
    rows = np.arange(len(X))[None, :]
    node = np.broadcast_to(state["tree_root_"][:, None], (len(state["tree_root_"]), len(X)))
    for _ in range(state["max_depth_"]):
        go_left = X[rows, state["node_feature_"][node]] <= state["node_threshold_"][node]
        node = np.where(go_left, state["node_left_"][node], state["node_right_"][node])
    return node


# --- the compact walk the padded one replaced (geoanom before issue 14's walk), copied ---


def compact_forest_depth(X: np.ndarray, state: dict[str, Any], block_rows: int = 4096) -> np.ndarray:
    """The compact walk's forest_depth: node arrays as stored, four rows side by side, each tree's own depth."""
    X = np.ascontiguousarray(X, dtype=np.float32)
    weights = np.asarray(state["tree_weight_"], dtype=np.float64)
    weights = weights / weights.sum()
    out = np.zeros(len(X))
    compact_walk_forest(X, state["node_feature_"], state["node_threshold_"], state["node_left_"],
                        state["node_path_"], state["tree_root_"], np.asarray(state["tree_norm_"], dtype=np.float64),
                        weights, out, block_rows)
    return out


@numba.njit(cache=True, nogil=True)
def compact_walk_forest(X, feature, threshold, left, path, roots, norm, weights, out, block_rows):  # noqa: PLR0913
    """A leaf steps onto itself (left is itself, nothing is above its infinite threshold); right = left + 1."""
    n = X.shape[0]
    steps = _tree_depths(left, roots)
    for block in range(0, n, block_rows):
        stop = min(block + block_rows, n)
        for t in range(len(roots)):
            root, scale, tree_norm, depth = roots[t], weights[t], norm[t], steps[t]
            i = block
            while i + 4 <= stop:
                a = b = c = d = root
                for _ in range(depth):
                    a = left[a] + (X[i, feature[a]] > threshold[a])
                    b = left[b] + (X[i + 1, feature[b]] > threshold[b])
                    c = left[c] + (X[i + 2, feature[c]] > threshold[c])
                    d = left[d] + (X[i + 3, feature[d]] > threshold[d])
                out[i] += scale * (np.float64(path[a]) / tree_norm)
                out[i + 1] += scale * (np.float64(path[b]) / tree_norm)
                out[i + 2] += scale * (np.float64(path[c]) / tree_norm)
                out[i + 3] += scale * (np.float64(path[d]) / tree_norm)
                i += 4
            for j in range(i, stop):
                node = root
                for _ in range(depth):
                    node = left[node] + (X[j, feature[node]] > threshold[node])
                out[j] += scale * (np.float64(path[node]) / tree_norm)


# --- the new state, as a detector saves it --------------------------------------------------


def new_saved_state(state: dict[str, Any], X: np.ndarray, seed: int) -> dict[str, Any]:
    """The arrays of ``IForestDetector.to_dict()`` for a grown state (reservoir included)."""
    detector = IForestDetector()
    detector._set_state(_with_reservoir(state, X, seed, 256))
    return detector._get_state()


def state_bytes(state: dict[str, Any]) -> int:
    return sum(value.nbytes for value in state.values() if isinstance(value, np.ndarray))


def npz_bytes(states: list[dict[str, Any]]) -> float:
    """Mean compressed .npz bytes per state (arrays only)."""
    buffer = io.BytesIO()
    arrays = {f"{i}_{name}": value for i, state in enumerate(states) for name, value in state.items()
              if isinstance(value, np.ndarray)}
    np.savez_compressed(buffer, **arrays)
    return buffer.tell() / len(states)


def best_of(repeat: int, function, *args, clock=time.perf_counter) -> tuple[float, Any]:
    """The shortest time of ``repeat`` calls (wall clock unless ``clock`` says otherwise), and the last result."""
    best, result = np.inf, None
    for _ in range(repeat):
        start = clock()
        result = function(*args)
        best = min(best, clock() - start)
    return best, result


def best_cpu_of(repeat: int, *functions) -> list[float]:
    """The shortest CPU time of this thread for each function, the functions taking turns ``repeat`` times.

    CPU time, not wall time: the compiled walks run in this thread, and on a
    shared machine the time the thread waits for a core is not the walk's.
    """
    best = [np.inf] * len(functions)
    for _ in range(repeat):
        for k, function in enumerate(functions):
            seconds, _ = best_of(1, function, clock=time.thread_time)
            best[k] = min(best[k], seconds)
    return best


# --- measurements -----------------------------------------------------------------------------


def measure_grow(train: list[np.ndarray], seeds: list[int], repeat: int) -> tuple[dict, list, list]:
    build_forests(train[:1], seeds[:1])  # compile (or load from the cache) outside the timing
    new_s, new = best_of(repeat, build_forests, train, seeds)
    old_s, old = best_of(repeat, old_build_forests, train, seeds)
    identical = all(
        np.array_equal(o["node_feature_"], n["node_feature_"]) and np.array_equal(o["node_left_"], n["node_left_"])
        and np.array_equal(o["node_threshold_"], n["node_threshold_"])
        and np.array_equal(o["node_path_"].astype(np.float32), n["node_path_"])
        and np.array_equal(o["tree_root_"], n["tree_root_"]) and o["max_depth_"] == n["max_depth_"]
        for o, n in zip(old, new))
    figures = {"tiles": len(train), "old_s": old_s, "new_s": new_s, "ratio": old_s / new_s,
               "forests_identical": identical,
               "nodes_per_tile": float(np.mean([len(s["node_left_"]) for s in new]))}
    return figures, old, new


def measure_score(old: list, new: list, test: list[np.ndarray], repeat: int) -> dict:
    n_rows = sum(len(X) for X in test)
    trees: list = []

    def rebuild():
        trees[:] = [old_sklearn_trees(state, 2) for state in old]

    def score_old():
        return [old_score(state, tile_trees, X) for state, tile_trees, X in zip(old, trees, test)]

    def score_new():
        return [np.exp2(-forest_depth(X, state)) for state, X in zip(new, test)]

    score_new()
    rebuild_s, _ = best_of(1, rebuild)
    old_s, old_scores = best_of(repeat, score_old)
    new_s, new_scores = best_of(repeat, score_new)
    difference = max(float(np.abs(a - b).max()) for a, b in zip(old_scores, new_scores))
    return {"rows": n_rows, "old_rebuild_s": rebuild_s, "old_apply_s": old_s, "old_s": rebuild_s + old_s,
            "new_s": new_s, "ratio": (rebuild_s + old_s) / new_s, "ratio_without_rebuild": old_s / new_s,
            "old_ns_per_obs": (rebuild_s + old_s) / n_rows * 1e9, "new_ns_per_obs": new_s / n_rows * 1e9,
            "max_abs_score_difference": difference}


def measure_one_forest(old_state: dict, new_state: dict, repeat: int) -> dict:
    """ns per row and forest: one forest, 1 M rows (the padded walk by blocks of several sizes; CPU time)."""
    X = np.random.default_rng(SEED + 1).normal(size=(SCORED_ROWS, 2)).astype(np.float32)
    weights = new_state["tree_weight_"] / new_state["tree_weight_"].sum()
    depths = _tree_depths(new_state["node_left_"], new_state["tree_root_"])
    out: dict[str, float] = {}
    for block in (256, 1024, 4096, 16384, 65536):
        def walk(block=block):
            depth = np.zeros(len(X))
            _walk_forest(X, new_state["node_feature_"], new_state["node_threshold_"], new_state["node_left_"],
                         new_state["node_path_"], new_state["tree_root_"], depths, new_state["tree_norm_"], weights,
                         depth, block)
        walk()
        out[f"numba_block_{block}_ns"] = best_cpu_of(repeat, walk)[0] / len(X) * 1e9
    compact_forest_depth(X[:16], new_state)
    out["compact_walk_block_4096_ns"] = best_cpu_of(repeat, lambda: compact_forest_depth(X, new_state))[0] / len(X) * 1e9
    trees = old_sklearn_trees(old_state, 2)
    seconds, _ = best_of(repeat, old_score, old_state, trees, X)
    out["sklearn_apply_ns"] = seconds / len(X) * 1e9
    few = X[:100_000]
    seconds, _ = best_of(1, old_numpy_leaves, old_state, few)
    out["numpy_walk_ns"] = seconds / len(few) * 1e9
    return out


def measure_walk(new: list, test: list[np.ndarray], repeat: int) -> dict:
    """The compact walk against the padded walk: every tile's rows with its own forest, CPU and wall time.

    Also in calls of 100 rows (as adaptive scoring calls it), for the first
    100 tiles: the padding is paid per call.
    """
    n_rows, n_trees = sum(len(X) for X in test), len(new[0]["tree_root_"])
    pieces = [(state, X[i:i + 100]) for state, X in zip(new[:100], test[:100]) for i in range(0, len(X), 100)]
    n_small = sum(len(X) for _, X in pieces)
    tiles = list(zip(new, test))

    def compact(pairs=tiles):
        return [compact_forest_depth(X, state) for state, X in pairs]

    def padded(pairs=tiles):
        return [forest_depth(X, state) for state, X in pairs]

    identical = all(np.array_equal(a, b) for a, b in zip(compact(), padded()))
    compact_s, padded_s = best_cpu_of(repeat, compact, padded)
    compact_wall, _ = best_of(repeat, compact)
    padded_wall, _ = best_of(repeat, padded)
    small_compact_s, small_padded_s = best_cpu_of(repeat, lambda: compact(pieces), lambda: padded(pieces))
    per_tree = 1e9 / n_trees
    return {"rows": n_rows, "trees": n_trees, "scores_identical": identical,
            "compact_cpu_s": compact_s, "padded_cpu_s": padded_s, "ratio": compact_s / padded_s,
            "compact_wall_s": compact_wall, "padded_wall_s": padded_wall, "ratio_wall": compact_wall / padded_wall,
            "compact_ns_per_row_and_tree": compact_s / n_rows * per_tree,
            "padded_ns_per_row_and_tree": padded_s / n_rows * per_tree,
            "compact_us_per_obs": compact_s / n_rows * 1e6, "padded_us_per_obs": padded_s / n_rows * 1e6,
            "calls_of_100_rows": {"rows": n_small, "compact_ns_per_row_and_tree": small_compact_s / n_small * per_tree,
                                  "padded_ns_per_row_and_tree": small_padded_s / n_small * per_tree,
                                  "ratio": small_compact_s / small_padded_s}}


def measure_bytes(train: list[np.ndarray], seeds: list[int], old: list, new: list) -> dict:
    old_saved = [old_saved_state(state, X[:256]) for state, X in zip(old, train)]
    new_saved = [new_saved_state(state, X, seed) for state, X, seed in zip(new, train, seeds)]
    some = slice(0, 50)
    trees = [old_sklearn_trees(state, 2) for state in old[some]]
    tree_bytes = [sum(t.__getstate__()["nodes"].nbytes + t.__getstate__()["values"].nbytes for t in tile)
                  for tile in trees]
    old_bytes = np.mean([state_bytes(s) for s in old_saved])
    new_bytes = np.mean([state_bytes(s) for s in new_saved])
    return {"old_state_bytes_per_tile": old_bytes, "new_state_bytes_per_tile": new_bytes,
            "ratio": old_bytes / new_bytes,
            "old_npz_bytes_per_tile": npz_bytes(old_saved[some]), "new_npz_bytes_per_tile": npz_bytes(new_saved[some]),
            "old_sklearn_tree_cache_bytes_per_tile": float(np.mean(tree_bytes)),
            "new_state_dtypes": {k: str(v.dtype) for k, v in new_saved[0].items() if isinstance(v, np.ndarray)},
            "old_state_dtypes": {k: str(v.dtype) for k, v in old_saved[0].items() if isinstance(v, np.ndarray)}}


def measure_auc(train: list[np.ndarray], test: list[np.ndarray], labels: list[np.ndarray], seeds: list[int]) -> list:
    from sklearn.metrics import roc_auc_score

    rows = []
    y = np.concatenate(labels)
    for n_estimators in (25, 50, 100):
        for max_samples in (128, 256):
            grow_s, states = best_of(1, build_forests, train, seeds, n_estimators, max_samples)
            score_s, scores = best_of(1, lambda: [np.exp2(-forest_depth(X, s)) for s, X in zip(states, test)])
            per_tile = [roc_auc_score(lab, sc) for lab, sc in zip(labels, scores)]
            saved = [new_saved_state(state, X, seed) for state, X, seed in zip(states[:50], train, seeds)]
            rows.append({"n_estimators": n_estimators, "max_samples": max_samples, "grow_s": grow_s,
                         "score_s": score_s, "score_ns_per_obs": score_s / len(y) * 1e9,
                         "state_bytes_per_tile": float(np.mean([state_bytes(s) for s in saved])),
                         "auc_pooled": float(roc_auc_score(y, np.concatenate(scores))),
                         "auc_tile_mean": float(np.mean(per_tile)),
                         "auc_tile_se": float(np.std(per_tile) / np.sqrt(len(per_tile)))})
    return rows


# --- subprocesses: peak memory and the first call's compile time --------------------------------


def child_memory(variant: str, n_tiles: int) -> dict:
    """Grow every tile's forest (new builder), then score every tile's rows; VmRSS before, peak after."""
    train, test, _ = make_tiles(n_tiles)
    seeds = list(range(n_tiles))
    states = build_forests(train, seeds)
    if variant == "old":
        states = [old_saved_state({**s, "node_right_": s["node_left_"] + (s["node_left_"] != np.arange(len(
            s["node_left_"])))}, X[:256]) for s, X in zip(states, train)]
    else:
        states = [new_saved_state(s, X, seed) for s, X, seed in zip(states, train, seeds)]
    del train
    peak_before = proc_status_mb("VmHWM")
    reset_peak()
    before = proc_status_mb("VmRSS")
    kept = []  # the old detectors kept their rebuilt trees
    start = time.perf_counter()
    for state, X in zip(states, test):
        if variant == "old":
            kept.append(old_sklearn_trees(state, 2))
            old_score(state, kept[-1], X)
        else:
            np.exp2(-forest_depth(X, state))
    peak = proc_status_mb("VmHWM")
    return {"variant": variant, "rss_before_scoring_mb": before, "peak_while_growing_mb": peak_before,
            "peak_while_scoring_mb": peak, "scoring_increase_mb": peak - before,
            "seconds": time.perf_counter() - start}


def child_compile() -> dict:
    """Seconds of the first calls in this process (numba compiles, or loads its on-disk cache)."""
    from geoanom.detectors import isolation_trees, isolation_walk  # imported with this script: no compiling yet

    X = np.random.default_rng(0).normal(size=(300, 2))
    times = {}
    for name, call in (("build_s", lambda: isolation_trees.build_forests([X], [0], n_estimators=10)),
                       ("walk_s", lambda: isolation_walk.forest_depth(X, state))):
        start = time.perf_counter()
        result = call()
        times[name] = time.perf_counter() - start
        if name == "build_s":
            state = result[0]
    start = time.perf_counter()
    isolation_walk.forest_depth(X, isolation_trees.build_forests([X], [1], n_estimators=10)[0])
    times["second_calls_s"] = time.perf_counter() - start
    return times


def run_child(arguments: list[str], env: dict | None = None) -> dict:
    done = subprocess.run([sys.executable, __file__, *arguments], capture_output=True, text=True, check=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT)
    line = [x for x in done.stdout.splitlines() if x.startswith(RESULT_MARK)][-1]
    return json.loads(line[len(RESULT_MARK):])


def proc_status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status (VmRSS now, VmHWM its peak), in MB.

    Not getrusage's ru_maxrss: Linux keeps that across exec, so a child would report its parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def reset_peak() -> None:
    """Start VmHWM again from the current RSS (Linux >= 4.0: writing 5 to /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


# --- report -----------------------------------------------------------------------------------


def table(report: dict) -> str:
    g, s, f, b, m, c, w = (report[k] for k in ("grow", "score", "one_forest", "bytes", "memory", "compile", "walk"))
    lines = [
        f"{'':44s}{'old':>12s}{'new':>12s}{'old/new':>9s}",
        f"{'grow ' + str(g['tiles']) + ' forests (s)':44s}{g['old_s']:12.2f}{g['new_s']:12.2f}{g['ratio']:9.1f}",
        f"{'score ' + str(s['rows']) + ' rows, per tile (s)':44s}{s['old_s']:12.2f}{s['new_s']:12.2f}{s['ratio']:9.1f}",
        f"{'  of which rebuilding sklearn trees (s)':44s}{s['old_rebuild_s']:12.2f}{'':12s}",
        f"{'score ns per observation':44s}{s['old_ns_per_obs']:12.0f}{s['new_ns_per_obs']:12.0f}",
        f"{'one forest, 1 M rows (ns/row, sklearn apply)':44s}{f['sklearn_apply_ns']:12.1f}"
        f"{f['numba_block_4096_ns']:12.1f}{f['sklearn_apply_ns'] / f['numba_block_4096_ns']:9.1f}",
        f"{'state bytes per tile (to_dict arrays)':44s}{b['old_state_bytes_per_tile']:12.0f}"
        f"{b['new_state_bytes_per_tile']:12.0f}{b['ratio']:9.2f}",
        f"{'  compressed .npz bytes per tile':44s}{b['old_npz_bytes_per_tile']:12.0f}{b['new_npz_bytes_per_tile']:12.0f}",
        f"{'  + in-memory sklearn trees per tile':44s}{b['old_sklearn_tree_cache_bytes_per_tile']:12.0f}{0:12.0f}",
        f"{'peak RSS scoring all tiles (MB)':44s}{m['old']['peak_while_scoring_mb']:12.0f}"
        f"{m['new']['peak_while_scoring_mb']:12.0f}",
        f"{'  increase while scoring (MB)':44s}{m['old']['scoring_increase_mb']:12.0f}"
        f"{m['new']['scoring_increase_mb']:12.0f}",
        "",
        f"{'walk (CPU time)':44s}{'compact':>12s}{'padded':>12s}{'ratio':>9s}",
        f"{'  every tile, ns per row and tree':44s}{w['compact_ns_per_row_and_tree']:12.2f}"
        f"{w['padded_ns_per_row_and_tree']:12.2f}{w['ratio']:9.2f}",
        f"{'  every tile, us per obs (100 trees)':44s}{w['compact_us_per_obs']:12.3f}{w['padded_us_per_obs']:12.3f}",
        f"{'  every tile, wall s':44s}{w['compact_wall_s']:12.2f}{w['padded_wall_s']:12.2f}{w['ratio_wall']:9.2f}",
        f"{'  calls of 100 rows, ns per row and tree':44s}{w['calls_of_100_rows']['compact_ns_per_row_and_tree']:12.2f}"
        f"{w['calls_of_100_rows']['padded_ns_per_row_and_tree']:12.2f}{w['calls_of_100_rows']['ratio']:9.2f}",
        f"{'  one forest, 1 M rows, ns per row and tree':44s}{f['compact_walk_block_4096_ns'] / 100:12.2f}"
        f"{f['numba_block_4096_ns'] / 100:12.2f}{f['compact_walk_block_4096_ns'] / f['numba_block_4096_ns']:9.2f}",
        f"scores of the two walks identical (bit for bit): {w['scores_identical']}",
        "",
        f"forests identical: {g['forests_identical']}; largest score difference old vs new: "
        f"{s['max_abs_score_difference']:.2g}",
        "padded walk, one forest, ns/row by block of rows: " + ", ".join(
            f"{k.split('_')[2]}: {v:.1f}" for k, v in f.items() if k.startswith("numba_block")),
        f"numpy walk (old fallback): {f['numpy_walk_ns']:.0f} ns/row",
        "first calls (s): cold cache " + ", ".join(f"{k} {v:.2f}" for k, v in c["cold"].items())
        + "; cached " + ", ".join(f"{k} {v:.2f}" for k, v in c["cached"].items()),
        "",
        f"{'n_estimators':>12s}{'max_samples':>12s}{'grow s':>8s}{'score s':>8s}{'ns/obs':>8s}{'KB/tile':>9s}"
        f"{'AUC pool':>9s}{'AUC tile':>9s}{'se':>7s}",
    ]
    for row in report["auc"]:
        lines.append(f"{row['n_estimators']:12d}{row['max_samples']:12d}{row['grow_s']:8.2f}{row['score_s']:8.2f}"
                     f"{row['score_ns_per_obs']:8.0f}{row['state_bytes_per_tile'] / 1024:9.0f}"
                     f"{row['auc_pooled']:9.4f}{row['auc_tile_mean']:9.4f}{row['auc_tile_se']:7.4f}")
    return "\n".join(lines)


def versions() -> dict:
    import numba
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "numba": numba.__version__,
            "scikit-learn": sklearn.__version__, "machine": platform.machine(), "cpus": os.cpu_count(),
            "load_average_at_start": os.getloadavg()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tiles", type=int, default=729)
    parser.add_argument("--repeat", type=int, default=2, help="runs of each kernel comparison (best kept)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "iforest_kernels.json")
    parser.add_argument("--child", choices=["memory-old", "memory-new", "compile"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        result = child_compile() if args.child == "compile" else child_memory(args.child.split("-")[1], args.tiles)
        print(RESULT_MARK + json.dumps(result), flush=True)
        return 0
    started = dt.datetime.now(dt.timezone.utc)
    report: dict[str, Any] = {"benchmark": "iforest_kernels", "date": started.isoformat(timespec="seconds"),
                              "versions": versions()}
    with tempfile.TemporaryDirectory(prefix="numba-cache-") as cache:
        env = {"NUMBA_CACHE_DIR": cache}
        report["compile"] = {"cold": run_child(["--child", "compile"], env),
                             "cached": run_child(["--child", "compile"], env)}
    print("compile:", report["compile"], flush=True)
    report["memory"] = {v: run_child(["--child", f"memory-{v}", "--tiles", str(args.tiles)]) for v in ("old", "new")}
    print("memory:", report["memory"], flush=True)
    train, test, labels = make_tiles(args.tiles)
    seeds = list(range(args.tiles))
    report["grow"], old, new = measure_grow(train, seeds, args.repeat)
    print("grow:", report["grow"], flush=True)
    report["bytes"] = measure_bytes(train, seeds, old, new)
    old = [old_saved_state(state, X[:256]) for state, X in zip(old, train)]
    report["score"] = measure_score(old, new, test, args.repeat)
    print("score:", report["score"], flush=True)
    report["walk"] = measure_walk(new, test, max(args.repeat, 5))
    print("walk:", report["walk"], flush=True)
    report["one_forest"] = measure_one_forest(old[0], new[0], max(args.repeat, 3))
    print("one forest:", report["one_forest"], flush=True)
    del old, new
    report["auc"] = measure_auc(train, test, labels, seeds)
    report["data"] = {"tiles": args.tiles, "train_rows_per_tile": TRAIN_ROWS, "scored_rows": SCORED_ROWS,
                      "outlier_share": OUTLIER_SHARE, "seed": SEED}
    report["notes"] = [
        "old = geoanom before the numba kernels (numpy level-by-level builder; scikit-learn Tree objects "
        "rebuilt from the node arrays and Tree.apply), copied into this script; new = geoanom.detectors."
        "isolation_trees.",
        "times: wall clock, best of --repeat for grow/score/one-forest, one run for the AUC rows; "
        "same run, shared 2-core machine: compare ratios, not absolute seconds across runs.",
        "score old_s includes rebuilding the scikit-learn trees (once per tile, as a detector did on first use).",
        "memory: each variant in its own process, which grows every tile's forest then scores every tile's rows; "
        "before = VmRSS after growing, peak = VmHWM while scoring (reset before scoring); the old variant keeps "
        "each tile's rebuilt scikit-learn trees, as its detectors cached them.",
        "compile: a fresh process with NUMBA_CACHE_DIR empty (cold) then the same directory (cached).",
        "AUC: injected outliers (Mahalanobis radius 2.5 to 4.5) against normal rows; pooled over all tiles and "
        "mean of per-tile AUCs (se = standard error over tiles). Defaults unchanged (100 trees, 256 samples).",
        "walk: the compact walk (before issue 14, copied into this script) against the padded walk of "
        "geoanom.detectors.isolation_walk, same forests and rows, CPU time of this thread (the machine is shared), "
        "best of at least 5 alternating runs; wall times alongside; one_forest blocks and compact_walk_block_4096_ns "
        "are CPU time too (ns per row and 100-tree forest).",
    ]
    print("\n" + table(report) + "\n")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
