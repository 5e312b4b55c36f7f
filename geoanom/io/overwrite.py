"""What an output may replace: the one rule for ``.nc`` and ``.zarr`` outputs, and the mark it reads.

Every file and store :func:`geoanom.io.write.write_dataset` writes carries
`WRITTEN_BY_ATTR`; :func:`replace_problem` lets an output replace only what
is safe to lose (an empty folder, or a result or model geoanom wrote whose
time steps the new output all holds again) and says in a clause why anything
else is not. The writer and the command line (:mod:`geoanom.cli.paths`, which
checks outputs before any work) ask the same question, so the rule is a
module of its own rather than a part of the writer.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import xarray as xr

from .append import pending_progress
from .opening import PathLike, locked_netcdf

WRITTEN_BY_ATTR = "geoanom_written_by"  # in every file and store write_dataset writes: only such an output is replaced
# Stores of earlier versions, before the mark: a result says so in `source`, a saved model has its description.
_EARLIER_MARKS = ("__geoanom_model__",)


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
        with locked_netcdf(path, "r") as nc:
            return {name: nc.getncattr(name) for name in nc.ncattrs()}
    except Exception:  # not NetCDF, or damaged: not known to be ours
        return {}


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

