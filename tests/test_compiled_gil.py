"""The default ensemble's compiled kernels release the GIL, so dask threads fit and score tiles side by side."""

import importlib

import pytest
from numba.core.registry import CPUDispatcher

MODULES = ("lloyd", "kmeans", "kmeans_init", "mixture", "mixture_scoring", "isolation_trees", "isolation_walk")
# Holds an object-mode block (numpy's argpartition), which takes the GIL whatever the flag; the nogil loops
# that call it keep the GIL released everywhere else.
TAKES_THE_GIL = {"lloyd._relocate_empty"}


@pytest.mark.parametrize("module", MODULES)
def test_compiled_kernels_release_the_gil(module):
    loaded = importlib.import_module(f"geoanom.detectors.{module}")
    kernels = {name: value for name, value in vars(loaded).items()
               if isinstance(value, CPUDispatcher) and value.py_func.__module__ == loaded.__name__}
    assert kernels, module
    holding = {f"{module}.{name}" for name, kernel in kernels.items() if not kernel.targetoptions.get("nogil")}
    assert holding == {name for name in TAKES_THE_GIL if name.startswith(f"{module}.")}
