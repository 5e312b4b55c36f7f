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
)
from .inputs import ROUNDING_SHARE
from .isolation_trees import build_forests, feature_dtype
from .isolation_walk import MAX_WALK_DEPTH, check_walk_depth, forest_depth, tree_depths
from .thresholds import merged_threshold
from .validation import check_forest

NODE_ARRAYS = ("node_feature_", "node_threshold_", "node_left_", "node_path_")
# Attributes held as read-only arrays, never changed in place: copies of a detector may share them.
SHARED_ARRAYS = (*NODE_ARRAYS, "tree_root_")
# The columns no tree can split on (constant in training) and the range each held; absent when none is.
UNSPLIT_ARRAYS = ("unsplit_feature_", "unsplit_low_", "unsplit_high_")


class IForestDetector(Detector):
    """Isolation forest detector (the reference paper's ensemble family).

    Trees are grown by :func:`geoanom.detectors.isolation_trees.build_forests`
    and kept as flat node arrays (float32 thresholds and path lengths, the
    right child next to the left one), so the model is plain data
    (scikit-learn persists forests only by pickling); scoring walks them in
    a compiled loop (:func:`~geoanom.detectors.isolation_walk.forest_depth`). The score is the anomaly score in [0, 1] of
    Liu et al. (scikit-learn's ``-score_samples``); an observation is
    anomalous above ``native_threshold_`` (0.6, or an estimate from the training
    scores when 0.6 is implausible for the data, see
    :func:`geoanom.detectors.base.choose_threshold`).

    Parameters
    ----------
    n_estimators : int, default 100
        Trees per forest (Liu et al.'s choice). 50 trees score in half the
        time and rank as well (``benchmarks/accuracy.py``, 55 cases: fused
        ROC AUC 0.7725 with 50 or 100), but their thresholds are noisier on
        small training samples: 12 months of an 8 x 8 grid then flag 3.4% of
        normal data, against the 3% that ``tests/test_false_alarms.py``
        allows (2.9% with 100).
    max_samples : int, default 256
        Subsample size per tree (capped at the number of observations).
    threshold : float, optional
        A fixed threshold on the anomaly score.
    contamination : float, default 0.01
        Expected share of anomalies in training data: the paper's threshold
        is kept when it flags between a tenth and twice this share of the
        training data, otherwise the threshold flags exactly this share.
    random_state : int, optional

    Notes
    -----
    A column constant in training (sea ice at the freezing point, a filled
    land value) is never split on, so no tree sees its value. A row that
    leaves such a column's training value (beyond its rounding, and beyond
    its resolution when ``feature_units`` make it constant, see
    :func:`geoanom.detectors.inputs.constant_columns`) is isolated before any
    split: path length 0, anomaly score 1, the largest there is. Other rows
    score as the trees alone say.
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
        self._set_state({**_with_reservoir(state, X, seed, self.max_samples), **unsplit_columns(X)})

    @classmethod
    def fit_many(cls, samples, random_states, **params) -> list[IForestDetector]:
        """Fit one forest per sample.

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
            detector._set_state({**_with_reservoir(state, X, seed, detector.max_samples), **unsplit_columns(X)})
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
        score = np.exp2(-forest_depth(X, self._get_state(), self._tree_depths))
        feature = getattr(self, "unsplit_feature_", None)
        if feature is not None and len(feature):  # a departure in a column no tree splits: isolated at depth 0
            values = X[:, feature]
            departed = ((values < self.unsplit_low_) | (values > self.unsplit_high_)).any(axis=1)
            if departed.any():
                score = np.where(departed, 1.0, score)
        return score

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
        reservoir = np.concatenate([self.reservoir_, X[:free].astype(np.float32)])
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
                     n_samples_=self.n_samples_ + len(X), **self._unsplit_within(reservoir))
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
        state.update(reservoir_=reservoir, reservoir_seen_=seen, refresh_next_=0, pending_=0,
                     **_merged_unsplit(self, other))
        merged._set_state(state)
        merged.native_threshold_, merged.threshold_source_ = merged_threshold(
            self, other, self.n_samples_, other.n_samples_
        )
        merged.threshold_ = 1.0
        return merged

    def _get_state(self) -> dict[str, Any]:
        names = (*NODE_ARRAYS, "tree_root_", "tree_norm_", "tree_weight_", "max_depth_", "n_features_", "n_samples_",
                 "reservoir_", "reservoir_seen_", "refresh_next_", "pending_", *UNSPLIT_ARRAYS)
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    @classmethod
    def check_state(cls, state: dict[str, Any]) -> None:
        """Node arrays of one length, trees in order, features below ``n_features_``, children in their tree.

        And no tree deeper than the walk pads (``MAX_WALK_DEPTH`` levels of
        :mod:`~geoanom.detectors.isolation_walk`), so an edited file is refused at load.
        """
        check_forest(state, cls.family)
        check_walk_depth(_deepest_level(state))
        if any(name in state for name in UNSPLIT_ARRAYS):
            feature, low, high = (np.asarray(state.get(name, ())) for name in UNSPLIT_ARRAYS)
            n_features = int(state.get("n_features_", 0))
            if not (feature.ndim == 1 and low.shape == high.shape == feature.shape and np.isfinite(low).all()
                    and np.isfinite(high).all() and (low <= high).all()
                    and ((0 <= feature) & (feature < n_features)).all()):
                raise ValueError(f"{cls.family} detector: unsplit_feature_ {feature.shape}, unsplit_low_ {low.shape} "
                                 f"and unsplit_high_ {high.shape} must be one finite range per column below "
                                 f"n_features_ ({n_features}), low not above high")

    def _set_state(self, state: dict[str, Any]) -> None:
        self.n_features_ = int(state.get("n_features_", getattr(self, "n_features_", 0)))
        nodes = _consecutive_children(state, self.n_features_)
        # read-only views: nothing changes a forest's nodes in place (updates and merges build new arrays),
        # so a scoring graph may share them instead of copying 180 KB a tile (see SHARED_ARRAYS)
        self.node_feature_ = _read_only(nodes["node_feature_"])
        self.node_threshold_ = _read_only(nodes["node_threshold_"])
        self.node_left_ = _read_only(nodes["node_left_"])
        self.node_path_ = _read_only(nodes["node_path_"])
        self.tree_root_ = _read_only(nodes["tree_root_"])
        # each tree's depth, which every walk needs: found once here, not at each scoring call
        self._tree_depths = _read_only(tree_depths(nodes))
        self.tree_norm_ = np.asarray(state["tree_norm_"], dtype=np.float64)
        self.tree_weight_ = np.asarray(state["tree_weight_"], dtype=np.float64)
        self.max_depth_ = int(state["max_depth_"])
        self.n_features_in_ = self.n_features_
        self.n_samples_ = float(state.get("n_samples_", getattr(self, "n_samples_", 0.0)))
        # float32 loses nothing: the builder compares observations as float32
        self.reservoir_ = np.asarray(state.get("reservoir_", np.empty((0, self.n_features_))), dtype=np.float32)
        self.reservoir_seen_ = float(state.get("reservoir_seen_", len(self.reservoir_)))
        self.refresh_next_ = int(state.get("refresh_next_", 0))
        self.pending_ = int(state.get("pending_", 0))
        if "unsplit_feature_" in state:  # absent in models without constant columns, and in those saved before
            self.unsplit_feature_ = np.asarray(state["unsplit_feature_"], dtype=np.intp)
            self.unsplit_low_ = np.asarray(state["unsplit_low_"], dtype=np.float64)
            self.unsplit_high_ = np.asarray(state["unsplit_high_"], dtype=np.float64)
        else:  # a refit or regrown forest without them
            for name in UNSPLIT_ARRAYS:
                self.__dict__.pop(name, None)

    def _unsplit_within(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The unsplit columns whose range still holds every one of ``rows`` (the trees regrown from them split none)."""
        feature = getattr(self, "unsplit_feature_", None)
        if feature is None:
            return {}
        values = rows[:, feature].astype(np.float64)
        # the reservoir holds float32 rows: their rounding is no departure
        slack = np.spacing(np.maximum(np.abs(self.unsplit_low_), np.abs(self.unsplit_high_)).astype(np.float32))
        inside = ((values >= self.unsplit_low_ - slack) & (values <= self.unsplit_high_ + slack)).all(axis=0)
        return {"unsplit_feature_": feature[inside], "unsplit_low_": self.unsplit_low_[inside],
                "unsplit_high_": self.unsplit_high_[inside]}


def unsplit_columns(X: np.ndarray) -> dict[str, np.ndarray]:
    """The columns of training rows ``X`` that no isolation tree can split on, and the range each may take.

    A column is unsplit when its values differ by no more than the rounding
    of their magnitude (``ROUNDING_SHARE``); a value beyond that rounding
    of the column's minimum or maximum departs from it. Empty when no
    column is constant, so such models' state is unchanged.

    Examples
    --------
    >>> X = np.c_[np.arange(4.0), np.full(4, 5.0)]
    >>> {name: values.tolist() for name, values in unsplit_columns(X).items()}
    {'unsplit_feature_': [1], 'unsplit_low_': [4.999999995], 'unsplit_high_': [5.000000005]}
    """
    low, high = X.min(axis=0), X.max(axis=0)
    rounding = ROUNDING_SHARE * np.maximum(np.maximum(np.abs(low), np.abs(high)), 1.0)
    feature = np.flatnonzero(high - low <= rounding)
    if not feature.size:
        return {}
    return {"unsplit_feature_": feature, "unsplit_low_": low[feature] - rounding[feature],
            "unsplit_high_": high[feature] + rounding[feature]}


def _merged_unsplit(a: IForestDetector, b: IForestDetector) -> dict[str, np.ndarray]:
    """The columns unsplit in both forests, over the union of their ranges (no tree of either splits them)."""
    fa, fb = getattr(a, "unsplit_feature_", None), getattr(b, "unsplit_feature_", None)
    if fa is None or fb is None:
        return {}
    feature, ia, ib = np.intersect1d(fa, fb, return_indices=True)
    return {"unsplit_feature_": feature, "unsplit_low_": np.minimum(a.unsplit_low_[ia], b.unsplit_low_[ib]),
            "unsplit_high_": np.maximum(a.unsplit_high_[ia], b.unsplit_high_[ib])}


def _consecutive_children(state: dict[str, Any], n_features: int) -> dict[str, np.ndarray]:
    """The node arrays in the compact layout: right child ``left + 1``, float32 thresholds and paths.

    Models saved before this layout hold ``node_right_`` and float64 arrays:
    a threshold becomes the largest float32 not above it (so a float32
    observation goes the same way), and trees whose right children do not
    follow their left ones are renumbered breadth first.
    """
    left = np.asarray(state["node_left_"], dtype=np.int32)
    roots = np.asarray(state["tree_root_"], dtype=np.int32)
    order = None
    if "node_right_" in state:
        right = np.asarray(state["node_right_"], dtype=np.int32)
        inner = left != np.arange(len(left))
        if not np.array_equal(right[inner], left[inner] + 1):
            order = _breadth_first(left, right, roots)
    nodes = {"node_feature_": np.asarray(state["node_feature_"]).astype(feature_dtype(n_features), copy=False),
             "node_threshold_": _floor_float32(_float32_or_64(state["node_threshold_"])),
             "node_path_": np.asarray(state["node_path_"], dtype=np.float32)}
    if order is None:
        return {**nodes, "node_left_": left, "tree_root_": roots}
    position = np.empty(len(left), dtype=np.int32)
    position[order] = np.arange(len(order))
    return {**{name: values[order] for name, values in nodes.items()},
            "node_left_": position[left[order]], "tree_root_": position[roots]}


def _float32_or_64(values: Any) -> np.ndarray:
    """``values`` as float32 if they are float32 already, else as float64 (to be floored to float32)."""
    array = np.asarray(values)
    return array if array.dtype == np.float32 else array.astype(np.float64, copy=False)


def _deepest_level(state: dict[str, Any]) -> int:
    """The depth of the forest's deepest tree, counted up to one level past ``MAX_WALK_DEPTH``.

    Level by level from the roots, in either layout (``node_right_`` or the
    right child at ``left + 1``); :func:`check_forest` first ensures that
    children come after their node, so the levels end.
    """
    left = np.asarray(state["node_left_"], dtype=np.int64)
    inner = left != np.arange(len(left))
    right = np.asarray(state["node_right_"], dtype=np.int64) if "node_right_" in state else left + 1
    frontier, depth = np.asarray(state["tree_root_"], dtype=np.int64), -1
    while len(frontier) and depth <= MAX_WALK_DEPTH:
        depth += 1
        split = frontier[inner[frontier]]
        frontier = np.concatenate([left[split], right[split]])
    return depth


def _breadth_first(left: np.ndarray, right: np.ndarray, roots: np.ndarray) -> np.ndarray:
    """Node order tree after tree, breadth first, children left then right (so right = left + 1)."""
    inner = left != np.arange(len(left))
    levels, frontier = [], roots.astype(np.intp)
    while len(frontier):
        levels.append(frontier)
        split = frontier[inner[frontier]]
        frontier = np.stack([left[split], right[split]], axis=1).ravel()
    order = np.concatenate(levels)
    tree = np.searchsorted(roots, order, side="right")
    return order[np.argsort(tree, kind="stable")]


def _read_only(values: np.ndarray) -> np.ndarray:
    """A read-only view of ``values`` (the caller's array keeps its own flags)."""
    view = values.view()
    view.flags.writeable = False
    return view


def _floor_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 not above each value: ``x <= value`` iff ``x <= result`` for every float32 x.

    float32 values are their own floor: they are returned as they are (no
    float64 copy of every threshold while a model loads).
    """
    if values.dtype == np.float32:
        return values
    rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def _with_reservoir(state: dict[str, Any], X: np.ndarray, seed: int, size: int) -> dict[str, Any]:
    """The forest state plus a uniform reservoir of the training data (for adaptation)."""
    rows = np.random.default_rng([seed, 1]).choice(len(X), min(size, len(X)), replace=False)
    return {**state, "reservoir_": X[np.sort(rows)].astype(np.float32), "reservoir_seen_": float(len(X)),
            "refresh_next_": 0}


def _select_trees(state: dict[str, Any], trees: np.ndarray) -> dict[str, Any]:
    """The sub-forest of the given trees, its node indices renumbered from 0."""
    bounds = np.append(state["tree_root_"], len(state["node_feature_"]))
    parts = {name: [] for name in NODE_ARRAYS}
    roots, offset = [], 0
    for tree in trees:
        lo, hi = bounds[tree], bounds[tree + 1]
        for name in parts:
            values = state[name][lo:hi]
            parts[name].append(values - lo + offset if name == "node_left_" else values)
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
    for name in ("node_left_", "tree_root_"):
        out[name] = np.concatenate([s[name] + offset for s, offset in zip(states, offsets)])
    out["max_depth_"] = max(int(s["max_depth_"]) for s in states)
    out["n_features_"] = states[0].get("n_features_", 0)
    return out
