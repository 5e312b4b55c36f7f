"""Append new time steps to a result store, region by region, resuming a write that was killed.

Why regions: an append (or a long write with ``resume=True``) may take hours
and be killed (walltime, a lost node). The store is first marked unfinished
(``geoanom_incomplete = "true"``, which :func:`geoanom.open_cube` and
:func:`geoanom.load_model` refuse) with a progress mark ``geoanom_progress``
(JSON: the pending dates, where they start in the store and how many are
written). The arrays are then resized, and the new steps written one region
(one or more whole time chunks of the store) at a time, the mark updated after
each. A new call with the same result and path continues from the first
region not written; the last one removes both marks and adds a line to
``history``.

Why the stored data are safe: the steps already stored are only ever
rewritten inside a time chunk the new steps share (a partially filled last
chunk), and Zarr writes each chunk file atomically (a temporary renamed into
place), so that chunk holds either its old or its new values, never a mix.
Every refusal (overlapping dates, another model, another grid or calendar)
happens before anything is written.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import zarr

from geoanom._version import __version__
from geoanom.errors import GeoanomError, GeoanomWarning
from geoanom.formatting import iso_date, same_calendar_name
from geoanom.timesteps import GAP_STEPS, same_step, step_days

from .joining import one_step_reason
from .safety import INCOMPLETE_ATTR, PROGRESS_ATTR

REGION_BYTES = 256 * 2**20  # uncompressed bytes written per region: few regions, little lost when killed


def append_dataset(ds: xr.Dataset, target: Path) -> Path:
    """Append the time steps of `ds` to the result store `target`, or finish an append that was killed.

    Parameters
    ----------
    ds : xarray.Dataset
        A result (as :meth:`AnomalyModel.score` gives) on the store's grid,
        scored by the same model, its times all after the stored ones.
    target : pathlib.Path
        An existing ``.zarr`` store that geoanom wrote.

    Returns
    -------
    pathlib.Path
        `target`.

    Raises
    ------
    GeoanomError
        In one sentence naming the store: a NetCDF or missing target,
        overlapping or earlier dates, other variables, grid, tiles,
        detectors or calendar, or another unfinished append.

    Examples
    --------
    >>> append_dataset(model.score(next_month), Path("anomalies.zarr"))  # doctest: +SKIP
    PosixPath('anomalies.zarr')
    """
    if target.suffix.lower() != ".zarr":
        raise GeoanomError(f"cannot append to '{target}': only Zarr stores (.zarr) can be appended to; write the "
                           "whole result again, or to a .zarr store.")
    if not (target / ".zgroup").is_file() and not (target / "zarr.json").is_file():
        raise GeoanomError(f"cannot append to '{target}': no result store is there; write the first result "
                           "without append.")
    group = zarr.open_group(target, mode="r")
    attrs = dict(group.attrs)
    progress = _progress(attrs)
    if progress is None and str(attrs.get(INCOMPLETE_ATTR, "")).lower() == "true":
        raise GeoanomError(f"cannot append to '{target}': it is an unfinished output of an interrupted write; "
                           "write it again first.")
    times = ds["time"].values
    if progress is not None:
        _check_same_pending(target, progress, times)
        _grow(target, progress["stop"])  # killed while growing: some arrays may still have the old length
    stored = _open(target)
    start = progress["start"] if progress else stored.sizes["time"]
    doing = None
    if progress is not None and start == 0:  # a new store written resumably, not an append
        doing = f"cannot finish the interrupted write of {progress['first']} to {progress['last']} to '{target}'"
    try:
        check_compatible(stored.isel(time=slice(0, start)), ds, target, doing)
    except GeoanomError as error:
        if doing is None:
            raise
        raise GeoanomError(f"{str(error).rstrip('.')}; run that write again, or replace it (--overwrite, or "
                           "overwrite='force' in write_dataset).") from None
    if progress is None:
        progress = {"first": iso_date(times[0]), "last": iso_date(times[-1]), "start": start,
                    "stop": start + len(times), "done": 0}
        _begin(target, progress)
    _write_regions(target, ds, progress)
    appended = progress["start"] > 0  # 0: a new store written resumably, whose history has its line already
    _finish(target, f"appended {progress['first']} to {progress['last']} with geoanom {__version__}" if appended
            else None)
    if appended:  # said once the steps are in the store, in the words of what happened
        _warn_gap(stored["time"].values[:start], times, target)
        _warn_empty_steps(target, progress["start"], progress["stop"])
    return target


def _warn_empty_steps(target: Path, start: int, stop: int) -> None:
    """Warn when appended steps hold no scored cell at all: their input was all missing (an empty delivery).

    Read back from the store (one variable, the appended steps only), as
    counting before the write would score them twice.
    """
    stored = _open(target)
    name = "fused_irregularity" if "fused_irregularity" in stored else next(
        (n for n, v in stored.data_vars.items() if "time" in v.dims and v.dtype.kind == "f"), None)
    if name is None:
        return
    values = stored[name].isel(time=slice(start, stop))
    scored = np.isfinite(values).sum([d for d in values.dims if d != "time"]).values
    empty = stored["time"].values[start:stop][scored == 0]
    if empty.size:
        dates = ", ".join(iso_date(t) for t in empty[:3]) + (f" and {empty.size - 3} more" if empty.size > 3 else "")
        warnings.warn(f"appended {dates} to '{target}' with no scored cell ({name} is missing everywhere): the "
                      "input holds no values there; check the delivery, as the empty step stays in the store and "
                      "only later dates can be appended.", GeoanomWarning, stacklevel=4)


def pending_progress(target: Path) -> dict[str, Any] | None:
    """The progress mark of an unfinished region write at `target`, or None (no store, or none pending).

    Examples
    --------
    >>> pending_progress(Path("anomalies.zarr"))  # doctest: +SKIP
    {'first': '2001-01-01', 'last': '2001-12-01', 'start': 12, 'stop': 24, 'done': 6}
    """
    if not (target / ".zgroup").is_file() and not (target / "zarr.json").is_file():
        return None
    return _progress(dict(zarr.open_group(target, mode="r").attrs))


def region_bounds(start: int, stop: int, chunk: int, per_region: int = 1) -> list[tuple[int, int]]:
    """The regions [a, b) covering store steps start..stop, cut at the store's time chunks.

    Each region holds up to `per_region` chunks; the first may begin inside a
    chunk (the stored steps' last, partially filled one).

    Examples
    --------
    >>> region_bounds(10, 30, 4, per_region=2)
    [(10, 16), (16, 24), (24, 30)]
    >>> region_bounds(8, 12, 4)
    [(8, 12)]
    >>> region_bounds(12, 12, 4)  # nothing pending: the first, atomic part held every step
    []
    """
    if start >= stop:
        return []
    cuts = [start, *range((start // chunk + 1) * chunk, stop, chunk), stop]
    edges = cuts[::per_region] + ([stop] if (len(cuts) - 1) % per_region else [])
    return list(zip(edges[:-1], edges[1:]))


def check_compatible(stored: xr.Dataset, new: xr.Dataset, target: Path, doing: str | None = None) -> None:
    """Refuse, in one sentence naming the store, new steps that do not continue `stored`.

    Checked: the dates (after the stored end, no overlap), the variables and
    their dims, the grid and other coordinates, the tiles, the scoring
    model's provenance (every ``geoanom_*`` attribute of every variable:
    detectors, variables, precision, training period, seed) and the calendar.

    Examples
    --------
    >>> check_compatible(xr.open_zarr("a.zarr"), model.score(cube), Path("a.zarr"))  # doctest: +SKIP

    `doing` begins the sentence (default ``"cannot append to '<target>'"``):
    a new write continued after a kill says so, not "append".
    """
    doing = doing or f"cannot append to '{target}'"
    _check_times(stored, new, target, doing)
    if set(stored.data_vars) != set(new.data_vars):
        raise GeoanomError(f"{doing}: it holds {', '.join(sorted(map(str, stored.data_vars)))}, "
                           f"the new result {', '.join(sorted(map(str, new.data_vars)))}.")
    for name, var in new.variables.items():
        if name == "time":
            continue
        old = stored.variables.get(name)
        if old is None or old.dims != var.dims:
            raise GeoanomError(f"{doing}: its {name} has dims {old.dims if old else 'none'}, "
                               f"the new result's {var.dims}.")
        if "time" not in var.dims and not _same_values(old, var):
            raise GeoanomError(f"{doing}: its {name} differs from the new result's "
                               "(another grid, tiling or detectors).")
        ours, theirs = _provenance(old.attrs), _provenance(var.attrs)
        if ours != theirs:
            key = next(k for k in sorted(set(ours) | set(theirs)) if ours.get(k) != theirs.get(k))
            raise GeoanomError(f"{doing}: it was scored by another model ({name}'s {key} "
                               f"is {ours.get(key)!r} there, {theirs.get(key)!r} in the new result).")


def _check_times(stored: xr.Dataset, new: xr.Dataset, target: Path, doing: str) -> None:
    old, times = stored["time"].values, new["time"].values
    if old.dtype.kind == "M" and times.dtype.kind == "O":  # cftime dates of a calendar numpy dates can hold
        times = np.array([np.datetime64(t.isoformat()) for t in times], dtype=old.dtype)
    if len(times) == 0:
        raise GeoanomError(f"{doing}: the new result holds no time steps.")
    ours, theirs = same_calendar_name(stored["time"]), same_calendar_name(new["time"])
    if ours != theirs:
        raise GeoanomError(f"{doing}: its calendar is {ours}, the new result's {theirs}.")
    if len(times) > 1 and not bool(np.all(times[1:] > times[:-1])):
        raise GeoanomError(f"{doing}: the new result's times are not strictly increasing.")
    if len(old) and times[0] <= old[-1]:
        span, end = f"{iso_date(times[0])} to {iso_date(times[-1])}", iso_date(old[-1])
        why = "overlap the stored ones" if times[-1] >= old[0] and np.isin(times, old).any() else \
            "begin before the stored end"
        raise GeoanomError(f"cannot append {span} to '{target}': these dates {why} ({iso_date(old[0])} to {end}); "
                           f"append only dates after {end}.")
    _check_same_steps(old, times, target)


def _check_same_steps(old: np.ndarray, times: np.ndarray, target: Path) -> None:
    """Refuse new dates that hold a stored step, or each other's, again (March at 03-16, then at 03-31).

    The rule of the joining of files (:func:`geoanom.timesteps.same_step`),
    judged with the store's steps.
    """
    try:
        every = pd.Index(np.concatenate([old, times]))
        repeats = same_step(every)
    except (TypeError, ValueError):  # cftime dates stored, numpy's new (one calendar): not judged
        return
    found = np.flatnonzero(repeats[max(len(old) - 1, 0):]) + max(len(old) - 1, 0)
    if found.size:
        k = int(found[0])
        first = "the stored " if k < len(old) else ""
        span = iso_date(times[0]) + (f" to {iso_date(times[-1])}" if len(times) > 1 else "")
        raise GeoanomError(f"cannot append {span} to '{target}': {first}{iso_date(every[k])} and "
                           f"{iso_date(every[k + 1])} {one_step_reason(every, k)}, "
                           "one step delivered twice; append only the steps after it.")


def _warn_gap(old: np.ndarray, times: np.ndarray, target: Path) -> None:
    """Warn, once they are stored, when the new dates left time steps out after the old ones (a feed that missed a month)."""
    if len(old) < 2:
        return
    try:
        usual, gap = float(np.median(step_days(old))), step_days(np.array([old[-1], times[0]]))[0]
    except TypeError:  # cftime dates stored, numpy's new (one calendar, told apart by the years): not judged
        return
    if usual > 0 and gap > GAP_STEPS * usual:  # the rule of events' gaps (geoanom.timesteps)
        warnings.warn(f"appended {iso_date(times[0])} to '{target}' after its last step {iso_date(old[-1])}, "
                      f"leaving about {round(gap / usual) - 1:d} time step(s) out (the store steps by {usual:.3g} "
                      "days): events (geoanom events) end at the gap and start again after it, and the missing "
                      "steps can no longer be appended (only later dates can); if they exist, score the whole "
                      "period into a new result.",
                      GeoanomWarning, stacklevel=4)


def _check_same_pending(target: Path, progress: dict[str, Any], times: np.ndarray) -> None:
    """A killed append is finished only with the same steps: refuse others."""
    if (iso_date(times[0]), iso_date(times[-1]), len(times)) != \
            (progress["first"], progress["last"], progress["stop"] - progress["start"]):
        what, undo = ("append", "") if progress["start"] else \
            ("write", ", or replace it (--overwrite, or overwrite='force' in write_dataset)")
        raise GeoanomError(f"cannot write {iso_date(times[0])} to {iso_date(times[-1])} to '{target}': it holds an "
                           f"interrupted {what} of {progress['first']} to {progress['last']}; run that {what} "
                           f"again to finish it first{undo}.")



def _same_values(old: xr.Variable, new: xr.Variable) -> bool:
    if old.shape != new.shape:
        return False
    a, b = np.asarray(old.values), np.asarray(new.values)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.allclose(a, b, equal_nan=True))
    if {a.dtype.kind, b.dtype.kind} & set("OTUS"):  # names of detectors: compare as text, whatever the dtype
        return [str(v) for v in a.ravel()] == [str(v) for v in b.ravel()]
    return bool(np.array_equal(a, b))


def _provenance(attrs: dict[str, Any]) -> dict[str, str]:
    """The scoring model's marks on a variable (attributes of the whole result vary per write)."""
    skip = {"geoanom_variable_units", "geoanom_source"}  # the input's, not the model's: they vary per file
    return {k: str(v) for k, v in attrs.items() if k.startswith("geoanom_") and k not in skip} | \
        {k: str(np.asarray(v).tolist()) for k, v in attrs.items() if k == "flag_meanings"}


def _open(target: Path) -> xr.Dataset:
    return xr.open_zarr(target, consolidated=None, chunks=None, mask_and_scale=True)


def _zarr_format(target: Path) -> int:
    return 3 if (target / "zarr.json").is_file() else 2


def _progress(attrs: dict[str, Any]) -> dict[str, Any] | None:
    text = attrs.get(PROGRESS_ATTR)
    return json.loads(text) if isinstance(text, str) else None


def _set_attrs(target: Path, update: dict[str, Any], remove: tuple[str, ...] = ()) -> None:
    """Change the root attributes, then the consolidated metadata readers see first."""
    fmt = _zarr_format(target)
    group = zarr.open_group(target, mode="r+", zarr_format=fmt)
    attrs = {k: v for k, v in group.attrs.asdict().items() if k not in remove} | update
    group.attrs.put(attrs)
    if fmt == 2:
        zarr.consolidate_metadata(target, zarr_format=2)


def _time_part(ds: xr.Dataset) -> xr.Dataset:
    """The variables along time, without encodings: the store's own encode the new steps."""
    part = ds.drop_vars([name for name, var in ds.variables.items() if "time" not in var.dims])
    for var in part.variables.values():
        var.encoding = {}
    return part


def _begin(target: Path, progress: dict[str, Any]) -> None:
    """Mark the store unfinished with its progress, then grow its arrays along time (the data come later)."""
    _set_attrs(target, {INCOMPLETE_ATTR: "true", PROGRESS_ATTR: json.dumps(progress)})
    _grow(target, progress["stop"])


def _grow(target: Path, steps: int) -> None:
    """Give every array along time `steps` steps: metadata only, and the same however often it runs.

    The new steps' times are written with their data, region by region, in
    the store's own time encoding.
    """
    fmt = _zarr_format(target)
    group = zarr.open_group(target, mode="r+", zarr_format=fmt)
    for _, array in group.arrays():
        dims = list(array.metadata.dimension_names or []) if fmt == 3 else array.attrs.get("_ARRAY_DIMENSIONS", [])
        if "time" in dims and array.shape[dims.index("time")] != steps:
            shape = list(array.shape)
            shape[dims.index("time")] = steps
            array.resize(tuple(shape))
    if fmt == 2:
        zarr.consolidate_metadata(target, zarr_format=2)


def _write_regions(target: Path, ds: xr.Dataset, progress: dict[str, Any]) -> None:
    """Write the pending steps region by region, recording each in the progress mark."""
    fmt = _zarr_format(target)
    group = zarr.open_group(target, mode="r", zarr_format=fmt)
    part = _time_part(ds)
    chunks = {name: dict(zip(var.dims, group[name].chunks)) for name, var in part.data_vars.items()}
    chunk = next(iter(chunks.values()))["time"] if chunks else int(group["time"].chunks[0])
    step_bytes = sum(var.nbytes for var in part.data_vars.values()) / max(part.sizes["time"], 1)
    per_region = max(1, int(REGION_BYTES // max(step_bytes * chunk, 1)))
    base = progress["start"]
    for a, b in region_bounds(base + progress["done"], progress["stop"], chunk, per_region):
        piece = part.isel(time=slice(a - base, b - base))
        steps = tuple(np.diff([a, *range((a // chunk + 1) * chunk, b, chunk), b]).tolist())
        for name, var in piece.data_vars.items():  # the store's chunks: no two tasks write one chunk file
            piece[name] = var.chunk({dim: (steps if dim == "time" else size) for dim, size in chunks[name].items()})
        piece.attrs = zarr.open_group(target, mode="r", zarr_format=fmt).attrs.asdict()  # mode "a" puts them again
        # mode "a": xarray then lets a region start inside a chunk (the stored steps' last); one writer only
        piece.to_zarr(target, mode="a", region={"time": slice(a, b)}, zarr_format=fmt, consolidated=False)
        _write_times(target, piece["time"].values, a, fmt)
        progress = progress | {"done": b - base}
        _set_attrs(target, {PROGRESS_ATTR: json.dumps(progress)})


def _write_times(target: Path, times: np.ndarray, at: int, fmt: int) -> None:
    """Write `times` at store steps at.. in the store's units and calendar (xarray's region writes skip indexes)."""
    from xarray.coding.times import encode_cf_datetime

    array = zarr.open_group(target, mode="r+", zarr_format=fmt)["time"]
    encoded, _, _ = encode_cf_datetime(times, array.attrs["units"], array.attrs.get("calendar"), dtype=array.dtype)
    array[at:at + len(times)] = np.asarray(encoded).astype(array.dtype)


def _finish(target: Path, line: str | None) -> None:
    """Remove the marks and add `line` (if any) to ``history``: the store is a result again."""
    history = zarr.open_group(target, mode="r").attrs.get("history", "")
    update = {"history": f"{history}\n{line}" if history else line} if line else {}
    _set_attrs(target, update, remove=(INCOMPLETE_ATTR, PROGRESS_ATTR))


def first_region_steps(ds: xr.Dataset) -> int:
    """How many steps the first, atomically written part of a resumable write holds: its first time chunk.

    Examples
    --------
    >>> first_region_steps(model.score(cube))  # doctest: +SKIP
    12
    """
    for var in ds.data_vars.values():
        if "time" in var.dims and var.chunks:
            return int(var.chunks[var.dims.index("time")][0])
    return max(1, math.ceil(ds.sizes.get("time", 1)))


def resumable_start(ds: xr.Dataset) -> tuple[int, dict[str, str]]:
    """How many steps a resumable write of `ds` writes first (atomically), and the progress mark they carry.

    The first part is the first time chunk; the mark records the whole
    write, for :func:`continue_write` (or a later call, after a kill).

    Examples
    --------
    >>> resumable_start(model.score(cube))  # doctest: +SKIP
    (12, {'geoanom_progress': '{"first": "2000-01-01", "last": "2005-12-01", "start": 0, "stop": 72, "done": 12}'})
    """
    times = ds["time"].values
    first = min(first_region_steps(ds), len(times))
    progress = {"first": iso_date(times[0]), "last": iso_date(times[-1]), "start": 0, "stop": len(times),
                "done": first}
    return first, {PROGRESS_ATTR: json.dumps(progress)}


def continue_write(ds: xr.Dataset, target: Path) -> Path:
    """Write the steps of `ds` the progress mark of `target` does not list as written, then mark it finished.

    Examples
    --------
    >>> continue_write(model.score(cube), Path("anomalies.zarr"))  # doctest: +SKIP
    PosixPath('anomalies.zarr')
    """
    progress = pending_progress(target)
    if progress is None:
        raise GeoanomError(f"cannot continue writing '{target}': it holds no unfinished write.")
    _grow(target, progress["stop"])
    _write_regions(target, ds, progress)
    _finish(target, None)
    return target
