"""The ensemble: several detector families voting on the same observations."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from .base import Detector, check_features
from .dpmm import DPMMDetector
from .gmm import GMMDetector
from .iforest import IForestDetector
from .kmeans import KMeansDetector

FAMILIES: dict[str, type[Detector]] = {
    "gmm": GMMDetector,
    "kmeans": KMeansDetector,
    "dpmm": DPMMDetector,
    "iforest": IForestDetector,
}
DEFAULT_DETECTORS = ("gmm", "kmeans", "dpmm", "iforest")


def check_detector_names(names: Sequence[str] | str) -> tuple[str, ...]:
    """Validate detector family names (a sequence or a comma-separated string)."""
    from ..errors import GeoanomError

    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    names = tuple(names)
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        raise GeoanomError(
            f"unknown detector {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known detectors: {', '.join(FAMILIES)}."
        )
    return names


class Ensemble(BaseEstimator):
    """Detector families fitted on the same observations, with a majority vote.

    Parameters
    ----------
    detectors : sequence of str, default ("gmm", "kmeans", "dpmm", "iforest")
        Family names, see ``FAMILIES``.
    random_state : int, optional
        Seed passed to every family.

    Attributes
    ----------
    detectors_ : dict of str to Detector
        The fitted families, in the order given.
    """

    def __init__(self, detectors: Sequence[str] = DEFAULT_DETECTORS, random_state: int | None = None):
        self.detectors = detectors
        self.random_state = random_state

    @property
    def names(self) -> tuple[str, ...]:
        """Family names, in the order of the first axis of :meth:`irregularity`."""
        return tuple(self.detectors_)

    def fit(self, X: Any, y: Any = None) -> "Ensemble":
        """Fit every family on ``X`` (n_samples, n_features)."""
        X = check_features(X)
        self.detectors_ = {
            name: FAMILIES[name](random_state=self.random_state).fit(X)
            for name in check_detector_names(self.detectors)
        }
        return self

    @classmethod
    def fit_many(
        cls, samples: Sequence[Any], detectors: Sequence[str] = DEFAULT_DETECTORS,
        random_states: Sequence[int | None] | None = None,
    ) -> list["Ensemble"]:
        """Fit one ensemble per sample (per tile), letting each family batch its work."""
        names = check_detector_names(detectors)
        samples = [check_features(X) for X in samples]
        seeds = list(random_states) if random_states is not None else [None] * len(samples)
        fitted = {name: FAMILIES[name].fit_many(samples, seeds) for name in names}
        ensembles = []
        for i, seed in enumerate(seeds):
            ensemble = cls(detectors=names, random_state=seed)
            ensemble.detectors_ = {name: fitted[name][i] for name in names}
            ensembles.append(ensemble)
        return ensembles

    def irregularity(self, X: Any) -> np.ndarray:
        """Irregularity of each family, shape (n_detectors, n_samples); > 1 is anomalous."""
        X = check_features(X)
        return np.stack([detector.irregularity(X) for detector in self.detectors_.values()])

    def irregularity_adapting(self, X: Any, adapt_every: int = 100) -> np.ndarray:
        """Irregularity in row order, each adaptive family absorbing every batch it scored.

        See :meth:`Detector.irregularity_adapting`; families that do not adapt
        (``adapts = False``) score with their trained model.
        """
        X = check_features(X)
        out = np.empty((len(self.detectors_), len(X)))
        for start in range(0, len(X), adapt_every):
            batch = X[start : start + adapt_every]
            out[:, start : start + adapt_every] = self.irregularity(batch)
            for detector in self.detectors_.values():
                if detector.adapts:
                    detector.update(batch)
        return out

    def flags(self, X: Any) -> np.ndarray:
        """Per-family anomaly flags, shape (n_detectors, n_samples)."""
        return self.irregularity(X) > 1.0

    def votes(self, X: Any) -> np.ndarray:
        """How many families call each observation anomalous."""
        return self.flags(X).sum(axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """Majority flag: 1 where more than half of the families say anomalous."""
        return majority(self.votes(X), len(self.detectors_)).astype(np.int8)

    def fused_irregularity(self, X: Any) -> np.ndarray:
        """One score per observation: the geometric mean of the families' irregularities (see :func:`fuse`)."""
        return fuse(self.irregularity(X))

    def merge(self, other: "Ensemble") -> "Ensemble":
        """Merge two partial ensembles of the same tile, family by family."""
        merged = Ensemble(**self.get_params())
        merged.detectors_ = {name: self.detectors_[name].merge(other.detectors_[name]) for name in self.detectors_}
        return merged

    def to_dict(self) -> dict[str, Any]:
        """The ensemble as plain data: one :meth:`Detector.to_dict` per family."""
        return {"detectors": {name: detector.to_dict() for name, detector in self.detectors_.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Ensemble":
        """Rebuild a fitted ensemble from :meth:`to_dict` output."""
        parts = data["detectors"]
        ensemble = cls(detectors=tuple(parts))
        ensemble.detectors_ = {name: FAMILIES[part["family"]].from_dict(part) for name, part in parts.items()}
        return ensemble


def majority(votes: Any, n_detectors: int) -> Any:
    """Strict majority of ``n_detectors`` (both of two, two of three, ...)."""
    return votes * 2 > n_detectors


# Irregularities below this floor (normal observations, some negative) count
# as the floor in the geometric mean, so one family cannot veto with a 0.
FUSE_FLOOR = 0.01


def fuse(irregularity: Any, axis: int = 0) -> Any:
    """Fused irregularity over the detector ``axis``: the geometric mean.

    Families grow at different rates past their thresholds (the density
    score is roughly cubic in the distance), so the geometric mean, not the
    arithmetic one, keeps any single family from dominating; it exceeds 1
    exactly when the families' log-irregularities average above 0. Values
    below ``FUSE_FLOOR`` are raised to it first.
    """
    return np.exp(np.log(np.maximum(irregularity, FUSE_FLOOR)).mean(axis=axis))
