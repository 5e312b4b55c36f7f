"""Write results and models' arrays: `write_dataset`, which never leaves a half-written output.

The data go to a temporary sibling (:mod:`geoanom.io.temporaries`), which is
marked complete once every value is on disk and only then moved into place;
what that move may replace is :mod:`geoanom.io.overwrite`'s rule, and appends
and resumable writes region by region are :mod:`geoanom.io.append`'s.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dask
import xarray as xr
import zarr

from geoanom._version import __version__
from geoanom.errors import GeoanomError

from .append import append_dataset, continue_write, pending_progress, resumable_start
from .messages import short_reason
from .opening import NETCDF_ENGINES, PathLike, locked_netcdf
from .overwrite import WRITTEN_BY_ATTR, replace_problem
from .safety import INCOMPLETE_ATTR
from .sources import inputs_at
from .temporaries import remove_path, remove_stale_temporaries, removed_on_sigterm, temporary_for


def write_dataset(ds: xr.Dataset, path: PathLike, *, overwrite: bool | str = True, zarr_format: int = 2,
                  append: bool = False, resume: bool = False, warn_flags: bool = True) -> Path:
    """Write `ds` to a ``.zarr`` store or ``.nc`` file, never leaving it half-written; or append to a store.

    The data go to a hidden sibling (``.{name}.tmp-<host>-<pid>-<random>``)
    marked ``geoanom_incomplete = "true"``; once every value is written the
    mark is removed and the sibling moved into place, so a failed write
    leaves earlier output intact and a leftover never reads as a result
    (:func:`geoanom.open_cube` refuses it). A SIGTERM during the write
    removes the sibling before the process ends as the signal asks; the
    leftovers of a write killed outright (SIGKILL) are removed by the next
    write to the same path.

    Only what is safe to lose is replaced
    (:func:`geoanom.io.overwrite.replace_problem`): a result or model
    geoanom wrote (marked ``geoanom_written_by``) whose time steps the new
    data all hold again, or an empty folder. A file or Zarr store another
    program wrote, or a result holding steps the new data do
    not (months appended since), is refused before any work unless
    ``overwrite="force"``; a folder that is no Zarr store always is,
    and so is a path the data of `ds` are read from (a lazy result of
    ``model.score(ga.open_cube("sst.nc"))`` written to ``"sst.nc"``).

    ``append=True`` adds the time steps of `ds` to the result store at
    `path` with the store's encoding and attributes (``history`` gains a
    line), region by region along time with a progress mark, so that the
    same call after a kill continues where it stopped (see
    :mod:`geoanom.io.append`). It refuses, in one sentence and before
    writing anything, dates that overlap or precede the stored ones (so
    repeating an append is harmless), another model's result, another grid,
    tiling or calendar, and NetCDF files. ``resume=True`` writes a new store
    the same way (its first time chunk atomically, the rest region by
    region), and continues an unfinished one at `path`; over a finished
    output it writes as without resume, keeping that output until the new
    one is whole.

    Parameters
    ----------
    ds : xarray.Dataset
        The data; dask arrays are computed while writing.
    path : str or path
        Output path ending in ``.zarr`` or ``.nc``.
    overwrite : bool or "force"
        Replace an existing output that is safe to lose (see above); False:
        an existing one is an error; ``"force"``: also a file or store
        geoanom did not write, or a result holding other steps.
    zarr_format : {2, 3}
        Zarr format; 2 by default, as most readers understand it (an append
        keeps the store's).
    append : bool
        Append the time steps of `ds` to the existing store at `path`.
    resume : bool
        Write a new ``.zarr`` store resumably, or finish the unfinished one
        at `path` (written before with ``resume=True`` or ``append=True``).
    warn_flags : bool
        For a result of :meth:`geoanom.AnomalyModel.score`: warn
        (``GeoanomWarning``) when the ensemble flags far more of what was
        written than normal data would (over 10%): the scored period has
        left the training climate, which a lazy ``score`` cannot say before
        it is computed.

    Returns
    -------
    pathlib.Path
        The path written.

    Examples
    --------
    >>> ga.write_dataset(model.score(cube), "anomalies.zarr")  # doctest: +SKIP
    PosixPath('anomalies.zarr')
    >>> ga.write_dataset(model.score(next_month), "anomalies.zarr", append=True)  # doctest: +SKIP
    PosixPath('anomalies.zarr')
    """
    from ..flagged import (
        PYTHON_ADVICE,
        flag_counts,
        has_flags,
        outside_training,
        warn_flagged_counts,
        warn_flagged_share_of,
    )

    target = Path(path).expanduser()
    if (source := inputs_at(ds, target)) is not None:  # the write would replace data it is still reading
        raise GeoanomError(f"cannot write '{target}': the data being written are read from '{source}', which "
                           "would be lost; choose another path.")
    judged = warn_flags and has_flags(ds)
    pending = pending_progress(target) if resume and not append else None
    # overwrite="force" starts an interrupted new write afresh (another model's, say); an append never is
    restart = pending is not None and pending["start"] == 0 and overwrite == "force"
    if append or (pending is not None and not restart):
        written = append_dataset(ds, target)
    elif resume and (restart or not os.path.lexists(target)):  # a finished output is kept until the new one is whole
        written = _write_resumable(ds, target, overwrite=overwrite, zarr_format=zarr_format)
    else:  # one computation: the flags are counted as the scores are written, not read back
        also = {"flags": flag_counts(ds, compute=False)} if judged else {}
        written, computed = write_and_compute(ds, path, also, overwrite=overwrite, zarr_format=zarr_format)
        if judged:
            warn_flagged_counts(*computed["flags"], written, PYTHON_ADVICE, outside=outside_training(ds))
        return written
    if judged:  # written region by region: its flags are read back (an append's steps alone)
        warn_flagged_share_of(written, PYTHON_ADVICE, last_steps=ds.sizes["time"] if append else None)
    return written


def write_and_compute(ds: xr.Dataset, path: PathLike, also: dict[Any, Any], *, overwrite: bool | str = True,
                      zarr_format: int = 2, pending: dict[str, str] | None = None,
                      times: Any = None) -> tuple[Path, dict[Any, Any]]:
    """:func:`write_dataset`, computing other lazy values in the same dask computation as the data.

    One computation, not a pass after the write: e.g. ``count_infinite(cube,
    compute=False)`` beside the scores of `cube` runs on the same workers at
    the same time. Its chunks are still read twice (usually the second time
    from the page cache): xarray's store hands dask a finalised graph whose
    keys are new, so dask cannot see that both read the same chunk.

    Parameters
    ----------
    ds, path, overwrite, zarr_format
        As for :func:`write_dataset`.
    also : dict
        Lazy (dask) values to compute with the data; empty: as write_dataset.
    pending : dict, optional
        Attributes of a write to be continued (a progress mark): the store
        moved into place keeps them and stays marked unfinished.
    times : array, optional
        The time steps of the whole output, when `ds` is its first part: an
        existing result is replaced only if it holds none besides them.

    Returns
    -------
    pathlib.Path
        The path written.
    dict
        `also`, computed.

    Examples
    --------
    >>> path, counts = write_and_compute(model.score(cube), "a.zarr", count_infinite(cube, compute=False))
    ... # doctest: +SKIP
    >>> counts  # doctest: +SKIP
    {'tas': 3}
    """
    target = Path(path).expanduser()
    kind = {".zarr": "zarr", ".nc": "netcdf", ".nc4": "netcdf"}.get(target.suffix.lower())
    if kind is None:
        raise GeoanomError(f"cannot write '{target}': the name must end in .zarr or .nc.")
    if os.path.lexists(target) and not overwrite:
        raise GeoanomError(f"'{target}' already exists; pass overwrite=True to replace it.")
    times = ds["time"].values if times is None and "time" in ds.coords else times
    if problem := replace_problem(target, times, force=overwrite == "force"):
        forced = replace_problem(target, times, force=True) is None
        advice = "pass overwrite='force' to replace it" if forced else "choose a new path or remove it first"
        raise GeoanomError(f"'{target}' {problem}; {advice}.")
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = temporary_for(target)
    out = ds.copy()
    out.attrs[INCOMPLETE_ATTR] = "true"
    out.attrs.update(pending or {})
    out.attrs[WRITTEN_BY_ATTR] = f"geoanom {__version__}"
    for var in out.variables.values():  # the source's chunks, codecs and packing may not fit
        var.encoding = {k: v for k, v in var.encoding.items() if k in ("units", "calendar")}
    for name in out.dims:  # CF: a coordinate variable has no missing values, so no _FillValue (xarray adds NaN)
        if name in out.coords and out[name].dtype.kind == "f":
            out[name].encoding["_FillValue"] = None
    try:
        with removed_on_sigterm(tmp):
            if kind == "zarr":  # consolidated metadata is not in the Zarr 3 spec (zarr warns)
                writing = out.to_zarr(tmp, mode="w-", zarr_format=zarr_format, consolidated=zarr_format == 2,
                                      compute=not also)
            else:  # xarray stores bool as int8 with a dtype attribute and cftime with its calendar
                writing = out.to_netcdf(tmp, engine=NETCDF_ENGINES[0], compute=not also)
            values = dask.compute(writing, also)[1] if also else {}
            if not pending:
                _mark_complete(tmp, kind, zarr_format)
            _move_into_place(tmp, target)
    except (TypeError, ValueError) as exc:  # attributes or dtypes the format cannot hold
        remove_path(tmp)
        raise GeoanomError(f"cannot write '{target}': {short_reason(exc)}.") from exc
    except OSError as exc:
        remove_path(tmp)
        raise named_for(exc, target) from exc
    except BaseException:
        remove_path(tmp)
        raise
    return target, values


def _write_resumable(ds: xr.Dataset, target: Path, *, overwrite: bool | str, zarr_format: int) -> Path:
    """A new store written resumably: its first time chunk as every write (then in place, marked unfinished
    with the progress of the whole write), the other steps region by region."""
    if target.suffix.lower() != ".zarr":
        raise GeoanomError(f"cannot write '{target}' resumably: only Zarr stores (.zarr) are written region by "
                           "region; write it without resume.")
    first, mark = resumable_start(ds)
    write_and_compute(ds.isel(time=slice(0, first)), target, {}, overwrite=overwrite, zarr_format=zarr_format,
                      pending=mark, times=ds["time"].values)
    return continue_write(ds, target)


def named_for(error: OSError, target: PathLike) -> OSError:
    """`error` naming `target`, the path the user gave, instead of the temporary written meanwhile.

    Examples
    --------
    >>> named_for(OSError(13, "Permission denied", ".a.zarr.tmp-h-1-00000000"), "a.zarr").filename
    'a.zarr'
    """
    if isinstance(error, GeoanomError) or not error.filename:
        return error
    renamed = OSError(error.errno, error.strerror or str(error), str(target))
    return renamed


def _mark_complete(tmp: Path, kind: str, zarr_format: int) -> None:
    """Remove the incomplete mark, now that every value is on disk."""
    if kind == "zarr":
        group = zarr.open_group(tmp, mode="r+", zarr_format=zarr_format)
        del group.attrs[INCOMPLETE_ATTR]
        if zarr_format == 2:
            zarr.consolidate_metadata(tmp, zarr_format=2)
    else:
        with locked_netcdf(tmp, "a") as nc:
            nc.delncattr(INCOMPLETE_ATTR)


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
    remove_path(old)


