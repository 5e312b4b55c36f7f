"""Fitting, scoring and storing models over cubes (the orchestration)."""

from .core import AnomalyModel, load_model
from .fit import fit

__all__ = ["AnomalyModel", "fit", "load_model"]
