"""The hand-written, batched isolation-forest builder (geoanom.detectors.iforest.build_forests)."""

import numpy as np
import pytest
from scipy.stats import spearmanr
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from geoanom.detectors import IForestDetector
from geoanom.detectors.isolation_trees import average_path_length


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
    ours = IForestDetector(random_state=0).fit(train).native_score(test)
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
        children = np.r_[detector.node_left_[start:stop][inner], detector.node_right_[start:stop][inner]]
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
    leaves = detector._walk_trees(X.astype(np.float32))  # (trees, n)
    for tree in range(5):
        counts = np.bincount(leaves[tree], minlength=len(detector.node_feature_))
        used = np.flatnonzero(counts)
        depth_of = {}
        stack = [(int(detector.tree_root_[tree]), 0)]
        while stack:
            node, depth = stack.pop()
            depth_of[node] = depth
            if detector.node_left_[node] != node:
                stack += [(int(detector.node_left_[node]), depth + 1), (int(detector.node_right_[node]), depth + 1)]
        expected = np.array([depth_of[n] for n in used]) + average_path_length(counts[used].astype(float))
        np.testing.assert_allclose(detector.node_path_[used], expected, rtol=0, atol=1e-12)
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


def test_numpy_walk_equals_compiled_trees_on_batched_forests(data):
    train, test, _ = data
    detector = IForestDetector.fit_many([train], [9], n_estimators=15)[0]
    compiled = detector.native_score(test)
    detector._sklearn_trees = None
    np.testing.assert_array_equal(detector.native_score(test), compiled)
