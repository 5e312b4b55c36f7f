"""A table of region features per time step (or per tile and time step).

Every chunk reports, for each (time step, tile, region) it holds, the region's
cells, area and area-weighted sums of the standardised anomaly; a tree
reduction adds the reports, so a region split over chunks is counted once,
whole (per tile, a region counts its part inside the tile).

The sums are exact, so the table is bit-for-bit the same for any chunking:
each cell's contribution is rounded to a fixed quantum (1 m^2 of area, far
below any grid cell) before adding, and float64 sums of such multiples
involve no rounding, whatever their order.
"""

from __future__ import annotations

from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..grid import cell_areas, wraps_in_longitude
from ..reduction import tree_reduce
from ..tiling import tile_codes, tile_labels
from .regions import RegionParams, as_field, connectivity_of, region_mask, standardised_anomaly
from .stitching import block_slices, label_regions

# Quanta of the per-cell contributions (km^2, km^2 x sigma, km^2 x sigma^2). Sums
# stay exact up to 2^53 quanta: 8.6e9 km^2 of area (the Earth has 5.1e8), and a
# region as large as the Earth with a mean |anomaly| up to 270 (squares 17,000).
SUM_QUANTA = {"area": 2.0**-20, "weighted": 2.0**-16, "weighted_squares": 2.0**-10}
COLUMNS = ["n_regions", "total_area", "largest_area", "largest_share", "largest_share_lo", "largest_share_hi",
           "largest_mean", "spatial_variance"]


def region_features(
    data: xr.DataArray | xr.Dataset,
    *,
    variable: str | None = None,
    precision: int | None = None,
    sigma: float = RegionParams.sigma,
    median_size: int = RegionParams.median_size,
    threshold: float = RegionParams.threshold,
    tail: str = RegionParams.tail,
    structure: int | np.ndarray = RegionParams.structure,
    cleaning: int = RegionParams.cleaning,
    baseline: Any = None,
    wrap: bool | None = None,
    n_boot: int = 200,
    confidence: float = 0.95,
    seed: int = 0,
    split_every: int = 8,
    client: Any = None,
) -> pd.DataFrame:
    """Features of the anomalous regions of each time step of a field.

    Each time step is smoothed (Gaussian, then median), thresholded on its
    standardised anomaly, cleaned (binary opening and closing) and labelled
    (see :func:`region_labels`); this table describes the regions found.

    Parameters
    ----------
    data : DataArray (time, lat, lon) or Dataset
        The field (a Dataset needs ``variable`` unless it holds one field).
        NaN cells (land, gaps) are missing: they enter no filter and join no
        region.
    variable : str, optional
    precision : int, optional
        Give one row per geohash tile of this precision and time step; each
        region then counts only its part inside the tile. One row per time
        step over the whole field by default.
    sigma, median_size, threshold, tail, cleaning
        See :class:`geoanom.features.RegionParams`.
    structure : {1, 2} or 3 x 3 array of bool, default 1
        Connectivity: 1 joins cells sharing an edge, 2 also a corner (or the
        equivalent structuring element of :func:`scipy.ndimage.generate_binary_structure`).
    baseline : slice, (start, stop) or DataArray, optional
        Period whose per-cell climatology standardises the field; by default
        the field's own record.
    wrap : bool, optional
        Join regions across the antimeridian; by default when the longitude
        axis closes the globe.
    n_boot : int, default 200
        Bootstrap resamples of the regions for the interval of the largest
        region's share of the anomalous area.
    confidence : float, default 0.95
    seed : int, default 0
        Seed of the bootstrap; each row's resamples depend only on it, the
        time step and the tile.
    split_every : int, default 8
        Fan-in of the tree reduction of chunk reports.
    client : distributed.Client, optional
        Where to compute; dask's current scheduler by default.

    Returns
    -------
    pandas.DataFrame
        Indexed by ``time`` (and ``tile``), with columns ``n_regions``;
        ``total_area`` and ``largest_area`` in km^2; ``largest_share`` (largest
        / total) and its bootstrap interval ``largest_share_lo``,
        ``largest_share_hi``; ``largest_mean``, the area-weighted mean
        standardised anomaly in the largest region; ``spatial_variance``, the
        area-weighted variance of the standardised anomaly over all region
        cells. Rows without regions have zero counts and areas and NaN
        statistics.
    """
    params = RegionParams(sigma, median_size, threshold, tail, connectivity_of(structure), cleaning)
    field = as_field(data, variable)
    wrap = wraps_in_longitude(field) if wrap is None else bool(wrap)
    anomaly = standardised_anomaly(field, baseline)
    return region_table(anomaly, params, wrap, precision=precision, n_boot=n_boot, confidence=confidence,
                        seed=seed, split_every=split_every, client=client)


def region_table(anomaly: xr.DataArray, params: RegionParams, wrap: bool, *, precision: int | None = None,
                 n_boot: int = 200, confidence: float = 0.95, seed: int = 0, split_every: int = 8,
                 client: Any = None) -> pd.DataFrame:
    """:func:`region_features` of an already standardised anomaly (time, y, x)."""
    labels = label_regions(region_mask(anomaly.data, params, wrap), params.structure, wrap)
    if precision is None:
        codes, tile_names = np.zeros(anomaly.shape[1:], dtype=np.int32), None
    else:
        codes, tile_names = tile_codes(tile_labels(anomaly, precision).values)
    parts = region_parts(labels, anomaly.data.rechunk(labels.chunks), cell_areas(anomaly), codes, split_every)
    parts = dask.compute(parts, scheduler=client)[0]
    table = summarise(parts, anomaly.sizes["time"], len(tile_names) if tile_names is not None else 1,
                      n_boot, confidence, seed)
    times = anomaly["time"].to_index()
    table.index = table.index.set_levels(times[table.index.levels[0]], level="time")
    if tile_names is None:
        return table.droplevel("tile")
    return table.set_index(table.index.set_levels(tile_names[table.index.levels[1]], level="tile"))


def region_parts(labels: da.Array, anomaly: da.Array, areas: np.ndarray, codes: np.ndarray,
                 split_every: int = 8) -> Any:
    """Delayed table of (time, tile, label) with the sums of each region's part in each tile."""
    # one graph key per spatial block for its areas and tile codes, shared by every time chunk
    grid_blocks: dict[tuple, Any] = {}
    reports = []
    for label_block, anomaly_block, where in zip(labels.to_delayed(optimize_graph=False).ravel(),
                                                 anomaly.to_delayed(optimize_graph=False).ravel(),
                                                 block_slices(labels.chunks)):
        key = (where[1].start, where[1].stop, where[2].start, where[2].stop)
        if key not in grid_blocks:
            grid_blocks[key] = dask.delayed((np.ascontiguousarray(areas[where[1:]]),
                                             np.ascontiguousarray(codes[where[1:]])), pure=True)
        reports.append(dask.delayed(_chunk_report, pure=True)(label_block, anomaly_block, grid_blocks[key],
                                                              where[0].start))
    return tree_reduce(reports, _add_reports, split_every)


def _chunk_report(labels: np.ndarray, anomaly: np.ndarray, grid: tuple[np.ndarray, np.ndarray],
                  time_offset: int) -> pd.DataFrame:
    areas, codes = grid
    t, y, x = np.nonzero(labels)
    weight = areas[y, x]
    value = anomaly[t, y, x]
    frame = pd.DataFrame({
        "time": t + time_offset, "tile": codes[y, x], "label": labels[t, y, x],
        "cells": np.ones(t.size, dtype=np.int64), "area": _on_grid(weight, "area"),
        "weighted": _on_grid(weight * value, "weighted"),
        "weighted_squares": _on_grid(weight * value**2, "weighted_squares"),
    })
    return frame.groupby(["time", "tile", "label"]).sum()


def _on_grid(values: np.ndarray, column: str) -> np.ndarray:
    """Each cell's contribution rounded to a multiple of its column's quantum.

    Float64 sums of such multiples are exact while they stay below 2^53
    quanta, so they do not depend on the order of addition: every chunking
    gives bit-for-bit the same table.
    """
    quantum = SUM_QUANTA[column]
    return np.round(values / quantum) * quantum


def _add_reports(*reports: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(reports).groupby(level=["time", "tile", "label"]).sum()


def summarise(parts: pd.DataFrame, n_times: int, n_tiles: int, n_boot: int, confidence: float,
              seed: int) -> pd.DataFrame:
    """One row per (time, tile) from the region parts; see :func:`region_features`."""
    groups = parts.groupby(level=["time", "tile"])
    sums = groups[["area", "weighted", "weighted_squares"]].sum()
    largest = parts.loc[groups["area"].idxmax()].droplevel("label")
    mean_all = sums["weighted"] / sums["area"]
    found = pd.DataFrame({
        "n_regions": groups.size(),
        "total_area": sums["area"],
        "largest_area": largest["area"],
        "largest_share": largest["area"] / sums["area"],
        "largest_mean": largest["weighted"] / largest["area"],
        "spatial_variance": (sums["weighted_squares"] / sums["area"] - mean_all**2).clip(lower=0.0),
    })
    tail = (1.0 - confidence) / 2
    intervals = [
        _share_interval(regions["area"].to_numpy(), n_boot, tail, np.random.default_rng([seed, time, tile]))
        for (time, tile), regions in groups
    ]
    found[["largest_share_lo", "largest_share_hi"]] = np.array(intervals).reshape(-1, 2)
    index = pd.MultiIndex.from_product([range(n_times), range(n_tiles)], names=["time", "tile"])
    table = found.reindex(index)[COLUMNS]
    table[["n_regions", "total_area", "largest_area"]] = table[["n_regions", "total_area", "largest_area"]].fillna(0)
    return table.astype({"n_regions": np.int64})


def _share_interval(area: np.ndarray, n_boot: int, tail: float, rng: np.random.Generator) -> tuple[float, float]:
    """Percentile bootstrap interval of max / sum over regions resampled with replacement."""
    if area.size == 1:
        return 1.0, 1.0
    if n_boot < 1:
        return np.nan, np.nan
    resampled = area[rng.integers(0, area.size, size=(n_boot, area.size))]
    shares = resampled.max(axis=1) / resampled.sum(axis=1)
    low, high = np.quantile(shares, [tail, 1.0 - tail])
    return float(low), float(high)
