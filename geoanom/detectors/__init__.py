"""Detector families sharing one contract (see :mod:`geoanom.detectors.base`)."""

from .base import Detector
from .dpmm import DPMMDetector
from .ensemble import Ensemble
from .event import EventDetector
from .families import DEFAULT_DETECTORS, FAMILIES
from .gmm import GMMDetector
from .iforest import IForestDetector
from .kmeans import KMeansDetector

__all__ = [
    "DEFAULT_DETECTORS",
    "FAMILIES",
    "DPMMDetector",
    "Detector",
    "Ensemble",
    "EventDetector",
    "GMMDetector",
    "IForestDetector",
    "KMeansDetector",
]
