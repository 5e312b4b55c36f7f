"""The hand-written isolation-forest builder and walk (geoanom.detectors.isolation_trees), compiled with numba."""

import hashlib

import numpy as np
import pytest
from legacy_iforest import old_format_state
from scipy.stats import spearmanr
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from geoanom.detectors import IForestDetector
from geoanom.detectors.hashing import GOLDEN_GAMMA, splitmix64_mix
from geoanom.detectors.isolation_trees import _draw, average_path_length, build_forests
from geoanom.detectors.validation import check_forest


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    train = np.concatenate([rng.normal(0, 1, (1500, 2)), rng.normal([6, 3], 0.5, (500, 2))])
    normal = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal([6, 3], 0.5, (100, 2))])
    outliers = rng.uniform(-12, 12, (80, 2))
    outliers = outliers[np.linalg.norm(outliers, axis=1) > 7][:30]
    labels = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    return train, np.concatenate([normal, outliers]), labels


def _states_equal(a, b):
    sa, sb = a.to_dict()["state"], b.to_dict()["state"]
    assert sa.keys() == sb.keys()
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def numpy_walk(state, X):
    """The anomaly scores of the numpy walk the compiled one replaced (the oracle): max_depth_ steps per tree.

    Reads ``node_right_`` when the state has it (the layout before right = left + 1).
    """
    X = np.asarray(X, dtype=np.float32)
    left = np.asarray(state["node_left_"])
    right = np.asarray(state["node_right_"]) if "node_right_" in state else left + (left != np.arange(len(left)))
    threshold = np.asarray(state["node_threshold_"], dtype=np.float64)
    roots = np.asarray(state["tree_root_"])
    rows = np.arange(len(X))[None, :]
    node = np.broadcast_to(roots[:, None], (len(roots), len(X)))
    for _ in range(int(state["max_depth_"])):  # leaves loop onto themselves
        go_left = X[rows, np.asarray(state["node_feature_"])[node]] <= threshold[node]
        node = np.where(go_left, left[node], right[node])
    relative_depth = np.asarray(state["node_path_"], dtype=np.float64)[node] / np.asarray(state["tree_norm_"])[:, None]
    weights = np.asarray(state["tree_weight_"]) / np.sum(state["tree_weight_"])
    return np.exp2(-(weights @ relative_depth))


def test_fit_many_equals_fitting_one_by_one():
    rng = np.random.default_rng(0)
    samples = [rng.normal(size=(n, d)) for n, d in ((2, 2), (37, 2), (256, 2), (300, 2), (4096, 2))]
    samples.append(np.repeat(rng.normal(size=(1, 2)), 50, axis=0))  # constant: a single leaf per tree
    seeds = [11, 12, 13, 14, 15, 16]
    many = IForestDetector.fit_many(samples, seeds, n_estimators=20)
    for X, seed, detector in zip(samples, seeds, many):
        _states_equal(detector, IForestDetector(n_estimators=20, random_state=seed).fit(X))
    # a tile's forest does not depend on the other tiles of its batch
    _states_equal(IForestDetector.fit_many(samples[3:4], seeds[3:4], n_estimators=20)[0], many[3])


def test_same_seed_same_forest_other_seed_other_forest(data):
    train, _, _ = data
    a, b = (IForestDetector(n_estimators=10, random_state=3).fit(train) for _ in range(2))
    _states_equal(a, b)
    c = IForestDetector(n_estimators=10, random_state=4).fit(train)
    assert not np.array_equal(a.node_threshold_, c.node_threshold_)


def test_score_distribution_agrees_with_scikit_learn(data):
    train, test, labels = data
    ours = IForestDetector(n_estimators=100, random_state=0).fit(train).native_score(test)
    theirs = -IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(train).score_samples(test)
    assert abs(roc_auc_score(labels, ours) - roc_auc_score(labels, theirs)) < 0.01
    assert spearmanr(ours, theirs)[0] > 0.95
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.01
    np.testing.assert_allclose(np.quantile(ours, [0.1, 0.5, 0.9]), np.quantile(theirs, [0.1, 0.5, 0.9]), atol=0.02)


def test_tree_structure_follows_liu_et_al(data):
    train, _, _ = data
    detector = IForestDetector(n_estimators=25, max_samples=64, random_state=1).fit(train)
    n_nodes = len(detector.node_feature_)
    own = np.arange(n_nodes)
    leaf = detector.node_left_ == own
    assert detector.max_depth_ <= int(np.ceil(np.log2(64)))
    bounds = np.r_[detector.tree_root_, n_nodes]
    for start, stop in zip(bounds[:-1], bounds[1:]):
        # every tree is a proper binary tree within its own node range
        inner = ~leaf[start:stop]
        children = np.r_[detector.node_left_[start:stop][inner], detector.node_left_[start:stop][inner] + 1]
        assert np.all((children > start) & (children < stop))
        assert len(np.unique(children)) == (stop - start) - 1
        # leaves hold depth + c(n) with n the leaf's share of the 64-point subsample: at least the
        # depth, and the total of n over leaves is the subsample size (recovered by inverting c)
    assert np.all(np.isinf(detector.node_threshold_[leaf]))
    assert np.all(detector.node_path_[leaf] >= 1.0)
    assert np.all(detector.node_path_[~leaf] == 0.0)
    # thresholds are float32 values, so float32 comparisons at scoring are exact
    inner_thresholds = detector.node_threshold_[~leaf]
    np.testing.assert_array_equal(inner_thresholds.astype(np.float32).astype(np.float64), inner_thresholds)
    np.testing.assert_allclose(detector.tree_norm_, average_path_length(np.array([64.0]))[0])


def test_training_points_reach_a_leaf_consistent_with_the_build():
    # With max_samples >= n every tree sees every point: a tree's leaves then hold all n points,
    # so the leaf counts recovered from the scores' path lengths add up to n per tree.
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 3))
    detector = IForestDetector(n_estimators=5, max_samples=256, random_state=0).fit(X)
    left, n_nodes = detector.node_left_, len(detector.node_feature_)
    for tree in range(5):
        node = np.full(len(X), detector.tree_root_[tree])
        for _ in range(detector.max_depth_):
            inner = left[node] != node
            right = X[np.arange(len(X)), detector.node_feature_[node]].astype(np.float32) > detector.node_threshold_[node]
            node = np.where(inner, left[node] + right, node)
        counts = np.bincount(node, minlength=n_nodes)
        used = np.flatnonzero(counts)
        depth_of = {}
        stack = [(int(detector.tree_root_[tree]), 0)]
        while stack:
            at, depth = stack.pop()
            depth_of[at] = depth
            if left[at] != at:
                stack += [(int(left[at]), depth + 1), (int(left[at]) + 1, depth + 1)]
        expected = np.array([depth_of[n] for n in used]) + average_path_length(counts[used].astype(float))
        np.testing.assert_array_equal(detector.node_path_[used], expected.astype(np.float32))
        assert counts.sum() == len(X)


def test_round_trip_and_merge_of_batched_forests_are_exact(data):
    train, test, _ = data
    a, b = IForestDetector.fit_many([train[:1200], train[1200:]], [0, 1], n_estimators=30)
    for detector in (a, b):
        rebuilt = IForestDetector.from_dict(detector.to_dict())
        _states_equal(rebuilt, detector)
        np.testing.assert_array_equal(rebuilt.native_score(test), detector.native_score(test))
    merged = a.merge(b)
    expected = np.exp2(0.6 * np.log2(a.native_score(test)) + 0.4 * np.log2(b.native_score(test)))
    np.testing.assert_allclose(merged.native_score(test), expected, rtol=1e-10)
    np.testing.assert_array_equal(IForestDetector.from_dict(merged.to_dict()).native_score(test),
                                  merged.native_score(test))


def test_compiled_walk_equals_the_numpy_walk(data):
    # batched forests, a merged forest (unequal tree weights) and a refreshed one (regrown trees)
    train, test, _ = data
    a, b = IForestDetector.fit_many([train[:1200], train[1200:], train], [9, 10, 11], n_estimators=15)[:2]
    merged = a.merge(b)
    adapted = IForestDetector.from_dict(a.to_dict()).update(test + 3.0)
    assert adapted.tree_root_.size == 15 and not np.array_equal(adapted.node_left_, a.node_left_)
    for detector in (a, b, merged, adapted):
        np.testing.assert_allclose(detector.native_score(test), numpy_walk(detector.to_dict()["state"], test),
                                   rtol=0, atol=1e-12)


# sha256 (first 16 hex digits) of feature, threshold (float32), left child, path (float32) and roots of
# forests grown by the level-by-level numpy builder the compiled one replaced (commit 13449d1), for
# 20 trees of max_samples 256 and 0.25 of the samples below: the compiled builder grows the same trees.
NUMPY_BUILDER_DIGESTS = {
    256: ["20a85186da0325bd", "de4be59d3b4e80b1", "9161f93fa8f5c164", "8027358d96c03db3", "c745f36c31560f83",
          "b3f113167a36e3f5"],
    0.25: ["1643044785218a77", "ec6fdac256ce7b83", "7074d644f6f0af65", "0e6a179ea8a00bbb", "bf7b812c6a255fe0",
           "63beb63c9d92ab92"],
}


def _digest(state):
    h = hashlib.sha256()
    for name, dtype in (("node_feature_", np.int64), ("node_threshold_", np.float32), ("node_left_", np.int64),
                        ("node_path_", np.float32), ("tree_root_", np.int64)):
        h.update(np.ascontiguousarray(state[name], dtype=dtype).tobytes())
    return h.hexdigest()[:16]


@pytest.mark.parametrize("max_samples", [256, 0.25])
def test_compiled_builder_grows_the_trees_of_the_numpy_builder(max_samples):
    rng = np.random.default_rng(0)
    samples = [rng.normal(size=(n, d)) for n, d in ((2, 2), (37, 2), (300, 2), (4096, 2), (500, 3))]
    samples.append(np.round(rng.normal(size=(3000, 2)), 1))  # ties: constant features in small nodes
    states = build_forests(samples, [11, 12, 13, 14, 15, 16], n_estimators=20, max_samples=max_samples)
    assert [_digest(state) for state in states] == NUMPY_BUILDER_DIGESTS[max_samples]


def test_split_draws_are_splitmix64():
    keys = np.array([0, 1, 2**64 - 1, 0x123456789ABCDEF], dtype=np.uint64)
    heaps = np.array([1, 2, 3, 2**40], dtype=np.uint64)
    for purpose in (1, 2):
        with np.errstate(over="ignore"):
            z = splitmix64_mix(keys + heaps * GOLDEN_GAMMA + np.uint64(purpose * 0xD1B54A32D192ED03 % 2**64))
        expected = (z >> np.uint64(11)).astype(np.float64) * 2.0**-53
        drawn = [_draw(k, h, np.uint64(purpose)) for k, h in zip(keys, heaps)]
        np.testing.assert_array_equal(drawn, expected)


def test_saved_state_is_compact(data):
    train, _, _ = data
    state = IForestDetector(n_estimators=10, random_state=0).fit(train).to_dict()["state"]
    assert "node_right_" not in state
    dtypes = {name: state[name].dtype for name in ("node_feature_", "node_threshold_", "node_left_", "node_path_",
                                                    "reservoir_")}
    assert dtypes == {"node_feature_": np.int8, "node_threshold_": np.float32, "node_left_": np.int32,
                      "node_path_": np.float32, "reservoir_": np.float32}


def test_models_saved_before_the_compact_layout_still_load(data):
    # trees exported from scikit-learn (depth first: the right child is not next to the left one,
    # float64 thresholds between float32 values) score as scikit-learn and the old numpy walk do
    train, test, _ = data
    forest = IsolationForest(n_estimators=20, random_state=0).fit(train)
    state = old_format_state(forest)
    inner = state["node_left_"] != np.arange(len(state["node_left_"]))
    assert not np.array_equal(state["node_right_"][inner], state["node_left_"][inner] + 1)
    detector = IForestDetector.from_dict({"family": "iforest", "params": {"n_estimators": 20}, "state": state})
    expected = numpy_walk(state, test)
    np.testing.assert_allclose(expected, -forest.score_samples(test), rtol=0, atol=1e-12)
    np.testing.assert_allclose(detector.native_score(test), expected, rtol=0, atol=1e-6)  # float32 path lengths
    assert "node_right_" not in detector.to_dict()["state"]


def test_children_before_their_node_are_refused(data):
    # the compiled walk stops only because children come after their node
    train, _, _ = data
    state = IForestDetector(n_estimators=3, random_state=0).fit(train).to_dict()["state"]
    inner = np.flatnonzero(state["node_left_"] != np.arange(len(state["node_left_"])))
    looping = state["node_left_"].copy()
    looping[inner[1]] = inner[0]
    with pytest.raises(ValueError, match=rf"node_left_ of node {inner[1]} is {inner[0]}, not after the node"):
        check_forest({**state, "node_left_": looping}, "iforest")
    last = state["tree_root_"][1] - 1  # the last node of the first tree: its "right child" would be in the next
    past = state["node_left_"].copy()
    past[0] = last
    with pytest.raises(ValueError, match=r"node_left_ \+ 1 \(the right child\) of node 0 is .*, outside its tree"):
        check_forest({**state, "node_left_": past}, "iforest")


def test_same_forests_and_scores_from_concurrent_threads(data):
    # dask runs one task per core: the compiled loops release the GIL and share no state
    from concurrent.futures import ThreadPoolExecutor

    train, test, _ = data
    samples = [train[i::4] for i in range(4)]
    alone = [IForestDetector(n_estimators=10, random_state=i).fit(X) for i, X in enumerate(samples)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: IForestDetector(n_estimators=10, random_state=i).fit(samples[i]), range(4)))
        scores = list(pool.map(lambda detector: detector.native_score(test), alone))
    for a, b, score in zip(alone, together, scores):
        _states_equal(a, b)
        np.testing.assert_array_equal(score, a.native_score(test))
