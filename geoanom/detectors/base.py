"""The contract every detector family follows, and how thresholds are chosen.

A detector is fitted on one tile's observations and decides without a
user-set threshold. It exposes, in the manner of scikit-learn:

* ``decision_function(X)``: the family's native score;
* ``irregularity(X)``: the native score rescaled so that 1.0 is the family's
  threshold, so an observation is anomalous exactly when irregularity > 1;
* ``predict(X)``: 1 for anomalous, 0 for normal;
* ``merge(other)``: combine two partial models of the same tile;
* ``to_dict()`` / ``from_dict()``: the model as plain data (arrays and JSON
  scalars), never pickle.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import numpy as np
from sklearn.base import BaseEstimator

# The paper's constant is kept when it flags between these multiples of the
# expected contamination of the training data.
PLAUSIBLE_RATE_FACTORS = (0.1, 2.0)


def check_features(X: Any, n_features: int | None = None) -> np.ndarray:
    """Return ``X`` as a 2-D float64 array of shape (n_samples, n_features)."""
    array = np.asarray(X, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D feature array, got shape {array.shape}")
    if n_features is not None and array.shape[1] != n_features:
        raise ValueError(f"expected {n_features} features, got {array.shape[1]}")
    return array


def standardised_sample(
    detector: "Detector", X: np.ndarray, max_samples: int, rng: np.random.Generator
) -> np.ndarray:
    """Set the detector's ``center_``, ``scale_`` and ``n_samples_`` from all of ``X``.

    Returns ``X`` standardised, subsampled uniformly to at most ``max_samples``
    rows (in their original order) for the iterative fit.
    """
    detector.center_ = X.mean(axis=0)
    scale = X.std(axis=0)
    detector.scale_ = np.where(scale > 0, scale, 1.0)
    detector.n_samples_ = float(len(X))
    if len(X) > max_samples:
        X = X[np.sort(rng.choice(len(X), max_samples, replace=False))]
    return (X - detector.center_) / detector.scale_


def contamination_quantile(scores: np.ndarray, contamination: float, anomalous_above: bool) -> float:
    """The score that flags a share ``contamination`` of ``scores``."""
    return float(np.quantile(scores, 1.0 - contamination if anomalous_above else contamination))


def choose_threshold(
    train_scores: np.ndarray,
    constant: float,
    *,
    anomalous_above: bool,
    contamination: float,
) -> tuple[float, str]:
    """Pick the family's constant threshold, or estimate one when it is implausible.

    The constant (the reference paper's -1, 4 or 0.6) is kept when the share
    of training observations it flags lies between a tenth and twice the
    expected ``contamination``: a constant that flags far more is too
    lenient for these data (a false-alarm factory), one that flags far less
    is blind to them (an isolation forest at 0.6 on some data sets).
    Otherwise the threshold is the training scores' quantile that flags the
    share ``contamination`` (the paper's "contamination estimate"); a
    quantile ignores the scale and the skew of the score, which differ
    between families and tiles.

    Returns
    -------
    threshold : float
    source : {"paper", "estimated"}
    """
    flagged = train_scores > constant if anomalous_above else train_scores < constant
    low, high = (factor * contamination for factor in PLAUSIBLE_RATE_FACTORS)
    if low <= float(np.mean(flagged)) <= high:
        return float(constant), "paper"
    return contamination_quantile(train_scores, contamination, anomalous_above), "estimated"


class Detector(BaseEstimator):
    """Base class of the detector families (see the module docstring).

    Subclasses set ``family``, ``paper_threshold`` and ``anomalous_above`` and
    implement ``_fit``, ``decision_function``, ``merge`` and the state hooks.
    """

    family: ClassVar[str] = ""
    paper_threshold: ClassVar[float] = 0.0
    anomalous_above: ClassVar[bool] = True
    adapts: ClassVar[bool] = True  # implements update()
    contamination: float = 0.01

    def fit(self, X: Any, y: Any = None) -> "Detector":
        """Fit the detector on the training observations ``X`` (n_samples, n_features)."""
        X = check_features(X)
        if len(X) < 2:
            raise ValueError(f"{type(self).__name__} needs at least 2 observations, got {len(X)}")
        self._fit(X)
        self._set_threshold(self.decision_function(X))
        return self

    @classmethod
    def fit_many(cls, samples: Sequence[Any], random_states: Sequence[int | None], **params: Any) -> list["Detector"]:
        """Fit one detector per sample (one per tile); families may batch the work.

        Parameters
        ----------
        samples : sequence of array-like (n_i, n_features)
        random_states : sequence of int or None
            One seed per sample.
        **params
            Constructor parameters shared by every detector.
        """
        return [cls(random_state=seed, **params).fit(X) for X, seed in zip(samples, random_states)]

    def _set_threshold(self, train_scores: np.ndarray) -> None:
        if self.threshold is not None:
            self.threshold_, self.threshold_source_ = float(self.threshold), "user"
        else:
            self.threshold_, self.threshold_source_ = choose_threshold(
                train_scores,
                self.paper_threshold,
                anomalous_above=self.anomalous_above,
                contamination=self.contamination,
            )
        # irregularity = score / threshold needs a threshold of the paper's sign
        if self.threshold_ == 0 or (self.threshold_ > 0) != (self.paper_threshold > 0):
            self.threshold_ = float(np.copysign(1e-9, self.paper_threshold))

    def irregularity(self, X: Any) -> np.ndarray:
        """Degree of irregularity: the native score over the threshold (anomalous when > 1)."""
        return self.decision_function(X) / self.threshold_

    def irregularity_adapting(self, X: Any, adapt_every: int = 100) -> np.ndarray:
        """Irregularity of ``X`` in row order, adapting the model as it goes.

        The reference paper's adaptive algorithm (section 4.2.2): rows are
        scored ``adapt_every`` at a time by the current model, which then
        absorbs them (running counts, means and covariances), so a lasting
        change becomes normal over time. The model is changed in place.
        """
        X = check_features(X)
        out = np.empty(len(X))
        for start in range(0, len(X), adapt_every):
            batch = X[start : start + adapt_every]
            out[start : start + adapt_every] = self.irregularity(batch)
            self.update(batch)
        return out

    def update(self, X: Any) -> "Detector":
        """Absorb new observations into the model (adaptation); thresholds are kept."""
        raise NotImplementedError(f"{type(self).__name__} does not adapt")

    def predict(self, X: Any) -> np.ndarray:
        """1 where an observation is anomalous, 0 where it is normal."""
        return (self.irregularity(X) > 1.0).astype(np.int8)

    # -- plain-data persistence ---------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain data: ``{"family", "params", "state"}``.

        ``params`` holds JSON scalars, ``state`` numpy arrays and scalars.
        """
        state = self._get_state()
        state.update(threshold_=self.threshold_, threshold_source_=self.threshold_source_)
        return {"family": self.family, "params": _json_params(self.get_params()), "state": state}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Detector":
        """Rebuild a fitted detector from :meth:`to_dict` output."""
        detector = cls(**data["params"])
        state = dict(data["state"])
        detector.threshold_ = float(state.pop("threshold_"))
        detector.threshold_source_ = str(state.pop("threshold_source_"))
        detector._set_state(state)
        return detector

    def _get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def decision_function(self, X: Any) -> np.ndarray:  # pragma: no cover - abstract
        """The family's native anomaly score."""
        raise NotImplementedError

    def merge(self, other: "Detector") -> "Detector":  # pragma: no cover - abstract
        """Combine two partial models of the same tile into one."""
        raise NotImplementedError


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON-able values (tuples become lists, numpy scalars Python ones)."""
    out = {}
    for name, value in params.items():
        if isinstance(value, tuple):
            value = list(value)
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, np.random.RandomState):
            value = None
        out[name] = value
    return out


def merged_threshold(a: Detector, b: Detector, merged_count_a: float, merged_count_b: float) -> tuple[float, str]:
    """Sample-weighted threshold of two partial models (used by ``merge``)."""
    total = merged_count_a + merged_count_b
    threshold = (a.threshold_ * merged_count_a + b.threshold_ * merged_count_b) / total
    source = a.threshold_source_ if a.threshold_source_ == b.threshold_source_ else "estimated"
    return float(threshold), source
