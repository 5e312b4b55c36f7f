"""Dates and places as text, for attributes, titles and messages: an ISO date in any calendar, a latitude.

Kept apart from :mod:`geoanom.reporting` (what the command line prints and
writes, which draws maps) so that the model and the plots can format dates
without depending on it, or it on them in a circle.
"""

from __future__ import annotations

import re

__all__ = ["calendar_of", "coordinate_difference", "degrees", "duration", "iso_date", "same_calendar_name"]


def degrees(value: float, positive: str, negative: str, digits: int = 0) -> str:
    """A latitude or longitude as text, e.g. ``degrees(-80.6, "E", "W") == "81°W"``.

    Examples
    --------
    >>> degrees(25.0, "N", "S", digits=2)
    '25.00°N'
    """
    return f"{abs(value):.{digits}f}\u00b0{positive if value >= 0 else negative}"


def coordinate_difference(name: str, expected, found, atol: float = 1e-6) -> str:
    """How a coordinate of a grid differs from the one expected, as text for a message.

    A different size says both sizes; the same size gives the first value
    that differs (its index, both values) and, when every value moved by
    the same amount, the shift.

    Examples
    --------
    >>> import numpy as np
    >>> coordinate_difference("lat", np.arange(15.0, 33.0), np.arange(15.5, 33.5))
    'lat is shifted by +0.5 throughout (it starts at 15.5, the expected at 15)'
    >>> coordinate_difference("lon", np.arange(4.0), np.array([0.0, 1.0, 2.5, 3.0]))
    'lon differs first at index 2: 2.5, the expected 2'
    >>> coordinate_difference("lat", np.arange(4.0), np.arange(3.0))
    'lat has 3 values, the expected 4'
    """
    import numpy as np

    expected, found = np.asarray(expected, dtype=float), np.asarray(found, dtype=float)
    if expected.shape != found.shape:
        sizes = [str(shape[0]) if len(shape) == 1 else " x ".join(map(str, shape)) for shape in (found.shape, expected.shape)]
        return f"{name} has {sizes[0]} values, the expected {sizes[1]}"
    offset = found - expected
    where = np.flatnonzero(~np.isclose(found, expected, atol=atol, equal_nan=True))
    if where.size == 0:
        return f"{name} is the same"
    first = np.unravel_index(int(where[0]), found.shape)
    index = first[0] if len(first) == 1 else tuple(int(i) for i in first)
    if np.allclose(offset, offset.flat[0], atol=atol):
        return (f"{name} is shifted by {offset.flat[0]:+g} throughout (it starts at {found.flat[0]:g}, "
                f"the expected at {expected.flat[0]:g})")
    return f"{name} differs first at index {index}: {found[first]:g}, the expected {expected[first]:g}"


def iso_date(value: object, with_time: bool | None = None) -> str:
    """A time as an ISO date without seconds or nanoseconds, in any calendar.

    ``value`` may be a numpy ``datetime64``, a cftime or pandas date, or its
    text. The time of day is added (``T06:00``) when ``with_time`` is True, or
    by default when it is not midnight.

    Examples
    --------
    >>> import numpy as np
    >>> iso_date(np.datetime64("2010-09-16T00:00:00.000000000"))
    '2010-09-16'
    >>> iso_date("2010-09-16 06:00:00")
    '2010-09-16T06:00'
    """
    import numpy as np  # on first use: `geoanom --help` imports this module

    if isinstance(value, np.ndarray) and value.ndim == 0:  # one element of .values
        value = value[()]
    text = np.datetime_as_string(value) if isinstance(value, np.datetime64) else str(value)
    match = re.match(r"\s*(-?\d{1,6}-\d{1,2}-\d{1,2})(?:[T ](\d{1,2}):(\d{2}))?", text)
    if not match:  # not a date: say what it is rather than guess
        return text
    day, hour, minute = match.group(1), int(match.group(2) or 0), int(match.group(3) or 0)
    if with_time or (with_time is None and (hour, minute) != (0, 0)):
        return f"{day}T{hour:02d}:{minute:02d}"
    return day


def calendar_of(times) -> str:
    """The calendar as the file names it (``gregorian`` stays ``gregorian``).

    xarray decodes a ``gregorian`` or ``standard`` time axis to numpy dates
    and then reports ``proleptic_gregorian``, which is not what the file says
    (and differs from it before 1582): the name is read from the variable's
    encoding or attributes first.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> times = xr.DataArray(pd.date_range("2000", periods=2), dims="time")
    >>> times.encoding["calendar"] = "gregorian"
    >>> calendar_of(times)
    'gregorian'
    """
    for source in (times.encoding, times.attrs):
        if source.get("calendar"):
            return str(source["calendar"])
    return str(times.dt.calendar) if hasattr(times.dt, "calendar") else "standard"


def same_calendar_name(times) -> str:
    """The calendar's name, one for the standard one's synonyms where the dates are the same.

    ``gregorian``, ``standard`` and ``proleptic_gregorian`` are all
    ``standard`` when every date is after the Gregorian reform (1582-10-15),
    where they agree; a ``proleptic_gregorian`` axis reaching further back
    keeps its name, since its dates differ from the standard calendar's there.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> same_calendar_name(xr.DataArray(pd.date_range("2000", periods=2), dims="time"))
    'standard'
    """
    name = calendar_of(times)
    if name == "gregorian" or (name == "proleptic_gregorian" and _after_reform(times)):
        return "standard"
    return name


def _after_reform(times) -> bool:
    """Whether every date is on or after 1582-10-15 (numpy dates always are: xarray decodes earlier ones to cftime)."""
    values = times.values.ravel()
    if times.dtype.kind == "M" or values.size == 0:
        return True
    return min((t.year, t.month, t.day) for t in values) >= (1582, 10, 15)


def duration(seconds: float) -> str:
    """A span as a person reads it: hours below a day, days from one day up, to three figures.

    Examples
    --------
    >>> duration(3 * 3600), duration(15.5 * 86400), duration(86400)
    ('3 hours', '15.5 days', '1 day')
    """
    value, unit = (seconds / 3600, "hour") if seconds < 86400 else (seconds / 86400, "day")
    return f"{value:.3g} {unit}{'' if value == 1 else 's'}"
