"""A fitted detector as plain data: JSON parameters and numpy arrays, never pickle.

:class:`PlainData` is the part of :class:`~geoanom.detectors.base.Detector`
that writes a fitted detector out and reads it back: ``to_dict()`` gives
``{"family", "params", "state"}`` and ``from_dict()`` rebuilds the detector,
calling the family's ``check_state`` first, so an edited model file is
refused at load rather than scored wrongly. Each family supplies its own
arrays through the state hooks ``_get_state`` / ``_set_state``; what every
family shares (the native threshold, where it came from, the constant
feature columns) is added here. The model store
(:mod:`geoanom.model.store`) packs these dicts into ``.npz`` files and Zarr
stores.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ..jsonable import to_jsonable
from .inputs import checked_constant

if TYPE_CHECKING:
    from .base import Detector


class PlainData:
    """Saving and loading a fitted detector as plain data (mixed into :class:`~geoanom.detectors.base.Detector`).

    Families implement ``_get_state`` (their fitted arrays and scalars),
    ``_set_state`` (the inverse) and may refine :meth:`check_state`.
    """

    def to_dict(self) -> dict[str, Any]:
        """The fitted model as plain data: ``{"family", "params", "state"}``.

        ``params`` holds JSON scalars, ``state`` numpy arrays and scalars. The
        native threshold is stored under ``threshold_``, its name in model
        files written before ``threshold_`` took pyod's meaning.

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> KMeansDetector(random_state=0).fit(X).to_dict()["family"]
        'kmeans'
        """
        check_is_fitted(self)
        state = self._get_state()
        state.update(threshold_=self.native_threshold_, threshold_source_=self.threshold_source_)
        # absent when no column is constant: files of models without constant columns are unchanged
        if (constant := self.constant_features) is not None:
            state.update(constant_median_=constant[0], constant_resolution_=constant[1])
        return {"family": self.family, "params": _json_params(self.get_params()), "state": state}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Detector:
        """Rebuild a fitted detector from :meth:`to_dict` output.

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import KMeansDetector
        >>> X = np.random.default_rng(0).normal(size=(200, 2))
        >>> detector = KMeansDetector(random_state=0).fit(X)
        >>> bool((KMeansDetector.from_dict(detector.to_dict()).irregularity(X) == detector.irregularity(X)).all())
        True
        """
        detector = cls(**data["params"])
        state = dict(data["state"])
        detector.native_threshold_ = float(state.pop("threshold_"))
        detector.threshold_source_ = str(state.pop("threshold_source_"))
        detector.threshold_ = 1.0
        constant = (state.pop("constant_median_", None), state.pop("constant_resolution_", None))
        cls.check_state(state)
        detector._set_state(state)
        if constant[0] is not None or constant[1] is not None:
            # the Detector's constant columns (see Detector.constant_features), checked against the restored width
            detector._constant = checked_constant(constant, detector.n_features_in_, cls.family)
        return detector

    @classmethod
    def check_state(cls, state: dict[str, Any]) -> None:
        """Raise ValueError, in one sentence, if a saved state's arrays disagree with each other or the features.

        :meth:`from_dict` calls it first, so an edited model file is refused at load, not scored wrongly.

        Examples
        --------
        >>> import numpy as np
        >>> from geoanom.detectors import GMMDetector
        >>> state = GMMDetector(random_state=0).fit(np.random.default_rng(0).normal(size=(200, 2))).to_dict()["state"]
        >>> GMMDetector.check_state({**state, "weights_": np.array([0.5, 0.5])})
        Traceback (most recent call last):
        ...
        ValueError: gmm detector: weights_ has shape (2,), not (1,): one per component of means_ (1, 2)
        """

    def _get_state(self) -> dict[str, Any]:
        raise NotImplementedError

    def _set_state(self, state: dict[str, Any]) -> None:
        raise NotImplementedError


def _json_params(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON values; a RandomState (not reproducible from JSON) is kept as None."""
    return to_jsonable({name: None if isinstance(value, np.random.RandomState) else value
                        for name, value in params.items()})
