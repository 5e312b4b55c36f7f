"""The files a cube is read from: paths and globs found, each file or Zarr store opened lazily.

:func:`resolve` expands globs and refuses paths that do not exist;
:func:`open_one` opens a Zarr store (format 2 or 3) or a NetCDF file with the
first engine of `NETCDF_ENGINES` that can, times decoded (cftime only for
non-standard calendars), nothing read yet; :func:`locked_netcdf` opens one
with netCDF4 itself, under xarray's lock, for the attributes the writer reads
and changes. The backends' quirks live here, so that :mod:`geoanom.io.read`
says only what a cube is made of and :mod:`geoanom.io.write` only how it is
written.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Union

import xarray as xr

from geoanom.errors import InputFileError

from .messages import short_reason

PathLike = Union[str, "os.PathLike[str]"]
NETCDF_ENGINES = ("netcdf4", "h5netcdf")  # h5netcdf reads some HDF5 files netCDF-C rejects


def resolve(paths: PathLike | Sequence[PathLike]) -> tuple[list[str], str]:
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


def open_one(path: str) -> xr.Dataset:
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
    return open_netcdf(path)


def open_netcdf(path: str, engines: Sequence[str] = NETCDF_ENGINES) -> xr.Dataset:
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


@contextlib.contextmanager
def locked_netcdf(path: Path, mode: str):
    """A netCDF4.Dataset opened, used and closed under xarray's netCDF-C/HDF5 lock.

    HDF5 is not thread-safe: a file opened here while another thread closes
    one of xarray's (a distributed client's loop collecting a dataset)
    crashed the process with a segmentation fault (CI, tests/test_overwrite.py).
    """
    import netCDF4
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    with NETCDF4_PYTHON_LOCK:
        nc = netCDF4.Dataset(path, mode=mode)
        try:
            yield nc
        finally:
            nc.close()
