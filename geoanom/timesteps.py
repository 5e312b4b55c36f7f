"""The steps of a time axis: their lengths in any calendar, and where a record leaves steps out.

One definition for every module that judges a record by its steps: the
multi-file checks of :func:`geoanom.open_cube`, an append's gap, the kind of
record a climatology is fitted to and a model checks, and the events that
end at a gap. It imports nothing of geoanom, so :mod:`geoanom.io` can use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

# A step longer than this many of the record's usual (median) steps leaves steps out: monthly steps vary from 28
# to 31 days, so 1.5 steps is a month missing, not a long month.
GAP_STEPS = 1.5


def step_seconds(times: Any) -> np.ndarray:
    """The length of each step of `times` (numpy dates or cftime's) in seconds, one fewer than the dates.

    Examples
    --------
    >>> step_seconds(pd.date_range("2000-01-01", periods=3, freq="D")).tolist()
    [86400.0, 86400.0]
    """
    values = np.asarray(getattr(times, "values", times))
    return pd.to_timedelta(pd.Series(np.diff(values))).dt.total_seconds().to_numpy()


def step_days(times: Any) -> np.ndarray:
    """:func:`step_seconds` in days.

    Examples
    --------
    >>> step_days(pd.date_range("2000-01-01", periods=3, freq="MS")).tolist()
    [31.0, 29.0]
    """
    return step_seconds(times) / 86400.0


def gaps_after(times: Any, steps: float = GAP_STEPS) -> np.ndarray:
    """The steps after which `times` leaves steps out: longer than `steps` of its median step.

    Fewer than three dates have no usual step to judge by.

    Examples
    --------
    >>> months = pd.date_range("2000-01-01", periods=6, freq="MS").delete([3, 4])  # April and May missing
    >>> gaps_after(months).tolist()
    [2]
    """
    days = step_days(times)
    if days.size < 2:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(days > steps * np.median(days))


# The kinds of step whose calendar period says which step a date holds (the climatology reads a monthly date
# by its month, a daily one by its day), with the median step lengths (days) that make a record of that kind.
_PERIODS = {"month": (27.0, 32.0), "day": (0.9, 1.1), "year": (359.0, 367.0)}


# Two dates of one calendar period this share of the usual step apart or more are two steps, not one held twice.
FULL_STEP = 0.75


def usual_step_days(times: Any) -> float | None:
    """The record's usual step in days: the upper quartile of its steps, None for fewer than two dates.

    Not the median: a step delivered twice adds a short step (and shortens
    the next), so a few repeats would pull the median down; missing steps
    are rarer than a quarter of a record.

    Examples
    --------
    >>> usual_step_days(pd.DatetimeIndex(["2019-01-16", "2019-02-15", "2019-03-16", "2019-03-31", "2019-04-16"]))
    29.25
    """
    days = step_days(times)
    return float(np.percentile(days, 75)) if days.size else None


def step_kind(times: Any) -> str | None:
    """The calendar period one step of `times` covers: ``"month"``, ``"day"``, ``"year"``, or None (another step).

    Judged by the usual step (:func:`usual_step_days`), so a repeated or missing step does not change it.
    Steps all of one length near a month's, in a calendar whose months differ in length, are a record every
    30 days, not a monthly one: it holds two dates of some months (2002-10-01 and 2002-10-31), each a step.

    Examples
    --------
    >>> step_kind(pd.date_range("2000-01-16", periods=4, freq="MS"))
    'month'
    >>> step_kind(pd.date_range("2000-01-01", periods=4, freq="6h")) is None
    True
    >>> step_kind(pd.date_range("2002-08-02", periods=6, freq="30D")) is None
    True
    """
    usual = usual_step_days(times)
    if usual is None:
        return None
    kind = next((kind for kind, (low, high) in _PERIODS.items() if low <= usual <= high), None)
    days = step_days(times)
    if kind == "month" and days.size > 1 and np.ptp(days) < 0.5 and getattr(times, "calendar", "") != "360_day":
        return None  # a fixed step, not calendar months (which differ by a day or more)
    return kind


def same_step(times: Any) -> np.ndarray:
    """Which neighbouring dates of sorted `times` hold one step of the record: one mask per pair, one fewer than the dates.

    The one rule for a step delivered twice, at two stamps (March at 03-16
    and again at 03-31): in a monthly, daily or annual record (:func:`step_kind`)
    two dates in the same calendar month, day or year are one step, as the
    climatology reads them, unless nearly a whole step apart (:data:`FULL_STEP`
    of the usual step or more: a monthly record converted to ``360_day``
    holds 2002-02-02 and 2002-02-29, February and March, and a month
    stamped at its start and again at its end cannot be told from that);
    in a record of any other step, two dates closer than half its usual
    step are. Used by the opening and joining of files and by an append.

    Examples
    --------
    >>> months = pd.DatetimeIndex(["2019-01-16", "2019-02-15", "2019-03-16", "2019-03-31", "2019-04-01"])
    >>> same_step(months).tolist()
    [False, False, True, False]
    >>> same_step(pd.DatetimeIndex(["2000-01-01 00:00", "2000-01-01 06:00", "2000-01-01 07:00"])).tolist()
    [False, True]
    """
    days = step_days(times)
    kind = step_kind(times)
    if kind is None:
        return days < usual_step_days(times) / 2 if days.size else np.zeros(0, dtype=bool)
    key = period_keys(times, kind)
    return (key[1:] == key[:-1]) & (days < FULL_STEP * usual_step_days(times))


def period_keys(times: Any, kind: str) -> np.ndarray:
    """Each date's calendar period of `kind` (``"month"``, ``"day"``, ``"year"``) as one integer, in any calendar.

    Examples
    --------
    >>> period_keys(pd.DatetimeIndex(["2019-03-16", "2019-03-31"]), "month").tolist()
    [201903, 201903]
    """
    values = np.asarray(getattr(times, "values", times))
    index = pd.DatetimeIndex(values) if values.dtype.kind == "M" else xr.CFTimeIndex(values)
    year, month, day = np.asarray(index.year), np.asarray(index.month), np.asarray(index.day)
    return {"year": year, "month": year * 100 + month, "day": (year * 100 + month) * 100 + day}[kind].astype(np.int64)


def period_name(date: Any, kind: str | None) -> str:
    """The calendar period of `kind` that `date` lies in, as text (``"2019-03"`` for a month); '' for no kind.

    Examples
    --------
    >>> period_name(pd.Timestamp("2019-03-31"), "month")
    '2019-03'
    """
    if kind is None:
        return ""
    text = f"{date.year:04d}-{date.month:02d}-{date.day:02d}"
    return text[:{"year": 4, "month": 7, "day": 10}[kind]]
