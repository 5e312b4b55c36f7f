"""Bayesian family: a Dirichlet-process mixture, scored like the density family."""

from __future__ import annotations

from numbers import Integral, Real
from typing import ClassVar

import numpy as np
from sklearn.utils._param_validation import Interval

from .base import (
    CONTAMINATION_CONSTRAINT,
    SEED_CONSTRAINT,
    THRESHOLD_CONSTRAINT,
)
from .gmm import GMMDetector
from .inputs import standardised_sample
from .variational import fit_dirichlet_mixtures

# A component whose weight is below this share of the data is "near-empty":
# the process keeps spare components alive with almost no mass.
NEAR_EMPTY_WEIGHT = 0.01


class DPMMDetector(GMMDetector):
    """Dirichlet-process mixture detector (the reference paper's Bayesian family).

    A variational Dirichlet-process mixture (concentration 0.01 by default,
    as in the paper) decides how many of up to ``max_components``
    components the data support: scikit-learn's ``BayesianGaussianMixture``
    algorithm, batched over many tiles (:mod:`.variational`). Scoring is the
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

    def _fit(self, X: np.ndarray) -> None:
        _fit_standardised_many([self], [X])

    @classmethod
    def fit_many(cls, samples, random_states, **params) -> list[DPMMDetector]:
        """Fit one Dirichlet-process mixture per sample in a single batched variational loop.

        The same computation as :meth:`fit` on each sample (see
        :mod:`.variational`): a tile's mixture does not depend on its batch.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> len(DPMMDetector.fit_many([rng.normal(size=(50, 2)), rng.normal(size=(60, 2))], [0, 1]))
        2
        """
        detectors, samples = cls._prepare_many(samples, random_states, params)
        _fit_standardised_many(detectors, samples)
        for detector, X in zip(detectors, samples):
            detector._set_threshold(detector._native_score(X))
        return detectors

    def _allowed(self) -> np.ndarray:
        """The populated components: an observation is assigned the nearest of them (Mahalanobis)."""
        # near-empty: under 1% of the data, or too few points to span the features twice
        minimum = max(NEAR_EMPTY_WEIGHT, 2.0 * self.n_features_in_ / max(self.n_samples_, 1.0))
        populated = self.weights_ >= minimum
        if not populated.any():
            populated = self.weights_ == self.weights_.max()
        return populated


def _fit_standardised_many(detectors: list[DPMMDetector], samples: list[np.ndarray]) -> None:
    """Standardise each sample and fit every detector's process in one batched variational fit."""
    if not detectors:
        return
    standardised = []
    for detector, X in zip(detectors, samples):
        rng = np.random.default_rng(detector.random_state)
        standardised.append(standardised_sample(detector, X, detector.max_samples, rng))
    first = detectors[0]
    fits = fit_dirichlet_mixtures(
        standardised,
        # the k-means seeding draws from RandomState(seed), as scikit-learn's random_state does
        [detector.random_state for detector in detectors],
        first.max_components,
        concentration=first.concentration,
        reg_covar=first.reg_covar,
        max_iter=first.max_iter,
        # the variational bound is a sum over observations: tol is per observation
        tol=1e-3,
    )
    for detector, Z, fit in zip(detectors, standardised, fits):
        # a fit stopped at max_iter is still usable; converged_ records it
        detector.converged_ = fit.converged
        detector._set_components(fit.weights, fit.means, fit.covariances)
        detector.model_llk_ = float(np.mean(detector._log_likelihood(Z)[0]))
