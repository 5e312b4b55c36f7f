"""Checks that a detector's saved arrays agree with each other, before a model is rebuilt from them.

A model file's JSON part says each array's shape; an edited shape can make
an array read its neighbour's values (a weight too many silently changes
every score) or fail deep in scoring. :meth:`Detector.from_dict` calls the
family's ``check_state`` first, which uses these helpers and raises
:class:`ValueError` in one sentence; the model store turns that into a
:class:`~geoanom.errors.ModelFileError` naming the file.
"""

from __future__ import annotations

from typing import Any

import numpy as np

WEIGHT_SUM_TOLERANCE = 1e-6  # mixture weights are normalised counts: they sum to 1 up to rounding


def array(state: dict[str, Any], name: str, family: str, ndim: int) -> np.ndarray:
    """``state[name]`` as an array of ``ndim`` dimensions, finite and non-empty; ValueError otherwise.

    Examples
    --------
    >>> array({"w": [0.5, 0.5]}, "w", "gmm", 1).shape
    (2,)
    >>> array({"w": [[0.5]]}, "w", "gmm", 1)
    Traceback (most recent call last):
    ...
    ValueError: gmm detector: w has shape (1, 1), not 1-dimensional
    """
    if name not in state:
        raise ValueError(f"{family} detector: its state has no {name}")
    try:
        values = np.asarray(state[name], dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{family} detector: {name} is not numeric") from None
    if values.ndim != ndim:
        raise ValueError(f"{family} detector: {name} has shape {values.shape}, not {ndim}-dimensional")
    if values.size == 0:
        raise ValueError(f"{family} detector: {name} is empty")
    return values


def expect_shape(values: np.ndarray, name: str, shape: tuple[int, ...], family: str, why: str) -> None:
    """ValueError unless ``values`` has ``shape``; ``why`` says where that shape comes from.

    Examples
    --------
    >>> expect_shape(np.ones(2), "weights_", (1,), "gmm", "one per component of means_")
    Traceback (most recent call last):
    ...
    ValueError: gmm detector: weights_ has shape (2,), not (1,): one per component of means_
    """
    if values.shape != shape:
        raise ValueError(f"{family} detector: {name} has shape {values.shape}, not {shape}: {why}")


def check_standardisation(state: dict[str, Any], family: str) -> int:
    """The number of features, from ``center_`` and ``scale_`` (both (d,), the scale positive).

    Examples
    --------
    >>> check_standardisation({"center_": [0.0, 1.0], "scale_": [1.0, 2.0]}, "kmeans")
    2
    """
    center = array(state, "center_", family, 1)
    scale = array(state, "scale_", family, 1)
    expect_shape(scale, "scale_", center.shape, family, "one per feature of center_")
    if not (np.isfinite(center).all() and np.isfinite(scale).all() and (scale > 0).all()):
        raise ValueError(f"{family} detector: center_ or scale_ holds a non-finite value or a scale not above 0")
    return len(center)


def check_covariances(covariances: np.ndarray, name: str, family: str) -> None:
    """ValueError unless every (d, d) matrix is finite, symmetric and positive definite.

    Examples
    --------
    >>> check_covariances(np.array([[[1.0, 2.0], [2.0, 1.0]]]), "covariances_", "gmm")
    Traceback (most recent call last):
    ...
    ValueError: gmm detector: covariances_ of component 0 is not positive definite
    """
    if not np.isfinite(covariances).all():
        raise ValueError(f"{family} detector: {name} holds a non-finite value")
    transposed = np.swapaxes(covariances, 1, 2)
    # np.allclose's rule (|a - b| <= atol + rtol |b|), written out: allclose costs 50 us on a 2 x 2 x 2 stack
    if (np.abs(covariances - transposed) > 1e-10 + 1e-8 * np.abs(transposed)).any():
        raise ValueError(f"{family} detector: {name} is not symmetric")
    try:
        np.linalg.cholesky(covariances)  # the whole stack at once; one matrix at a time only to name a failure
    except np.linalg.LinAlgError:
        for k, matrix in enumerate(covariances):
            try:
                np.linalg.cholesky(matrix)
            except np.linalg.LinAlgError:
                raise ValueError(f"{family} detector: {name} of component {k} is not positive definite") from None


def check_mixture(state: dict[str, Any], family: str) -> None:
    """A Gaussian mixture's state: weights (k,) summing to 1, means (k, d), full covariances (k, d, d).

    ``d`` is the number of features of ``center_``; the precisions'
    Cholesky factors are computed from the covariances at load, so those
    must be positive definite.

    Examples
    --------
    >>> state = {"center_": [0.0], "scale_": [1.0], "weights_": [1.0], "means_": [[0.0]],
    ...          "covariances_": [[[1.0]]], "model_llk_": -1.4, "n_samples_": 10.0}
    >>> check_mixture(state, "gmm")
    >>> check_mixture({**state, "weights_": [0.5, 0.5]}, "gmm")
    Traceback (most recent call last):
    ...
    ValueError: gmm detector: weights_ has shape (2,), not (1,): one per component of means_ (1, 1)
    """
    n_features = check_standardisation(state, family)
    means = array(state, "means_", family, 2)
    k = len(means)
    expect_shape(means, "means_", (k, n_features), family,
                 f"one row of {n_features} features of center_ per component")
    weights = array(state, "weights_", family, 1)
    expect_shape(weights, "weights_", (k,), family, f"one per component of means_ {means.shape}")
    if not np.isfinite(weights).all() or (weights < 0).any() or abs(weights.sum() - 1.0) > WEIGHT_SUM_TOLERANCE:
        raise ValueError(f"{family} detector: weights_ are not non-negative numbers summing to 1 "
                         f"(sum {weights.sum():g})")
    covariances = array(state, "covariances_", family, 3)
    expect_shape(covariances, "covariances_", (k, n_features, n_features), family,
                 f"one full covariance per component of means_ {means.shape}")
    check_covariances(covariances, "covariances_", family)
    check_scalars(state, family, "model_llk_", "n_samples_")


def check_scalars(state: dict[str, Any], family: str, *names: str) -> None:
    """ValueError unless each named entry is one finite number."""
    for name in names:
        value = state.get(name)
        if np.ndim(value) != 0 or not isinstance(value, (int, float, np.number)) or not np.isfinite(value):
            raise ValueError(f"{family} detector: {name} is {value!r}, not one finite number")


NODE_ARRAYS = ("node_feature_", "node_threshold_", "node_left_", "node_path_")
TREE_ARRAYS = ("tree_root_", "tree_norm_", "tree_weight_")


def check_forest(state: dict[str, Any], family: str) -> None:
    """An isolation forest's flat node arrays: consistent lengths, trees in order, indices in range.

    Every node array has one entry per node, every tree array one per tree;
    trees start at 0 and in increasing order; each node's feature is below
    ``n_features_`` (leaves too: the walk reads it); each node's children lie
    in its own tree after the node itself (a leaf points at itself), so
    every walk ends; the right child is ``node_left_ + 1``, or
    ``node_right_`` in models saved before that layout; the reservoir has
    ``n_features_`` columns.

    Examples
    --------
    >>> from geoanom.detectors import IForestDetector
    >>> state = IForestDetector(n_estimators=2, random_state=0).fit(np.eye(4)).to_dict()["state"]
    >>> check_forest({**state, "n_features_": 2}, "iforest")
    Traceback (most recent call last):
    ...
    ValueError: iforest detector: node_feature_ holds feature 3, but the forest has 2 features (n_features_)
    """
    names = NODE_ARRAYS + ("node_right_",) * ("node_right_" in state)
    nodes = {name: array(state, name, family, 1) for name in names}
    n_nodes = len(nodes["node_feature_"])
    for name, values in nodes.items():
        expect_shape(values, name, (n_nodes,), family, f"one per node, as node_feature_ {(n_nodes,)}")
    trees = {name: array(state, name, family, 1) for name in TREE_ARRAYS}
    n_trees = len(trees["tree_root_"])
    for name, values in trees.items():
        expect_shape(values, name, (n_trees,), family, f"one per tree, as tree_root_ {(n_trees,)}")
    integral = {name: nodes[name] for name in names if name in ("node_feature_", "node_left_", "node_right_")}
    integral["tree_root_"] = trees["tree_root_"]
    for name, values in integral.items():
        if not (np.isfinite(values).all() and (values == np.round(values)).all()):
            raise ValueError(f"{family} detector: {name} holds a value that is not a whole number")
    roots = trees["tree_root_"].astype(np.int64)
    if roots[0] != 0 or (np.diff(roots) <= 0).any() or roots[-1] >= n_nodes:
        raise ValueError(f"{family} detector: tree_root_ does not start trees at 0 in increasing order "
                         f"below the {n_nodes} nodes")
    check_scalars(state, family, "max_depth_", "n_features_")
    n_features = int(state["n_features_"])
    features = nodes["node_feature_"].astype(np.int64)
    if n_features < 1 or features.min() < 0 or features.max() >= n_features:
        worst = int(features.max()) if features.max() >= n_features else int(features.min())
        raise ValueError(f"{family} detector: node_feature_ holds feature {worst}, but the forest has "
                         f"{n_features} features (n_features_)")
    _check_children(nodes, roots, family)
    if "reservoir_" in state:
        reservoir = np.asarray(state["reservoir_"])
        if reservoir.ndim != 2 or reservoir.shape[1] != n_features:
            raise ValueError(f"{family} detector: reservoir_ has shape {reservoir.shape}, not (n, {n_features}) "
                             "(n_features_ columns)")


def _check_children(nodes: dict[str, np.ndarray], roots: np.ndarray, family: str) -> None:
    """ValueError unless every child lies in its node's tree, after the node (the walk then always ends)."""
    n_nodes = len(nodes["node_feature_"])
    index = np.arange(n_nodes)
    tree = np.searchsorted(roots, index, side="right") - 1
    start, stop = roots[tree], np.append(roots, n_nodes)[tree + 1]
    left = nodes["node_left_"].astype(np.int64)
    inner = left != index
    children = {"node_left_": left}
    # without node_right_, the right child is node_left_ + 1 (a leaf's "right child" is itself)
    children["node_right_"] = nodes["node_right_"].astype(np.int64) if "node_right_" in nodes else left + inner
    for name, child in children.items():
        shown = name if name in nodes else "node_left_ + 1 (the right child)"
        outside = (child < start) | (child >= stop)
        if outside.any():
            node = int(np.argmax(outside))
            raise ValueError(f"{family} detector: {shown} of node {node} is {child[node]}, outside its tree "
                             f"(nodes {start[node]} to {stop[node] - 1})")
        before = child < index
        if before.any():
            node = int(np.argmax(before))
            raise ValueError(f"{family} detector: {shown} of node {node} is {child[node]}, not after the node "
                             "(a walk could loop forever)")
