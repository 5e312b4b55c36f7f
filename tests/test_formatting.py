"""Calendars and spans as the refusals name them (geoanom.formatting)."""

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geoanom.formatting import duration, same_calendar_name


def _cftime_axis(calendar: str, year: int) -> xr.DataArray:
    dates = [cftime.datetime(year, month, 15, calendar=calendar) for month in (1, 2, 3)]
    return xr.DataArray(np.array(dates, dtype=object), dims="time")


@pytest.mark.parametrize("calendar", ["standard", "gregorian", "proleptic_gregorian"])
def test_the_standard_calendars_synonyms_after_1582_are_one(calendar):
    assert same_calendar_name(_cftime_axis(calendar, 1900)) == "standard"


def test_numpy_dates_are_standard_whatever_the_encoding_says():
    times = xr.DataArray(pd.date_range("2000", periods=3, freq="MS"), dims="time")
    times.encoding["calendar"] = "proleptic_gregorian"
    assert same_calendar_name(times) == "standard"


def test_proleptic_dates_before_the_reform_keep_their_name():
    assert same_calendar_name(_cftime_axis("proleptic_gregorian", 1500)) == "proleptic_gregorian"
    assert same_calendar_name(_cftime_axis("360_day", 1900)) == "360_day"


def test_durations_read_in_hours_below_a_day_and_days_above():
    assert [duration(s) for s in (1800, 6 * 3600, 86400, 30.4 * 86400)] == \
        ["0.5 hours", "6 hours", "1 day", "30.4 days"]
