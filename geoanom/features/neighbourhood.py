"""Features of each observation's neighbourhood at its time step, for the detector ensemble.

``neighbours`` (:func:`neighbour_anomaly`)
    the mean standardised anomaly of the cell's eight neighbours: high
    around a coherent event, near zero around a lone noise spike.
``regions`` (:func:`region_context`), per variable:
    ``{variable}_smoothed``, the denoised standardised anomaly (Gaussian then
    median filter), and ``{variable}_region_area``, log10(1 + area in km^2)
    of the anomalous region containing the cell, 0 outside any region.

The anomalies come from the model's own climatology, so training and
scoring see the same features.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

from ..tiling import cell_areas
from .region_stats import region_parts
from .regions import RegionParams, denoise, region_mask
from .stitching import block_slices, label_regions

# the eight neighbours of a cell in its time step
NEIGHBOURS = np.ones((1, 1, 3, 3))
NEIGHBOURS[0, 0, 1, 1] = 0


def neighbour_anomaly(anomalies: da.Array, wrap: bool) -> da.Array:
    """Mean anomaly of each cell's eight neighbours (variable, time, y, x), over those with data.

    A cell without a neighbour holding data gets 0 (no evidence either way);
    the result is exact across chunk edges (a one-cell halo) and across the
    antimeridian when ``wrap``.

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> z = da.from_array(np.arange(9.0).reshape(1, 1, 3, 3), chunks=(1, 1, 2, 2))
    >>> float(neighbour_anomaly(z, wrap=False)[0, 0, 1, 1].compute())
    4.0
    """
    depth = {0: 0, 1: 0, 2: min(1, anomalies.shape[2] - 1), 3: min(1, anomalies.shape[3] - 1)}
    boundary = {0: "none", 1: "none", 2: "none", 3: "periodic" if wrap else "none"}
    if any(min(anomalies.chunks[axis]) < depth[axis] for axis in (2, 3)):  # map_overlap needs chunks >= halo
        anomalies = anomalies.rechunk({axis: max(2, max(anomalies.chunks[axis])) for axis in (2, 3)})
    return anomalies.map_overlap(_neighbour_mean, depth=depth, boundary=boundary, dtype=np.float64)


def _neighbour_mean(block: np.ndarray) -> np.ndarray:
    """The mean of each cell's valid neighbours (float64), 0 where it has none; divided in place.

    The counts (0 to 8) are exact in float32, and ``total / count`` divides
    the float64 sums by them exactly as a float64 count would: the same
    values with three fewer block-sized float64 temporaries than a
    ``np.where(count > 0.5, total / count, 0.0)`` (``benchmarks/score_path.py``).
    """
    valid = np.isfinite(block)
    total = ndimage.convolve(np.where(valid, block, 0.0), NEIGHBOURS, mode="constant")
    count = ndimage.convolve(valid.astype(np.float32), NEIGHBOURS.astype(np.float32), mode="constant")
    del valid
    lonely = count < 0.5
    np.divide(total, count, out=total, where=~lonely)
    total[lonely] = 0.0
    return total


def region_context(anomalies: da.Array, values: xr.DataArray, params: RegionParams, wrap: bool) -> da.Array:
    """Region features (2 * n_variables, time, y, x), chunked like ``values`` (variable, time, y, x):
    every variable's denoised anomaly, then every variable's log10(1 + km^2) region area.

    Examples
    --------
    >>> context = region_context(clim.standardise(values).data, values, RegionParams(), False)  # doctest: +SKIP
    """
    chunks = values.data.chunks[1:]
    areas = cell_areas(values)
    smoothed, region_areas = [], []
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
