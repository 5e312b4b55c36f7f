"""The detector families by name: the registry, the default ensemble, and the checks of names and instances.

``geoanom.fit``, the command line and :class:`~geoanom.detectors.ensemble.Ensemble`
name families with these strings; :func:`family_specs` turns names or
unfitted detector instances into each family's constructor parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.base import clone

from ..errors import GeoanomError
from .base import Detector
from .dpmm import DPMMDetector
from .event import EventDetector
from .gmm import GMMDetector
from .iforest import IForestDetector
from .kmeans import KMeansDetector

__all__ = ["DEFAULT_DETECTORS", "FAMILIES", "check_detector_names", "family_specs"]

FAMILIES: dict[str, type[Detector]] = {
    "gmm": GMMDetector,
    "kmeans": KMeansDetector,
    "dpmm": DPMMDetector,
    "iforest": IForestDetector,
    "event": EventDetector,
}
DEFAULT_DETECTORS = ("gmm", "kmeans", "dpmm", "iforest", "event")


def check_detector_names(names: Sequence[str] | str) -> tuple[str, ...]:
    """Validate detector family names (a sequence or a comma-separated string).

    Examples
    --------
    >>> check_detector_names("gmm, iforest")
    ('gmm', 'iforest')
    """
    if isinstance(names, str):
        names = [name.strip() for name in names.split(",") if name.strip()]
    names = tuple(names)
    objects = [name for name in names if not isinstance(name, str)]
    if objects:
        raise GeoanomError(
            f"detectors are given by name here, not as {type(objects[0]).__name__} objects; known detectors: "
            f"{', '.join(FAMILIES)} (Ensemble(detectors=...) also takes detector instances)."
        )
    unknown = [name for name in names if name not in FAMILIES]
    if unknown or not names:
        raise GeoanomError(
            f"unknown detector {', '.join(map(repr, unknown)) or '(none given)'}; "
            f"known detectors: {', '.join(FAMILIES)}."
        )
    return names


def family_specs(detectors: Sequence[str | Detector] | str) -> dict[str, dict[str, Any]]:
    """Each family's name and constructor parameters, from names or detector instances (scikit-learn's clone).

    An instance gives its family and its parameters (its ``random_state``
    too); a name gives the family's defaults. Two detectors of one family
    are refused: the ensemble names its families.

    Examples
    --------
    >>> family_specs(["gmm", KMeansDetector(contamination=0.05)])["kmeans"]["contamination"]
    0.05
    """
    if isinstance(detectors, str) or all(isinstance(item, str) for item in detectors):
        return {name: {} for name in check_detector_names(detectors)}
    specs: dict[str, dict[str, Any]] = {}
    for item in detectors:
        if isinstance(item, Detector):
            name, params = item.family, clone(item).get_params(deep=False)
        else:
            name, params = check_detector_names([item])[0], {}
        if name in specs:
            raise GeoanomError(f"the ensemble is given two {name} detectors; it holds one detector per family.")
        specs[name] = params
    return specs
