"""The command line's dates: their form before the input is opened, then the days of the input's calendar.

Like the rest of the command, this module imports only the standard library
at import time (cftime and pandas when a check needs them).
"""

from __future__ import annotations

import re

from ..errors import OptionError

# An ISO 8601 date, partial or with a time (as xarray reads dates on any calendar, cftime ones too).
ISO_DATE = re.compile(r"[+-]?\d{4,5}(?:-(?P<month>\d\d)(?:-(?P<day>\d\d)(?:[T ](?P<hour>\d\d)"
                      r"(?::(?P<minute>\d\d)(?::(?P<second>\d\d)(?:\.\d{1,6})?)?)?)?)?)?")
DATE_FIELDS = {"month": (1, 12), "day": (1, 31), "hour": (0, 23), "minute": (0, 59), "second": (0, 59)}


def date(option: str, text: str | None) -> None:
    """Refuse text that no calendar reads as a date: neither ISO 8601 (any calendar) nor what pandas reads.

    Whether the input holds the date is decided once it is opened.

    Examples
    --------
    >>> date("--train-end", "1990-06")
    >>> date("--train-end", "1990-13")
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --train-end 1990-13 is not a date: give YYYY, YYYY-MM, YYYY-MM-DD or \
YYYY-MM-DDTHH:MM, e.g. 1990-06.
    """
    if text is None:
        return
    match = ISO_DATE.fullmatch(text.strip())
    if match:
        if all(low <= int(match[name]) <= high for name, (low, high) in DATE_FIELDS.items() if match[name]):
            return
    else:
        import pandas as pd

        try:
            pd.Timestamp(text)  # a standard calendar's other forms (2005/01, Jan 2005)
            return
        except (ValueError, OverflowError):
            pass
    raise OptionError(f"{option} {text} is not a date: give YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH:MM, "
                      "e.g. 1990-06.")


def calendar_date(option: str, text: str | None, calendar: str) -> None:
    """Refuse an ISO date whose day the input's ``calendar`` lacks (2003-02-30 is a ``360_day`` date only).

    :func:`date` checked the text before the input was opened, for any
    calendar; here the input's decides. Other forms are left to the selection.

    Examples
    --------
    >>> calendar_date("--train-end", "2003-02-30", "360_day")
    >>> calendar_date("--train-end", "2003-02-30", "standard")
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --train-end 2003-02-30 is not a date of the input's standard calendar: February 2003 \
has 28 days.
    """
    import calendar as months

    import cftime

    match = ISO_DATE.fullmatch(text.strip()) if text is not None else None
    if match is None or not match["day"]:
        return
    year, month, day = int(text.strip()[:match.start("month") - 1]), int(match["month"]), int(match["day"])
    try:
        days = cftime.datetime(year, month, 1, calendar=calendar).daysinmonth
    except (ValueError, TypeError):  # a calendar cftime does not know, a year it lacks: left to the selection
        return
    if day > days:
        raise OptionError(f"{option} {text} is not a date of the input's {calendar} calendar: "
                          f"{months.month_name[month]} {year} has {days} days.")


def period(start: str | None, end: str) -> None:
    """Refuse a ``--train-start`` after ``--train-end`` (both ISO dates; others are compared once the input is open).

    A partial date stands for its whole span, so 2005-06 to 2005 is a period
    (June to December 2005) and 2006 to 2005 is not.

    Examples
    --------
    >>> period("2005-06", "2005")
    >>> period("2006", "2005")
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --train-start 2006 is after --train-end 2005: the training period would be empty.
    """
    if start is None:
        return
    first, last = (date.strip().replace(" ", "T") for date in (start, end))  # cftime's form compared as ISO's
    if all(re.fullmatch(r"\d{4}[-0-9T: .]*", date) and ISO_DATE.fullmatch(date) for date in (first, last)) and \
            first[:len(last)] > last:
        raise OptionError(f"--train-start {start} is after --train-end {end}: the training period would be empty.")
