"""Event family: a generalised likelihood ratio for the deviations an event can make.

With the default features, an observation holds per variable its standardised
anomaly ``z`` and the trimmed mean anomaly ``n`` of its eight neighbours, those of
the other sign than a cell beyond one spread read as 0
(:func:`geoanom.features.neighbourhood.neighbour_anomaly`: another event beside
the cell made every family, this one too, flag the normal cells around a strong
event). The other families score a deviation of ``(z, n)`` in any direction,
including patterns no event produces (the neighbours anomalous while the cell
is normal). An event at a cell shifts ``z`` by ``delta``
and ``n`` by ``alpha * delta``, ``0 <= alpha <= 1`` (0: a lone spike; 1: a
coherent blob). With the tile's mean ``m`` and covariance ``S`` of ``(z, n)``,
``P = S^-1`` and ``d = y - m``, the generalised likelihood ratio statistic of
that family of shifts is::

    max over alpha in [0, 1] of (u'Pd)^2 / (u'Pu),  u = (1, alpha)

In closed form it is the Mahalanobis ``d'Pd`` when ``0 <= d_n / d_z <= 1``
(the best ``u`` is ``d`` itself), else the larger of its two ends,
``(Pd)_1^2 / P_11`` (alpha = 0) and ``((Pd)_1 + (Pd)_2)^2 / (P_11 + 2 P_12 + P_22)``
(alpha = 1): the ratio has a single maximum over the directions ``u``.

With the ``"background"`` features, a group also holds ``b``, the mean
anomaly of a ring of cells around the neighbours (the large-scale state: a
warm year, El Nino, a warming climate). The event still shifts only ``z``
and ``n`` (``u = (1, alpha, 0)``), so the same maximum, taken with ``Pd`` and
``P`` restricted to their ``(z, n)`` rows, is the Mahalanobis distance of
``(z, n)`` from what the background predicts: a departure the whole region
shares, as in the training period, is not an event at the cell. On the
accuracy benchmark's real cubes this turns cold blobs and drifts in a
warming record from below chance to 0.6-0.8 ROC AUC (``benchmarks/accuracy.py``).

The mean and covariance are robust: a classical estimate, then one
re-estimate on the rows inside its ``trim`` chi-squared ellipse, rescaled to be
consistent for a Gaussian (a normal truncated to that ellipse has covariance
``S * P(chi2_{k+2} <= c) / P(chi2_k <= c)``, ``c`` the ellipse's chi-squared
quantile), so events in the training period neither move nor widen it.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from .base import CONTAMINATION_CONSTRAINT, SEED_CONSTRAINT, THRESHOLD_CONSTRAINT, Detector
from .event_glr import (
    chi2_quantile,
    cone_covariances,
    covariance,
    glr_of_groups,
    group_columns,
    mahalanobis,
    squared_distances,
    trim_cutoff,
    trimmed_moments,
)
from .moments import SufficientStatistics, add_rows, map_shrink, pooled_moments
from .thresholds import merged_threshold
from .validation import array, check_covariances, check_scalars, expect_shape

# Share of a Gaussian tile's observations the family's own threshold flags at most.
GAUSSIAN_TAIL = 0.01


def pairs_from_feature_names(names: Sequence[str]) -> int | None:
    """The ``pairs`` of a model's features: V when they begin ``[x_anomaly..., x_neighbours...]`` for V variables.

    None (no cone) when the features do not begin with each variable's
    anomaly followed by the same variables' neighbours (see
    :func:`geoanom.features.vectors.feature_names`).

    Examples
    --------
    >>> pairs_from_feature_names(["sst_anomaly", "tas_anomaly", "sst_neighbours", "tas_neighbours"])
    2
    >>> pairs_from_feature_names(["sst", "sst_anomaly", "sst_neighbours"]) is None
    True
    """
    anomalies = [name.removesuffix("_anomaly") for name in names if name.endswith("_anomaly")]
    count = len(anomalies)
    expected = [f"{name}_anomaly" for name in anomalies] + [f"{name}_neighbours" for name in anomalies]
    return count if count and list(names[: 2 * count]) == expected else None


def event_params(names: Sequence[str]) -> dict[str, Any]:
    """The event family's ``pairs`` and ``background`` for a model's features (see :func:`pairs_from_feature_names`).

    ``background`` when the pairs are followed by the same variables'
    background anomalies (the ``"background"`` feature set).

    Examples
    --------
    >>> event_params(["sst_anomaly", "sst_neighbours", "sst_background"])
    {'pairs': 1, 'background': True}
    >>> event_params(["sst_anomaly", "sst_neighbours"])
    {'pairs': 1, 'background': False}
    """
    pairs = pairs_from_feature_names(names)
    if pairs is None:
        return {"pairs": None, "background": False}
    variables = [name.removesuffix("_anomaly") for name in names[:pairs]]
    background = list(names[2 * pairs: 3 * pairs]) == [f"{name}_background" for name in variables]
    return {"pairs": pairs, "background": background}


class EventDetector(Detector):
    """Event-direction GLR detector: a lone spike or a coherent blob, not any deviation (see the module docstring).

    The native score is, with ``pairs=V``, the largest over the variables of
    each one's event-direction GLR on its ``(z_v, n_v)`` pair (columns v and
    V + v, the layout of the features ``anomalies, neighbours``; further
    columns are ignored), given its background ``b_v`` (column 2V + v) with
    ``background=True``; with ``pairs=None``, the squared
    Mahalanobis distance over every column (no cone). It is anomalous above
    ``native_threshold_``: a bound a Gaussian tile exceeds in at most 1% of
    observations (:attr:`paper_threshold`; 9.21 for one pair) when plausible for
    the training data, else estimated from ``contamination`` (see
    :func:`geoanom.detectors.base.choose_threshold`). The features are not
    standardised: ``alpha`` compares z and n in their common unit.

    Parameters
    ----------
    pairs : int, optional
        Number of variables V whose (anomaly, neighbours) pairs are scored;
        None scores every column jointly by Mahalanobis distance.
    background : bool, default False
        With ``pairs``: columns 2V..3V-1 are the variables' background
        anomalies, and each pair is judged given its own.
    trim : float, default 0.99
        Share of a Gaussian kept by the ellipse the robust mean and
        covariance are re-estimated in; 1 keeps every row.
    threshold : float, optional
        A fixed threshold on the native score.
    contamination : float, default 0.01
        Expected share of anomalies in training data.
    random_state : int, optional
        Accepted for the common contract; the fit is deterministic.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).multivariate_normal([0, 0], [[1, 0.6], [0.6, 0.5]], size=2000)
    >>> detector = EventDetector(pairs=1).fit(X)
    >>> spike, blob, neighbours_only = detector.irregularity([[5.0, 0.5], [4.0, 3.5], [0.0, 2.5]])
    >>> bool(spike > 1 and blob > 1), bool(neighbours_only < EventDetector().fit(X).irregularity([[0.0, 2.5]])[0])
    (True, True)
    """

    family = "event"
    anomalous_above = True
    _parameter_constraints: ClassVar[dict] = {
        "pairs": [Interval(Integral, 1, None, closed="left"), None],
        "background": ["boolean"],
        "trim": [Interval(Real, 0, 1, closed="right")],
        "threshold": THRESHOLD_CONSTRAINT,
        "contamination": CONTAMINATION_CONSTRAINT,
        "random_state": SEED_CONSTRAINT,
    }

    def __init__(
        self,
        pairs: int | None = None,
        background: bool = False,
        trim: float = 0.99,
        threshold: float | None = None,
        contamination: float = 0.01,
        random_state: int | None = None,
    ):
        self.pairs = pairs
        self.background = background
        self.trim = trim
        self.threshold = threshold
        self.contamination = contamination
        self.random_state = random_state

    @property
    def paper_threshold(self) -> float:  # type: ignore[override]  # depends on the fitted width
        """The family's own threshold: a bound flagging at most 1% of a Gaussian tile's observations.

        chi2_k's 99% quantile for the Mahalanobis distance over k features
        (``pairs=None``); with pairs, each pair's GLR is at most its chi2_2
        distance, so the largest of V exceeds chi2_2's ``1 - 0.01 / V``
        quantile in at most 1% (Bonferroni).

        Examples
        --------
        >>> import numpy as np
        >>> round(EventDetector(pairs=1).fit(np.random.default_rng(0).normal(size=(50, 2))).paper_threshold, 2)
        9.21
        """
        if self.pairs is None:
            return chi2_quantile(1 - GAUSSIAN_TAIL, self.n_features_in_)
        return chi2_quantile(1 - GAUSSIAN_TAIL / self.pairs, 2)

    # -- fitting --------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        columns = group_columns(self.pairs, X.shape[1], self.background)
        cutoff, _ = trim_cutoff(self.trim, columns.shape[1])
        moments = [trimmed_moments(X[:, group], cutoff) for group in columns]
        self.n_samples_ = float(len(X))
        self._set_moments(*(np.array([m[i] for m in moments]) for i in range(3)))

    def _set_moments(self, counts: np.ndarray, means: np.ndarray, scatter: np.ndarray) -> None:
        """Inlier counts (g,), means (g, k) and scatter matrices (g, k, k) per group; the scoring arrays."""
        self.counts_ = np.asarray(counts, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.scatter_ = np.asarray(scatter, dtype=np.float64)
        self._columns = group_columns(self.pairs, self.n_features_in_, self.background)
        if self._columns.shape != self.means_.shape:
            raise ValueError(f"event detector: its moments have {self.means_.shape[0]} groups of "
                             f"{self.means_.shape[1]} features, but pairs={self.pairs} over "
                             f"{self.n_features_in_} features (background={self.background}) reads "
                             f"{self._columns.shape}")
        self._cutoff, factor = trim_cutoff(self.trim, self.means_.shape[1])
        self.covariances_ = covariance(self.counts_, self.scatter_, factor)
        self._precisions = np.linalg.inv(self.covariances_)
        self._cone_covariances = cone_covariances(self._precisions)

    # -- scoring --------------------------------------------------------------
    def _native_score(self, X: np.ndarray) -> np.ndarray:
        """The event GLR (``pairs`` set) or the squared Mahalanobis distance (None); anomalous above."""
        out = np.empty(len(X))
        if self.pairs is None:
            mahalanobis(X, self.means_[0], self._precisions[0], out)
        else:
            glr_of_groups(X, self._columns, self.means_, self._precisions, self._cone_covariances, out)
        return out

    def _inside(self, X: np.ndarray) -> list[np.ndarray]:
        """Per group, which rows lie inside the model's trim ellipse (the rows its moments count)."""
        return [squared_distances(X[:, group], mean, cov) <= self._cutoff
                for group, mean, cov in zip(self._columns, self.means_, self.covariances_)]

    # -- adaptation -----------------------------------------------------------
    def update(self, X: Any) -> EventDetector:
        """Absorb observations inside the trim ellipse into each group's moments (Chan's pooled update).

        Rows outside it are events, kept out as the fit keeps them out, so
        the model follows slow change but not the anomalies it flags.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> EventDetector(pairs=1).fit(X).update(X + 0.1).n_samples_
        600.0
        """
        X = self._rows(X)
        counts, means, scatter = self.counts_.copy(), self.means_.copy(), self.scatter_.copy()
        for g, (group, inside) in enumerate(zip(self._columns, self._inside(X))):
            if inside.any():
                counts[g], means[g], scatter[g] = add_rows(counts[g], means[g], scatter[g], X[inside][:, group])
        self.n_samples_ += len(X)
        self._set_moments(counts, means, scatter)
        return self

    # -- federation and adaptation --------------------------------------------
    def sufficient_statistics(self, X: Any, weight: float = 1.0) -> SufficientStatistics:
        """Per group, the count, sum and sum of outer products of the rows inside the trim ellipse.

        Each row counts ``weight`` times. Statistics of disjoint sets add up,
        so a federation sums them and calls :meth:`m_step`.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> stats = EventDetector().fit(X).sufficient_statistics(X)
        >>> stats.total, bool(290 < stats.counts[0] <= 300)
        (300.0, True)
        """
        X = self._rows(X)
        groups = [X[inside][:, group] for group, inside in zip(self._columns, self._inside(X))]
        return SufficientStatistics(
            np.array([len(rows) * weight for rows in groups]), np.stack([rows.sum(axis=0) * weight for rows in groups]),
            np.stack([rows.T @ rows * weight for rows in groups]), 0.0, float(len(X) * weight))

    def m_step(self, statistics: SufficientStatistics) -> EventDetector:
        """Each group's moments from (summed) sufficient statistics, in place; returns self.

        A group no row fell in keeps its moments; the threshold is kept (see
        :meth:`renew_threshold`).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> detector = EventDetector().fit(X)
        >>> bool(np.allclose(detector.m_step(detector.sufficient_statistics(X)).means_, detector.means_))
        True
        """
        seen = statistics.counts > 0
        counts, means, scatter = self.counts_.copy(), self.means_.copy(), self.scatter_.copy()
        counts[seen] = statistics.counts[seen]
        means[seen] = statistics.sums[seen] / counts[seen, None]
        scatter[seen] = statistics.squares[seen] - counts[seen, None, None] * np.einsum("gi,gj->gij", means[seen],
                                                                                       means[seen])
        self.n_samples_ = statistics.total
        self._set_moments(counts, means, scatter)
        return self

    def adapt_towards(self, region: EventDetector, X: Any, n_observations: float,
                      relevance: float = 16.0) -> EventDetector:
        """A copy whose group moments are MAP-adapted towards a region's (see :mod:`.moments`).

        Each group's weight is its inlier share of ``n_observations``; the
        threshold is renewed on the sample ``X``. This detector is not changed.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> tile = EventDetector(pairs=1).fit(X)
        >>> bool(np.allclose(tile.adapt_towards(tile, X, 300).means_, tile.means_))
        True
        """
        own = self.scatter_ / np.maximum(self.counts_, 1.0)[:, None, None]
        prior = region.scatter_ / np.maximum(region.counts_, 1.0)[:, None, None]
        weights = self.counts_ / self.n_samples_ * n_observations
        means, covariances = map_shrink(weights, self.means_, own, region.means_, prior, relevance)
        adapted = type(self).from_dict(self.to_dict())
        adapted._set_moments(self.counts_, means, covariances * self.counts_[:, None, None])
        adapted._set_threshold(adapted._native_score(adapted._rows(X)))
        return adapted

    # -- merging --------------------------------------------------------------
    def merge(self, other: EventDetector) -> EventDetector:
        """Pool two partial models of the same tile: each group's inlier moments by Chan's parallel form.

        Exact for the union of the two parts' inliers; the threshold is the
        sample-weighted mean of the two (see :func:`merged_threshold`).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(400, 2))
        >>> a, b = EventDetector(pairs=1).fit(X[:200]), EventDetector(pairs=1).fit(X[200:])
        >>> a.merge(b).n_samples_
        400.0
        """
        if other.means_.shape != self.means_.shape or other.n_features_in_ != self.n_features_in_:
            raise ValueError(f"event detector: cannot merge moments of shape {other.means_.shape} "
                             f"({other.n_features_in_} features) into {self.means_.shape} ({self.n_features_in_})")
        merged = type(self)(**self.get_params())
        merged.n_features_in_ = self.n_features_in_
        merged.n_samples_ = self.n_samples_ + other.n_samples_
        pooled = [pooled_moments(*a, *b) for a, b in zip(zip(self.counts_, self.means_, self.scatter_),
                                                            zip(other.counts_, other.means_, other.scatter_))]
        merged._set_moments(*(np.array([p[i] for p in pooled]) for i in range(3)))
        merged.native_threshold_, merged.threshold_source_ = merged_threshold(
            self, other, self.n_samples_, other.n_samples_)
        merged.threshold_ = 1.0
        return merged

    # -- plain data -----------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {"means_": self.means_, "counts_": self.counts_, "scatter_": self.scatter_,
                "n_samples_": self.n_samples_, "n_features_": self.n_features_in_}

    @classmethod
    def check_state(cls, state: dict[str, Any]) -> None:
        """Means (g, k), inlier counts (g,) and scatter matrices (g, k, k): one group of every feature, or pairs.

        Examples
        --------
        >>> state = {"means_": [[0.0, 0.0]], "counts_": [10.0], "scatter_": [[[10.0, 0.0], [0.0, 10.0]]],
        ...          "n_samples_": 10.0, "n_features_": 2}
        >>> EventDetector.check_state(state)
        >>> EventDetector.check_state({**state, "n_features_": 1})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: event detector: means_ holds 1 groups of 2 features, neither every one of n_features_ 1 nor ...
        """
        family = cls.family
        check_scalars(state, family, "n_samples_", "n_features_")
        n_features = state["n_features_"]
        means = array(state, "means_", family, 2)
        groups, width = means.shape
        if n_features != int(n_features) or not (width == n_features
                                                 or (width in (2, 3) and width * groups <= n_features)):
            raise ValueError(f"{family} detector: means_ holds {groups} groups of {width} features, neither every "
                             f"one of n_features_ {n_features} nor pairs (or triples) among them")
        counts = array(state, "counts_", family, 1)
        expect_shape(counts, "counts_", (groups,), family, f"one per group of means_ {means.shape}")
        if not np.isfinite(counts).all() or (counts <= 0).any():
            raise ValueError(f"{family} detector: counts_ holds a count that is not a positive number")
        scatter = array(state, "scatter_", family, 3)
        expect_shape(scatter, "scatter_", (groups, width, width), family,
                     f"one scatter matrix per group of means_ {means.shape}")
        if not np.isfinite(means).all():
            raise ValueError(f"{family} detector: means_ holds a non-finite value")
        check_covariances(covariance(counts, scatter, 1.0), "scatter_", family)

    def _set_state(self, state: dict[str, Any]) -> None:
        self.n_features_in_ = int(state["n_features_"])
        self.n_samples_ = float(state["n_samples_"])
        self._set_moments(state["counts_"], state["means_"], state["scatter_"])
