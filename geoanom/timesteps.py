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
