"""Region features of each observation, for the detector ensemble.

``geoanom.fit(..., features=["values", "regions"])`` appends, for every
variable, two features of the cell's neighbourhood at that time step:

``{variable}_smoothed``
    the denoised standardised anomaly (Gaussian then median filter): high
    inside a coherent event, near zero at a lone noise spike;
``{variable}_region_area``
    log10(1 + area in km^2) of the anomalous region containing the cell,
    0 outside any region.

The anomaly is standardised by the model's own climatology, so training
and scoring see the same features.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..tiling import cell_areas
from .region_stats import region_parts
from .regions import RegionParams, denoise, region_mask
from .stitching import block_slices, label_regions
from .climatology import Climatology

FEATURE_SETS = ("values", "regions")


def region_feature_names(variables: list[str]) -> list[str]:
    """Names of the region features appended for ``variables``."""
    return [f"{name}_smoothed" for name in variables] + [f"{name}_region_area" for name in variables]


def neighbourhood_features(values: xr.DataArray, climatology: Climatology, params: RegionParams,
                           wrap: bool, training: bool = False) -> da.Array:
    """Region features (2 * n_variables, time, y, x), chunked like ``values`` (variable, time, y, x).

    ``training``: the values are the climatology's own training data (see
    :meth:`Climatology.standardise`).
    """
    chunks = values.data.chunks[1:]
    areas = cell_areas(values)
    smoothed, region_areas = [], []
    anomalies = climatology.standardise(values, training).data
    for index in range(values.sizes["variable"]):
        anomaly = anomalies[index]
        smoothed.append(denoise(anomaly, params, wrap).rechunk(chunks))
        labels = label_regions(region_mask(anomaly, params, wrap), params.structure, wrap)
        parts = region_parts(labels, anomaly.rechunk(labels.chunks), areas, np.zeros(areas.shape, dtype=np.int32))
        region_areas.append(_cell_region_area(labels, parts).rechunk(chunks))
    return da.stack(smoothed + region_areas).rechunk({0: -1})


def _cell_region_area(labels: da.Array, parts) -> da.Array:
    """log10(1 + area) of each cell's region, 0 outside regions."""
    lookup = dask.delayed(_area_lookup, pure=True)(parts)
    blocks = [
        dask.delayed(_area_block, pure=True)(block, where[0].start, lookup)
        for block, where in zip(labels.to_delayed(optimize_graph=False).ravel(), block_slices(labels.chunks))
    ]
    shapes = [tuple(part.stop - part.start for part in where) for where in block_slices(labels.chunks)]
    arrays = np.empty(labels.numblocks, dtype=object)
    for position, (block, shape) in zip(np.ndindex(*labels.numblocks), zip(blocks, shapes)):
        arrays[position] = da.from_delayed(block, shape, dtype=np.float64)
    return da.block(arrays.tolist())


def _area_lookup(parts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (time << 32 | label) keys and log10(1 + area) of each region."""
    area = parts["area"].groupby(level=["time", "label"]).sum()
    keys = (area.index.get_level_values("time").to_numpy(np.int64) << 32) | area.index.get_level_values("label")
    order = np.argsort(keys)
    return keys[order], np.log10(1.0 + area.to_numpy()[order])


def _area_block(labels: np.ndarray, time_offset: int, lookup: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    keys, log_areas = lookup
    out = np.zeros(labels.shape, dtype=np.float64)
    t, y, x = np.nonzero(labels)
    wanted = ((t + time_offset).astype(np.int64) << 32) | labels[t, y, x]
    out[t, y, x] = log_areas[np.searchsorted(keys, wanted)]
    return out
