"""Distance family: K-Means from canopy centres, scored by distance in standard deviations."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from numba import njit
from sklearn.utils._param_validation import Interval, StrOptions

from .base import (
    CONTAMINATION_CONSTRAINT,
    SEED_CONSTRAINT,
    THRESHOLD_CONSTRAINT,
    Detector,
)
from .inputs import standardised_sample
from .lloyd import lloyd_many, nearest_centres, nearest_distances
from .moments import (
    SufficientStatistics,
    add_rows,
    in_units_of,
    map_shrink,
    nearest_prior,
    whitening,
)
from .thresholds import merged_threshold
from .validation import (
    array,
    check_covariances,
    check_scalars,
    check_standardisation,
    expect_shape,
)

# Canopy radii in standardised units: a point within T2 of a canopy centre can
# start no other canopy; T1 = 2 T2 gathers the canopy's members.
CANOPY_T2_PER_SQRT_DIM = 1.0
CANOPY_T1_OVER_T2 = 2.0
MAX_CANOPIES = 8
# Canopies holding less than this share of the points are noise, not clusters.
MIN_CANOPY_SHARE = 0.02
# At most one cluster per this many rows: canopies of a 24-row tile made 4-6 clusters of 4-6 rows, which fit
# their own rows and flagged 2.1% of new normal rows at a contamination of 1% (1.6% with the cap;
# tests/test_small_tiles.py). Tiles of 96 rows or more keep every canopy. Not scaled with the features: each
# cluster's covariance is already shrunk towards unit variance by n_features + 1 prior points, and a cap of
# 4 (n_features + 1) rows a cluster left 2 clusters to 250 rows of 30 features (tests/test_uci.py's
# balanced accuracy 0.80, under its floor of 0.82).
ROWS_PER_CLUSTER = 12


def canopy_centres(Z: np.ndarray, t1: float, t2: float, rng: np.random.Generator) -> np.ndarray:
    """Centres of the canopies of ``Z`` (McCallum et al., 2000).

    Canopy clustering has no implementation in scikit-learn or scipy; it is
    a handful of lines: take a random remaining point, gather every point
    within ``t1`` into its canopy (centre = their mean), and strike every
    point within ``t2`` from the candidates. Each canopy is one compiled pass
    over the points: the same centres and random draws as the numpy
    version (norm, mask, mean, ``rng.choice`` per canopy), at 1.20 -> 0.35 ms of
    CPU a tile of 2048 points (mostly 8 canopies; benchmarks/kmeans_fit.py
    times it with the standardisation). Of few points, only the largest
    canopies are kept, one per ``ROWS_PER_CLUSTER`` points (in the order
    they were found).

    Examples
    --------
    >>> import numpy as np
    >>> Z = np.repeat([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0]], 6, axis=0)
    >>> canopy_centres(Z, 2.0, 1.0, np.random.default_rng(0)).round(2).tolist()
    [[5.05, 5.0], [0.05, 0.0]]
    >>> canopy_centres(Z[::6], 2.0, 1.0, np.random.default_rng(0)).round(2).tolist()  # 4 rows: one cluster
    [[5.05, 5.0]]
    """
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    remaining = np.ones(len(Z), dtype=bool)
    centres = np.zeros((MAX_CANOPIES, Z.shape[1]))
    sizes = np.zeros(MAX_CANOPIES, dtype=np.int64)
    n_remaining, count = len(Z), 0
    while n_remaining and count < MAX_CANOPIES:
        # the draw of rng.choice(np.flatnonzero(remaining)): the same integer, the same generator state
        draw = int(rng.integers(0, n_remaining))
        n_remaining, sizes[count] = _gather_canopy(Z, draw, t1, t2, remaining, centres[count])
        count += 1
    keep = sizes[:count] >= max(2, MIN_CANOPY_SHARE * len(Z))
    most = max(1, len(Z) // ROWS_PER_CLUSTER)
    if keep.sum() > most:  # too few rows for so many clusters: the largest canopies, in their order
        largest = np.argsort(-np.where(keep, sizes[:count], -1), kind="stable")[:most]
        keep = np.isin(np.arange(count), largest)
    return centres[:count][keep] if keep.any() else Z.mean(axis=0, keepdims=True)


@njit(cache=True, nogil=True)  # threads (dask's) may fit tiles at once
def _gather_canopy(Z, draw, t1, t2, remaining, centre):  # pragma: no cover - compiled
    """One canopy seeded at the ``draw``-th remaining point: its centre (in place), remaining count, size.

    Sums as numpy does (norm over features, mean over points row after row), so
    the centres are numpy's to the bit with two or more features; with one,
    numpy sums the points pairwise and a centre may differ in its last bit.
    """
    seed = np.flatnonzero(remaining)[draw]
    size, n_remaining = 0, 0
    for i in range(len(Z)):
        squared = 0.0
        for f in range(Z.shape[1]):
            offset = Z[i, f] - Z[seed, f]
            squared += offset * offset
        distance = np.sqrt(squared)
        if distance < t1:
            size += 1
            for f in range(Z.shape[1]):  # written out: a row slice would allocate per point
                centre[f] += Z[i, f]
        if distance < t2:
            remaining[i] = False
        if remaining[i]:
            n_remaining += 1
    for f in range(Z.shape[1]):
        centre[f] /= size
    return n_remaining, size


class KMeansDetector(Detector):
    """K-Means detector (the reference paper's distance family).

    Features are standardised per tile. Canopy clustering with radii set from
    the data's scale (T2 = sqrt(n_features) standard deviations, T1 = 2 T2)
    gives the number of clusters and the initial centroids; Lloyd's K-Means
    refines them, as scikit-learn's ``KMeans`` from those centroids would
    (compiled, and batched over tiles by :meth:`fit_many`, in :mod:`.lloyd`).
    The native score is the distance to the nearest
    centroid in standard deviations: Mahalanobis with each cluster's own
    covariance (shrunk towards unit variance by n_features + 1 prior points,
    so small clusters in many dimensions stay well-posed), or Euclidean in
    standardised units. An
    observation is anomalous beyond ``native_threshold_`` (4 by Chebyshev's rule,
    or estimated when 4 is implausible for the data).

    Parameters
    ----------
    metric : {"mahalanobis", "euclidean"}, default "mahalanobis"
    threshold : float, optional
        A fixed threshold on the distance.
    contamination : float, default 0.01
        Expected share of anomalies in training data (see
        :func:`geoanom.detectors.base.choose_threshold`).
    max_samples : int, default 2048
        Canopies and K-Means run on a random subsample of at most this size.
    reg_covar : float, default 1e-3
        Added to each cluster covariance's diagonal (standardised units).
    random_state : int, optional
    """

    family = "kmeans"
    paper_threshold = 4.0
    anomalous_above = True
    _parameter_constraints: ClassVar[dict] = {
        "metric": [StrOptions({"mahalanobis", "euclidean"})],
        "threshold": THRESHOLD_CONSTRAINT,
        "contamination": CONTAMINATION_CONSTRAINT,
        "max_samples": [Interval(Integral, 2, None, closed="left")],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
        "random_state": SEED_CONSTRAINT,
    }

    def __init__(
        self,
        metric: str = "mahalanobis",
        threshold: float | None = None,
        contamination: float = 0.01,
        max_samples: int = 2048,
        reg_covar: float = 1e-3,
        random_state: int | None = None,
    ):
        self.metric = metric
        self.threshold = threshold
        self.contamination = contamination
        self.max_samples = max_samples
        self.reg_covar = reg_covar
        self.random_state = random_state

    def _fit(self, X: np.ndarray) -> None:
        _fit_clusters([self], [X])  # the code of fit_many, so that both agree exactly

    @classmethod
    def fit_many(cls, samples: Sequence[Any], random_states: Sequence[int | None],
                 **params: Any) -> list[KMeansDetector]:
        """Fit one detector per sample, refining the canopies of all samples in one compiled Lloyd loop.

        Gives the same detectors as :meth:`fit` one sample at a time with
        the same seeds: a sample's canopies come from its own seed and its
        Lloyd iterations see its own rows only (see :mod:`.lloyd`).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> len(KMeansDetector.fit_many([rng.normal(size=(50, 2)), rng.normal(size=(60, 2))], [0, 1]))
        2
        """
        detectors, samples = cls._prepare_many(samples, random_states, params)
        _fit_clusters(detectors, samples)
        for detector, X in zip(detectors, samples):
            detector._set_threshold(detector._native_score(X))
        return detectors

    def _canopy_start(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The standardised subsample K-Means runs on and its canopy centres (sets center_ and scale_)."""
        if self.metric not in ("mahalanobis", "euclidean"):
            raise ValueError(f"metric must be 'mahalanobis' or 'euclidean', got {self.metric!r}")
        rng = np.random.default_rng(self.random_state)
        Z = standardised_sample(self, X, self.max_samples, rng)
        t2 = CANOPY_T2_PER_SQRT_DIM * np.sqrt(Z.shape[1])
        return Z, canopy_centres(Z, CANOPY_T1_OVER_T2 * t2, t2, rng)

    def _set_clusters(self, means: np.ndarray, counts: np.ndarray, scatter: np.ndarray) -> None:
        """Centroids, member counts and scatter matrices (sums of outer products) per cluster."""
        self.means_ = np.asarray(means, dtype=np.float64)
        self.counts_ = np.asarray(counts, dtype=np.float64)
        self.scatter_ = np.asarray(scatter, dtype=np.float64)
        n_features = self.means_.shape[1]
        # Shrink each cluster's covariance towards unit variance (the tile's own,
        # in standardised units) as if n_features + 1 prior points had it: a
        # cluster with few points per dimension cannot estimate a full covariance,
        # and its raw estimate makes new points look far away.
        prior = n_features + 1.0
        eye = np.eye(n_features)
        covariances = (self.scatter_ + prior * eye) / (self.counts_ + prior)[:, None, None]
        self.covariances_ = covariances + self.reg_covar * eye
        self._whitening = whitening(self.covariances_)

    def _native_score(self, X: np.ndarray) -> np.ndarray:
        """Distance to the nearest centroid, in standard deviations (anomalous above the native threshold)."""
        whitening = None if self.metric == "euclidean" else self._whitening
        return nearest_distances(X, self.means_, whitening, center=self.center_, scale=self.scale_)

    def update(self, X: Any) -> KMeansDetector:
        """Absorb observations: each moves its nearest cluster's count, mean and scatter."""
        Z = (self._rows(X) - self.center_) / self.scale_
        nearest = self._nearest(Z)
        counts, means, scatter = self.counts_.copy(), self.means_.copy(), self.scatter_.copy()
        for k in np.unique(nearest):
            counts[k], means[k], scatter[k] = add_rows(counts[k], means[k], scatter[k], Z[nearest == k])
        self.n_samples_ += len(Z)
        self._set_clusters(means, counts, scatter)
        return self

    def _nearest(self, Z: np.ndarray) -> np.ndarray:
        """Nearest centroid (Euclidean, standardised units) of each standardised row."""
        return nearest_centres(Z, self.means_)

    # -- federation and adaptation -------------------------------------------
    def sufficient_statistics(self, X: Any, weight: float = 1.0) -> SufficientStatistics:
        """Lloyd's assignment step on ``X``: each cluster's count, sum and sum of outer products.

        In this model's standardised units, under nearest-centroid
        assignment; each row counts ``weight`` times. Statistics of disjoint
        sets add up, so a federation sums them and calls :meth:`m_step`.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> float(KMeansDetector(random_state=0).fit(X).sufficient_statistics(X).counts.sum())
        200.0
        """
        Z = (self._rows(X) - self.center_) / self.scale_
        nearest = self._nearest(Z)
        k, d = self.means_.shape
        counts = np.bincount(nearest, minlength=k) * weight
        sums, squares = np.zeros((k, d)), np.zeros((k, d, d))
        np.add.at(sums, nearest, Z * weight)
        np.add.at(squares, nearest, np.einsum("nd,ne->nde", Z, Z) * weight)
        return SufficientStatistics(counts, sums, squares, 0.0, float(len(Z) * weight))

    def m_step(self, statistics: SufficientStatistics) -> KMeansDetector:
        """Lloyd's update step from (summed) sufficient statistics, in place; returns self.

        Empty clusters are dropped; the threshold is kept (see :meth:`renew_threshold`).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> detector = KMeansDetector(random_state=0).fit(X)
        >>> detector.m_step(detector.sufficient_statistics(X)).n_samples_
        200.0
        """
        counts, means, squares = statistics.kept()
        self._set_clusters(means, counts, squares - counts[:, None, None] * np.einsum("kd,ke->kde", means, means))
        self.n_samples_ = statistics.total
        return self

    def adapt_towards(self, region: KMeansDetector, X: Any, n_observations: float,
                      relevance: float = 16.0) -> KMeansDetector:
        """A copy whose clusters are MAP-adapted towards a region's clusters (see :mod:`.moments`).

        As :meth:`GMMDetector.adapt_towards`, with each cluster's share of
        ``n_observations`` as its weight; the threshold is renewed on the
        sample ``X``. This detector is not changed.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> tile = KMeansDetector(random_state=0).fit(X)
        >>> tile.adapt_towards(tile, X, 200).means_.shape == tile.means_.shape
        True
        """
        region_covariances = region.scatter_ / np.maximum(region.counts_, 1.0)[:, None, None]
        prior_means, prior_covariances = in_units_of(self.center_, self.scale_, region.center_, region.scale_,
                                                     region.means_, region_covariances)
        regularised = prior_covariances + region.reg_covar * np.eye(prior_means.shape[1])
        nearest = nearest_prior(self.means_, prior_means, regularised, region.counts_ / region.counts_.sum())
        # the clusters' counts are of the detector's subsample; alpha uses all the tile's observations
        sample_counts = self.counts_
        counts = sample_counts / sample_counts.sum() * n_observations
        own_covariances = self.scatter_ / np.maximum(sample_counts, 1.0)[:, None, None]
        means, covariances = map_shrink(counts, self.means_, own_covariances, prior_means[nearest],
                                        prior_covariances[nearest], relevance)
        adapted = type(self).from_dict(self.to_dict())
        adapted._set_clusters(means, sample_counts, covariances * sample_counts[:, None, None])
        adapted._set_threshold(adapted._native_score(adapted._rows(X)))
        return adapted

    def merge(self, other: KMeansDetector) -> KMeansDetector:
        """Pool two partial models: every cluster kept, statistics in common units.

        Counts, means and scatter matrices are exact sufficient statistics, so
        the pooled clusters are those of the union of the two training sets
        under their original assignments.
        """
        merged = KMeansDetector(**self.get_params())
        n = self.n_samples_ + other.n_samples_
        center = (self.center_ * self.n_samples_ + other.center_ * other.n_samples_) / n
        spread = (
            self.n_samples_ * (self.scale_**2 + (self.center_ - center) ** 2)
            + other.n_samples_ * (other.scale_**2 + (other.center_ - center) ** 2)
        ) / n
        merged.center_, merged.scale_ = center, np.sqrt(spread)
        merged.n_features_in_ = len(center)
        parts = [_to_units(d, merged.center_, merged.scale_) for d in (self, other)]
        merged.n_samples_ = n
        merged._set_clusters(*(np.concatenate([p[i] for p in parts]) for i in range(3)))
        merged.native_threshold_, merged.threshold_source_ = merged_threshold(
            self, other, self.n_samples_, other.n_samples_)
        merged.threshold_ = 1.0
        return merged

    def compress(self, max_clusters: int) -> KMeansDetector:
        """Pool clusters into at most ``max_clusters``, keeping exact sufficient statistics.

        A merge keeps every cluster of both parts, so a region merged from
        hundreds of tiles holds hundreds of clusters. The centroids are
        grouped by a count-weighted K-Means, and each group's counts, means
        and scatter are pooled exactly (as :meth:`merge` pools two models).
        """
        if len(self.means_) <= max_clusters:
            return self
        from sklearn.cluster import KMeans  # only here: importing sklearn.cluster costs every fit about 0.25 s

        groups = KMeans(max_clusters, n_init=1, random_state=0).fit(self.means_, sample_weight=self.counts_).labels_
        counts = np.bincount(groups, weights=self.counts_, minlength=max_clusters)
        keep = counts > 0
        means = np.stack([np.average(self.means_[groups == g], axis=0, weights=self.counts_[groups == g])
                          if keep[g] else np.zeros(self.means_.shape[1]) for g in range(max_clusters)])
        offsets = self.means_ - means[groups]
        scatter = np.zeros((max_clusters,) + self.scatter_.shape[1:])
        np.add.at(scatter, groups, self.scatter_ + self.counts_[:, None, None] * np.einsum("kd,ke->kde", offsets, offsets))
        self._set_clusters(means[keep], counts[keep], scatter[keep])
        return self

    def _get_state(self) -> dict[str, Any]:
        return {"center_": self.center_, "scale_": self.scale_, "means_": self.means_, "counts_": self.counts_,
                "scatter_": self.scatter_, "n_samples_": self.n_samples_}

    @classmethod
    def check_state(cls, state: dict[str, Any]) -> None:
        """Centroids (k, d), member counts (k,) and scatter matrices (k, d, d), d from ``center_``."""
        n_features = check_standardisation(state, cls.family)
        means = array(state, "means_", cls.family, 2)
        k = len(means)
        expect_shape(means, "means_", (k, n_features), cls.family,
                     f"one row of {n_features} features of center_ per cluster")
        counts = array(state, "counts_", cls.family, 1)
        expect_shape(counts, "counts_", (k,), cls.family, f"one per cluster of means_ {means.shape}")
        if not np.isfinite(counts).all() or (counts < 0).any():
            raise ValueError(f"{cls.family} detector: counts_ holds a negative or non-finite count")
        scatter = array(state, "scatter_", cls.family, 3)
        expect_shape(scatter, "scatter_", (k, n_features, n_features), cls.family,
                     f"one scatter matrix per cluster of means_ {means.shape}")
        if not np.isfinite(means).all():
            raise ValueError(f"{cls.family} detector: means_ holds a non-finite value")
        # the covariances scoring whitens with: the scatter shrunk towards unit variance
        prior = n_features + 1.0
        check_covariances((scatter + prior * np.eye(n_features)) / (counts + prior)[:, None, None],
                          "scatter_", cls.family)
        check_scalars(state, cls.family, "n_samples_")

    def _set_state(self, state: dict[str, Any]) -> None:
        self.center_ = np.asarray(state["center_"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale_"], dtype=np.float64)
        self.n_features_in_ = len(self.center_)
        self.n_samples_ = float(state["n_samples_"])
        self._set_clusters(state["means_"], state["counts_"], state["scatter_"])


def _fit_clusters(detectors: Sequence[KMeansDetector], samples: Sequence[np.ndarray]) -> None:
    """Canopies per sample (one compiled pass per canopy), then every sample's Lloyd run in one compiled batch."""
    starts = [detector._canopy_start(X) for detector, X in zip(detectors, samples)]
    fits = lloyd_many([Z for Z, _ in starts], [init for _, init in starts])
    for detector, fit in zip(detectors, fits):
        detector._set_clusters(fit.centres, fit.counts, fit.scatter)


def _to_units(detector: KMeansDetector, center: np.ndarray, scale: np.ndarray):
    """A detector's cluster statistics re-expressed in another standardisation."""
    ratio = detector.scale_ / scale
    means = (detector.center_ + detector.means_ * detector.scale_ - center) / scale
    scatter = detector.scatter_ * np.outer(ratio, ratio)
    return means, detector.counts_, scatter
