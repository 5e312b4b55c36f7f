"""Open data cubes: `open_cube`, `sample_cube`, and `as_cube` for data given in memory.

`open_cube` gives every cube one shape whatever the files call things:
coordinates ``time``, ``lat`` and ``lon`` found by CF metadata, longitudes in
[-180, 180), float variables with dims ``(time, <spatial dims>)``, lazy dask
chunks. Calendars are kept: non-standard ones decode to cftime objects.
`as_cube` gives data already in memory the same shape. This module says what
a cube is made of; the shape itself is :mod:`geoanom.io.canonical`'s, the
finding and opening of files :mod:`geoanom.io.opening`'s, and their joining
:mod:`geoanom.io.joining`'s.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence

import dask.array as da
import xarray as xr

from geoanom.errors import GeoanomError, VariableNotFoundError

from .canonical import canonical_coords, default_chunks, mark_checked, select_variables, standardise
from .fill_values import mask_undeclared_fill
from .grid import grid_dims
from .joining import join_files
from .levels import LevelAxis, variable_levels
from .opening import PathLike, open_one, resolve
from .packed import packed_sentinels
from .safety import INFINITE_KEY, guard_reads, mask_infinite

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
    files, label = resolve(paths)
    parts, packed, first = [], {}, None
    wanted = None if variables is None else [variables] if isinstance(variables, str) else list(variables)
    for path in files:
        opened = guard_reads(open_one(path), path)
        parts.append(standardise(opened, path, _file_variables(opened, wanted, first, len(files) > 1), chunks, level))
        names = list(parts[-1].data_vars)
        first = first or names
        for name, sentinels in packed_sentinels(opened, names).items():  # before the cast to float forgets the packing
            packed.setdefault(name, {}).update(sentinels)
    ds = join_files(parts, files, label)
    if wanted is not None and list(ds.data_vars) != (ordered := list(dict.fromkeys(wanted))):
        if missing := [name for name in ordered if name not in ds.data_vars]:
            raise VariableNotFoundError(f"variable '{missing[0]}' is in none of {label}; they hold "
                                        f"{', '.join(map(str, ds.data_vars))}.")
        ds = ds[ordered]  # merged from files of their own: in the order asked for
    plan = default_chunks(ds) if chunks is None else dict(chunks)
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
    mark_checked(ds.indexes["time"])  # in order, no step twice (each file, and across them when joined)
    return ds


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
    >>> import numpy as np
    >>> import pandas as pd
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
    ds = standardise(ds, source, variables, chunks, level, in_memory=True)
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
    files, _ = resolve(paths)
    found: dict[str, LevelAxis | None] = {}
    for path in files:  # every file's metadata: files may hold one variable each (CMIP)
        ds = canonical_coords(open_one(path), path)
        spatial = grid_dims(ds, path)
        for name in select_variables(ds, None, spatial, path):
            if str(name) not in found:
                axes = [a for d, a in variable_levels(ds, name, spatial).items() if a is not None and ds.sizes[d] > 1]
                found[str(name)] = axes[0] if axes else None
    return found
