"""Fitting, scoring and storing models over cubes (the orchestration)."""

from .core import AnomalyModel
from .fit import fit
from .store import load_model

__all__ = ["AnomalyModel", "fit", "load_model"]
