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
import weakref
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Union

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from geoanom.errors import CoordinateError, GeoanomError, InputFileError, NoDataError, VariableNotFoundError
from geoanom.formatting import coordinate_difference, iso_date
from geoanom.timesteps import same_step

from .fill_values import mask_undeclared_fill
from .grid import find_coordinate, grid_dims, normalise_lon_lat, rename_coordinate, true_lat_lon, west_edge
from .joining import concat_time, one_step_reason
from .levels import LevelAxis, select_level, variable_levels
from .messages import short_reason
from .packed import packed_sentinels
from .safety import INFINITE_KEY, INTEGER_SOURCE, guard_reads, mask_infinite

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
    paths: PathLike | Sequence[PathLike] | xr.Dataset | xr.DataArray,
    variables: str | Sequence[str] | None = None,
    chunks: Mapping[Hashable, int | str] | None = None,
    level: float | None = None,
) -> xr.Dataset:
    """Open NetCDF files or Zarr stores as one lazy cube with canonical names.

    Parameters
    ----------
    paths : str, path, list of them, or xarray.Dataset or DataArray
        Files, Zarr stores (format 2 or 3) or glob patterns; several files
        are concatenated along time, in time order; files that hold other
        variables over the same times and grid (one variable per file, as
        CMIP writes them) are merged, each variable's files joined in time
        first. Or data already in
        memory or opened otherwise, given the same names, checks, fill
        handling and chunks (see :func:`as_cube`).
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
    if isinstance(paths, (xr.Dataset, xr.DataArray)):
        return as_cube(paths, variables, chunks, level)
    files, label = _resolve(paths)
    parts, packed, first = [], {}, None
    wanted = None if variables is None else [variables] if isinstance(variables, str) else list(variables)
    for path in files:
        opened = guard_reads(_open_one(path), path)
        parts.append(_standardise(opened, path, _file_variables(opened, wanted, first, len(files) > 1), chunks, level))
        names = list(parts[-1].data_vars)
        first = first or names
        for name, sentinels in packed_sentinels(opened, names).items():  # before the cast to float forgets the packing
            packed.setdefault(name, {}).update(sentinels)
    ds = _join(parts, files, label)
    if wanted is not None and list(ds.data_vars) != (ordered := list(dict.fromkeys(wanted))):
        if missing := [name for name in ordered if name not in ds.data_vars]:
            raise VariableNotFoundError(f"variable '{missing[0]}' is in none of {label}; they hold "
                                        f"{', '.join(map(str, ds.data_vars))}.")
        ds = ds[ordered]  # merged from files of their own: in the order asked for
    plan = _default_chunks(ds) if chunks is None else dict(chunks)
    if unknown := [str(d) for d in plan if d not in ds.dims]:
        dims = ", ".join(map(str, ds.dims))
        raise GeoanomError(f"chunks name {', '.join(unknown)}, which are not dimensions of {label} ({dims}).")
    ds = mask_infinite(ds.chunk(plan))  # ±inf is missing; the lazy count is for count_infinite
    ds = mask_undeclared_fill(ds, [(path, part.indexes["time"], tuple(part.data_vars)) for path, part in zip(files, parts)],
                              packed)
    # lat/lon are one grid slab that every consumer needs: hold them in memory.
    ds = ds.assign_coords(lat=ds["lat"].compute(), lon=ds["lon"].compute())
    for var in ds.variables.values():  # storage chunking from the files would clash on writing
        for key in ("chunks", "preferred_chunks", "chunksizes", "shards"):
            var.encoding.pop(key, None)
    ds.attrs["geoanom_source"] = ", ".join(files)
    _mark_checked(ds.indexes["time"])  # in order, no step twice (each file, and across them when joined)
    return ds


# Time axes whose order and steps are checked, by identity: an index never changes, and selecting variables,
# chunking or assigning other coordinates keeps a cube's, so as_cube (every fit and score) does not check
# open_cube's again (0.012 s of same_step on the 1,040 annual cftime steps of the throughput cube, each time).
_CHECKED_TIMES: dict[int, weakref.ref] = {}


def _mark_checked(times: pd.Index) -> None:
    key = id(times)
    _CHECKED_TIMES[key] = weakref.ref(times, lambda _, key=key: _CHECKED_TIMES.pop(key, None))


def _is_checked(times: pd.Index) -> bool:
    ref = _CHECKED_TIMES.get(id(times))
    return ref is not None and ref() is times


def _file_variables(ds: xr.Dataset, wanted: list | None, first: list | None, several: bool) -> list | None:
    """The variables to read from one of the files (None: every numeric one on time and grid).

    Those asked for that the file holds (all if it holds none, or is the only file: the refusal names the first
    missing; a variable no file holds is refused once they are joined). With none
    asked, the first file's when the file holds them all (files split in time), else its own (one variable per
    file, as CMIP writes them).
    """
    if wanted is not None:
        return [name for name in wanted if name in ds.data_vars] or wanted if several else wanted
    return first if first is not None and all(name in ds.data_vars for name in first) else None


def _join(parts: list[xr.Dataset], files: list[str], label: str) -> xr.Dataset:
    """Files joined in time (:func:`concat_time`); files holding other variables merged, each variable's joined first.

    Each set of variables is one group (tos_1990s.nc, tos_2000s.nc; pr_1990s.nc, pr_2000s.nc): the groups
    must hold different variables, over the same times and grid.
    """
    groups: dict[tuple, list[int]] = {}
    for i, part in enumerate(parts):
        groups.setdefault(tuple(part.data_vars), []).append(i)
    if len(groups) == 1:
        return concat_time(parts, files, label)
    seen: dict[Hashable, int] = {}
    for key, members in groups.items():
        for name in key:
            if (other := seen.setdefault(name, members[0])) != members[0]:  # overlapping sets: one lacks a variable
                has, lacks = (other, members[0]) if set(parts[other].data_vars) - set(key) else (members[0], other)
                missing = next(n for n in parts[has].data_vars if n not in parts[lacks].data_vars)
                raise VariableNotFoundError(
                    f"variable '{missing}' is not in {files[lacks]}, which holds "
                    f"{', '.join(map(str, parts[lacks].data_vars))}, though {files[has]} holds "
                    f"{', '.join(map(str, parts[has].data_vars))}; give files that hold the same variables, or one "
                    "variable each.")
    joined = [concat_time([parts[i] for i in members], [files[i] for i in members],
                          ", ".join(files[i] for i in members)) for members in groups.values()]
    ref, ref_names = joined[0], ", ".join(map(str, joined[0].data_vars))
    for ds in joined[1:]:
        names = ", ".join(map(str, ds.data_vars))
        if not ds.indexes["time"].equals(ref.indexes["time"]):
            raise CoordinateError(f"the files {label} hold {ref_names} at {_span(ref)} but {names} at {_span(ds)}; "
                                  "variables in files of their own must cover the same time steps.")
        for name in ("lat", "lon"):
            if not np.array_equal(ref[name].values, ds[name].values):
                raise CoordinateError(f"the files {label} hold {ref_names} and {names} on different grids: "
                                      f"{coordinate_difference(name, ref[name].values, ds[name].values)}.")
    return xr.merge(joined, join="exact", compat="override", combine_attrs="override")


def _span(ds: xr.Dataset) -> str:
    times = ds.indexes["time"]
    return f"{times.size} steps from {iso_date(times[0])} to {iso_date(times[-1])}"


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
        masked = ds[var].where((ds[var] >= low) & (ds[var] <= high))
        masked.encoding = dict(ds[var].encoding)  # still checked by open_cube: as_cube need not read it again
        ds[var] = masked
    ds.attrs["geoanom_sample"] = name
    return ds


IN_MEMORY = "the dataset"  # how messages name data given as a Dataset that names no source file
_DECLARED = ("_FillValue", "missing_value", "scale_factor", "add_offset")  # CF encoding left in attrs


def as_cube(data: xr.Dataset | xr.DataArray, variables: str | Sequence[str] | None = None,
            chunks: Mapping[Hashable, int | str] | None = None, level: float | None = None) -> xr.Dataset:
    """Data given in memory (or opened otherwise) in the shape `open_cube` gives files: one normalisation for both.

    The same canonical names (``time``, ``lat``, ``lon`` found by CF
    metadata or name), level, float variables in (time, *grid) order,
    longitudes in [-180, 180) and default chunks as for a file. Values a
    variable's attrs declare missing (``_FillValue``, ``missing_value``, as
    ``xr.open_dataset(..., mask_and_scale=False)`` leaves them) are masked and
    packed values unpacked; ±inf and undeclared fill values (-999 land, int16
    -32768) are treated as missing as in files (three time steps are read to
    find them). `geoanom.fit`, `AnomalyModel.score` and the ``.geoanom``
    accessor run every cube through it, so it is cheap and idempotent on a
    cube from `open_cube`: lazy variables whose values open_cube checked (and
    that were only selected, not computed on, since) are not read again, and
    dask-backed variables keep their chunks unless `chunks` is given.

    Parameters
    ----------
    data : xarray.Dataset or xarray.DataArray
        A DataArray is a one-variable cube (named ``values`` if unnamed).
    variables, chunks, level
        As for `open_cube`.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    CoordinateError
        In one sentence naming the dataset ("the dataset", "the dataset read
        from <its files>" if known): no time, latitude or longitude found; one time step
        without a time dimension (``isel(time=40)``); time steps that repeat
        or go back.

    Examples
    --------
    >>> times = pd.date_range("2000-01-01", periods=2, freq="MS")
    >>> ds = xr.Dataset({"sst": (("t", "latitude", "longitude"), np.full((2, 1, 2), 290.0))},
    ...                 coords={"t": times, "latitude": [0.0], "longitude": [10.0, 200.0]})
    >>> cube = as_cube(ds)
    >>> dict(cube.sizes), cube["lon"].values.tolist()
    ({'time': 2, 'lat': 1, 'lon': 2}, [-160.0, 10.0])
    """
    if isinstance(data, xr.DataArray):
        data = data.to_dataset(name=data.name if data.name is not None else "values")
    # read from files once, maybe changed since: what holds a fill or goes back in time is the dataset
    source = f"{IN_MEMORY} read from {data.attrs['geoanom_source']}" if data.attrs.get("geoanom_source") else IN_MEMORY
    # values in memory can be changed in place (cube.load(), then .values[...] = -999): checked again, cheaply
    held = {name for name, var in data.data_vars.items() if not isinstance(var.data, da.Array)}
    ds = _decode_declared(data)
    packed = packed_sentinels(ds, list(ds.data_vars))  # packed integers whose fill is not declared
    ds = _standardise(ds, source, variables, chunks, level, in_memory=True)
    if unchecked := [name for name in ds.data_vars if INFINITE_KEY not in ds[name].encoding or name in held]:
        checked = mask_undeclared_fill(mask_infinite(ds[unchecked]), [(source, ds.indexes["time"])],
                                       {name: packed[name] for name in unchecked if name in packed})
        ds = ds.assign({name: checked[name] for name in unchecked})
    return ds.assign_coords(lat=ds["lat"].compute(), lon=ds["lon"].compute())


def _decode_declared(ds: xr.Dataset) -> xr.Dataset:
    """Variables whose attrs still hold CF fill or packing (``mask_and_scale=False``) decoded, as a file is read."""
    raw = [name for name, var in ds.data_vars.items() if any(key in var.attrs for key in _DECLARED)]
    if not raw:
        return ds
    decoded = xr.decode_cf(ds[raw], decode_times=False, decode_coords=False, concat_characters=False,
                           decode_timedelta=False)
    return ds.assign({name: decoded[name].variable for name in raw})


def describe_levels(paths: PathLike | Sequence[PathLike]) -> dict[str, LevelAxis | None]:
    """The vertical levels of every variable `open_cube` could read, from the files' metadata.

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
    found: dict[str, LevelAxis | None] = {}
    for path in files:  # every file's metadata: files may hold one variable each (CMIP)
        ds = _canonical_coords(_open_one(path), path)
        spatial = grid_dims(ds, path)
        for name in _select(ds, None, spatial, path):
            if str(name) not in found:
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


def _standardise(ds: xr.Dataset, path: str, variables, chunks, level: float | None = None,
                 in_memory: bool = False) -> xr.Dataset:
    """Rename coordinates, select variables and a level, chunk, and put everything in canonical order.

    ``in_memory``: `ds` is data given as a Dataset (:func:`as_cube`), not a file just opened: dask-backed
    variables keep their chunks, float ones their encoding (what marks values open_cube has checked), a
    scalar time is refused rather than made a dimension, and time must already increase without repeats.
    """
    ds = _canonical_coords(ds, path)
    time = ds["time"]
    if time.ndim > 1 or time.dtype.kind not in "MO":
        units = time.attrs.get("units", "none")
        raise CoordinateError(f"time in {path} is not a 1-D CF time (units '{units}').")
    if in_memory and "time" not in ds.dims:
        raise CoordinateError(f"{path} holds one time step ({iso_date(time.values)}) without a time dimension; keep "
                              "the dimension by selecting with a list, as in isel(time=[40]) rather than isel(time=40).")
    spatial = grid_dims(ds, path)
    names = _select(ds, variables, spatial, path)
    ds = select_level(ds[names], spatial, path, level)
    ds = ds.drop_vars([c for c in ds.coords if c not in ("time", "lat", "lon", *spatial) and ds[c].ndim])
    plan = _default_chunks(ds) if chunks is None else dict(chunks)
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
        _check_one_step_each(ds.indexes["time"], path)
        return ds
    if not _is_checked(times := ds.indexes["time"]):
        _check_time_order(times, path)
        _check_one_step_each(times, path)
        _mark_checked(times)
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


def _check_one_step_each(times: pd.Index, label: str) -> None:
    """Refuse, naming both dates, one step held twice at two stamps (March at 03-16 and 03-31: :func:`same_step`).

    Exact repeats are refused before this, with their own message.
    """
    if times.is_unique and (repeats := np.flatnonzero(same_step(times))).size:
        k = int(repeats[0])
        raise CoordinateError(f"{label} holds one time step twice: {iso_date(times[k])} and {iso_date(times[k + 1])} "
                              f"{one_step_reason(times, k)}; drop one of them first.")


def _check_time_order(times: pd.Index, label: str) -> None:
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
