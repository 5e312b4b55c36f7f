"""Files joined in time: one record only if they share a grid, calendar, kind of time step and units.

:func:`concat_time` joins the files :func:`geoanom.open_cube` opened, and
refuses in one sentence, naming the odd file (the one that differs from what
most files hold), files that disagree, and dates that repeat, exactly or
nearly (June at 06-01 in one file beside June at 06-16 in another: one step of the
record, :func:`geoanom.timesteps.same_step`). :func:`join_files` also merges
files that hold other variables (one variable per file, as CMIP writes them),
each variable's files joined in time first, when they cover the same steps
on the same grid.
"""

from __future__ import annotations

from collections.abc import Hashable

import numpy as np
import pandas as pd
import xarray as xr

from geoanom.errors import CoordinateError, UnitsError, VariableNotFoundError
from geoanom.formatting import coordinate_difference, duration, iso_date, same_calendar_name
from geoanom.timesteps import period_name, same_step, step_kind, step_seconds, usual_step_days
from geoanom.units import normalised_units

from .messages import short_reason


def join_files(parts: list[xr.Dataset], files: list[str], label: str) -> xr.Dataset:
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


def concat_time(parts: list[xr.Dataset], files: list[str], label: str) -> xr.Dataset:
    """Concatenate files along time, in time order; their grids, calendars, steps and units must match.

    A disagreement names the odd file: the one that differs from what most files hold.

    Examples
    --------
    >>> one = xr.Dataset({"t": ("time", [1.0])}, coords={"time": pd.date_range("2000-01-01", periods=1)})
    >>> two = one.assign_coords(time=pd.date_range("2000-01-02", periods=1))
    >>> concat_time([two, one], ["b.nc", "a.nc"], "a.nc, b.nc")["time"].dt.day.values.tolist()
    [1, 2]
    """
    ds = parts[0]
    if len(parts) > 1:
        calendars = [same_calendar_name(p["time"]) for p in parts]
        odd, ref = _odd_one(calendars)
        if odd is not None:
            raise CoordinateError(f"the files {label} use different calendars: '{files[odd]}' uses "
                                  f"{calendars[odd]}, '{files[ref]}' {calendars[ref]}.")
        parts = [parts[0], *(_on_grid_of(parts[0], p) for p in parts[1:])]
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


def _check_near_repeats(times: pd.Index, parts: list[xr.Dataset], files: list[str], label: str) -> None:
    """Refuse, naming both dates and files, a date of one file that holds a step of another at another time.

    One step is :func:`geoanom.timesteps.same_step`'s rule, the append's too.
    """
    repeats = same_step(times)
    if not repeats.any():
        return
    owner = np.empty(len(times), dtype=int)
    for i, part in enumerate(parts):
        owner[times.get_indexer(part.indexes["time"])] = i
    crossing = np.flatnonzero(repeats & (owner[1:] != owner[:-1]))  # a file's own dates were read as it holds them
    if not crossing.size:
        return
    k = int(crossing[0])
    raise CoordinateError(f"time steps nearly repeat in {label}: {iso_date(times[k])} in '{files[owner[k]]}' and "
                          f"{iso_date(times[k + 1])} in '{files[owner[k + 1]]}' {one_step_reason(times, k)}.")


def one_step_reason(times: pd.Index, k: int) -> str:
    """Why dates `k` and `k + 1` of `times` hold one step, as a clause (e.g. 'are both 2019-03 of this monthly record').

    Examples
    --------
    >>> one_step_reason(pd.DatetimeIndex(["2019-01-16", "2019-02-15", "2019-03-16", "2019-03-31"]), 2)
    'are both 2019-03 of this monthly record'
    """
    kind = step_kind(times)
    if kind is not None:
        adjective = {"month": "monthly", "day": "daily", "year": "annual"}[kind]
        return f"are both {period_name(times[k], kind)} of this {adjective} record"
    apart = step_seconds(times[k:k + 2])[0]
    return (f"are {duration(apart)} apart, under half the record's step of "
            f"{duration(86400 * usual_step_days(times))}")


# Two coordinates hold the same grid when each value matches to float32's precision (a few units in the
# last place): one file stores lat as float32, another as float64.
_FLOAT32_ULPS = 2 * float(np.finfo(np.float32).eps)


def _on_grid_of(first: xr.Dataset, part: xr.Dataset) -> xr.Dataset:
    """`part` on the first file's coordinates where its own are the same values in another float precision.

    Examples
    --------
    >>> a = xr.Dataset(coords={"lat": np.round(np.linspace(30.1, 31.2, 12), 6)})
    >>> b = a.assign_coords(lat=a["lat"].astype("float32"))
    >>> _on_grid_of(a, b)["lat"].dtype, bool((_on_grid_of(a, b)["lat"] == a["lat"]).all())
    (dtype('float64'), True)
    """
    same = {}
    for name, index in first.indexes.items():
        if name == "time" or name not in part.indexes:
            continue
        ours, theirs = np.asarray(index.values), np.asarray(part.indexes[name].values)
        if ours.shape != theirs.shape or ours.dtype.kind != "f" or theirs.dtype.kind != "f" or \
                np.array_equal(ours, theirs):
            continue
        if np.all(np.abs(ours - theirs) <= _FLOAT32_ULPS * np.maximum(np.abs(ours), np.abs(theirs))):
            same[name] = xr.Variable(part[name].dims, ours, part[name].attrs, part[name].encoding)
    return part.assign_coords(same) if same else part


def _grid_key(ds: xr.Dataset) -> tuple:
    """What must be equal for files to concatenate: every index but time, by name and values."""
    return tuple(sorted((str(name), tuple(index.values.tolist())) for name, index in ds.indexes.items()
                        if name != "time"))  # by name: a coordinate put on the first file's grid comes last


def _grid_difference(ref: xr.Dataset, odd: xr.Dataset) -> str:
    """How the odd file's grid differs from the reference file's, as text (e.g. 'lat is shifted by +1 ...')."""
    for name, index in ref.indexes.items():
        if name != "time" and name not in odd.indexes:
            return f"it has no coordinate {name}"
        if name != "time" and not index.equals(odd.indexes[name]):
            said = coordinate_difference(str(name), index.values, odd.indexes[name].values)
            if said.endswith(" is the same"):  # within the formatter's 1e-6, beyond float32's precision
                apart = np.max(np.abs(np.asarray(index.values, float) - np.asarray(odd.indexes[name].values, float)))
                said = f"{name} differs by up to {apart:.2g}, more than float32 precision"
            return said
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
                              f"{duration(steps[odd])}, the others by {duration(usual)}.")



def _odd_one(keys: list) -> tuple[int | None, int]:
    """The first file whose key differs from the one most files share (the first file's on a tie), and a file sharing that."""
    common = max(keys, key=lambda k: (keys.count(k), -keys.index(k)))
    odd = next((i for i, k in enumerate(keys) if k != common), None)
    return odd, keys.index(common)
