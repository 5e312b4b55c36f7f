"""The one shape of a cube, for files opened and data given in memory alike.

:func:`standardise` gives a dataset canonical coordinates (``time``, ``lat``
and ``lon``, found by CF metadata or name), the variables and level asked
for, float variables with dims ``(time, <spatial dims>)``, longitudes in
[-180, 180) and chunks; it refuses a time axis that repeats a step, and for
data given in memory one that goes back. :func:`geoanom.io.read.open_cube`
runs every file through it and :func:`geoanom.io.read.as_cube` every
dataset, which is why it is a module of its own: both read it, neither
reaches into the other. A time axis checked once is remembered
(:func:`mark_checked`), so a cube from ``open_cube`` is not checked again by
every fit and score.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Hashable

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from geoanom.errors import CoordinateError, NoDataError, VariableNotFoundError
from geoanom.formatting import iso_date
from geoanom.timesteps import same_step

from .grid import find_coordinate, grid_dims, normalise_lon_lat, rename_coordinate, true_lat_lon, west_edge
from .joining import one_step_reason
from .levels import select_level
from .safety import INTEGER_SOURCE

# Upper bound of a default chunk. A task holds its chunk's temporaries (features, scores: about 100 bytes
# per observation), so the peak memory of fit and score grows with it: 16 MiB chunks of the annual
# throughput cube peaked at 1.40 GB, 8 MiB ones at 1.17 GB (benchmarks/fit_memory.py).
CHUNK_BYTES = 8 * 2**20

# Time axes whose order and steps are checked, by identity: an index never changes, and selecting variables,
# chunking or assigning other coordinates keeps a cube's, so as_cube (every fit and score) does not check
# open_cube's again (0.012 s of same_step on the 1,040 annual cftime steps of the throughput cube, each time).
_CHECKED_TIMES: dict[int, weakref.ref] = {}


def mark_checked(times: pd.Index) -> None:
    """Remember that `times` are in order with no step twice, for as long as the index lives."""
    key = id(times)
    _CHECKED_TIMES[key] = weakref.ref(times, lambda _, key=key: _CHECKED_TIMES.pop(key, None))


def _is_checked(times: pd.Index) -> bool:
    ref = _CHECKED_TIMES.get(id(times))
    return ref is not None and ref() is times


def canonical_coords(ds: xr.Dataset, path: str) -> xr.Dataset:
    """Coordinates renamed time, lat and lon (true ones computed first on a rotated-pole grid)."""
    ds = true_lat_lon(ds, path)
    for key in ("time", "lat", "lon"):
        ds = rename_coordinate(ds, find_coordinate(ds, key, path), key, path)
    return ds


def standardise(ds: xr.Dataset, path: str, variables, chunks, level: float | None = None,
                in_memory: bool = False) -> xr.Dataset:
    """Rename coordinates, select variables and a level, chunk, and put everything in canonical order.

    ``in_memory``: `ds` is data given as a Dataset (:func:`geoanom.io.read.as_cube`), not a file just opened:
    dask-backed variables keep their chunks, float ones their encoding (what marks values open_cube has
    checked), a scalar time is refused rather than made a dimension, and time must already increase without
    repeats.
    """
    ds = canonical_coords(ds, path)
    time = ds["time"]
    if time.ndim > 1 or time.dtype.kind not in "MO":
        units = time.attrs.get("units", "none")
        raise CoordinateError(f"time in {path} is not a 1-D CF time (units '{units}').")
    if in_memory and "time" not in ds.dims:
        raise CoordinateError(f"{path} holds one time step ({iso_date(time.values)}) without a time dimension; keep "
                              "the dimension by selecting with a list, as in isel(time=[40]) rather than isel(time=40).")
    spatial = grid_dims(ds, path)
    names = select_variables(ds, variables, spatial, path)
    ds = select_level(ds[names], spatial, path, level)
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon", *spatial) and ds[c].ndim])
    plan = default_chunks(ds) if chunks is None else dict(chunks)
    if chunks is not None or not (in_memory and all(isinstance(ds[n].data, da.Array) for n in names)):
        ds = ds.chunk({d: c for d, c in plan.items() if d in ds.dims})
    if "time" not in ds.dims:  # a snapshot with a scalar time
        ds = ds.expand_dims("time")
    for name in names:  # astype also drops an integer dtype encoding
        var = ds[name].transpose("time", *spatial)
        ds[name] = var if in_memory and var.dtype.kind == "f" else var.astype(_float_dtype(var.dtype))
        if var.dtype.kind != "f":  # a flag or a code, not a measurement: models leave it out unless it is named
            ds[name].encoding[INTEGER_SOURCE] = str(var.dtype)
    if not in_memory:
        ds = normalise_lon_lat(ds)
        ds = ds if ds.indexes["time"].is_monotonic_increasing else ds.sortby("time")
        check_one_step_each(ds.indexes["time"], path)
        return ds
    if not _is_checked(times := ds.indexes["time"]):
        check_time_order(times, path)
        check_one_step_each(times, path)
        mark_checked(times)
    return _canonical_lon_lat(ds)


def _canonical_lon_lat(ds: xr.Dataset) -> xr.Dataset:
    """:func:`normalise_lon_lat`, unless the coordinates are already canonical: then only their CF attributes.

    For data given in memory. Idempotent, so a cube from open_cube keeps its coordinates bit for bit
    ((x + 180) % 360 - 180 may move a longitude by an ulp) and its data without a reordering in their graph.
    """
    lat, lon = ds["lat"].values, ds["lon"].values
    ordered = lat.ndim > 1 or bool(np.all(np.diff(lat) > 0))
    if lon.ndim == 1 and ordered:
        ascending = np.sort(lon)
        ordered = np.array_equal(lon, np.roll(ascending, -west_edge(ascending)))
    if not (ordered and np.all((lon >= -180.0) & (lon < 180.0))):
        return normalise_lon_lat(ds)
    return ds.assign_coords(lat=ds["lat"].assign_attrs(standard_name="latitude", units="degrees_north"),
                            lon=ds["lon"].assign_attrs(standard_name="longitude", units="degrees_east"))


def check_one_step_each(times: pd.Index, label: str) -> None:
    """Refuse, naming both dates, one step held twice at two stamps (March at 03-16 and 03-31: :func:`same_step`).

    Exact repeats are refused before this, with their own message.
    """
    if times.is_unique and (repeats := np.flatnonzero(same_step(times))).size:
        k = int(repeats[0])
        raise CoordinateError(f"{label} holds one time step twice: {iso_date(times[k])} and {iso_date(times[k + 1])} "
                              f"{one_step_reason(times, k)}; drop one of them first.")


def check_time_order(times: pd.Index, label: str) -> None:
    """Refuse, naming the dates, time steps that repeat or go back (files are put in order; data given are not)."""
    if not times.is_unique:
        repeated = times[times.duplicated()][0]
        raise CoordinateError(f"time steps repeat in {label}: {iso_date(repeated)} appears "
                              f"{int((times == repeated).sum())} times; drop the repeats first, e.g. with "
                              ".drop_duplicates('time').")
    if not times.is_monotonic_increasing:
        back = int(np.flatnonzero(~(times[1:] > times[:-1]))[0])
        raise CoordinateError(f"time in {label} goes back: {iso_date(times[back + 1])} follows "
                              f"{iso_date(times[back])}; put it in order first, e.g. with .sortby('time').")


def select_variables(ds: xr.Dataset, variables, spatial: tuple, path: str) -> list[Hashable]:
    """Names of the variables to keep, checked against `ds`."""
    needed = set(spatial) | ({"time"} & set(ds.dims))
    bounds = {v.attrs.get("bounds") for v in ds.variables.values()}
    cube = [n for n, v in ds.data_vars.items()
            if needed <= set(v.dims) and n not in bounds and v.dtype.kind in "biuf"]
    if variables is None:
        if not cube:
            raise NoDataError(f"no numeric variable in {path} has time, latitude and longitude dimensions.")
        return cube
    names = [variables] if isinstance(variables, str) else list(dict.fromkeys(variables))
    for name in names:
        if name not in ds.data_vars:
            known = ", ".join(map(str, cube or ds.data_vars))
            raise VariableNotFoundError(f"variable '{name}' is not in {path}; known variables: {known}.")
        if not needed <= set(ds[name].dims) or ds[name].dtype.kind not in "biuf":
            raise CoordinateError(f"variable '{name}' in {path} is not a numeric field on time, latitude and "
                                  f"longitude (dims {ds[name].dims}, dtype {ds[name].dtype}).")
    return names


def _float_dtype(dtype: np.dtype) -> np.dtype:
    return dtype if np.issubdtype(dtype, np.floating) else np.dtype("float32")


def default_chunks(ds: xr.Dataset) -> dict[Hashable, int]:
    """Whole grid slabs when one fits in CHUNK_BYTES, else one time step and the grid split evenly."""
    spatial = ("lat", "lon") if ds["lat"].ndim == 1 else ds["lat"].dims
    itemsize = max((_float_dtype(v.dtype).itemsize for v in ds.data_vars.values()), default=8)
    slab = math.prod(ds.sizes[d] for d in spatial) * itemsize
    if slab <= CHUNK_BYTES:
        ntime = max(1, min(ds.sizes.get("time", 1), CHUNK_BYTES // slab))
        return {"time": ntime, **{d: -1 for d in spatial}}
    split = math.ceil(math.sqrt(slab / CHUNK_BYTES))
    return {"time": 1, **{d: math.ceil(ds.sizes[d] / split) for d in spatial}}
