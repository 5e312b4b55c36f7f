"""Registering the ``.geoanom`` accessor with xarray without importing xarray early.

`xarray.register_dataset_accessor` needs xarray, whose import takes 0.75-0.8 s
on our 2-core machines: more than the whole 1 s budget of ``geoanom --help``
(0.17 s without it). So `import geoanom` registers the accessor at once when
xarray is already imported, and otherwise the moment xarray's import
completes, through an import hook that removes itself after one use.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType
from typing import Any


def register_accessor() -> None:
    """Make ``.geoanom`` available on every xarray Dataset and DataArray, now or once xarray is imported.

    Examples
    --------
    >>> import xarray as xr
    >>> register_accessor()
    >>> hasattr(xr.Dataset(), "geoanom")
    True
    """
    if "xarray" in sys.modules:
        importlib.import_module("geoanom.accessor")
    elif not any(isinstance(finder, _AfterXarray) for finder in sys.meta_path):
        sys.meta_path.insert(0, _AfterXarray())


class _AfterXarray(importlib.abc.MetaPathFinder):
    """Finds xarray as usual, with a loader that registers the accessor after xarray has run."""

    def find_spec(self, name: str, path: Any = None, target: Any = None):
        if name != "xarray":
            return None
        sys.meta_path.remove(self)  # one use; the normal finders locate the real module
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _ThenRegister(spec.loader)
        return spec


class _ThenRegister(importlib.abc.Loader):
    """xarray's own loader, followed by registering the accessor."""

    def __init__(self, loader: importlib.abc.Loader):
        self._loader = loader

    def create_module(self, spec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        importlib.import_module("geoanom.accessor")

    def __getattr__(self, name: str) -> Any:  # resources and the like: xarray's loader answers
        return getattr(self._loader, name)
