"""Isolation forests as geoanom saved them before the compact layout, for the tests of loading old files."""

from __future__ import annotations

import numpy as np

from geoanom.detectors.isolation_trees import average_path_length


def old_format_state(forest):
    """A state as saved before the compact layout: float64/int32 arrays, node_right_, trees depth first."""
    parts = {name: [] for name in ("node_feature_", "node_threshold_", "node_left_", "node_right_", "node_path_")}
    roots, offset, max_depth = [], 0, 0
    for estimator in forest.estimators_:
        tree = estimator.tree_
        own = np.arange(tree.node_count)
        leaf = tree.children_left == -1
        depth = np.zeros(tree.node_count)
        for node in own[~leaf]:  # children come after their parent
            depth[tree.children_left[node]] = depth[tree.children_right[node]] = depth[node] + 1
        parts["node_feature_"].append(np.where(leaf, 0, tree.feature))
        parts["node_threshold_"].append(np.where(leaf, np.inf, tree.threshold))
        parts["node_left_"].append(np.where(leaf, own, tree.children_left) + offset)
        parts["node_right_"].append(np.where(leaf, own, tree.children_right) + offset)
        parts["node_path_"].append(np.where(leaf, depth + average_path_length(tree.n_node_samples), 0.0))
        roots.append(offset)
        offset += tree.node_count
        max_depth = max(max_depth, int(depth.max()))
    state = {name: np.concatenate(values) for name, values in parts.items()}
    n_trees = len(roots)
    state.update(tree_root_=np.array(roots, dtype=np.int32), tree_norm_=np.full(n_trees, average_path_length(
        np.array([forest.max_samples_]))[0]), tree_weight_=np.ones(n_trees), max_depth_=max_depth,
        n_features_=forest.n_features_in_, n_samples_=1000.0, threshold_=0.6, threshold_source_="paper")
    return state
