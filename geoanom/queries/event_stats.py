"""The event catalogue's numbers: partial sums per chunk, then one reduction.

Each chunk of the label (or key) cube gives a small table with one row per
(label, time step) it holds: the count of flagged cells, their area and
area-weighted centroid sums, and the sums, counts and maximum of the scores.
Sums add up across chunks, so one task concatenates the tables, maps chunk
keys to event numbers (when the labels are not final yet) and adds them up;
no chunk waits for another, and no array of the cube's size is held at once.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from dask.delayed import Delayed

from ..errors import GeoanomError
from ..features.stitching import Lookup, apply_lookup, block_slices
from ..grid import spatial_dims

SCORES = ("fused", "anomaly", "consensus")
"""The per-cell values an event summarises: fused irregularity, signed anomaly, consensus."""


def result_tiles(result: xr.Dataset) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's tile as an integer code, and the geohash every code names.

    A scored result stores ``tile`` as CF flag-coded integers (``flag_values``
    and ``flag_meanings``); older ones hold the geohashes as text. A result
    without ``tile`` gives code 0 everywhere and the name "" (no tile).

    Parameters
    ----------
    result : xarray.Dataset
        The output of ``model.score`` (or a stored copy).

    Returns
    -------
    codes : ndarray of int64 over the result's spatial dimensions
    names : ndarray of str, indexed by code

    Raises
    ------
    GeoanomError
        The ``tile`` codes are not all named by its ``flag_values`` and ``flag_meanings``.

    Examples
    --------
    >>> tile = xr.DataArray([[5, 7]], dims=("lat", "lon"), attrs={"flag_values": [5, 7], "flag_meanings": "9q 9r"})
    >>> codes, names = result_tiles(xr.Dataset({"tile": tile}))
    >>> names[codes].tolist()
    [['9q', '9r']]
    """
    if "tile" not in result:
        return np.zeros(tuple(result.sizes[d] for d in spatial_dims(result)), dtype=np.int64), np.array([""])
    tile = result["tile"]
    values = np.asarray(tile.values)
    if values.dtype.kind in "USO":
        names, codes = np.unique(values.astype(str), return_inverse=True)
        return codes.reshape(values.shape).astype(np.int64), names
    meanings = np.asarray(str(tile.attrs.get("flag_meanings", "")).split())
    flags = np.asarray(tile.attrs.get("flag_values", []), dtype=np.int64).ravel()
    if len(meanings) != len(flags) or not np.isin(values, flags).all():
        raise GeoanomError("the result's 'tile' codes are not all named by its flag_values and flag_meanings; "
                           "was it edited after scoring?")
    order = np.argsort(flags)
    return np.searchsorted(flags[order], values).astype(np.int64), meanings[order]


def partial_stats(labels: da.Array, scores: dict[str, da.Array | None], spatial: dict[str, np.ndarray]) -> list[Delayed]:
    """One delayed (steps table, tile pairs) per chunk of ``labels`` (keys or final numbers, 0 outside).

    ``scores`` are (time, y, x) arrays of :data:`SCORES` (None when the result
    has none); ``spatial`` holds ``area``, ``lat``, ``lon`` and ``tile`` over (y, x).
    """
    cubes = {name: None if array is None else array.rechunk(labels.chunks).to_delayed(optimize_graph=False)
             for name, array in scores.items()}
    planes = {name: da.from_array(values, chunks=labels.chunks[1:]).to_delayed(optimize_graph=False)
              for name, values in spatial.items()}
    blocks = labels.to_delayed(optimize_graph=False)
    tasks = []
    for index, where in zip(np.ndindex(*blocks.shape), block_slices(labels.chunks)):
        block_scores = {name: None if cube is None else cube[index] for name, cube in cubes.items()}
        block_planes = {name: plane[index[1:]] for name, plane in planes.items()}
        tasks.append(dask.delayed(block_stats, pure=True)(blocks[index], where[0].start, block_scores, block_planes))
    return tasks


def block_stats(labels: np.ndarray, t0: int, scores: dict[str, np.ndarray | None],
                planes: dict[str, np.ndarray]) -> tuple[pd.DataFrame, np.ndarray]:
    """The partial sums of one chunk by (label, step), and its distinct (label, tile code) pairs."""
    t, y, x = np.nonzero(labels)
    area = np.nan_to_num(planes["area"][y, x].astype(np.float64))
    lon = np.radians(planes["lon"][y, x].astype(np.float64))
    columns = {"label": labels[t, y, x].astype(np.int64), "t": (t + t0).astype(np.int64),
               "cells": np.ones(t.size, dtype=np.int64), "area": area,
               "lat_sum": area * planes["lat"][y, x], "sin_sum": area * np.sin(lon), "cos_sum": area * np.cos(lon)}
    for name in SCORES:
        values = np.full(t.size, np.nan) if scores.get(name) is None else scores[name][t, y, x].astype(np.float64)
        finite = np.isfinite(values)
        columns[f"{name}_sum"] = np.where(finite, values, 0.0)
        columns[f"{name}_n"] = finite.astype(np.int64)
        if name == "fused":
            columns["fused_max"] = values
    frame = pd.DataFrame(columns)
    how = {name: "sum" for name in frame.columns if name not in ("label", "t")}
    how["fused_max"] = "max"
    steps = frame.groupby(["label", "t"], sort=False).agg(how).reset_index()
    tiles = np.unique(np.stack([columns["label"], planes["tile"][y, x].astype(np.int64)]), axis=1)
    return steps, tiles


def reduce_stats(parts: list[tuple[pd.DataFrame, np.ndarray]], lookup: Lookup | None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Event sums (one row per event) and (event, tile code) pairs from every chunk's partials.

    ``lookup`` maps chunk keys to event numbers; None when the partials are
    already by event number.
    """
    steps = pd.concat([part[0] for part in parts], ignore_index=True)
    tiles = np.concatenate([part[1] for part in parts], axis=1)
    if lookup is not None:
        steps["label"] = apply_lookup(steps["label"].to_numpy(), lookup)
        tiles = np.stack([apply_lookup(tiles[0], lookup), tiles[1]])
    steps = steps[steps["label"] > 0]
    footprint = steps.groupby(["label", "t"])["area"].sum().groupby("label").max().rename("max_area")
    how = {name: "sum" for name in steps.columns if name not in ("label", "t")}
    how.update(fused_max="max")
    events = steps.groupby("label").agg(start=("t", "min"), end=("t", "max"),
                                        **{name: (name, func) for name, func in how.items()})
    events = events.join(footprint)
    pairs = pd.DataFrame({"label": tiles[0], "tile": tiles[1]})
    return events, pairs[pairs["label"] > 0].drop_duplicates()
