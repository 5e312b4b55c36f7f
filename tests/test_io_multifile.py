"""Several files opened as one cube: a file that disagrees with the others is named, with what differs."""

from __future__ import annotations

import os
import re

import pandas as pd
import pytest
import xarray as xr
from test_io import make_cube

import geoanom as ga
from geoanom.errors import CoordinateError, UnitsError


def monthly(start, n=4):
    return make_cube(ntime=n).drop_vars("time_bnds").assign_coords(time=pd.date_range(start, periods=n, freq="MS"))


def refusal(files, error=CoordinateError):
    with pytest.raises(error) as caught:
        ga.open_cube(files)
    return str(caught.value)


def dated(times, units="K"):
    """A small cube at `times`, its tas in `units` (None: no attribute)."""
    cube = make_cube(ntime=len(times)).drop_vars("time_bnds").assign_coords(time=times)
    cube["tas"].attrs = {} if units is None else {"units": units}
    return cube


def mid_months(start, n):
    return pd.date_range(start, periods=n, freq="MS") + pd.Timedelta("15D")


@pytest.mark.parametrize("order", [("a", "b", "c"), ("b", "a", "c")])
def test_the_file_on_another_grid_is_named_with_its_coordinate(tmp_path, order):
    make_cube(start="2000-01-01").to_netcdf(tmp_path / "a.nc")
    make_cube(start="2001-01-01", lat=(11.0, 21.0, 31.0)).to_netcdf(tmp_path / "b.nc")
    make_cube(start="2002-01-01").to_netcdf(tmp_path / "c.nc")
    message = refusal([tmp_path / f"{name}.nc" for name in order])  # b is odd even when given first
    assert message.endswith(f"do not share one grid: '{tmp_path / 'b.nc'}' differs from '{tmp_path / 'a.nc'}': "
                            "lat is shifted by +1 throughout (it starts at 11, the expected at 10).")


def test_a_file_with_fewer_longitudes_is_named(tmp_path):
    make_cube(start="2000-01-01").to_netcdf(tmp_path / "a.nc")
    make_cube(start="2001-01-01", lon=(0.0, 90.0, 180.0)).to_netcdf(tmp_path / "b.nc")
    assert refusal(str(tmp_path / "*.nc")).endswith(f"'{tmp_path / 'b.nc'}' differs from '{tmp_path / 'a.nc'}': "
                                                    "lon has 3 values, the expected 4.")


def test_the_file_in_another_calendar_is_named(tmp_path):
    make_cube(start="2000-01-01").to_netcdf(tmp_path / "a.nc")
    odd = make_cube(start="2001-01-01").drop_vars("time_bnds")
    odd.assign_coords(time=xr.date_range("2001-01-01", periods=6, calendar="360_day", use_cftime=True)).to_netcdf(
        tmp_path / "b.nc")
    make_cube(start="2002-01-01").to_netcdf(tmp_path / "c.nc")
    assert refusal(str(tmp_path / "*.nc")).endswith(
        f"use different calendars: '{tmp_path / 'b.nc'}' uses 360_day, '{tmp_path / 'a.nc'}' standard.")


def test_the_file_with_another_time_step_is_named(tmp_path):
    make_cube(start="2000-01-01").to_netcdf(tmp_path / "a.nc")
    make_cube(start="2000-02-01").to_netcdf(tmp_path / "b.nc")
    monthly("2000-03-01").to_netcdf(tmp_path / "c.nc")
    assert refusal(str(tmp_path / "*.nc")).endswith(
        f"do not share one time step: '{tmp_path / 'c.nc'}' steps by 31 days, the others by 1 day.")


def test_a_month_missing_from_a_file_is_not_another_step(tmp_path):
    monthly("2000-01-01").to_netcdf(tmp_path / "a.nc")
    monthly("2000-05-01").to_netcdf(tmp_path / "b.nc")
    monthly("2000-09-01").drop_sel(time="2000-10-01").to_netcdf(tmp_path / "c.nc")  # 30 and 61 days
    assert ga.open_cube(str(tmp_path / "*.nc")).sizes["time"] == 11


def test_a_repeated_step_names_both_files_and_the_date(tmp_path):
    make_cube(start="2000-01-01").to_netcdf(tmp_path / "a.nc")
    make_cube(start="2000-01-05").to_netcdf(tmp_path / "b.nc")
    assert refusal(str(tmp_path / "*.nc")).endswith(
        f"2000-01-05 is in both '{tmp_path / 'a.nc'}' and '{tmp_path / 'b.nc'}'.")


def test_a_step_repeated_within_one_file_names_it(tmp_path):
    cube = make_cube().drop_vars("time_bnds")
    times = cube.indexes["time"].to_numpy().copy()
    times[3] = times[2]
    cube.assign_coords(time=times).to_netcdf(tmp_path / "a.nc")
    message = refusal(tmp_path / "a.nc")
    assert re.fullmatch(r"time steps repeat in .*a\.nc: 2000-01-03 appears twice in '.*a\.nc'\.", message)


def test_ostia_joined_with_a_part_in_celsius_is_refused_naming_both(tmp_path):
    """The trial: OSTIA to 2007-12 in K, from 2008 minus 273.15 in degC, was joined as K and scored as garbage."""
    iris_sample_data = pytest.importorskip("iris_sample_data")
    with xr.open_dataset(os.path.join(iris_sample_data.path, "ostia_monthly.nc")) as sst:
        sst = sst.load()
    celsius = sst.sel(time=slice("2008", None))
    celsius["surface_temperature"] = celsius["surface_temperature"] - 273.15
    celsius["surface_temperature"].attrs = {**sst["surface_temperature"].attrs, "units": "degC"}
    sst.sel(time=slice(None, "2007")).to_netcdf(tmp_path / "part1_K.nc")
    celsius.to_netcdf(tmp_path / "part2_C.nc")
    files = [str(tmp_path / "part1_K.nc"), str(tmp_path / "part2_C.nc")]
    assert refusal(files, UnitsError) == (
        f"the files {', '.join(files)} do not share units: surface_temperature is in 'degC' in '{files[1]}' but "
        f"is in 'K' in '{files[0]}'; convert one before joining them.")


def test_a_file_without_units_is_named_beside_files_with_them(tmp_path):
    dated(pd.date_range("2000-01-01", periods=4)).to_netcdf(tmp_path / "a.nc")  # a without, first on a tie
    dated(pd.date_range("2000-01-05", periods=4), units=None).to_netcdf(tmp_path / "b.nc")
    assert refusal(str(tmp_path / "*.nc"), UnitsError).endswith(
        f"do not share units: tas has no units in '{tmp_path / 'b.nc'}' but is in 'K' in '{tmp_path / 'a.nc'}'; "
        "convert one before joining them.")


@pytest.mark.parametrize("spellings", [("K", "kelvin", "degK"), ("degC", "Celsius", "\u00b0C"), ("deg_C", "degC", "C")])
def test_one_unit_spelled_differently_joins_and_other_units_do_not(tmp_path, spellings):
    for i, units in enumerate(spellings):
        dated(pd.date_range(f"2000-01-{1 + 4 * i:02d}", periods=4), units).to_netcdf(tmp_path / f"{i}.nc")
    if spellings[-1] == "C":  # coulombs, not Celsius: the odd file is named
        message = refusal(str(tmp_path / "*.nc"), UnitsError)
        assert f"tas is in 'C' in '{tmp_path / '2.nc'}' but is in 'deg_C' in '{tmp_path / '0.nc'}'" in message
    else:  # psl has no units in any file, which is no disagreement either
        cube = ga.open_cube(str(tmp_path / "*.nc"))
        assert cube.sizes["time"] == 12 and cube["tas"].attrs["units"] == spellings[0]


def test_mid_months_joined_with_overlapping_month_starts_are_refused(tmp_path):
    """The trial: mid-month dates to 2008-06-16 and month starts from 2008-06-01 held June 2008 twice."""
    dated(mid_months("2007-01-01", 18)).to_netcdf(tmp_path / "a.nc")
    dated(pd.date_range("2008-06-01", periods=6, freq="MS")).to_netcdf(tmp_path / "b.nc")
    assert refusal(str(tmp_path / "*.nc")) == (
        f"time steps nearly repeat in {tmp_path / '*.nc'}: 2008-06-01 in '{tmp_path / 'b.nc'}' and "
        f"2008-06-16 in '{tmp_path / 'a.nc'}' are both 2008-06 of this monthly record.")


@pytest.mark.parametrize("first, second, both", [
    (pd.date_range("2007-01-01", periods=18, freq="MS"), mid_months("2008-06-01", 6), "2008-06"),  # June twice
    (mid_months("2018-01-01", 15), pd.DatetimeIndex(["2019-03-31", "2019-04-30"]), "2019-03"),  # the trial's
    (pd.date_range("2000-01-01", periods=8, freq="D"), pd.DatetimeIndex(["2000-01-08T12", "2000-01-09T12"]),
     "2000-01-08"),
])
def test_one_calendar_period_of_the_record_in_two_files_is_refused(tmp_path, first, second, both):
    """A step delivered twice at two stamps (trial A #3): the climatology would read both as one month or day."""
    dated(first).to_netcdf(tmp_path / "a.nc")
    dated(second).to_netcdf(tmp_path / "b.nc")
    assert refusal(str(tmp_path / "*.nc")).endswith(f"are both {both} of this "
                                                    f"{'daily' if len(both) == 10 else 'monthly'} record.")


def test_a_daily_file_starting_hours_after_the_last_day_of_another_is_refused(tmp_path):
    dated(pd.date_range("2000-01-01", periods=6)).to_netcdf(tmp_path / "a.nc")
    dated(pd.date_range("2000-01-06T03", periods=6)).to_netcdf(tmp_path / "b.nc")
    assert refusal(str(tmp_path / "*.nc")).endswith(
        f"2000-01-06 in '{tmp_path / 'a.nc'}' and 2000-01-06T03:00 in '{tmp_path / 'b.nc'}' are both 2000-01-06 "
        "of this daily record.")


def cftime_months(start, n):
    return xr.date_range(start, periods=n, freq="MS", calendar="360_day", use_cftime=True)


@pytest.mark.parametrize("first, second", [
    (mid_months("2007-01-01", 18), pd.date_range("2008-07-01", periods=6, freq="MS")),  # mid-month, then starts
    (pd.date_range("2007-01-01", periods=18, freq="MS"), mid_months("2008-07-01", 6)),  # starts, then mid-month
    (mid_months("2007-01-01", 18), mid_months("2008-08-01", 6)),  # July 2008 missing: a longer step
    (pd.date_range("2000-01-01", periods=8), pd.date_range("2000-01-09", periods=8)),  # daily
    (pd.date_range("2000-01-01", periods=8, freq="6h"), pd.date_range("2000-01-03", periods=8, freq="6h")),
    (pd.date_range("1990-01-01", periods=5, freq="YS"), pd.date_range("1995-07-01", periods=5, freq="YS-JUL")),
    (cftime_months("2000-01-01", 12), cftime_months("2001-01-01", 12)),  # 360-day months
], ids=["mid-start", "start-mid", "gap", "daily", "6-hourly", "annual", "360_day"])
def test_valid_records_in_separate_files_still_join(tmp_path, first, second):
    dated(first).to_netcdf(tmp_path / "a.nc")
    dated(second).to_netcdf(tmp_path / "b.nc")
    cube = ga.open_cube(str(tmp_path / "*.nc"))
    assert cube.sizes["time"] == len(first) + len(second)


def test_float32_and_float64_coordinates_of_one_grid_join_on_the_first_files(tmp_path):
    """Trial A: joining them was refused with '... differs ...: lat is the same'."""
    first = monthly("2000-01-01")
    first = first.assign_coords(lat=first["lat"] + 0.1)  # 0.1 steps: not exact in float32
    first.to_netcdf(tmp_path / "a.nc")
    second = monthly("2000-05-01")
    second.assign_coords(lat=(first["lat"].values).astype("float32")).to_netcdf(tmp_path / "b.nc")
    cube = ga.open_cube([str(tmp_path / "a.nc"), str(tmp_path / "b.nc")])
    assert cube.sizes["time"] == 8 and cube["lat"].dtype == "float64"
    assert (cube["lat"].values == first["lat"].values).all()


def test_a_coordinate_differing_below_a_millionth_says_by_how_much(tmp_path):
    first = monthly("2000-01-01")
    first = first.assign_coords(lat=first["lat"] * 1e-4)  # small values: float32 precision is far below 1e-6
    first.to_netcdf(tmp_path / "a.nc")
    monthly("2000-05-01").assign_coords(lat=first["lat"].values + 1e-8).to_netcdf(tmp_path / "b.nc")
    message = refusal([str(tmp_path / "a.nc"), str(tmp_path / "b.nc")])
    assert message.endswith("lat differs by up to 1e-08, more than float32 precision.") and "is the same" not in message
