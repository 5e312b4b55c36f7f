"""Open data cubes: `open_cube` and `sample_cube`.

`open_cube` gives every cube one shape whatever the files call things:
coordinates ``time``, ``lat`` and ``lon`` found by CF metadata, longitudes in
[-180, 180), float variables with dims ``(time, <spatial dims>)``, lazy dask
chunks. Calendars are kept: non-standard ones decode to cftime objects.
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Union

import numpy as np
import pandas as pd
import xarray as xr

from geoanom.errors import CoordinateError, GeoanomError, InputFileError, NoDataError, UnitsError, VariableNotFoundError
from geoanom.formatting import calendar_of, coordinate_difference, iso_date
from geoanom.timesteps import step_seconds
from geoanom.units import normalised_units

from .fill_values import mask_undeclared_fill
from .grid import find_coordinate, grid_dims, normalise_lon_lat, rename_coordinate, true_lat_lon
from .levels import LevelAxis, select_level, variable_levels
from .messages import short_reason
from .packed import packed_sentinels
from .safety import INTEGER_SOURCE, guard_reads, mask_infinite

PathLike = Union[str, "os.PathLike[str]"]
# Upper bound of a default chunk. A task holds its chunk's temporaries (features, scores: about 100 bytes
# per observation), so the peak memory of fit and score grows with it: 16 MiB chunks of the annual
# throughput cube peaked at 1.40 GB, 8 MiB ones at 1.17 GB (benchmarks/fit_memory.py).
CHUNK_BYTES = 8 * 2**20
NETCDF_ENGINES = ("netcdf4", "h5netcdf")  # h5netcdf reads some HDF5 files netCDF-C rejects
_SAMPLES = {"north_america": ("A1B_north_america.nc", "air_temperature"),
            "sst": ("ostia_monthly.nc", "surface_temperature")}
_SST_RANGE_K = (260.0, 320.0)  # plausible sea-surface temperatures


def open_cube(
    paths: PathLike | Sequence[PathLike],
    variables: str | Sequence[str] | None = None,
    chunks: Mapping[Hashable, int | str] | None = None,
    level: float | None = None,
) -> xr.Dataset:
    """Open NetCDF files or Zarr stores as one lazy cube with canonical names.

    Parameters
    ----------
    paths : str, path or list of them
        Files, Zarr stores (format 2 or 3) or glob patterns; several files
        are concatenated along time, in time order.
    variables : str or list of str, optional
        Variables to keep; by default every numeric variable on time and grid.
    chunks : mapping, optional
        Dask chunks by dimension name; by default whole grid slabs and as many
        time steps as fit in `CHUNK_BYTES`.
    level : float, optional
        The vertical level to keep, by its coordinate value (e.g. 850 on a
        ``plev`` axis in hPa, 5 on a ``depth`` axis in m), on every variable
        that has levels; a variable with several levels needs it (see
        :func:`describe_levels`).

    Returns
    -------
    xarray.Dataset
        Dask-backed float variables with dims ``(time, lat, lon)``, or e.g.
        ``(time, y, x)`` with 2-D ``lat``/``lon`` for curvilinear grids;
        ``attrs["geoanom_source"]`` names the files read. ±inf and fill
        values the files do not declare are NaN, also packed integers' such as
        int16's -32768 (the latter recorded in the variable's
        ``attrs["geoanom_fill_value"]``, see :mod:`geoanom.io.fill_values`).

    Raises
    ------
    InputFileError, VariableNotFoundError, CoordinateError, NoDataError, UnitsError
        In one sentence naming the file or variable at fault; files that do
        not share a grid, calendar, kind of time step or a variable's units
        (UnitsError; spellings of one unit are one) name the odd file, and a
        date of one file nearly repeating a step of another (June at 06-01
        beside June at 06-16) names both dates and files.

    Warns
    -----
    GeoanomWarning
        Once per variable holding an undeclared fill value: the file, the
        value, its share and the other values' range.

    Examples
    --------
    >>> import iris_sample_data
    >>> cube = open_cube(iris_sample_data.path + "/A1B_north_america.nc")
    >>> dict(cube.sizes)
    {'time': 240, 'lat': 37, 'lon': 49}
    """
    files, label = _resolve(paths)
    parts, names, packed = [], variables, {}
    for path in files:
        opened = guard_reads(_open_one(path), path)
        parts.append(_standardise(opened, path, names, chunks, level))
        names = list(parts[-1].data_vars)  # later files must hold the first file's variables
        for name, sentinels in packed_sentinels(opened, names).items():  # before the cast to float forgets the packing
            packed.setdefault(name, {}).update(sentinels)
    ds = _concat_time(parts, files, label)
    plan = _default_chunks(ds) if chunks is None else dict(chunks)
    if unknown := [str(d) for d in plan if d not in ds.dims]:
        dims = ", ".join(map(str, ds.dims))
        raise GeoanomError(f"chunks name {', '.join(unknown)}, which are not dimensions of {label} ({dims}).")
    ds = mask_infinite(ds.chunk(plan))  # ±inf is missing; the lazy count is for count_infinite
    ds = mask_undeclared_fill(ds, [(path, part.indexes["time"]) for path, part in zip(files, parts)], packed)
    # lat/lon are one grid slab that every consumer needs: hold them in memory.
    ds = ds.assign_coords(lat=ds["lat"].compute(), lon=ds["lon"].compute())
    for var in ds.variables.values():  # storage chunking from the files would clash on writing
        for key in ("chunks", "preferred_chunks", "chunksizes", "shards"):
            var.encoding.pop(key, None)
    ds.attrs["geoanom_source"] = ", ".join(files)
    return ds


def sample_cube(name: str) -> xr.Dataset:
    """Open a cube of real data shipped by the ``iris-sample-data`` package.

    Parameters
    ----------
    name : {"north_america", "sst"}
        ``north_america``: HadCM3 A1B annual air temperature at 1.5 m (K),
        1860-2099, 360-day calendar, 240 x 37 x 49. ``sst``: OSTIA monthly
        sea-surface temperature (K), 2006-04 to 2010-09, 54 x 18 x 432, land NaN.

    Returns
    -------
    xarray.Dataset
        As from `open_cube`, with ``attrs["geoanom_sample"]`` set to `name`.
    """
    if name not in _SAMPLES:
        raise GeoanomError(f"unknown sample '{name}'; known samples: {', '.join(_SAMPLES)}.")
    try:
        import iris_sample_data
    except ImportError as exc:
        raise GeoanomError("sample data needs the iris-sample-data package.") from exc
    filename, var = _SAMPLES[name]
    ds = open_cube(os.path.join(iris_sample_data.path, filename), variables=var)
    if name == "sst":
        # Land is already NaN (a _FillValue) in this file; the range check also
        # masks land stored as a constant in other copies of OSTIA.
        low, high = _SST_RANGE_K
        ds[var] = ds[var].where((ds[var] >= low) & (ds[var] <= high))
    ds.attrs["geoanom_sample"] = name
    return ds


def describe_levels(paths: PathLike | Sequence[PathLike]) -> dict[str, LevelAxis | None]:
    """The vertical levels of every variable `open_cube` could read, from the first file's metadata.

    Parameters
    ----------
    paths : str, path or list of them
        As for `open_cube`.

    Returns
    -------
    dict
        Each numeric variable on time and grid, with its
        :class:`~geoanom.io.levels.LevelAxis` (``str()`` lists the levels and
        units) when it has several levels, so ``open_cube`` needs ``level=``;
        None when it has none (or one, which ``open_cube`` keeps by itself).

    Examples
    --------
    >>> import iris_sample_data
    >>> levels = describe_levels(iris_sample_data.path + "/hybrid_height.nc")
    >>> str(levels["air_potential_temperature"])[:32]
    'model_level_number: 1, 2, 3, 4, '
    """
    files, _ = _resolve(paths)
    ds = _canonical_coords(_open_one(files[0]), files[0])
    spatial = grid_dims(ds, files[0])
    found: dict[str, LevelAxis | None] = {}
    for name in _select(ds, None, spatial, files[0]):
        axes = [a for d, a in variable_levels(ds, name, spatial).items() if a is not None and ds.sizes[d] > 1]
        found[str(name)] = axes[0] if axes else None
    return found


def _resolve(paths: PathLike | Sequence[PathLike]) -> tuple[list[str], str]:
    """Expand globs and check existence; return the files and a label for messages."""
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise InputFileError("no input files were given.")
    files: list[str] = []
    for item in items:
        text = os.path.expanduser(os.fspath(item))
        if "://" in text:  # fsspec or OPeNDAP URL: the backend finds it
            files.append(text)
        elif glob.has_magic(text):
            if not (hits := sorted(glob.glob(text))):
                raise InputFileError(f"no file matches '{text}'.")
            files.extend(hits)
        elif os.path.exists(text):
            files.append(text)
        else:
            raise InputFileError(f"file '{text}' does not exist.")
    return list(dict.fromkeys(files)), ", ".join(os.fspath(i) for i in items)


def _open_one(path: str) -> xr.Dataset:
    """Open one NetCDF file or Zarr store lazily, with times decoded."""
    markers = (".zgroup", ".zmetadata", "zarr.json")
    if path.rstrip("/").endswith(".zarr") or any(os.path.exists(os.path.join(path, m)) for m in markers):
        try:
            consolidated = None if "://" in path else _consolidated(Path(path))
            return xr.open_dataset(path, engine="zarr", consolidated=consolidated, **_open_kwargs())
        except Exception as exc:
            raise InputFileError(f"cannot read '{path}': not a readable Zarr store ({short_reason(exc, path)}).") from exc
    if os.path.isdir(path):
        raise InputFileError(f"cannot read '{path}': it is a directory but not a Zarr store.")
    return _open_netcdf(path)


def _open_netcdf(path: str, engines: Sequence[str] = NETCDF_ENGINES) -> xr.Dataset:
    """Open with the first engine that can; report the first engine's reason."""
    errors: list[Exception] = []
    for engine in engines:
        try:
            return xr.open_dataset(path, engine=engine, **_open_kwargs())
        except Exception as exc:  # the next engine may manage
            errors.append(exc)
    what = "not a NetCDF or Zarr file" if isinstance(errors[0], OSError) else "cannot decode it"
    raise InputFileError(f"cannot read '{path}': {what} ({short_reason(errors[0], path)}).") from errors[0]


def _open_kwargs() -> dict:
    # chunks=None keeps lazy backend arrays, so the first dask chunking slices
    # the file directly; cache=False stops xarray keeping whole variables.
    coders = getattr(xr, "coders", None)  # xarray >= 2025.01; use_cftime=None: cftime only if needed
    decode = coders.CFDatetimeCoder(use_cftime=None) if coders else True
    return {"chunks": None, "cache": False, "decode_times": decode, "decode_timedelta": False}


def _consolidated(p: Path) -> bool:
    """Whether a store has consolidated metadata, so xarray neither guesses nor warns."""
    meta = p / "zarr.json"
    v3 = meta.exists() and json.loads(meta.read_text()).get("consolidated_metadata") is not None
    return v3 or (p / ".zmetadata").exists()


def _canonical_coords(ds: xr.Dataset, path: str) -> xr.Dataset:
    """Coordinates renamed time, lat and lon (true ones computed first on a rotated-pole grid)."""
    ds = true_lat_lon(ds, path)
    for key in ("time", "lat", "lon"):
        ds = rename_coordinate(ds, find_coordinate(ds, key, path), key, path)
    return ds


def _standardise(ds: xr.Dataset, path: str, variables, chunks, level: float | None = None) -> xr.Dataset:
    """Rename coordinates, select variables and a level, chunk, and put everything in canonical order."""
    ds = _canonical_coords(ds, path)
    time = ds["time"]
    if time.ndim > 1 or time.dtype.kind not in "MO":
        units = time.attrs.get("units", "none")
        raise CoordinateError(f"time in {path} is not a 1-D CF time (units '{units}').")
    spatial = grid_dims(ds, path)
    names = _select(ds, variables, spatial, path)
    ds = select_level(ds[names], spatial, path, level)
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon", *spatial) and ds[c].ndim])
    plan = _default_chunks(ds) if chunks is None else dict(chunks)
    ds = ds.chunk({d: c for d, c in plan.items() if d in ds.dims})
    if "time" not in ds.dims:  # a snapshot with a scalar time
        ds = ds.expand_dims("time")
    for name in names:  # astype also drops an integer dtype encoding
        var = ds[name].transpose("time", *spatial)
        ds[name] = var.astype(_float_dtype(var.dtype))
        if var.dtype.kind != "f":  # a flag or a code, not a measurement: models leave it out unless it is named
            ds[name].encoding[INTEGER_SOURCE] = str(var.dtype)
    ds = normalise_lon_lat(ds)
    return ds if ds.indexes["time"].is_monotonic_increasing else ds.sortby("time")


def _select(ds: xr.Dataset, variables, spatial: tuple, path: str) -> list[Hashable]:
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


def _default_chunks(ds: xr.Dataset) -> dict[Hashable, int]:
    """Whole grid slabs when one fits in CHUNK_BYTES, else one time step and the grid split evenly."""
    spatial = ("lat", "lon") if ds["lat"].ndim == 1 else ds["lat"].dims
    itemsize = max((_float_dtype(v.dtype).itemsize for v in ds.data_vars.values()), default=8)
    slab = math.prod(ds.sizes[d] for d in spatial) * itemsize
    if slab <= CHUNK_BYTES:
        ntime = max(1, min(ds.sizes.get("time", 1), CHUNK_BYTES // slab))
        return {"time": ntime, **{d: -1 for d in spatial}}
    split = math.ceil(math.sqrt(slab / CHUNK_BYTES))
    return {"time": 1, **{d: math.ceil(ds.sizes[d] / split) for d in spatial}}


def _concat_time(parts: list[xr.Dataset], files: list[str], label: str) -> xr.Dataset:
    """Concatenate files along time, in time order; their grids, calendars and steps must match.

    A disagreement names the odd file: the one that differs from what most files hold.
    """
    ds = parts[0]
    if len(parts) > 1:
        odd, ref = _odd_one([_calendar(p) for p in parts])
        if odd is not None:
            raise CoordinateError(f"the files {label} use different calendars: '{files[odd]}' uses "
                                  f"{_calendar(parts[odd])}, '{files[ref]}' {_calendar(parts[ref])}.")
        odd, ref = _odd_one([_grid_key(p) for p in parts])
        if odd is not None:
            raise CoordinateError(f"the files {label} do not share one grid: '{files[odd]}' differs from "
                                  f"'{files[ref]}': {_grid_difference(parts[ref], parts[odd])}.")
        _check_units(parts, files, label)
        _check_steps(parts, files, label)
        try:
            ordered = sorted(parts, key=lambda p: p.indexes["time"][0])
            ds = xr.concat(ordered, dim="time", data_vars="minimal", coords="minimal",
                           compat="override", join="exact", combine_attrs="override")
        except TypeError as exc:  # datetime64 against cftime in one calendar (dates past 2262 in one file)
            raise CoordinateError(f"the files {label} use different calendars ({short_reason(exc)}).") from exc
        except ValueError as exc:
            raise CoordinateError(f"the files {label} do not share one grid ({short_reason(exc)}).") from exc
        if not ds.indexes["time"].is_monotonic_increasing:
            ds = ds.sortby("time")
    if not ds.indexes["time"].is_unique:
        repeated = ds.indexes["time"][ds.indexes["time"].duplicated()][0]
        holding = [f"'{f}'" for f, p in zip(files, parts) if repeated in p.indexes["time"]]
        where = f"is in both {' and '.join(holding)}" if len(holding) > 1 else f"appears twice in {holding[0]}"
        raise CoordinateError(f"time steps repeat in {label}: {iso_date(repeated)} {where}.")
    if len(parts) > 1:
        _check_near_repeats(ds.indexes["time"], parts, files, label)
    return ds


def _check_units(parts: list[xr.Dataset], files: list[str], label: str) -> None:
    """Refuse, naming the variable and the odd file, files whose variables are in other units ('' is none).

    Spellings of one unit are equal (:func:`geoanom.units.normalised_units`): 'degC' beside 'Celsius' joins.
    """
    for name in parts[0].data_vars:
        units = [str(p[name].attrs.get("units", "")).strip() for p in parts]
        odd, ref = _odd_one([normalised_units(u) for u in units])
        if odd is not None:
            if not units[ref]:  # the file without units is the one to name first, whichever most files are like
                odd, ref = ref, odd
            said = [f"is in '{units[i]}'" if units[i] else "has no units" for i in (odd, ref)]
            raise UnitsError(f"the files {label} do not share units: {name} {said[0]} in '{files[odd]}' "
                             f"but {said[1]} in '{files[ref]}'; convert one before joining them.")


# A date of one file less than this many of the record's steps from the date two steps away holds the same
# step as its neighbour (June 2008 at 06-01 in one file between 05-16 and 06-16 in another: 1.0 step); two
# files whose dates sit at different points of the step (mid-month, then month starts) join 1.5 steps apart,
# steps of 28 to 31 days are 1.8 or more, a missing step 2 or more.
NEAR_REPEAT = 1.25


def _check_near_repeats(times: pd.Index, parts: list[xr.Dataset], files: list[str], label: str) -> None:
    """Refuse, naming both dates and files, a date of one file that repeats a step of another at another time."""
    seconds = step_seconds(times)
    if not seconds.size:
        return
    step = float(np.median(seconds))
    owner = np.empty(len(times), dtype=int)
    for i, part in enumerate(parts):
        owner[times.get_indexer(part.indexes["time"])] = i
    # Short steps between files: one step on its own far below the record's, or two that add up to about one.
    crossing = owner[1:] != owner[:-1]
    short = crossing & (seconds < step / 4)
    pair = seconds[1:] + seconds[:-1] < NEAR_REPEAT * step
    short[:-1] |= crossing[:-1] & pair
    short[1:] |= crossing[1:] & pair
    if not short.any():
        return
    candidates = np.flatnonzero(short)
    k = int(candidates[np.argmin(seconds[candidates])])
    raise CoordinateError(f"time steps nearly repeat in {label}: {iso_date(times[k])} in '{files[owner[k]]}' is "
                          f"{_duration(seconds[k])} from {iso_date(times[k + 1])} in '{files[owner[k + 1]]}', "
                          f"where the record steps by {_duration(step)}.")


def _calendar(ds: xr.Dataset) -> str:
    """The calendar's name, one for the standard one's synonyms (numpy dates concatenate whatever the name)."""
    name = calendar_of(ds["time"])
    if name == "gregorian" or (name == "proleptic_gregorian" and ds["time"].dtype.kind == "M"):
        return "standard"
    return name


def _grid_key(ds: xr.Dataset) -> tuple:
    """What must be equal for files to concatenate: every index but time, by name and values."""
    return tuple((str(name), tuple(index.values.tolist())) for name, index in ds.indexes.items() if name != "time")


def _grid_difference(ref: xr.Dataset, odd: xr.Dataset) -> str:
    """How the odd file's grid differs from the reference file's, as text (e.g. 'lat is shifted by +1 ...')."""
    for name, index in ref.indexes.items():
        if name != "time" and name not in odd.indexes:
            return f"it has no coordinate {name}"
        if name != "time" and not index.equals(odd.indexes[name]):
            return coordinate_difference(str(name), index.values, odd.indexes[name].values)
    extra = next(name for name in odd.indexes if name != "time" and name not in ref.indexes)
    return f"it has a coordinate {extra} the other has not"


# A file whose median step is over this many times another's (monthly against seasonal is 3, daily against
# monthly about 30) holds another kind of record; a gap or a short month stays well below it.
STEP_RATIO = 2.5


def _check_steps(parts: list[xr.Dataset], files: list[str], label: str) -> None:
    """Refuse, naming the file, files whose time steps differ in kind (daily among monthly files, say)."""
    steps = {i: float(np.median(step_seconds(p.indexes["time"])))
             for i, p in enumerate(parts) if p.sizes["time"] >= 3}  # two differences give a median a gap can hold
    if len(steps) < 2:
        return
    usual = float(np.median(list(steps.values())))
    odd = max(steps, key=lambda i: max(steps[i] / usual, usual / steps[i]))
    if max(steps[odd] / usual, usual / steps[odd]) > STEP_RATIO:
        raise CoordinateError(f"the files {label} do not share one time step: '{files[odd]}' steps by "
                              f"{_duration(steps[odd])}, the others by {_duration(usual)}.")


def _duration(seconds: float) -> str:
    value, unit = (seconds / 3600, "hour") if seconds < 86400 else (seconds / 86400, "day")
    return f"{value:.3g} {unit}{'' if value == 1 else 's'}"


def _odd_one(keys: list) -> tuple[int | None, int]:
    """The first file whose key differs from the one most files share (the first file's on a tie), and a file sharing that."""
    common = max(keys, key=lambda k: (keys.count(k), -keys.index(k)))
    odd = next((i for i, k in enumerate(keys) if k != common), None)
    return odd, keys.index(common)
