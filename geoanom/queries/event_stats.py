"""The event catalogue's numbers: partial sums per chunk, then one reduction.

Each chunk of the label (or key) cube gives a small table with one row per
(label, time step) it holds: the count of flagged cells, their area and
area-weighted centroid sums, and the sums, counts and maximum of the scores.
Sums add up across chunks, so one task concatenates the tables, maps chunk
keys to event numbers (when the labels are not final yet) and adds them up;
no chunk waits for another, and no array of the cube's size is held at once.

The sums are exact, so they do not depend on where chunks end: float
addition is not associative, and summing the same cells in other partial
sums changed areas, centroids and means in their last bits (``DataFrame.equals``
failed between chunkings). Each cell's term is split into two parts
(:func:`exact_parts`): a multiple of a fixed power of two ``q`` (24 bits
below the largest cell's term for the areas, :data:`SCORE_QUANTA` for the
scores) and the rest, rounded to a multiple of ``q / 2**26``. Float64 sums
of multiples of one quantum are exact, in any order, while they hold fewer
than 2**53 quanta: about 2.7e8 cell-steps in one event, and irregularities
summing to 3e13. The two sums are added once at the end. What the rounding
drops is 1e-15 of the largest cell's area and 6e-11 of an irregularity.
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
"""The kinds of per-cell value an event summarises: fused irregularity, signed anomaly, consensus.

A result's scores are named by kind, and anomalies by kind and variable
(``"anomaly:tas"``, one per variable, :func:`score_kind`).
"""

TERM_BITS = 24
"""Bits the larger part of each area-weighted term keeps below the largest cell's term."""

LOW_BITS = 26
"""How many bits finer the rest of a term is rounded than its larger part."""

SCORE_QUANTA = {"fused": 2.0**-8, "anomaly": 2.0**-8, "consensus": 2.0**-8}
"""The quantum of the larger part of each score (no bound is known in advance)."""



def score_kind(name: str) -> str:
    """The kind (one of :data:`SCORES`) of a score named ``kind`` or ``kind:variable``.

    Examples
    --------
    >>> score_kind("anomaly:tas"), score_kind("fused")
    ('anomaly', 'fused')
    """
    return name.partition(":")[0]


def exact_parts(values: np.ndarray, quantum: float) -> tuple[np.ndarray, np.ndarray]:
    """``values`` as a multiple of ``quantum`` (a power of two) and the rest, a multiple of ``quantum / 2**LOW_BITS``.

    Sums of either part are exact in float64, hence the same in any order,
    while they hold fewer than 2**53 of its quanta.

    Examples
    --------
    >>> high, low = exact_parts(np.array([0.1, 0.2, 0.3]), 2.0**-8)
    >>> bool((high[0] + high[1]) + high[2] == high[0] + (high[1] + high[2]))
    True
    >>> bool((0.1 + 0.2) + 0.3 == 0.1 + (0.2 + 0.3))
    False
    >>> float(abs(high + low - [0.1, 0.2, 0.3]).max()) < 2.0**-34
    True
    """
    values = np.asarray(values, dtype=np.float64)
    high = np.rint(values / quantum) * quantum
    fine = quantum / 2.0**LOW_BITS
    return high, np.rint((values - high) / fine) * fine


def term_quantum(bound: float, bits: int = TERM_BITS) -> float:
    """The power of two that leaves terms up to ``bound`` in magnitude ``bits`` bits (1.0 without a bound).

    Examples
    --------
    >>> term_quantum(12000.0) == 2.0**(14 - 24)
    True
    """
    if not np.isfinite(bound) or bound <= 0:
        return 1.0
    return float(2.0 ** (int(np.ceil(np.log2(bound))) - bits))


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

    ``scores`` are (time, y, x) arrays of :data:`SCORES`, by name (``"fused"``,
    ``"consensus"``, ``"anomaly:<variable>"``; None when the result has none);
    ``spatial`` holds ``area``, ``lat``, ``lon`` and ``tile`` over (y, x).
    """
    cubes = {name: None if array is None else array.rechunk(labels.chunks).to_delayed(optimize_graph=False)
             for name, array in scores.items()}
    planes = {name: da.from_array(values, chunks=labels.chunks[1:]).to_delayed(optimize_graph=False)
              for name, values in spatial.items()}
    blocks = labels.to_delayed(optimize_graph=False)
    largest = float(np.nanmax(np.abs(spatial["area"]), initial=0.0))
    quanta = {"area": term_quantum(largest), "lat_sum": term_quantum(90.0 * largest),
              **{name: SCORE_QUANTA[score_kind(name)] for name in scores}}
    tasks = []
    for index, where in zip(np.ndindex(*blocks.shape), block_slices(labels.chunks)):
        block_scores = {name: None if cube is None else cube[index] for name, cube in cubes.items()}
        block_planes = {name: plane[index[1:]] for name, plane in planes.items()}
        tasks.append(dask.delayed(block_stats, pure=True)(blocks[index], where[0].start, block_scores, block_planes,
                                                          quanta))
    return tasks


def block_stats(labels: np.ndarray, t0: int, scores: dict[str, np.ndarray | None],
                planes: dict[str, np.ndarray], quanta: dict[str, float]) -> tuple[pd.DataFrame, np.ndarray]:
    """The partial sums of one chunk by (label, step), and its distinct (label, tile code) pairs.

    ``quanta``: what each kind of term is rounded to (``area``, ``lat_sum``
    and each score by name), so that every sum is exact.
    """
    t, y, x = np.nonzero(labels)
    area = np.nan_to_num(planes["area"][y, x].astype(np.float64))
    lon = np.radians(planes["lon"][y, x].astype(np.float64))
    columns = {"label": labels[t, y, x].astype(np.int64), "t": (t + t0).astype(np.int64),
               "cells": np.ones(t.size, dtype=np.int64)}
    terms = {"area": (area, quanta["area"]), "lat_sum": (area * planes["lat"][y, x], quanta["lat_sum"]),
             "sin_sum": (area * np.sin(lon), quanta["area"]), "cos_sum": (area * np.cos(lon), quanta["area"])}
    for name, (values, quantum) in terms.items():
        columns[name], columns[f"{name}_low"] = exact_parts(values, quantum)
    for name, cube in scores.items():
        values = np.full(t.size, np.nan) if cube is None else cube[t, y, x].astype(np.float64)
        finite = np.isfinite(values)
        columns[f"{name}_sum"], columns[f"{name}_sum_low"] = exact_parts(np.where(finite, values, 0.0), quanta[name])
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
    areas = steps.groupby(["label", "t"])[["area", "area_low"]].sum()
    footprint = (areas["area"] + areas["area_low"]).groupby("label").max().rename("max_area")
    how = {name: "sum" for name in steps.columns if name not in ("label", "t")}
    how.update(fused_max="max")
    events = steps.groupby("label").agg(start=("t", "min"), end=("t", "max"),
                                        **{name: (name, func) for name, func in how.items()})
    for low in [name for name in events.columns if name.endswith("_low")]:  # the two exact sums, added once
        events[low.removesuffix("_low")] += events.pop(low)
    events = events.join(footprint)
    pairs = pd.DataFrame({"label": tiles[0], "tile": tiles[1]})
    return events, pairs[pairs["label"] > 0].drop_duplicates()
