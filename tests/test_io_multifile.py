"""Several files opened as one cube: a file that disagrees with the others is named, with what differs."""

from __future__ import annotations

import re

import pandas as pd
import pytest
import xarray as xr
from test_io import make_cube

import geoanom as ga
from geoanom.errors import CoordinateError


def monthly(start, n=4):
    return make_cube(ntime=n).drop_vars("time_bnds").assign_coords(time=pd.date_range(start, periods=n, freq="MS"))


def refusal(files):
    with pytest.raises(CoordinateError) as caught:
        ga.open_cube(files)
    return str(caught.value)


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
