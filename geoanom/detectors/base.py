"""The contract every detector family follows, and how thresholds are chosen.

A detector is fitted on one tile's observations and decides without a
user-set threshold. It is a scikit-learn estimator (``check_estimator``
passes, see tests/test_sklearn_contract.py) with pyod's outputs.

One direction for every family
------------------------------
* ``decision_function(X)``: pyod's convention, **higher = more abnormal**.
  It is the irregularity: the family's native score over its threshold, so
  that 1.0 is the threshold of every family and an observation is anomalous
  exactly when ``decision_function(X) > 1``. ``irregularity(X)`` is the same
  values (the name the package uses; it skips scikit-learn's feature-name
  checks, being called once per batch of rows).
* ``score_samples(X)``: scikit-learn's convention, higher = more normal:
  ``-decision_function(X)``.
* ``native_score(X)``: the reference paper's own score, in the family's own
  direction (density: fitness, anomalous *below* ``native_threshold_``;
  distance and isolation: anomalous *above* it).
* ``predict(X)``: pyod's labels, 1 anomalous and 0 normal.
* After ``fit``, as in pyod: ``decision_scores_`` (the training
  observations' ``decision_function``), ``threshold_`` (1.0, on that scale)
  and ``labels_`` (``decision_scores_ > threshold_``).

What federation and adaptation need is public too: ``merge(other)``,
``update(X)``, ``renew_threshold(native_scores)``, and for the gmm and
kmeans families ``sufficient_statistics``, ``m_step`` and ``adapt_towards``.
``to_dict()`` / ``from_dict()`` give the model as plain data (arrays and
JSON scalars), never pickle: see :mod:`geoanom.detectors.plain_data`.

Constant features
-----------------
A feature column that does not vary in training (sea ice at the freezing
point, land filled with one value) is read as constant, in fitting and in
scoring, when ``fit_many`` is given the columns' units: see
:mod:`geoanom.detectors.inputs`, which holds the rows' checks and
standardisation.

Why not scikit-learn's ``OutlierMixin``: it fixes ``predict`` to -1/1 and
``decision_function`` to "negative is abnormal", the opposite of pyod's
0/1 and "higher is abnormal" that the package and its users rely on. The
detectors therefore declare no outlier-detector estimator type, and
scikit-learn runs its general estimator checks on them.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import (
    Interval,  # scikit-learn's documented way to declare constraints
)
from sklearn.utils.validation import check_is_fitted, validate_data

from ..errors import GeoanomError
from .inputs import check_features, check_samples, constant_columns, read_as_constant
from .plain_data import PlainData
from .thresholds import choose_threshold

__all__ = ["Detector", "MergeError", "check_mergeable"]

# Constraints shared by the families' ``_parameter_constraints``.
THRESHOLD_CONSTRAINT = [Real, None]
CONTAMINATION_CONSTRAINT = [Interval(Real, 0, 0.5, closed="right")]
SEED_CONSTRAINT = [Interval(Integral, 0, None, closed="left"), None]  # numpy's default_rng takes these


class MergeError(GeoanomError, ValueError):
    """Two models that are not partial models of one family on the same features were given to ``merge``."""


def check_mergeable(a: Any, b: Any) -> None:
    """Raise :class:`MergeError`, in one sentence naming both, unless ``b`` is of ``a``'s family and width.

    Examples
    --------
    >>> from geoanom.detectors import GMMDetector, KMeansDetector
    >>> X = np.random.default_rng(0).normal(size=(100, 2))
    >>> check_mergeable(KMeansDetector(random_state=0).fit(X), GMMDetector(random_state=0).fit(X))  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    geoanom.detectors.base.MergeError: cannot merge GMMDetector into KMeansDetector: merge combines partial models...
    """
    check_is_fitted(a)
    check_is_fitted(b)
    if type(a) is not type(b):
        raise MergeError(f"cannot merge {type(b).__name__} into {type(a).__name__}: merge combines partial "
                         "models of one family on the same features.")
    if a.n_features_in_ != b.n_features_in_:
        raise MergeError(f"cannot merge {type(b).__name__} of {b.n_features_in_} features into {type(a).__name__} "
                         f"of {a.n_features_in_}: merge combines partial models of one family on the same features.")


def _checked_merge(merge: Any) -> Any:
    """A family's ``merge``, refusing another family or width first (see :meth:`Detector.__init_subclass__`)."""

    @functools.wraps(merge)
    def checked(self: Detector, other: Detector) -> Detector:
        check_mergeable(self, other)
        return merge(self, other)

    return checked


class Detector(PlainData, BaseEstimator):
    """Base class of the detector families (see the module docstring).

    Subclasses set ``family``, ``paper_threshold`` and ``anomalous_above``,
    ``_parameter_constraints``, and implement ``_fit``, ``_native_score``,
    ``merge`` and the state hooks of :class:`~geoanom.detectors.plain_data.PlainData`
    (``to_dict`` / ``from_dict``). Every family's ``merge`` refuses a model
    of another family or width (:func:`check_mergeable`) before it runs.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "merge" in cls.__dict__:  # the one entry point of every family's merge, checked here once
            cls.merge = _checked_merge(cls.__dict__["merge"])

    family: ClassVar[str] = ""
    paper_threshold: ClassVar[float] = 0.0
    anomalous_above: ClassVar[bool] = True
    adapts: ClassVar[bool] = True  # implements update()
    _parameter_constraints: ClassVar[dict] = {}
    # (median, resolution) of the constant feature columns, None when none is (see geoanom.detectors.inputs)
    _constant: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def constant_features(self) -> tuple[np.ndarray, np.ndarray] | None:
        """(median, resolution) of the feature columns read as constant; None when no column is.

        Set by :meth:`fit_many` from ``feature_units`` (see
        :func:`~geoanom.detectors.inputs.constant_columns`), kept by
        :meth:`to_dict`; a column that is not constant has resolution 0.

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.c_[np.full(50, 2.0), np.random.default_rng(0).normal(size=50)]
        >>> KMeansDetector.fit_many([X], [0], feature_units=[1.0, 1.0])[0].constant_features[1].tolist()
        [0.001, 0.0]
        """
        return self._constant

    def fit(self, X: Any, y: Any = None) -> Detector:
        """Fit the detector on the training observations ``X`` (n_samples, n_features).

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> detector = KMeansDetector(random_state=0).fit(X)
        >>> detector.threshold_, detector.labels_.shape
        (1.0, (200,))
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        self._fit(X)
        native = self._native_score(X)
        self._set_threshold(native)
        self.decision_scores_ = native / self.native_threshold_
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int8)
        return self

    @classmethod
    def fit_many(cls, samples: Sequence[Any], random_states: Sequence[int | None], **params: Any) -> list[Detector]:
        """Fit one detector per sample (one per tile); families may batch the work.

        Unlike :meth:`fit`, keeps no per-observation arrays (``decision_scores_``,
        ``labels_``): a model holds thousands of tiles.

        Parameters
        ----------
        samples : sequence of array-like (n_i, n_features)
        random_states : sequence of int or None
            One seed per sample.
        **params
            Constructor parameters shared by every detector, and optionally
            ``feature_units`` (one per feature): columns constant at their
            unit are read as constant (see :mod:`geoanom.detectors.inputs`).

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> rng = np.random.default_rng(0)
        >>> len(KMeansDetector.fit_many([rng.normal(size=(50, 2)), rng.normal(size=(60, 2))], [0, 1]))
        2
        """
        detectors, samples = cls._prepare_many(samples, random_states, params)
        for detector, X in zip(detectors, samples):
            detector._fit(X)
            detector._set_threshold(detector._native_score(X))
        return detectors

    @classmethod
    def _prepare_many(cls, samples: Sequence[Any], random_states: Sequence[int | None],
                      params: dict[str, Any]) -> tuple[list[Detector], list[np.ndarray]]:
        """Validated detectors (one per seed) and samples, ``n_features_in_`` and the constant columns set.

        The samples come back with their constant columns' values read as
        constant (``feature_units`` in ``params``, see :mod:`geoanom.detectors.inputs`).
        """
        params = dict(params)
        units = params.pop("feature_units", None)
        detectors = [cls(random_state=seed, **params) for seed in random_states]
        if detectors:
            detectors[0]._validate_params()
        samples = [check_samples(X) for X in samples]
        for i, (detector, X) in enumerate(zip(detectors, samples)):
            detector.n_features_in_ = X.shape[1]
            if units is not None:
                detector._constant = constant_columns(X, units)
                samples[i] = detector._as_constant(X)
        return detectors, samples

    def _as_constant(self, X: np.ndarray) -> np.ndarray:
        """``X`` with each constant column's values read as its median (see :func:`~.inputs.read_as_constant`)."""
        return read_as_constant(X, self._constant)

    def _set_threshold(self, native_scores: np.ndarray, held_out: bool = False) -> None:
        if self.threshold is not None:
            self.native_threshold_, self.threshold_source_ = float(self.threshold), "user"
        else:
            self.native_threshold_, self.threshold_source_ = choose_threshold(
                native_scores,
                self.paper_threshold,
                anomalous_above=self.anomalous_above,
                contamination=self.contamination,
                held_out=held_out,
            )
        # irregularity = score / threshold needs a threshold of the paper's sign
        if self.native_threshold_ == 0 or (self.native_threshold_ > 0) != (self.paper_threshold > 0):
            self.native_threshold_ = float(np.copysign(1e-9, self.paper_threshold))
        self.threshold_ = 1.0  # on the decision_function scale, for every family

    def renew_threshold(self, native_scores: Any, *, held_out: bool = False) -> Detector:
        """Choose ``native_threshold_`` again from native scores (the family's rule); returns self.

        For a model whose components changed (a federated M-step, say): the
        scores may come from any observations, pooled or summarised.
        ``held_out``: they are scores of rows the scoring model did not see
        (out of fold, see :func:`~geoanom.detectors.thresholds.contamination_quantile`).

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> detector = KMeansDetector(random_state=0).fit(X)
        >>> detector.renew_threshold(detector.native_score(X)).threshold_source_ in {"paper", "estimated"}
        True
        """
        self._set_threshold(np.asarray(native_scores, dtype=np.float64), held_out)
        return self

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "native_threshold_")

    def _rows(self, X: Any) -> np.ndarray:
        """``X`` checked against the fitted model (the light check of the scoring paths)."""
        check_is_fitted(self)
        return self._as_constant(check_features(X, self.n_features_in_, type(self).__name__))

    def native_score(self, X: Any) -> np.ndarray:
        """The reference paper's score, in the family's own direction (see the module docstring).

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> bool(KMeansDetector(random_state=0).fit(X).native_score([[9.0, 9.0]])[0] > 4)
        True
        """
        return self._native_score(self._rows(X))

    def irregularity(self, X: Any, *, checked: bool = False) -> np.ndarray:
        """Degree of irregularity: the native score over its threshold (anomalous when > 1).

        ``checked=True`` skips the checks of ``X`` (a finite float64 2-D array
        of the model's width): an ensemble checks its rows once for all families.

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import GMMDetector
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> bool(GMMDetector().fit(X).irregularity([[8.0, 8.0]])[0] > 1)
        True
        """
        return self._native_score(self._as_constant(X) if checked else self._rows(X)) / self.native_threshold_

    def decision_function(self, X: Any) -> np.ndarray:
        """pyod's outlier score, higher = more abnormal: the irregularity (anomalous above ``threshold_`` = 1).

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import IForestDetector
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> detector = IForestDetector(random_state=0).fit(X)
        >>> bool(detector.decision_function([[6.0, 6.0]])[0] > detector.decision_function([[0.0, 0.0]])[0])
        True
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return self._native_score(self._as_constant(X)) / self.native_threshold_

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's convention, higher = more normal: ``-decision_function(X)``.

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> detector = KMeansDetector(random_state=0).fit(X)
        >>> bool((detector.score_samples(X) == -detector.decision_function(X)).all())
        True
        """
        return -self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 where an observation is anomalous, 0 where it is normal (pyod's labels).

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> KMeansDetector(random_state=0).fit(X).predict([[0.0, 0.0], [9.0, 9.0]]).tolist()
        [0, 1]
        """
        return (self.decision_function(X) > self.threshold_).astype(np.int8)

    def irregularity_adapting(self, X: Any, adapt_every: int = 100) -> np.ndarray:
        """Irregularity of ``X`` in row order, adapting the model as it goes.

        The reference paper's adaptive algorithm (section 4.2.2): rows are
        scored ``adapt_every`` at a time by the current model, which then
        absorbs them (running counts, means and covariances), so a lasting
        change becomes normal over time. The model is changed in place.

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import GMMDetector
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> GMMDetector().fit(X).irregularity_adapting(X + 5, adapt_every=100).shape
        (300,)
        """
        X = self._rows(X)
        out = np.empty(len(X))
        for start in range(0, len(X), adapt_every):
            batch = X[start : start + adapt_every]
            out[start : start + adapt_every] = self._native_score(batch) / self.native_threshold_
            self.update(batch)
        return out

    def update(self, X: Any) -> Detector:
        """Absorb new observations into the model (adaptation); thresholds are kept."""
        raise NotImplementedError(f"{type(self).__name__} does not adapt")

    def _fit(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _native_score(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        """The family's native score of checked rows ``X``."""
        raise NotImplementedError

    def merge(self, other: Detector) -> Detector:  # pragma: no cover - abstract
        """Combine two partial models of the same tile into one."""
        raise NotImplementedError

