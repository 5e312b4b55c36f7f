"""Write results and models' arrays: `write_dataset`, which never leaves a half-written output."""

from __future__ import annotations

import atexit
import contextlib
import glob
import json
import os
import re
import secrets
import shutil
import signal
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dask
import xarray as xr
import zarr

from geoanom._version import __version__
from geoanom.errors import GeoanomError

from .append import append_dataset, continue_write, pending_progress, resumable_start
from .messages import short_reason
from .opening import NETCDF_ENGINES, PathLike
from .safety import INCOMPLETE_ATTR
from .sources import inputs_at

# The temporary's name says who owns it (see remove_stale_temporaries).
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_TMP_NAME = re.compile(r"(?P<host>[A-Za-z0-9]+)-(?P<pid>[0-9]+)-[0-9a-f]{8}")
_OLD_TMP = re.compile(r"[0-9a-f]{8}")  # before the owner was in the name
WRITTEN_BY_ATTR = "geoanom_written_by"  # in every file and store write_dataset writes: only such an output is replaced
# Stores of earlier versions, before the mark: a result says so in `source`, a saved model has its description.
_EARLIER_MARKS = ("__geoanom_model__",)


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

    Only what is safe to lose is replaced (:func:`replace_problem`): a
    result or model geoanom wrote (marked ``geoanom_written_by``) whose time
    steps the new data all hold again, or an empty folder. A file or Zarr
    store another program wrote, or a result holding steps the new data do
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
    tmp = target.with_name(f".{target.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")
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
        with _removed_on_sigterm(tmp):
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
        _remove(tmp)
        raise GeoanomError(f"cannot write '{target}': {short_reason(exc)}.") from exc
    except OSError as exc:
        _remove(tmp)
        raise named_for(exc, target) from exc
    except BaseException:
        _remove(tmp)
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


def replace_problem(target: PathLike, times: Any = None, *, force: bool = False) -> str | None:
    """Why an output must not replace what is at `target`, or None when it may (nothing there counts).

    The one rule for ``.nc`` and ``.zarr`` outputs (of :func:`write_dataset`
    and the command line): an output may replace an empty folder, or a
    result or model geoanom wrote that holds no time step besides `times`
    (the new output's). A file or Zarr store another program wrote, or a
    result holding other steps (months appended to it since), is lost by
    the replacement: refused unless `force`. A folder that is no Zarr store,
    a file where a store goes or a folder where a file goes, always are.
    Outputs of other kinds (pictures, tables, ``.npz``) may replace a file.

    Parameters
    ----------
    target : str or path
        The output path (its suffix tells a store from a file).
    times : array, optional
        The new output's time steps; None: not compared.
    force : bool
        The user asked to replace what geoanom did not write, or other steps.

    Returns
    -------
    str or None
        The problem as a clause to follow the path, e.g. ``"is a folder
        geoanom did not write"``.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp()) / "notes.zarr"
    >>> replace_problem(folder) is None
    True
    >>> folder.mkdir(); _ = (folder / "notes.txt").write_text("important")
    >>> replace_problem(folder)
    'is a folder geoanom did not write'
    >>> notes = folder.with_name("notes.nc"); _ = notes.write_text("important")
    >>> replace_problem(notes), replace_problem(notes, force=True)
    ('is a file geoanom did not write', None)
    """
    target = Path(target).expanduser()
    if not os.path.lexists(target):
        return None
    suffix = target.suffix.lower()
    store = suffix == ".zarr"
    if not target.is_dir():
        if store:
            return "is a file, not a Zarr store"
        if suffix not in (".nc", ".nc4"):
            return None
        attrs = _netcdf_attrs(target)
    elif not store:
        return "is a folder, not a file"
    elif not any(target.iterdir()):
        return None
    else:
        attrs = _root_attrs(target)
        if attrs is None:
            return "is a folder geoanom did not write"
    if force:
        return None
    if not _ours(attrs):
        return f"is a {'Zarr store' if store else 'file'} geoanom did not write"
    return None if times is None else _steps_lost(target, times)


def _steps_lost(target: Path, times: Any) -> str | None:
    """The clause naming the time steps a geoanom result at `target` holds and `times` do not (appended ones)."""
    from geoanom.formatting import iso_date

    try:
        with warnings.catch_warnings():  # an unconsolidated store is read all the same; xarray's advice is noise
            warnings.simplefilter("ignore", RuntimeWarning)
            opened = xr.open_zarr(target, chunks=None) if target.is_dir() else xr.open_dataset(target, chunks=None)
        with opened:
            stored = opened["time"].values if "time" in opened.coords else []
        if target.is_dir() and (progress := pending_progress(target)) is not None:
            stored = stored[:progress["start"] + progress["done"]]  # the steps not yet written hold no date
    except Exception:  # unreadable: nothing known to lose beyond what the mark said
        return None
    new = {iso_date(t) for t in times}
    lost = [t for t in stored if iso_date(t) not in new]
    if not lost:
        return None
    span = iso_date(lost[0]) + (f" to {iso_date(lost[-1])}" if len(lost) > 1 else "")
    return (f"holds {len(lost)} time step{'s' if len(lost) != 1 else ''} ({span}) the new result does not, "
            "which would be lost")


def _netcdf_attrs(path: Path) -> dict[str, Any]:
    """A NetCDF file's global attributes; {} for a file that is none (or unreadable)."""
    try:
        with _netcdf(path, "r") as nc:
            return {name: nc.getncattr(name) for name in nc.ncattrs()}
    except Exception:  # not NetCDF, or damaged: not known to be ours
        return {}


@contextlib.contextmanager
def _netcdf(path: Path, mode: str):
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


def _ours(attrs: dict[str, Any]) -> bool:
    """Whether root attributes mark a result or model geoanom wrote, of any version."""
    earlier = str(attrs.get("source", "")).startswith("geoanom ") or any(key in attrs for key in _EARLIER_MARKS)
    return WRITTEN_BY_ATTR in attrs or earlier


def written_by_geoanom(store: PathLike) -> bool:
    """Whether `store` is a Zarr store that geoanom wrote: a result or a saved model, of any version.

    Examples
    --------
    >>> written_by_geoanom(ga.write_dataset(model.score(cube), "a.zarr"))  # doctest: +SKIP
    True
    """
    attrs = _root_attrs(Path(store))
    return attrs is not None and _ours(attrs)


def _root_attrs(store: Path) -> dict[str, Any] | None:
    """The root group's attributes of a Zarr 2 or 3 store, read from its metadata; None if it is none."""
    try:
        if (store / "zarr.json").is_file():  # Zarr 3
            meta = json.loads((store / "zarr.json").read_text())
            return dict(meta.get("attributes") or {}) if isinstance(meta, dict) else {}
        if (store / ".zgroup").is_file() or (store / ".zarray").is_file():  # Zarr 2
            attrs = store / ".zattrs"
            return dict(json.loads(attrs.read_text())) if attrs.is_file() else {}
    except (OSError, ValueError, TypeError):  # unreadable metadata: a store, but not known to be ours
        return {}
    return None


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


def remove_stale_temporaries(target: PathLike) -> list[Path]:
    """Remove the temporaries earlier, killed writes to `target` left behind.

    Only siblings ``.{name}.tmp-<host>-<pid>-<random>`` written on this host
    by a process that no longer exists are removed: a live writer's, or one
    on another host of a shared file system (whose pid says nothing here),
    is left alone. Temporaries of older geoanom versions (no pid in the name)
    are removed too: they are marked or unreadable, never a result.

    Parameters
    ----------
    target : str or path
        The output path whose leftovers to remove.

    Returns
    -------
    list of pathlib.Path
        What was removed.

    Examples
    --------
    >>> remove_stale_temporaries("anomalies.zarr")  # doctest: +SKIP
    []
    """
    target = Path(target)
    removed = []
    for sibling in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        suffix = sibling.name[len(target.name) + 6:]
        owner = _TMP_NAME.fullmatch(suffix)
        stale = owner["host"] == _HOST and not _alive(int(owner["pid"])) if owner else _OLD_TMP.fullmatch(suffix)
        if stale:
            _remove(sibling)
            removed.append(sibling)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _Terminated(BaseException):
    """Raised by our SIGTERM handler to unwind a write (BaseException: no `except Exception` swallows it)."""


@contextlib.contextmanager
def _removed_on_sigterm(tmp: Path) -> Iterator[None]:
    """On SIGTERM, stop the write, remove `tmp`, and end as the previous handler would have.

    Handlers can only be set from the main thread; elsewhere (and when SIGTERM
    is ignored) nothing changes, and the next write removes what is left.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        _remove_while_written(tmp)
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)  # the default action ends the process here
        # A Python handler returned: still stop. Threads of the dask pool may
        # finish a chunk into tmp meanwhile; remove it again once they are joined.
        atexit.register(_remove, tmp)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _mark_complete(tmp: Path, kind: str, zarr_format: int) -> None:
    """Remove the incomplete mark, now that every value is on disk."""
    if kind == "zarr":
        group = zarr.open_group(tmp, mode="r+", zarr_format=zarr_format)
        del group.attrs[INCOMPLETE_ATTR]
        if zarr_format == 2:
            zarr.consolidate_metadata(tmp, zarr_format=2)
    else:
        with _netcdf(tmp, "a") as nc:
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
    _remove(old)


def _remove_while_written(path: Path, attempts: int = 20) -> None:
    """Remove `path` that threads of the dask pool may still be writing into.

    A task in flight when the signal came can recreate a chunk's folder while
    rmtree walks it (seen once in 13 SIGTERM runs): remove until it stays gone.
    """
    for _ in range(attempts):
        _remove(path)
        time.sleep(0.02)  # a chunk already being written lands now, not after the check
        if not os.path.lexists(path):
            return


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()
