"""The ensemble: several detector families fitted on the same observations, their scores fused and voted."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted, validate_data

from .base import Detector, MergeError
from .crossfit import fit_many_out_of_fold
from .families import (
    DEFAULT_DETECTORS,
    FAMILIES,
    family_specs,
)
from .fusion import FUSED_THRESHOLD, fuse, majority
from .inputs import check_features, check_samples


class Ensemble(BaseEstimator):
    """Detector families fitted on the same observations: a fused score and a majority vote.

    Two rules, kept apart. The scikit-learn / pyod path is one rule:
    :meth:`decision_function` is the fused irregularity (the geometric mean
    of the families', each view counted once, see :func:`~.fusion.fuse`), ``threshold_`` is 1.0 and
    :meth:`predict` is ``decision_function(X) > threshold_`` (so ``labels_``
    is ``decision_scores_ > threshold_``, as in pyod). The strict majority
    of the families' flags, which ``geoanom.fit``'s result holds as its
    ``ensemble`` variable, is :meth:`majority_vote`; the two disagree on
    rows where a few families are far past their thresholds and the rest
    just below (about 0.2% of normal rows).

    Parameters
    ----------
    detectors : sequence of str or Detector, default ("gmm", "kmeans", "dpmm", "iforest", "event")
        Family names (see :data:`~.families.FAMILIES`), or unfitted detector instances
        (``GMMDetector(max_iter=50)``), which are cloned with their
        parameters, scikit-learn style; at most one per family.
    random_state : int, optional
        Seed passed to every family (an instance's own ``random_state``
        is kept when this is None).
    columns : mapping of str to sequence of int, optional
        The feature columns a family reads, by family name; a family not
        named reads every column. The event family judges a cell given its
        background ring, which the other families would score as one more
        coordinate (see :func:`geoanom.model.family_inputs.default_features`).

    Attributes
    ----------
    detectors_ : dict of str to Detector
        The fitted families, in the order given.
    decision_scores_, labels_, threshold_
        After :meth:`fit`, as in pyod: the training observations'
        :meth:`decision_function` (the fused irregularity), 1.0 and their
        labels ``decision_scores_ > threshold_`` (:meth:`predict`, not the
        majority vote).

    Examples
    --------
    >>> import numpy as np
    >>> X = np.random.default_rng(0).normal(size=(300, 2))
    >>> ensemble = Ensemble(("gmm", "kmeans"), random_state=0).fit(X)
    >>> ensemble.irregularity(X).shape, ensemble.predict([[9.0, 9.0]]).tolist()
    ((2, 300), [1])
    """

    _parameter_constraints: ClassVar[dict] = {"detectors": [str, list, tuple], "random_state": ["random_state"],
                                              "columns": [dict, None]}

    def __init__(self, detectors: Sequence[str] = DEFAULT_DETECTORS, random_state: int | None = None,
                 columns: Mapping[str, Sequence[int]] | None = None):
        self.detectors = detectors
        self.random_state = random_state
        self.columns = columns

    @property
    def names(self) -> tuple[str, ...]:
        """Family names, in the order of the first axis of :meth:`irregularity`."""
        return tuple(self.detectors_)

    def fit(self, X: Any, y: Any = None) -> Ensemble:
        """Fit every family on ``X`` (n_samples, n_features).

        As a scikit-learn estimator, each family's threshold comes from its
        own training scores; :meth:`fit_many`, which ``geoanom.fit`` uses for
        its tiles, takes a small sample's from out-of-fold scores instead.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> Ensemble(("kmeans",), random_state=0).fit(X).names
        ('kmeans',)
        """
        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        self.detectors_ = {
            name: FAMILIES[name](**{**params, **self._seed(params)}).fit(self.family_rows(name, X))
            for name, params in family_specs(self.detectors).items()
        }
        self.threshold_ = FUSED_THRESHOLD
        self.decision_scores_ = self.decision_function(X)
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(np.int8)
        return self

    def _seed(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The ``random_state`` a family gets: the ensemble's, unless it is None and the instance has its own."""
        if self.random_state is None and params.get("random_state") is not None:
            return {}
        return {"random_state": self.random_state}

    def __sklearn_is_fitted__(self) -> bool:
        return hasattr(self, "detectors_")

    @classmethod
    def fit_many(
        cls, samples: Sequence[Any], detectors: Sequence[str] = DEFAULT_DETECTORS,
        random_states: Sequence[int | None] | None = None, params: Mapping[str, Mapping[str, Any]] | None = None,
        columns: Mapping[str, Sequence[int]] | None = None,
    ) -> list[Ensemble]:
        """Fit one ensemble per sample (per tile), letting each family batch its work.

        ``params`` maps a family name to constructor parameters of its
        detectors (the event family's ``pairs``, say); the others take
        defaults. ``columns`` is the ensembles' parameter. Small samples
        get thresholds from out-of-fold scores
        (:func:`~geoanom.detectors.crossfit.fit_many_out_of_fold`).

        Examples
        --------
        >>> import numpy as np
        >>> samples = [np.random.default_rng(seed).normal(size=(300, 3)) for seed in (0, 1)]
        >>> fitted = Ensemble.fit_many(samples, ("gmm", "event"), columns={"gmm": [0, 1]})
        >>> fitted[0].detectors_["gmm"].n_features_in_, fitted[0].n_features_in_
        (2, 3)
        """
        specs = family_specs(detectors)
        names = tuple(specs)
        # an instance's parameters, under those given explicitly; the seeds are random_states
        params = {name: {**{k: v for k, v in specs[name].items() if k != "random_state"}, **(params or {}).get(name, {})}
                  for name in names}
        samples = [check_samples(X) for X in samples]
        seeds = list(random_states) if random_states is not None else [None] * len(samples)
        template = cls(detectors=names, columns=columns)
        fitted = {name: fit_many_out_of_fold(FAMILIES[name], [template.family_rows(name, X) for X in samples], seeds,
                                             dict(params.get(name, {})))
                  for name in names}
        width = samples[0].shape[1] if samples else None
        return [cls(detectors=names, random_state=seed, columns=columns).with_detectors(
                    {name: fitted[name][i] for name in names}, n_features=width)
                for i, seed in enumerate(seeds)]

    def family_columns(self, name: str) -> np.ndarray | None:
        """The feature columns the family ``name`` reads; None: every column.

        Examples
        --------
        >>> Ensemble(("gmm", "event"), columns={"gmm": [0, 1]}).family_columns("gmm").tolist()
        [0, 1]
        >>> Ensemble(("gmm", "event"), columns={"gmm": [0, 1]}).family_columns("event") is None
        True
        """
        columns = (self.columns or {}).get(name)
        return None if columns is None else np.asarray(columns, dtype=np.intp)

    def family_rows(self, name: str, X: np.ndarray) -> np.ndarray:
        """The columns of rows ``X`` (n, n_features) that the family ``name`` reads.

        Examples
        --------
        >>> import numpy as np
        >>> Ensemble(("gmm",), columns={"gmm": [1]}).family_rows("gmm", np.arange(6.0).reshape(2, 3)).tolist()
        [[1.0], [4.0]]
        """
        columns = self.family_columns(name)
        return X if columns is None else X[:, columns]

    def with_detectors(self, detectors: dict[str, Detector], n_features: int | None = None) -> Ensemble:
        """A new ensemble of this one's fitted families, those named in ``detectors`` replaced.

        The families are shared, not copied; ``detectors`` may also be the
        first families of an unfitted ensemble. ``n_features``: the width of
        the rows it scores, by default this ensemble's, else the widest
        family's (see ``columns``).

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> Ensemble(("kmeans",)).with_detectors({"kmeans": KMeansDetector().fit(X)}).n_features_in_
        2
        """
        ensemble = Ensemble(**self.get_params())
        ensemble.detectors_ = {**getattr(self, "detectors_", {}), **detectors}
        ensemble.threshold_ = FUSED_THRESHOLD
        ensemble.n_features_in_ = n_features or getattr(self, "n_features_in_", None) or ensemble._widest()
        ensemble._check_widths()
        return ensemble

    def _widest(self) -> int:
        """The row width the families' own widths and columns imply."""
        return max(int(columns.max()) + 1 if (columns := self.family_columns(name)) is not None and columns.size
                   else detector.n_features_in_ for name, detector in self.detectors_.items())

    def _check_widths(self) -> None:
        """Each family reads as many columns as it was fitted on, all within the rows."""
        for name, detector in self.detectors_.items():
            columns = self.family_columns(name)
            width = self.n_features_in_ if columns is None else len(columns)
            if detector.n_features_in_ != width or (columns is not None and columns.size
                                                    and not 0 <= columns.min() <= columns.max() < self.n_features_in_):
                raise ValueError(f"the ensemble's {name} detector has {detector.n_features_in_} features, but the "
                                 f"ensemble gives it {width} of {self.n_features_in_}")

    def _rows(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return check_features(X, self.n_features_in_, type(self).__name__)

    def irregularity(self, X: Any, *, checked: bool = False) -> np.ndarray:
        """Irregularity of each family, shape (n_detectors, n_samples); > 1 is anomalous.

        ``checked=True`` skips the checks of ``X`` (a finite float64 2-D array
        of the ensemble's width), as the families' own ``irregularity``: the
        rows a cube's scoring takes out of a block are complete by construction.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> Ensemble(("gmm", "kmeans"), random_state=0).fit(X).irregularity(X[:5]).shape
        (2, 5)
        """
        X = X if checked else self._rows(X)
        scores = [detector.irregularity(self.family_rows(name, X), checked=True)
                  for name, detector in self.detectors_.items()]
        return scores[0][None] if len(scores) == 1 else np.stack(scores)  # one family: its own new array, not a copy

    def decision_function(self, X: Any) -> np.ndarray:
        """pyod's outlier score, higher = more abnormal: the fused irregularity (see :func:`.fusion.fuse`).

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> bool(Ensemble(("kmeans",), random_state=0).fit(X).decision_function([[9.0, 9.0]])[0] > 1)
        True
        """
        check_is_fitted(self)
        return self.fused_irregularity(validate_data(self, X, dtype=np.float64, reset=False))

    def score_samples(self, X: Any) -> np.ndarray:
        """scikit-learn's convention, higher = more normal: ``-decision_function(X)``.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> Ensemble(("kmeans",), random_state=0).fit(X).score_samples(X).shape
        (300,)
        """
        return -self.decision_function(X)

    def irregularity_adapting(self, X: Any, adapt_every: int = 100) -> np.ndarray:
        """Irregularity in row order, each adaptive family absorbing every batch it scored.

        See :meth:`Detector.irregularity_adapting`; families that do not adapt
        (``adapts = False``) score with their trained model.
        """
        X = self._rows(X)
        out = np.empty((len(self.detectors_), len(X)))
        for start in range(0, len(X), adapt_every):
            batch = X[start : start + adapt_every]
            out[:, start : start + adapt_every] = self.irregularity(batch)
            for name, detector in self.detectors_.items():
                if detector.adapts:
                    detector.update(self.family_rows(name, batch))
        return out

    def flags(self, X: Any) -> np.ndarray:
        """Per-family anomaly flags, shape (n_detectors, n_samples)."""
        return self.irregularity(X) > 1.0

    def votes(self, X: Any) -> np.ndarray:
        """How many families call each observation anomalous."""
        return self.flags(X).sum(axis=0)

    def predict(self, X: Any) -> np.ndarray:
        """pyod's labels: 1 where the fused irregularity is above ``threshold_`` (1.0), else 0.

        ``predict(X) == (decision_function(X) > threshold_)``, as for every
        family; the strict majority of the families' flags (the ``ensemble``
        variable of a scored cube) is :meth:`majority_vote`.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> Ensemble(("gmm", "kmeans"), random_state=0).fit(X).predict([[0.0, 0.0], [9.0, 9.0]]).tolist()
        [0, 1]
        """
        return (self.decision_function(X) > self.threshold_).astype(np.int8)

    def majority_vote(self, X: Any) -> np.ndarray:
        """1 where more than half of the families flag an observation (the ``ensemble`` output variable), else 0.

        Examples
        --------
        >>> import numpy as np
        >>> X = np.random.default_rng(0).normal(size=(300, 2))
        >>> Ensemble(("gmm", "kmeans"), random_state=0).fit(X).majority_vote([[0.0, 0.0], [9.0, 9.0]]).tolist()
        [0, 1]
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return majority(self.votes(X), len(self.detectors_)).astype(np.int8)

    def fused_irregularity(self, X: Any) -> np.ndarray:
        """One score per observation: the geometric mean of the families' irregularities, each view counted once
        (see :func:`.fusion.fuse`)."""
        return fuse(self.irregularity(X), tuple(self.detectors_))

    def merge(self, other: Ensemble) -> Ensemble:
        """Merge two partial ensembles of the same tile, family by family.

        Raises :class:`~geoanom.detectors.base.MergeError` when the two hold
        other families or score rows of another width.
        """
        check_is_fitted(self)
        check_is_fitted(other)
        if not isinstance(other, Ensemble) or other.names != self.names \
                or other.n_features_in_ != self.n_features_in_:
            described = (f"an ensemble of {', '.join(other.names)} on {other.n_features_in_} features"
                         if isinstance(other, Ensemble) else f"a {type(other).__name__}")
            raise MergeError(f"cannot merge {described} into an ensemble of {', '.join(self.names)} on "
                             f"{self.n_features_in_} features: merge combines partial ensembles of the same families "
                             "and features.")
        return Ensemble(**self.get_params()).with_detectors(
            {name: self.detectors_[name].merge(other.detectors_[name]) for name in self.detectors_},
            n_features=self.n_features_in_)

    def to_dict(self) -> dict[str, Any]:
        """The ensemble as plain data: one :meth:`Detector.to_dict` per family, and the columns each reads."""
        data: dict[str, Any] = {"detectors": {name: detector.to_dict() for name, detector in self.detectors_.items()}}
        if self.columns:
            data["columns"] = {name: [int(c) for c in columns] for name, columns in self.columns.items()}
            data["n_features"] = int(self.n_features_in_)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Ensemble:
        """Rebuild a fitted ensemble from :meth:`to_dict` output.

        Raises ValueError when a family's width disagrees with the columns
        it reads (or, without columns, with the other families').
        """
        parts = data["detectors"]
        detectors = {name: FAMILIES[part["family"]].from_dict(part) for name, part in parts.items()}
        columns = data.get("columns") or None
        if columns is None:
            widths = {name: detector.n_features_in_ for name, detector in detectors.items()}
            if len(set(widths.values())) > 1:
                described = ", ".join(f"{name} {width}" for name, width in widths.items())
                raise ValueError(f"the ensemble's detectors disagree on the number of features ({described})")
        n_features = data.get("n_features")
        return cls(detectors=tuple(parts), columns=columns).with_detectors(
            detectors, n_features=int(n_features) if n_features is not None else None)
