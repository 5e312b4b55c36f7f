"""The padded, branch-free isolation-tree walk gives bit-for-bit the scores of the compact walk it replaced."""

import numpy as np
import pytest
from legacy_iforest import old_format_state
from sklearn.ensemble import IsolationForest

from geoanom.detectors import IForestDetector
from geoanom.detectors.isolation_trees import build_forests
from geoanom.detectors.isolation_walk import GROUP, MAX_WALK_DEPTH, WALK_BLOCK, forest_depth


def compact_walk(state, X):
    """The reference: each row steps from the root to its leaf in the compact layout, then adds
    ``weight * (path / norm)`` tree after tree in float64, as the compiled compact walk did."""
    X = np.asarray(X, dtype=np.float32)
    left, feature = np.asarray(state["node_left_"]), np.asarray(state["node_feature_"])
    threshold, path = np.asarray(state["node_threshold_"]), np.asarray(state["node_path_"])
    weights = np.asarray(state["tree_weight_"], dtype=np.float64)
    weights = weights / weights.sum()
    norm = np.asarray(state["tree_norm_"], dtype=np.float64)
    rows = np.arange(len(X))
    out = np.zeros(len(X))
    for t, root in enumerate(state["tree_root_"]):
        node = np.full(len(X), root)
        inner = left[node] != node
        while inner.any():
            step = left[node] + (X[rows, feature[node]] > threshold[node])
            node = np.where(inner, step, node)
            inner = left[node] != node
        out += weights[t] * (path[node].astype(np.float64) / norm[t])
    return out


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(21)


def _forest(rng, n_features, n_train=2000, **params):
    X = rng.normal(size=(n_train, n_features))
    return IForestDetector(random_state=int(rng.integers(1000)), **params).fit(X)


@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_scores_equal_the_compact_walk_across_blocks_and_groups(rng, n_features):
    # more rows than a block, and a last group shorter than GROUP rows
    detector = _forest(rng, n_features)
    X = rng.normal(scale=2.0, size=(WALK_BLOCK + 3 * GROUP + 7, n_features))
    state = detector.to_dict()["state"]
    np.testing.assert_array_equal(forest_depth(X, state), compact_walk(state, X))


def test_scores_equal_with_many_features_and_shallow_or_single_leaf_trees(rng):
    many = _forest(rng, 300, n_train=600, n_estimators=20)  # int16 feature indices
    assert many.node_feature_.dtype == np.int16
    shallow = _forest(rng, 2, max_samples=5, n_estimators=30)  # trees of 1 to 3 levels, leaves on every level
    constant = IForestDetector(n_estimators=5, random_state=0).fit(np.ones((40, 2)))  # one leaf per tree: depth 0
    assert constant.max_depth_ == 0
    for detector in (many, shallow, constant):
        X = rng.normal(size=(1000, detector.n_features_))
        state = detector.to_dict()["state"]
        np.testing.assert_array_equal(forest_depth(X, state), compact_walk(state, X))


def test_scores_equal_after_merge_update_and_for_old_files(rng):
    a, b = (_forest(rng, 2, n_estimators=30) for _ in range(2))
    merged = a.merge(b)  # unequal tree weights
    updated = IForestDetector.from_dict(a.to_dict()).update(rng.normal(3.0, 1.0, size=(400, 2)))  # regrown trees
    assert not np.array_equal(updated.node_left_, a.node_left_)
    train = rng.normal(size=(1000, 2))
    sklearn_forest = IsolationForest(n_estimators=20, random_state=0).fit(train)
    old = IForestDetector.from_dict({"family": "iforest", "params": {"n_estimators": 20},
                                     "state": old_format_state(sklearn_forest)})  # depth first, float64, node_right_
    X = rng.normal(scale=2.0, size=(777, 2))
    for detector in (merged, updated, old):
        state = detector.to_dict()["state"]
        np.testing.assert_array_equal(detector.native_score(X), np.exp2(-compact_walk(state, X)))


def test_thresholds_tie_and_edge_values_go_left(rng):
    # a row equal to a threshold goes left (x <= threshold), as in the compact walk
    detector = _forest(rng, 2, n_estimators=10)
    inner = detector.node_left_ != np.arange(len(detector.node_left_))
    cuts = detector.node_threshold_[inner]
    X = np.column_stack([cuts, cuts[::-1]]).astype(np.float64)
    X = np.concatenate([X, np.nextafter(X.astype(np.float32), np.float32(np.inf)).astype(np.float64), [[1e30, -1e30]]])
    state = detector.to_dict()["state"]
    np.testing.assert_array_equal(forest_depth(X, state), compact_walk(state, X))


def test_no_rows_and_one_row(rng):
    state = _forest(rng, 2, n_estimators=10).to_dict()["state"]
    assert forest_depth(np.empty((0, 2)), state).shape == (0,)
    one = np.array([[0.5, -0.5]])
    np.testing.assert_array_equal(forest_depth(one, state), compact_walk(state, one))


def _chain_state(depth):
    """One tree that is a chain: each inner node's left child a leaf, its right child the next inner node."""
    n_nodes = 2 * depth + 1
    left = np.arange(n_nodes, dtype=np.int32)
    inner = np.arange(0, n_nodes - 1, 2)
    left[inner] = inner + 1
    threshold = np.full(n_nodes, np.inf, dtype=np.float32)
    threshold[inner] = np.arange(depth, dtype=np.float32)
    return {"node_feature_": np.zeros(n_nodes, dtype=np.int8), "node_threshold_": threshold, "node_left_": left,
            "node_path_": np.where(left == np.arange(n_nodes), 1.0, 0.0).astype(np.float32),
            "tree_root_": np.array([0], dtype=np.int32), "tree_norm_": np.ones(1), "tree_weight_": np.ones(1),
            "max_depth_": depth, "n_features_": 1, "n_samples_": 10.0}


def test_trees_too_deep_to_pad_are_refused_at_load_and_walk():
    deep = _chain_state(MAX_WALK_DEPTH + 1)
    message = rf"a tree is {MAX_WALK_DEPTH + 1} levels deep, more than the {MAX_WALK_DEPTH}"
    with pytest.raises(ValueError, match=message):
        IForestDetector.check_state(deep)
    with pytest.raises(ValueError, match=message):
        forest_depth(np.zeros((3, 1)), deep)
    shallow = _chain_state(12)  # a chain 12 levels deep: padded to 4096 leaf slots, walks as the compact walk
    IForestDetector.check_state(shallow)
    X = np.linspace(-1.0, 13.0, 57)[:, None]
    np.testing.assert_array_equal(forest_depth(X, shallow), compact_walk(shallow, X))


def test_batched_forests_score_as_one_by_one(rng):
    # the walk of a tile's forest does not depend on the other forests grown with it
    samples = [rng.normal(size=(n, 2)) for n in (50, 300, 4096)]
    states = build_forests(samples, [1, 2, 3], n_estimators=25)
    X = rng.normal(size=(500, 2))
    for X_train, seed, state in zip(samples, [1, 2, 3], states):
        alone = build_forests([X_train], [seed], n_estimators=25)[0]
        np.testing.assert_array_equal(forest_depth(X, state), forest_depth(X, alone))
