"""Density family: a Gaussian mixture fitted by EM, scored by the paper's fitness rule."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from .base import (
    CONTAMINATION_CONSTRAINT,
    SEED_CONSTRAINT,
    THRESHOLD_CONSTRAINT,
    Detector,
)
from .inputs import standardised_sample
from .mixture import fit_mixtures
from .mixture_scoring import fitness_scores
from .moments import (
    SufficientStatistics,
    add_rows,
    in_units_of,
    map_shrink,
    nearest_prior,
    whitening,
)
from .thresholds import merged_threshold
from .validation import check_mixture


class GMMDetector(Detector):
    """Gaussian mixture detector (the reference paper's density family).

    The mixture is fitted by EM on standardised features, with the number of
    components chosen by BIC among ``n_components``; many tiles are fitted in
    one batched EM (:func:`geoanom.detectors.mixture.fit_mixtures`). The native
    score of an observation is the paper's fitness rule::

        f = (llk_obs - llk_model) / max(|llk_model|, 1)
        score = f * X_dist

    where ``llk_model`` is the mean training log-likelihood and ``X_dist`` the
    normalised Euclidean distance to the assigned component's mean. An
    observation is anomalous when ``score < native_threshold_`` (-1 by
    default), that is when ``decision_function(X) > 1``.

    Parameters
    ----------
    n_components : int or sequence of int, default (1, 2, 3)
        Candidate numbers of components; the one with the lowest BIC is kept.
    threshold : float, optional
        A fixed threshold on the native score. By default the paper's -1 is
        used when plausible for the training data, else one is estimated.
    contamination : float, default 0.01
        Expected share of anomalies in training data: the paper's threshold
        is kept when it flags between a tenth and twice this share of the
        training data, otherwise the threshold flags exactly this share.
    max_iter : int, default 200
        Maximum EM iterations.
    reg_covar : float, default 1e-4
        Added to the covariance diagonals (in standardised units).
    max_samples : int, default 2048
        EM runs on a random subsample of at most this many observations (a
        mixture of a few components is well determined by it); the
        standardisation and the threshold use every observation.
    random_state : int, optional
        Accepted for the common contract; EM's initialisation (a split along
        the first principal axis) is deterministic and needs no seed.
    """

    family = "gmm"
    paper_threshold = -1.0
    anomalous_above = False
    _parameter_constraints: ClassVar[dict] = {
        "n_components": ["array-like", Interval(Integral, 1, None, closed="left")],
        "threshold": THRESHOLD_CONSTRAINT,
        "contamination": CONTAMINATION_CONSTRAINT,
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
        "max_samples": [Interval(Integral, 2, None, closed="left")],
        "random_state": SEED_CONSTRAINT,
    }

    def __init__(
        self,
        n_components: int | Sequence[int] = (1, 2, 3),
        threshold: float | None = None,
        contamination: float = 0.01,
        max_iter: int = 200,
        reg_covar: float = 1e-4,
        max_samples: int = 2048,
        random_state: int | None = None,
    ):
        self.n_components = n_components
        self.threshold = threshold
        self.contamination = contamination
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.max_samples = max_samples
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        _fit_standardised_many([self], [X])

    @classmethod
    def fit_many(cls, samples, random_states, **params) -> list[GMMDetector]:
        """Fit one mixture per sample in a single batched EM (see :mod:`.mixture`).

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> len(GMMDetector.fit_many([rng.normal(size=(50, 2)), rng.normal(size=(60, 2))], [0, 1]))
        2
        """
        detectors, samples = cls._prepare_many(samples, random_states, params)
        _fit_standardised_many(detectors, samples)
        for detector, X in zip(detectors, samples):
            detector._set_threshold(detector._native_score(X))
        return detectors

    def _set_components(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> None:
        self.weights_ = np.asarray(weights, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.covariances_ = np.asarray(covariances, dtype=np.float64)
        # Cholesky factors of the precisions, as scikit-learn computes them (L^-T of the covariances' factors).
        self._precision_chol = np.swapaxes(whitening(self.covariances_), 1, 2)
        self._component_std = np.sqrt(np.einsum("kii->ki", self.covariances_))

    # -- scoring --------------------------------------------------------------
    def _weighted_log_prob(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log(weight_k N(z | k)) and the squared Mahalanobis distances, both (k, n), of standardised rows.

        Written out (rather than GaussianMixture.score_samples + predict) so one
        pass over the data yields the likelihood, the assignment and the
        responsibilities, and so a model loaded from plain data needs no
        scikit-learn object.
        """
        n_features = Z.shape[1]
        projected = Z[None] @ self._precision_chol - (self.means_[:, None, :] @ self._precision_chol)  # (k, n, d)
        log_det = np.log(np.einsum("kii->ki", self._precision_chol)).sum(axis=1)
        constant = np.log(self.weights_) + log_det - 0.5 * n_features * np.log(2 * np.pi)
        mahalanobis = np.einsum("knd,knd->kn", projected, projected)
        return constant[:, None] - 0.5 * mahalanobis, mahalanobis

    def _log_likelihood(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-observation log-likelihood and assigned component of standardised rows."""
        weighted, mahalanobis = self._weighted_log_prob(Z)
        peak = weighted.max(axis=0)
        llk = peak + np.log(np.exp(weighted - peak).sum(axis=0))
        return llk, self._assign(weighted, mahalanobis, Z.shape[1])

    def _assign(self, weighted: np.ndarray, mahalanobis: np.ndarray, n_features: int) -> np.ndarray:
        """Component of each observation: the most probable one, or the nearest allowed (see `_allowed`)."""
        allowed = self._allowed()
        if allowed is None:
            return np.argmax(weighted, axis=0)
        return np.argmin(np.where(allowed[:, None], mahalanobis, np.inf), axis=0)

    def _allowed(self) -> np.ndarray | None:
        """Components an observation may be assigned to by distance; None: assign the most probable one."""
        return None

    def _native_score(self, X: np.ndarray) -> np.ndarray:
        """The fitness score f x X_dist (anomalous below the native threshold, -1 by default)."""
        log_det = np.log(np.einsum("kii->ki", self._precision_chol)).sum(axis=1)
        log_constant = np.log(self.weights_) + log_det - 0.5 * X.shape[1] * np.log(2 * np.pi)
        return fitness_scores(X, self.center_, self.scale_, self._precision_chol, self.means_, log_constant,
                              self._component_std, self._allowed(), self.model_llk_)

    # -- adaptation -------------------------------------------------------------
    def update(self, X: Any) -> GMMDetector:
        """Absorb observations: each moves its component's count, mean and covariance.

        The paper's running mean and covariance (equations 4-6), applied to a
        batch at once with the exact parallel form, so the result is the same
        as one observation at a time. Weights follow the counts.
        """
        Z = (self._rows(X) - self.center_) / self.scale_
        _, assigned = self._log_likelihood(Z)
        counts = self.weights_ * self.n_samples_
        means, covariances = self.means_.copy(), self.covariances_.copy()
        for k in np.unique(assigned):
            count, means[k], scatter = add_rows(counts[k], means[k], covariances[k] * counts[k], Z[assigned == k])
            counts[k], covariances[k] = count, scatter / count
        self.n_samples_ += len(Z)
        self._set_components(counts / counts.sum(), means, covariances)
        return self

    # -- federation and adaptation -------------------------------------------
    def sufficient_statistics(self, X: Any, weight: float = 1.0) -> SufficientStatistics:
        """The E-step on ``X``: responsibility-weighted counts, sums and outer products, and the log-likelihood.

        In this model's standardised units; each row counts ``weight`` times
        (a sample standing for more observations). Statistics of disjoint
        sets add up, so a federation sums them and calls :meth:`m_step`.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> detector = GMMDetector().fit(X)
        >>> float(detector.sufficient_statistics(X).counts.sum())
        300.0
        """
        Z = (self._rows(X) - self.center_) / self.scale_
        weighted, _ = self._weighted_log_prob(Z)
        peak = weighted.max(axis=0)
        shifted = np.exp(weighted - peak)  # one exp for the likelihood and the responsibilities
        density = shifted.sum(axis=0)
        llk = peak + np.log(density)
        responsibility = shifted / density * weight  # (k, n)
        return SufficientStatistics(
            responsibility.sum(axis=1), responsibility @ Z,
            np.einsum("kn,nd,ne->kde", responsibility, Z, Z, optimize=True),
            float(llk.sum() * weight), float(len(Z) * weight))

    def m_step(self, statistics: SufficientStatistics) -> GMMDetector:
        """EM's M-step from (summed) sufficient statistics, in place; returns self.

        Components with no mass are dropped. The reference log-likelihood
        becomes the statistics' mean; the threshold is kept (see
        :meth:`renew_threshold`).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> detector = GMMDetector().fit(X)
        >>> detector.m_step(detector.sufficient_statistics(X)).n_samples_
        300.0
        """
        counts, means, squares = statistics.kept()
        eye = np.eye(means.shape[1])
        covariances = squares / counts[:, None, None] - np.einsum("kd,ke->kde", means, means) + self.reg_covar * eye
        self._set_components(counts / counts.sum(), means, covariances)
        self.model_llk_ = statistics.llk_sum / statistics.total
        self.n_samples_ = statistics.total
        return self

    def adapt_towards(self, region: GMMDetector, X: Any, n_observations: float,
                      relevance: float = 16.0) -> GMMDetector:
        """A copy whose components are MAP-adapted towards a region's mixture (see :mod:`.moments`).

        Each component is shrunk towards the region component most likely to
        have produced its mean, with ``alpha = n_k / (n_k + relevance)`` where
        n_k is its share of ``n_observations``. The copy keeps its own
        components and weights; its reference likelihood and threshold are
        renewed on the sample ``X``. This detector is not changed.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> tile = GMMDetector().fit(X)
        >>> bool(np.allclose(tile.adapt_towards(tile, X, 300).means_, tile.means_))
        True
        """
        prior_means, prior_covariances = in_units_of(self.center_, self.scale_, region.center_, region.scale_,
                                                     region.means_, region.covariances_)
        nearest = nearest_prior(self.means_, prior_means, prior_covariances, region.weights_)
        means, covariances = map_shrink(self.weights_ * n_observations, self.means_, self.covariances_,
                                        prior_means[nearest], prior_covariances[nearest], relevance)
        adapted = type(self).from_dict(self.to_dict())
        # both covariances already hold the EM's reg_covar: so does their mixture
        adapted._set_components(self.weights_, means, covariances)
        X = adapted._rows(X)
        llk, _ = adapted._log_likelihood((X - adapted.center_) / adapted.scale_)
        adapted.model_llk_ = float(llk.mean())
        adapted._set_threshold(adapted._native_score(X))
        return adapted

    # -- merging --------------------------------------------------------------
    def merge(self, other: GMMDetector) -> GMMDetector:
        """Merge two partial mixtures of the same tile.

        The union of both mixtures (weights scaled by sample counts) is reduced
        back to the larger of the two component counts by moment-preserving
        merges of the pair with the least Runnalls cost. Counts, the overall
        mean and covariance are exact; the model log-likelihood and threshold
        are sample-weighted means of the two parts.
        """
        weights, means, covs = _union_in_data_units(self, other)
        target = max(len(self.weights_), len(other.weights_))
        weights, means, covs = _reduce_mixture(weights, means, covs, target)
        merged = type(self)(**self.get_params())
        total_mean = weights @ means
        spread = np.einsum("k,kd->d", weights, np.square(means - total_mean)) + np.einsum("k,kii->i", weights, covs)
        merged.center_ = total_mean
        merged.scale_ = np.where(spread > 0, np.sqrt(spread), 1.0)
        merged.n_features_in_ = len(total_mean)
        merged.n_samples_ = self.n_samples_ + other.n_samples_
        merged._set_components(
            weights,
            (means - merged.center_) / merged.scale_,
            covs / np.outer(merged.scale_, merged.scale_),
        )
        share = self.n_samples_ / merged.n_samples_
        merged.model_llk_ = share * self.model_llk_ + (1 - share) * other.model_llk_
        merged.native_threshold_, merged.threshold_source_ = merged_threshold(
            self, other, self.n_samples_, other.n_samples_
        )
        merged.threshold_ = 1.0
        return merged

    # -- plain data -----------------------------------------------------------
    def _get_state(self) -> dict[str, Any]:
        return {
            "center_": self.center_,
            "scale_": self.scale_,
            "weights_": self.weights_,
            "means_": self.means_,
            "covariances_": self.covariances_,
            "model_llk_": self.model_llk_,
            "n_samples_": self.n_samples_,
        }

    @classmethod
    def check_state(cls, state: dict[str, Any]) -> None:
        """Weights (k,), means (k, d), full covariances (k, d, d) positive definite, d from ``center_``."""
        check_mixture(state, cls.family)

    def _set_state(self, state: dict[str, Any]) -> None:
        self.center_ = np.asarray(state["center_"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale_"], dtype=np.float64)
        self.n_features_in_ = len(self.center_)
        self.model_llk_ = float(state["model_llk_"])
        self.n_samples_ = float(state["n_samples_"])
        self._set_components(state["weights_"], state["means_"], state["covariances_"])


def _fit_standardised_many(detectors: list[GMMDetector], samples: list[np.ndarray]) -> None:
    """Standardise each sample and fit every detector's mixture in one batched EM."""
    standardised = []
    for detector, X in zip(detectors, samples):
        rng = np.random.default_rng(detector.random_state)
        standardised.append(standardised_sample(detector, X, detector.max_samples, rng))
    first = detectors[0]
    candidates = np.atleast_1d(first.n_components).astype(int).tolist()
    fits = fit_mixtures(standardised, candidates, reg_covar=first.reg_covar, max_iter=first.max_iter)
    for detector, fit in zip(detectors, fits):
        detector._set_components(fit.weights, fit.means, fit.covariances)
        detector.model_llk_ = fit.mean_llk


def _union_in_data_units(a: GMMDetector, b: GMMDetector) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Components of both mixtures in the data's own units, weighted by sample count."""
    parts = []
    for detector in (a, b):
        scale = detector.scale_
        parts.append(
            (
                detector.weights_ * detector.n_samples_,
                detector.center_ + detector.means_ * scale,
                detector.covariances_ * np.outer(scale, scale),
            )
        )
    weights = np.concatenate([p[0] for p in parts])
    return weights / weights.sum(), np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def _merge_pair(w1, m1, c1, w2, m2, c2):
    weight = w1 + w2
    mean = (w1 * m1 + w2 * m2) / weight
    diff = m1 - m2
    cov = (w1 * c1 + w2 * c2) / weight + (w1 * w2 / weight**2) * np.outer(diff, diff)
    return weight, mean, cov


def _reduce_mixture(weights, means, covs, target: int):
    """Greedy Runnalls reduction of a Gaussian mixture to ``target`` components."""
    weights, means, covs = list(weights), list(means), list(covs)
    while len(weights) > target:
        best = None
        for i in range(len(weights)):
            for j in range(i + 1, len(weights)):
                w, _, c = _merge_pair(weights[i], means[i], covs[i], weights[j], means[j], covs[j])
                cost = 0.5 * (
                    w * np.linalg.slogdet(c)[1]
                    - weights[i] * np.linalg.slogdet(covs[i])[1]
                    - weights[j] * np.linalg.slogdet(covs[j])[1]
                )
                if best is None or cost < best[0]:
                    best = (cost, i, j)
        _, i, j = best
        merged = _merge_pair(weights[i], means[i], covs[i], weights[j], means[j], covs[j])
        for index in (j, i):
            del weights[index], means[index], covs[index]
        weights.append(merged[0]), means.append(merged[1]), covs.append(merged[2])
    return np.array(weights), np.array(means), np.array(covs)
