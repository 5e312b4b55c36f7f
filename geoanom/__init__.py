"""geoanom: anomalies in spatiotemporal scientific data, at any scale, on Dask.

>>> import geoanom as ga
>>> cube = ga.sample_cube("north_america")
>>> model = ga.fit(cube.sel(time=slice(None, "1959")))
>>> result = model.score(cube.sel(time=slice("1960", None)))
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import GeoanomError, GeoanomWarning
from .registration import register_accessor

# The public API is imported on first use (PEP 562): `import geoanom` and the
# `geoanom` command's --help then need neither scikit-learn, scipy, distributed
# nor optuna, which together take seconds to import. Name -> module holding it.
_LAZY = {
    "AnomalyModel": ".model", "fit": ".model", "load_model": ".model",
    "Climatology": ".features", "RegionParams": ".features", "region_features": ".features",
    "region_labels": ".features", "tune_region_params": ".features",
    "DPMMDetector": ".detectors", "Ensemble": ".detectors", "EventDetector": ".detectors", "GMMDetector": ".detectors",
    "IForestDetector": ".detectors", "KMeansDetector": ".detectors",
    "open_cube": ".io", "sample_cube": ".io", "write_dataset": ".io",
    "tile_labels": ".tiling", "tile_names": ".model.result",
    "events": ".queries", "event_labels": ".queries", "query": ".queries",
}
_SUBMODULES = ("cluster", "detectors", "features", "federated", "geohash", "plot", "queries", "testing", "tiling")

if TYPE_CHECKING:  # for type checkers and IDEs, which do not run __getattr__
    from . import cluster, detectors, features, federated, geohash, plot, queries, testing, tiling
    from .detectors import DPMMDetector, Ensemble, EventDetector, GMMDetector, IForestDetector, KMeansDetector
    from .features import Climatology, RegionParams, region_features, region_labels, tune_region_params
    from .io import open_cube, sample_cube, write_dataset
    from .model import AnomalyModel, fit, load_model
    from .model.result import tile_names
    from .queries import event_labels, events, query
    from .tiling import tile_labels


register_accessor()  # cube.geoanom.fit(...), result.geoanom.plot(): as soon as xarray is imported


def __getattr__(name: str) -> Any:
    """Import a public name or subpackage on first use, then keep it as a module attribute."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module 'geoanom' has no attribute '{name}'")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


__all__ = [
    "AnomalyModel",
    "Climatology",
    "DPMMDetector",
    "Ensemble",
    "EventDetector",
    "GMMDetector",
    "GeoanomError",
    "GeoanomWarning",
    "IForestDetector",
    "KMeansDetector",
    "RegionParams",
    "cluster",
    "detectors",
    "event_labels",
    "events",
    "features",
    "federated",
    "fit",
    "geohash",
    "load_model",
    "open_cube",
    "plot",
    "queries",
    "query",
    "region_features",
    "region_labels",
    "sample_cube",
    "testing",
    "tile_labels",
    "tile_names",
    "tiling",
    "tune_region_params",
    "write_dataset",
    "__version__",
]
