"""Bayesian family: a Dirichlet-process mixture, scored like the density family."""

from __future__ import annotations

import warnings
from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture
from sklearn.utils._param_validation import Interval

from .base import (
    CONTAMINATION_CONSTRAINT,
    SEED_CONSTRAINT,
    THRESHOLD_CONSTRAINT,
    Detector,
    standardised_sample,
)
from .gmm import GMMDetector

# A component whose weight is below this share of the data is "near-empty":
# the process keeps spare components alive with almost no mass.
NEAR_EMPTY_WEIGHT = 0.01


class DPMMDetector(GMMDetector):
    """Dirichlet-process mixture detector (the reference paper's Bayesian family).

    scikit-learn's ``BayesianGaussianMixture`` with a Dirichlet-process prior
    (concentration 0.01 by default, as in the paper) decides how many of up
    to ``max_components`` components the data support. Scoring is the
    density family's fitness rule (see :class:`GMMDetector`), except that an
    observation's distance term is measured to the nearest *populated*
    component: one that falls in a near-empty component (weight below 1%, or
    fewer than two points per feature) is far from every populated one, and
    so counts as suspect.

    Parameters
    ----------
    concentration : float, default 0.01
        The Dirichlet process's concentration (alpha).
    max_components : int, default 6
        Truncation level of the process.
    threshold, contamination, max_iter, reg_covar, max_samples, random_state
        As for :class:`GMMDetector`.

    ``merge``, ``sufficient_statistics`` and ``m_step`` are the density
    family's (a merged process is a finite mixture).
    """

    family = "dpmm"
    _parameter_constraints: ClassVar[dict] = {
        "threshold": THRESHOLD_CONSTRAINT,
        "contamination": CONTAMINATION_CONSTRAINT,
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "reg_covar": [Interval(Real, 0, None, closed="left")],
        "max_samples": [Interval(Integral, 2, None, closed="left")],
        "random_state": SEED_CONSTRAINT,
        "concentration": [Interval(Real, 0, None, closed="neither")],
        "max_components": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(
        self,
        concentration: float = 0.01,
        max_components: int = 6,
        threshold: float | None = None,
        contamination: float = 0.01,
        max_iter: int = 200,
        reg_covar: float = 1e-4,
        max_samples: int = 2048,
        random_state: int | None = None,
    ):
        # Parameters only (scikit-learn's rule): the truncation is read from
        # max_components at fit time, so set_params(max_components=3) holds.
        self.concentration = concentration
        self.max_components = max_components
        self.threshold = threshold
        self.contamination = contamination
        self.max_iter = max_iter
        self.reg_covar = reg_covar
        self.max_samples = max_samples
        self.random_state = random_state

    # One variational fit per sample (scikit-learn has no batched form): the
    # base class's loop, not the density family's batched EM.
    fit_many = classmethod(Detector.fit_many.__func__)

    def _fit(self, X: np.ndarray) -> None:
        Z = standardised_sample(self, X, self.max_samples, np.random.default_rng(self.random_state))
        with warnings.catch_warnings():
            # a variational fit stopped at max_iter is still usable; converged_ records it
            warnings.simplefilter("ignore", ConvergenceWarning)
            mixture = self._variational_fit(Z)
        self.converged_ = bool(mixture.converged_)
        self._set_components(mixture.weights_, mixture.means_, mixture.covariances_)
        self.model_llk_ = float(np.mean(self._log_likelihood(Z)[0]))

    def _variational_fit(self, Z: np.ndarray) -> BayesianGaussianMixture:
        return BayesianGaussianMixture(
            n_components=min(self.max_components, len(Z)),
            covariance_type="full",
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=self.concentration,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            # scikit-learn's variational bound is a sum over observations, not a
            # mean as for GaussianMixture: scale the tolerance to match.
            tol=1e-3 * len(Z),
            random_state=self.random_state,
        ).fit(Z)

    def _assign(self, weighted: np.ndarray, mahalanobis: np.ndarray, n_features: int) -> np.ndarray:
        """Component of each observation: the nearest populated one (Mahalanobis)."""
        # near-empty: under 1% of the data, or too few points to span the features twice
        minimum = max(NEAR_EMPTY_WEIGHT, 2.0 * n_features / max(self.n_samples_, 1.0))
        populated = self.weights_ >= minimum
        if not populated.any():
            populated = self.weights_ == self.weights_.max()
        return np.argmin(np.where(populated[:, None], mahalanobis, np.inf), axis=0)
