"""geoanom: anomalies in spatiotemporal scientific data, at any scale, on Dask.

>>> import geoanom as ga
>>> cube = ga.sample_cube("north_america")
>>> model = ga.fit(cube.sel(time=slice(None, "1959")))
>>> result = model.score(cube.sel(time=slice("1960", None)))
"""

__version__ = "0.1.0"

from . import detectors, features, federated, geohash, testing, tiling
from .detectors import DPMMDetector, Ensemble, GMMDetector, IForestDetector, KMeansDetector
from .errors import GeoanomError, GeoanomWarning
from .features import Climatology, RegionParams, region_features, region_labels, tune_region_params
from .io import open_cube, sample_cube, write_dataset
from .model import AnomalyModel, fit, load_model
from .tiling import tile_labels

__all__ = [
    "AnomalyModel",
    "Climatology",
    "DPMMDetector",
    "Ensemble",
    "GMMDetector",
    "GeoanomError",
    "GeoanomWarning",
    "IForestDetector",
    "KMeansDetector",
    "RegionParams",
    "detectors",
    "features",
    "federated",
    "fit",
    "geohash",
    "load_model",
    "open_cube",
    "region_features",
    "region_labels",
    "sample_cube",
    "testing",
    "tile_labels",
    "tiling",
    "tune_region_params",
    "write_dataset",
    "__version__",
]
