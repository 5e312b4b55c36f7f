"""Write results and models' arrays: `write_dataset`, which never leaves a half-written output."""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

import xarray as xr

from geoanom.errors import GeoanomError

from .messages import short_reason
from .read import NETCDF_ENGINES, PathLike


def write_dataset(ds: xr.Dataset, path: PathLike, *, overwrite: bool = True, zarr_format: int = 2) -> Path:
    """Write `ds` to a ``.zarr`` store or ``.nc`` file, never leaving it half-written.

    The data go to a hidden sibling (``.{name}.tmp-<random>``) that is moved
    into place once complete, so a failed write leaves earlier output intact.

    Parameters
    ----------
    ds : xarray.Dataset
        The data; dask arrays are computed while writing.
    path : str or path
        Output path ending in ``.zarr`` or ``.nc``.
    overwrite : bool
        Replace an existing output; if False an existing one is an error.
    zarr_format : {2, 3}
        Zarr format; 2 by default, as most readers understand it.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    target = Path(path).expanduser()
    kind = {".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf"}.get(target.suffix.lower())
    if kind is None:
        raise GeoanomError(f"cannot write '{target}': the name must end in .zarr or .nc.")
    if os.path.lexists(target) and not overwrite:
        raise GeoanomError(f"'{target}' already exists; pass overwrite=True to replace it.")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    out = ds.copy()
    for var in out.variables.values():  # the source's chunks, codecs and packing may not fit
        var.encoding = {k: v for k, v in var.encoding.items() if k in ("units", "calendar")}
    try:
        if kind == "zarr":  # consolidated metadata is not in the Zarr 3 spec (zarr warns)
            out.to_zarr(tmp, mode="w-", zarr_format=zarr_format, consolidated=zarr_format == 2)
        else:  # xarray stores bool as int8 with a dtype attribute and cftime with its calendar
            out.to_netcdf(tmp, engine=NETCDF_ENGINES[0])
        _move_into_place(tmp, target)
    except (TypeError, ValueError) as exc:  # attributes or dtypes the format cannot hold
        _remove(tmp)
        raise GeoanomError(f"cannot write '{target}': {short_reason(exc)}.") from exc
    except BaseException:
        _remove(tmp)
        raise
    return target


def _move_into_place(tmp: Path, target: Path) -> None:
    """Replace `target` by `tmp`: atomically for files; a store is first moved aside."""
    if not os.path.lexists(target) or not (tmp.is_dir() or target.is_dir()):
        os.replace(tmp, target)
        return
    old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
    os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        os.replace(old, target)
        raise
    _remove(old)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()
