"""Reading safely: corrupt chunks named, unfinished outputs refused, ±inf counted and treated as missing.

Reads happen lazily, inside dask tasks, long after `open_cube` returned:
:func:`guard_reads` wraps every variable's backend array so that a failing
read (a damaged Zarr chunk, an HDF error in NetCDF) raises one
:class:`~geoanom.errors.CorruptDataError` sentence naming the file and the
variable, wherever and whenever the task runs.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Hashable
from typing import Any

import dask
import numpy as np
import xarray as xr
from xarray.backends import BackendArray
from xarray.core import indexing  # xarray's documented toolkit for backend arrays

from geoanom.errors import CorruptDataError, GeoanomError, InputFileError

from .messages import short_reason

INCOMPLETE_ATTR = "geoanom_incomplete"  # set on a write's temporary until every value is on disk
PROGRESS_ATTR = "geoanom_progress"  # JSON {"first", "last", "start", "stop", "done"} of an unfinished write
INFINITE_KEY = "geoanom_infinite"  # encoding: the lazy count of ±inf per time step, from the raw values
INTEGER_SOURCE = "geoanom_integer_source"  # encoding: the integer dtype open_cube read a variable as (a flag or code)
_NETCDF3_MAGIC = (b"CDF\x01", b"CDF\x02")  # classic and 64-bit offset: the formats scipy can lay out


class CheckedArray(BackendArray):
    """A backend array whose failed reads become one sentence naming the file and variable.

    It holds the lazily indexed variable xarray opened (picklable, like any
    xarray backend array, so distributed workers can read through it) and
    adds one ``try`` per chunk read, nothing per value.

    Parameters
    ----------
    variable : xarray.Variable
        A lazily opened (not yet read) variable.
    path, name : str
        The file and variable, for the message.

    Examples
    --------
    >>> checked = CheckedArray(ds["tas"].variable, "tas.nc", "tas")  # doctest: +SKIP
    """

    def __init__(self, variable: xr.Variable, path: str, name: str):
        self.variable, self.path, self.name = variable, path, name
        self.shape, self.dtype = variable.shape, variable.dtype

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        try:
            return np.asarray(self.variable[key].values)
        except (GeoanomError, MemoryError):  # ours already, or not the data's fault
            raise
        except Exception as exc:  # zarr/numcodecs, netCDF-C, h5py and fsspec raise many kinds
            raise CorruptDataError(f"cannot read variable '{self.name}' from '{self.path}': the data are corrupt "
                                   f"or unreadable ({short_reason(exc, self.path)}).") from exc


def guard_reads(ds: xr.Dataset, path: str) -> xr.Dataset:
    """`ds` with every data variable read through :class:`CheckedArray`; unfinished outputs refused.

    Parameters
    ----------
    ds : xarray.Dataset
        Just opened, lazily (``chunks=None``).
    path : str
        Its file or store.

    Returns
    -------
    xarray.Dataset

    Raises
    ------
    InputFileError
        If `ds` is an output whose write never finished, or a NetCDF3 file
        shorter than its header says.

    Examples
    --------
    >>> ds = guard_reads(xr.open_dataset("tas.nc", chunks=None), "tas.nc")  # doctest: +SKIP
    """
    refuse_incomplete(ds, path)
    check_netcdf3_length(path)
    out = ds.copy()
    for name, var in ds.data_vars.items():
        checked = indexing.LazilyIndexedArray(CheckedArray(var.variable, path, str(name)))
        out[name] = xr.Variable(var.dims, checked, var.attrs, var.encoding)
    return out


def refuse_incomplete(ds: xr.Dataset, path: str) -> None:
    """Refuse a dataset marked unfinished by :func:`geoanom.write_dataset`, saying how to finish it.

    An interrupted append (its progress mark says so) is finished by running
    that append again: the steps stored before it are intact, so the advice
    never is to delete the store.

    Examples
    --------
    >>> progress = '{"first": "2019-04-16", "last": "2019-06-16", "start": 12, "stop": 15, "done": 1}'
    >>> refuse_incomplete(xr.Dataset(attrs={"geoanom_incomplete": "true", "geoanom_progress": progress}), "a.zarr")
    Traceback (most recent call last):
    geoanom.errors.InputFileError: 'a.zarr' holds an append of 2019-04-16 to 2019-06-16 that was interrupted \
(1 of 3 steps written); run that append again to finish it: the 12 steps stored before it are intact.
    """
    if str(ds.attrs.get(INCOMPLETE_ATTR, "")).lower() != "true":
        return
    try:
        progress = json.loads(ds.attrs[PROGRESS_ATTR])
        first, last, start, stop, done = (progress[k] for k in ("first", "last", "start", "stop", "done"))
    except (KeyError, TypeError, ValueError):  # no progress mark: a write that cannot be continued
        raise InputFileError(f"'{path}' is an unfinished output of an interrupted geoanom write, not a result; "
                             "write it again.") from None
    written = f"({done} of {stop - start} steps written)"
    if start:
        raise InputFileError(f"'{path}' holds an append of {first} to {last} that was interrupted {written}; run "
                             f"that append again to finish it: the {start} steps stored before it are intact.")
    raise InputFileError(f"'{path}' is a write of {first} to {last} that was interrupted {written}, not yet a "
                         "result; run that write again to finish it.")


def check_netcdf3_length(path: str) -> None:
    """Refuse a NetCDF3 file cut short, before its missing bytes read as zeros (e.g. repeated times).

    The header says where every variable's data begin and how long they are;
    the file must reach the end of the last one. Only the header is read.

    Examples
    --------
    >>> check_netcdf3_length("tas.nc")  # doctest: +SKIP
    """
    try:
        with open(path, "rb") as handle:
            magic = handle.read(4)
            if magic not in _NETCDF3_MAGIC:
                return
            needed = _netcdf3_end(handle, offset_size=4 if magic == b"CDF\x01" else 8)
            size = os.fstat(handle.fileno()).st_size
    except (OSError, struct.error, ValueError):  # a directory, a URL, or a header this parser cannot follow
        return
    if needed is not None and size < needed:
        raise InputFileError(f"'{path}' is truncated: the file is shorter than its header says "
                             f"({size:,} of {needed:,} bytes).")


# NetCDF classic layout (https://docs.unidata.ucar.edu/netcdf-c/current/file_format_specifications.html):
# no library exposes the variables' offsets, so the header is walked here.
_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8}  # byte, char, short, int, float, double


def _netcdf3_end(handle: Any, offset_size: int) -> int | None:
    """Where the last variable's data end, from a NetCDF3 header (`handle` just past the magic)."""
    def integer(size: int = 4) -> int:
        return int.from_bytes(handle.read(size), "big")

    def name() -> None:
        handle.seek(-(-integer() // 4) * 4, os.SEEK_CUR)

    def attributes() -> None:
        tag, count = integer(), integer()
        for _ in range(count if tag else 0):
            name()
            kind, length = integer(), integer()
            handle.seek(-(-length * _TYPE_SIZES[kind] // 4) * 4, os.SEEK_CUR)

    numrecs = integer()
    if numrecs == 0xFFFFFFFF:  # streaming: the count is not known yet
        return None
    _, count = integer(), integer()
    lengths = []
    for _ in range(count):
        name()
        lengths.append(integer())
    attributes()
    _, count = integer(), integer()
    fixed_end, records = 0, []
    for _ in range(count):
        name()
        dims = [integer() for _ in range(integer())]
        attributes()
        kind, vsize, begin = integer(), integer(), integer(offset_size)
        if dims and lengths[dims[0]] == 0:  # a record variable: one slab per record
            size = _TYPE_SIZES[kind] * math.prod(lengths[d] for d in dims[1:])
            records.append((begin, vsize, size))
        else:
            fixed_end = max(fixed_end, begin + vsize)
    if not records or numrecs == 0:
        return fixed_end
    # One record variable alone is packed without padding; several each take their padded vsize.
    record_size = records[0][2] if len(records) == 1 else sum(vsize for _, vsize, _ in records)
    begin, _, size = max(records)  # the last slab of the last record; its padding may be missing
    return max(fixed_end, begin + (numrecs - 1) * record_size + size)


def mask_infinite(ds: xr.Dataset) -> xr.Dataset:
    """±inf treated as missing (NaN), lazily; the count per time step kept for :func:`count_infinite`.

    Why this shape: the count must come from the raw values, and counting
    at open time would read the whole cube once more. Here both the masked
    values and the count are lazy views of the same read tasks, so computing
    them together (``count_infinite(cube, compute=False)`` in the same
    ``dask.compute`` as the fit) reads the data once, and the result is the
    same whenever it is computed.

    Parameters
    ----------
    ds : xarray.Dataset
        Float variables with dims ``(time, ...)``, dask-backed.

    Returns
    -------
    xarray.Dataset

    Examples
    --------
    >>> cube = mask_infinite(cube)  # doctest: +SKIP
    """
    out = ds.copy()
    for name, raw in ds.data_vars.items():
        masked = raw.copy(data=raw.data.map_blocks(_finite_or_nan, dtype=raw.dtype))
        masked.encoding = dict(raw.encoding)
        per_step = np.isinf(raw).sum([d for d in raw.dims if d != "time"], dtype=np.int64)
        masked.encoding[INFINITE_KEY] = per_step
        out[name] = masked
    return out


def _finite_or_nan(block: np.ndarray) -> np.ndarray:
    # isinf never warns (comparisons with NaN would); a block without inf is
    # passed on as it is, so the usual case costs one scan and no copy.
    infinite = np.isinf(block)
    if not infinite.any():
        return block
    out = block.copy()
    out[infinite] = np.nan
    return out


def count_infinite(cube: xr.Dataset | xr.DataArray, compute: bool = True) -> dict[Hashable, Any]:
    """How many ±inf values `open_cube` found (and treated as missing) in each variable, over the cube's times.

    Counted from the raw values over the whole grid of the time steps the
    cube still holds (a spatial selection after opening is not taken into
    account). Variables whose count is unknown (not from `open_cube`, or
    computed on since) are left out.

    Parameters
    ----------
    cube : xarray.Dataset or xarray.DataArray
        As from :func:`geoanom.open_cube` (or one of its variables), possibly
        selected in time.
    compute : bool
        False gives lazy dask scalars, to compute with other work in one
        ``dask.compute`` call (the data are then read once).

    Returns
    -------
    dict
        Variable name to count (int, or a dask array when `compute` is False).

    Examples
    --------
    >>> cube = ga.open_cube("tas.nc")  # doctest: +SKIP
    >>> count_infinite(cube)  # doctest: +SKIP
    {'tas': 3}
    """
    counts = {}
    variables = cube.data_vars.items() if isinstance(cube, xr.Dataset) else [(cube.name, cube)]
    for name, var in variables:
        per_step = var.encoding.get(INFINITE_KEY)
        if isinstance(per_step, xr.DataArray) and "time" in var.dims:
            counts[name] = per_step.sel(time=var["time"]).sum().data
    if not compute:
        return counts
    return {name: int(n) for name, n in zip(counts, dask.compute(*counts.values()))}


def infinite_message(counts: dict[Hashable, int], where: str) -> str | None:
    """One sentence saying which variables held ±inf and how many, or None if none did.

    Examples
    --------
    >>> infinite_message({"tas": 3, "psl": 0}, "the training period")
    'tas holds 3 infinite values in the training period; they are treated as missing.'
    """
    found = [f"{name} holds {n:,} infinite value{'s' if n != 1 else ''}" for name, n in counts.items() if n]
    if not found:
        return None
    return f"{', '.join(found)} in {where}; they are treated as missing."
