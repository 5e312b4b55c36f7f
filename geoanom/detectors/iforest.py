"""Ensemble family: an isolation forest, kept as plain arrays of tree nodes."""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from .base import (
    CONTAMINATION_CONSTRAINT,
    THRESHOLD_CONSTRAINT,
    Detector,
    merged_threshold,
)
from .isolation_trees import build_forests
from .validation import check_forest

# Observations scored per batch: bounds the (trees x batch) traversal arrays.
SCORE_BATCH = 16_384


class IForestDetector(Detector):
    """Isolation forest detector (the reference paper's ensemble family).

    Trees are grown by :func:`geoanom.detectors.isolation_trees.build_forests`
    (the trees of many tiles at once, in numpy) and kept as flat node arrays,
    so the model is plain data (scikit-learn persists forests only by
    pickling). Scoring walks them with scikit-learn's compiled tree code when
    available, else in numpy. The score is the anomaly score in [0, 1] of
    Liu et al. (scikit-learn's ``-score_samples``); an observation is
    anomalous above ``native_threshold_`` (0.6, or an estimate from the training
    scores when 0.6 is implausible for the data, see
    :func:`geoanom.detectors.base.choose_threshold`).

    Parameters
    ----------
    n_estimators : int, default 100
    max_samples : int, default 256
        Subsample size per tree (capped at the number of observations).
    threshold : float, optional
        A fixed threshold on the anomaly score.
    contamination : float, default 0.01
        Expected share of anomalies in training data: the paper's threshold
        is kept when it flags between a tenth and twice this share of the
        training data, otherwise the threshold flags exactly this share.
    random_state : int, optional
    """

    family = "iforest"
    paper_threshold = 0.6
    anomalous_above = True
    adapts = True
    # Share of the trees regrown from the reservoir at each update.
    refresh_fraction = 0.1
    _parameter_constraints: ClassVar[dict] = {
        "n_estimators": [Interval(Integral, 1, None, closed="left")],
        "max_samples": [Interval(Integral, 1, None, closed="left"), Interval(Real, 0, 1, closed="right")],
        "threshold": THRESHOLD_CONSTRAINT,
        "contamination": CONTAMINATION_CONSTRAINT,
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        n_estimators: int = 100,
        max_samples: int = 256,
        threshold: float | None = None,
        contamination: float = 0.01,
        random_state: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.max_samples = max_samples
        self.threshold = threshold
        self.contamination = contamination
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        seed = self._seed()
        state = build_forests([X], [seed], n_estimators=self.n_estimators, max_samples=self.max_samples)[0]
        self._set_state(_with_reservoir(state, X, seed, self.max_samples))

    @classmethod
    def fit_many(cls, samples, random_states, **params) -> list[IForestDetector]:
        """Fit one forest per sample, growing the trees of all samples together, level by level.

        Gives the same detectors as fitting one by one with the same seeds:
        every random draw comes from the sample's own seed (see :func:`build_forests`).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> len(IForestDetector.fit_many([rng.normal(size=(50, 2)), rng.normal(size=(60, 2))], [0, 1]))
        2
        """
        detectors, samples = cls._prepare_many(samples, random_states, params)
        if not detectors:
            return []
        seeds = [d._seed() for d in detectors]
        states = build_forests(samples, seeds, n_estimators=detectors[0].n_estimators,
                               max_samples=detectors[0].max_samples)
        for detector, X, state, seed in zip(detectors, samples, states, seeds):
            detector._set_state(_with_reservoir(state, X, seed, detector.max_samples))
            detector._set_threshold(detector._native_score(X))
        return detectors

    def _seed(self) -> int:
        """A 63-bit seed from ``random_state`` (fresh entropy when it is None)."""
        state = self.random_state
        if isinstance(state, np.random.RandomState):
            return int(state.randint(0, 2**31 - 1))
        if isinstance(state, np.random.Generator):
            return int(state.integers(0, 2**63 - 1))
        if state is None:
            return int(np.random.default_rng().integers(0, 2**63 - 1))
        return int(state) % 2**63

    def _native_score(self, X: np.ndarray) -> np.ndarray:
        """Anomaly score in [0, 1] (anomalous above the native threshold, 0.6 by default)."""
        # scikit-learn's trees compare float32 features with float64 thresholds.
        X = X.astype(np.float32)
        out = np.empty(len(X))
        for start in range(0, len(X), SCORE_BATCH):
            out[start : start + SCORE_BATCH] = self._score_batch(X[start : start + SCORE_BATCH])
        return out

    def _score_batch(self, X: np.ndarray) -> np.ndarray:
        trees = self._compiled_trees()
        if trees is not None:
            leaves = np.stack([tree.apply(X) for tree in trees]) + self.tree_root_[:, None]
        else:
            leaves = self._walk_trees(X)
        relative_depth = self.node_path_[leaves] / self.tree_norm_[:, None]
        weights = self.tree_weight_ / self.tree_weight_.sum()
        return np.exp2(-(weights @ relative_depth))

    def _walk_trees(self, X: np.ndarray) -> np.ndarray:
        """Leaf reached in every tree by every row, walking the node arrays in numpy."""
        rows = np.arange(len(X))[None, :]
        node = np.broadcast_to(self.tree_root_[:, None], (len(self.tree_root_), len(X)))
        # Leaves loop onto themselves, so every walk can take max_depth steps.
        for _ in range(self.max_depth_):
            go_left = X[rows, self.node_feature_[node]] <= self.node_threshold_[node]
            node = np.where(go_left, self.node_left_[node], self.node_right_[node])
        return node

    def update(self, X: Any) -> IForestDetector:
        """Absorb observations: refresh part of the forest from a reservoir sample.

        The reservoir (a uniform sample of every observation seen, training
        and later, of ``max_samples`` rows; Vitter's algorithm R) takes in
        ``X``; once ``max_samples`` new observations have come in, the oldest
        ``refresh_fraction`` of the trees are regrown from it, so the forest
        follows a lasting change.
        """
        X = self._rows(X)
        rng = np.random.default_rng([self._seed(), int(self.reservoir_seen_)])
        free = max(self.max_samples - len(self.reservoir_), 0)
        reservoir = np.concatenate([self.reservoir_, X[:free]])
        rest = X[free:]
        # Algorithm R, vectorised: row i of the rest replaces a uniform slot in
        # [0, seen + i] when that slot is inside the reservoir (later rows win).
        slots = rng.integers(0, self.reservoir_seen_ + free + np.arange(len(rest)) + 1)
        accepted = slots < len(reservoir)
        reservoir[slots[accepted]] = rest[accepted]
        self.reservoir_, self.reservoir_seen_ = reservoir, self.reservoir_seen_ + len(X)
        self.pending_ += len(X)
        if self.pending_ < self.max_samples:  # regrow only once a tree's worth of data is new
            return self
        n_trees = len(self.tree_root_)
        refresh = max(1, round(self.refresh_fraction * n_trees))
        oldest = (int(self.refresh_next_) + np.arange(refresh)) % n_trees
        grown = build_forests([reservoir], [int(rng.integers(0, 2**63 - 1))], n_estimators=refresh,
                              max_samples=self.max_samples)[0]
        kept = np.setdiff1d(np.arange(n_trees), oldest)
        weight = self.tree_weight_.mean()
        state = _concat_forests(_select_trees(self._get_state(), kept), {**grown, "tree_weight_": np.full(refresh, weight)})
        state.update(reservoir_=reservoir, reservoir_seen_=self.reservoir_seen_,
                     refresh_next_=(int(self.refresh_next_) + refresh) % n_trees, pending_=0,
                     n_samples_=self.n_samples_ + len(X))
        self._set_state(state)
        return self

    def merge(self, other: IForestDetector) -> IForestDetector:
        """Sample-weighted union of the two forests' trees."""
        merged = IForestDetector(**self.get_params())
        merged.n_features_ = self.n_features_
        merged.n_samples_ = self.n_samples_ + other.n_samples_
        parts = []
        for detector in (self, other):
            part = detector._get_state()
            part["tree_weight_"] = detector.tree_weight_ / detector.tree_weight_.sum() * detector.n_samples_
            parts.append(part)
        state = _concat_forests(*parts)
        seen = self.reservoir_seen_ + other.reservoir_seen_
        # each part's share of the merged reservoir follows how much data it has seen
        own = min(len(self.reservoir_), round(self.max_samples * self.reservoir_seen_ / max(seen, 1.0)))
        reservoir = np.concatenate([self.reservoir_[:own], other.reservoir_[: self.max_samples - own]])
        state.update(reservoir_=reservoir, reservoir_seen_=seen, refresh_next_=0, pending_=0)
        merged._set_state(state)
        merged.native_threshold_, merged.threshold_source_ = merged_threshold(
            self, other, self.n_samples_, other.n_samples_
        )
        merged.threshold_ = 1.0
        return merged

    def _get_state(self) -> dict[str, Any]:
        names = ("node_feature_", "node_threshold_", "node_left_", "node_right_", "node_path_",
                 "tree_root_", "tree_norm_", "tree_weight_", "max_depth_", "n_features_", "n_samples_",
                 "reservoir_", "reservoir_seen_", "refresh_next_", "pending_")
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    @classmethod
    def check_state(cls, state: dict[str, Any]) -> None:
        """Node arrays of one length, trees in order, features below ``n_features_``, children in their tree."""
        check_forest(state, cls.family)

    def _set_state(self, state: dict[str, Any]) -> None:
        self.node_feature_ = np.asarray(state["node_feature_"], dtype=np.int32)
        self.node_threshold_ = np.asarray(state["node_threshold_"], dtype=np.float64)
        self.node_left_ = np.asarray(state["node_left_"], dtype=np.int32)
        self.node_right_ = np.asarray(state["node_right_"], dtype=np.int32)
        self.node_path_ = np.asarray(state["node_path_"], dtype=np.float64)
        self.tree_root_ = np.asarray(state["tree_root_"], dtype=np.int32)
        self.tree_norm_ = np.asarray(state["tree_norm_"], dtype=np.float64)
        self.tree_weight_ = np.asarray(state["tree_weight_"], dtype=np.float64)
        self.max_depth_ = int(state["max_depth_"])
        self.n_features_ = int(state.get("n_features_", getattr(self, "n_features_", 0)))
        self.n_features_in_ = self.n_features_
        self.n_samples_ = float(state.get("n_samples_", getattr(self, "n_samples_", 0.0)))
        self.reservoir_ = np.asarray(state.get("reservoir_", np.empty((0, self.n_features_))), dtype=np.float64)
        self.reservoir_seen_ = float(state.get("reservoir_seen_", len(self.reservoir_)))
        self.refresh_next_ = int(state.get("refresh_next_", 0))
        self.pending_ = int(state.get("pending_", 0))
        # A holder, filled on first use: scoring then leaves the detector's
        # attributes as they were (scikit-learn's check_dict_unchanged).
        self._tree_cache: dict[str, Any] = {}

    def _compiled_trees(self) -> list | None:
        """scikit-learn Tree objects of the node arrays, built on first use and cached."""
        if "trees" not in self._tree_cache:
            self._tree_cache["trees"] = _rebuild_sklearn_trees(self)
        return self._tree_cache["trees"]

    def __getstate__(self) -> dict[str, Any]:
        # The compiled trees double the size of a pickled detector (dask sends
        # detectors between workers); they are rebuilt from the arrays on demand.
        state = super().__getstate__()
        if "_tree_cache" in state:
            state["_tree_cache"] = {}
        return state


def _rebuild_sklearn_trees(detector: IForestDetector) -> list | None:
    """scikit-learn Tree objects for the node arrays, or None if this version refuses.

    Walking the trees in scikit-learn's compiled code is about 3 times faster
    than the numpy walk; the node layout is private to scikit-learn, so any
    failure falls back to the numpy walk, which gives the same scores.
    """
    try:
        from sklearn.tree._tree import NODE_DTYPE, Tree
    except ImportError:  # pragma: no cover - depends on scikit-learn's internals
        return None
    bounds = list(detector.tree_root_) + [len(detector.node_feature_)]
    trees = []
    try:
        for start, stop in zip(bounds[:-1], bounds[1:]):
            own = np.arange(stop - start)
            left = detector.node_left_[start:stop] - start
            is_leaf = left == own
            nodes = np.zeros(stop - start, dtype=NODE_DTYPE)
            nodes["left_child"] = np.where(is_leaf, -1, left)
            nodes["right_child"] = np.where(is_leaf, -1, detector.node_right_[start:stop] - start)
            nodes["feature"] = np.where(is_leaf, -2, detector.node_feature_[start:stop])
            nodes["threshold"] = np.where(is_leaf, -2.0, detector.node_threshold_[start:stop])
            nodes["n_node_samples"] = 1
            tree = Tree(detector.n_features_, np.array([1], dtype=np.intp), 1)
            tree.__setstate__({"max_depth": detector.max_depth_, "node_count": len(nodes),
                               "nodes": nodes, "values": np.zeros((len(nodes), 1, 1))})
            trees.append(tree)
    except (ValueError, TypeError, KeyError):  # pragma: no cover - other scikit-learn layouts
        return None
    return trees


def _with_reservoir(state: dict[str, Any], X: np.ndarray, seed: int, size: int) -> dict[str, Any]:
    """The forest state plus a uniform reservoir of the training data (for adaptation)."""
    rows = np.random.default_rng([seed, 1]).choice(len(X), min(size, len(X)), replace=False)
    return {**state, "reservoir_": X[np.sort(rows)], "reservoir_seen_": float(len(X)), "refresh_next_": 0}


def _select_trees(state: dict[str, Any], trees: np.ndarray) -> dict[str, Any]:
    """The sub-forest of the given trees, its node indices renumbered from 0."""
    bounds = np.append(state["tree_root_"], len(state["node_feature_"]))
    parts = {name: [] for name in ("node_feature_", "node_threshold_", "node_left_", "node_right_", "node_path_")}
    roots, offset = [], 0
    for tree in trees:
        lo, hi = bounds[tree], bounds[tree + 1]
        for name in parts:
            values = state[name][lo:hi]
            parts[name].append(values - lo + offset if name in ("node_left_", "node_right_") else values)
        roots.append(offset)
        offset += hi - lo
    out = {name: np.concatenate(values) for name, values in parts.items()}
    out.update(tree_root_=np.array(roots), tree_norm_=state["tree_norm_"][trees],
               tree_weight_=state["tree_weight_"][trees], max_depth_=state["max_depth_"],
               n_features_=state["n_features_"])
    return out


def _concat_forests(*states: dict[str, Any]) -> dict[str, Any]:
    """One forest holding every tree of the given forests (node indices shifted)."""
    out: dict[str, Any] = {}
    offsets = np.cumsum([0] + [len(s["node_feature_"]) for s in states[:-1]])
    for name in ("node_feature_", "node_threshold_", "node_path_", "tree_norm_", "tree_weight_"):
        out[name] = np.concatenate([s[name] for s in states])
    for name in ("node_left_", "node_right_", "tree_root_"):
        out[name] = np.concatenate([s[name] + offset for s, offset in zip(states, offsets)])
    out["max_depth_"] = max(int(s["max_depth_"]) for s in states)
    out["n_features_"] = states[0].get("n_features_", 0)
    return out
