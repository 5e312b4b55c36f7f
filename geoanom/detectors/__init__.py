"""Detector families sharing one contract (see :mod:`geoanom.detectors.base`)."""

from .base import Detector
from .ensemble import DEFAULT_DETECTORS, FAMILIES, Ensemble
from .gmm import GMMDetector
from .iforest import IForestDetector

__all__ = ["Detector", "Ensemble", "GMMDetector", "IForestDetector", "FAMILIES", "DEFAULT_DETECTORS"]
