"""Density family: a Gaussian mixture fitted by EM, scored by the paper's fitness rule."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from scipy.linalg import solve_triangular
from scipy.special import logsumexp
from sklearn.mixture import GaussianMixture

from .base import Detector, check_features, merged_threshold

# |llk_model| is floored so that a model whose mean log-likelihood is close to
# zero (a tight, nearly singular cloud) does not blow the fitness score up.
MIN_MODEL_LLK = 1.0


class GMMDetector(Detector):
    """Gaussian mixture detector (the reference paper's density family).

    The mixture is fitted by EM (scikit-learn) on standardised features, with
    the number of components chosen by BIC among ``n_components``. The native
    score of an observation is the paper's fitness rule::

        f = (llk_obs - llk_model) / max(|llk_model|, 1)
        score = f * X_dist

    where ``llk_model`` is the mean training log-likelihood and ``X_dist`` the
    normalised Euclidean distance to the assigned component's mean. An
    observation is anomalous when ``score < threshold_`` (-1 by default).

    Parameters
    ----------
    n_components : sequence of int, default (1, 2, 3)
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
    random_state : int, optional
        Seed for EM's initialisation.
    """

    family = "gmm"
    paper_threshold = -1.0
    anomalous_above = False

    def __init__(
        self,
        n_components: Sequence[int] = (1, 2, 3),
        threshold: float | None = None,
        contamination: float = 0.01,
        max_iter: int = 200,
        reg_covar: float = 1e-4,
        random_state: int | None = None,
    ):
        self.n_components = n_components
        self.threshold = threshold
        self.contamination = contamination
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.random_state = random_state

    # -- fitting --------------------------------------------------------------
    def _fit(self, X: np.ndarray) -> None:
        self.center_ = X.mean(axis=0)
        scale = X.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        Z = (X - self.center_) / self.scale_
        candidates = [k for k in self.n_components if k <= len(Z)] or [1]
        mixtures = [
            GaussianMixture(
                k,
                covariance_type="full",
                max_iter=self.max_iter,
                reg_covar=self.reg_covar,
                random_state=self.random_state,
            ).fit(Z)
            for k in candidates
        ]
        best = min(mixtures, key=lambda mixture: mixture.bic(Z))
        self.n_samples_ = float(len(X))
        self._set_components(best.weights_, best.means_, best.covariances_)
        self.model_llk_ = float(np.mean(self._log_likelihood(Z)[0]))

    def _set_components(self, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray) -> None:
        self.weights_ = np.asarray(weights, dtype=np.float64)
        self.means_ = np.asarray(means, dtype=np.float64)
        self.covariances_ = np.asarray(covariances, dtype=np.float64)
        # Cholesky factors of the precisions, as scikit-learn computes them.
        eye = np.eye(self.means_.shape[1])
        self._precision_chol = np.stack(
            [solve_triangular(np.linalg.cholesky(cov), eye, lower=True).T for cov in self.covariances_]
        )
        self._component_std = np.sqrt(np.einsum("kii->ki", self.covariances_))

    # -- scoring --------------------------------------------------------------
    def _log_likelihood(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-observation log-likelihood and assigned component.

        Written out (rather than GaussianMixture.score_samples + predict) so one
        pass over the data yields both, and so a model loaded from plain data
        needs no scikit-learn object.
        """
        n_features = Z.shape[1]
        projected = np.einsum("nd,kde->nke", Z, self._precision_chol)
        projected -= np.einsum("kd,kde->ke", self.means_, self._precision_chol)[None]
        log_det = np.log(np.einsum("kii->ki", self._precision_chol)).sum(axis=1)
        log_prob = -0.5 * (n_features * np.log(2 * np.pi) + np.square(projected).sum(axis=2)) + log_det
        weighted = log_prob + np.log(self.weights_)
        return logsumexp(weighted, axis=1), np.argmax(weighted, axis=1)

    def decision_function(self, X: Any) -> np.ndarray:
        """The fitness score f x X_dist (anomalous below the threshold, -1 by default)."""
        Z = (check_features(X, len(self.center_)) - self.center_) / self.scale_
        llk, assigned = self._log_likelihood(Z)
        fitness = (llk - self.model_llk_) / max(abs(self.model_llk_), MIN_MODEL_LLK)
        distance = np.sqrt(
            np.square((Z - self.means_[assigned]) / self._component_std[assigned]).sum(axis=1)
        )
        return fitness * distance

    # -- merging --------------------------------------------------------------
    def merge(self, other: "GMMDetector") -> "GMMDetector":
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
        merged = GMMDetector(**self.get_params())
        total_mean = weights @ means
        spread = np.einsum("k,kd->d", weights, np.square(means - total_mean)) + np.einsum("k,kii->i", weights, covs)
        merged.center_ = total_mean
        merged.scale_ = np.where(spread > 0, np.sqrt(spread), 1.0)
        merged.n_samples_ = self.n_samples_ + other.n_samples_
        merged._set_components(
            weights,
            (means - merged.center_) / merged.scale_,
            covs / np.outer(merged.scale_, merged.scale_),
        )
        share = self.n_samples_ / merged.n_samples_
        merged.model_llk_ = share * self.model_llk_ + (1 - share) * other.model_llk_
        merged.threshold_, merged.threshold_source_ = merged_threshold(
            self, other, self.n_samples_, other.n_samples_
        )
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

    def _set_state(self, state: dict[str, Any]) -> None:
        self.center_ = np.asarray(state["center_"], dtype=np.float64)
        self.scale_ = np.asarray(state["scale_"], dtype=np.float64)
        self.model_llk_ = float(state["model_llk_"])
        self.n_samples_ = float(state["n_samples_"])
        self._set_components(state["weights_"], state["means_"], state["covariances_"])


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
