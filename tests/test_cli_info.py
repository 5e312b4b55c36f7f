"""``geoanom info`` on real files, and ``--level`` on a cube with pressure levels."""

from __future__ import annotations

import os

import numpy as np
import pytest
import xarray as xr

from geoanom.testing import synthetic_cube

iris_sample_data = pytest.importorskip("iris_sample_data")


def test_info_dates_and_calendar_as_the_file_gives_them(refused):
    """iris-sample-data's OSTIA file says calendar "gregorian"; xarray alone would report proleptic_gregorian."""
    path = os.path.join(iris_sample_data.path, "ostia_monthly.nc")
    process = refused("info", path)
    assert process.returncode == 0, process.stderr
    time_line = next(line for line in process.stdout.splitlines() if line.startswith("time:"))
    assert time_line == "time:       2006-04-16 to 2010-09-16 (54 steps, calendar gregorian)"


def test_info_of_a_360_day_file(refused):
    process = refused("info", os.path.join(iris_sample_data.path, "A1B_north_america.nc"))
    assert process.returncode == 0, process.stderr
    assert "time:       1860-06-01 to 2099-06-01 (240 steps, calendar 360_day)" in process.stdout


def test_info_of_a_regional_grid_across_the_antimeridian_gives_its_real_edges(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=1, n_lat=3, n_lon=12)
    cube = cube.assign_coords(lon=np.arange(12) * 10.0 + 120.0)  # 120E .. 230 (= 130W), given as 0..360
    cube.to_netcdf(tmp_path / "pacific.nc")
    process = refused("info", tmp_path / "pacific.nc")
    assert process.returncode == 0, process.stderr
    assert "lon 120 to -130, across the antimeridian" in process.stdout


@pytest.fixture(scope="module")
def levels_file(tmp_path_factory):
    """The synthetic cube's tas on three pressure levels (500 hPa 10 K colder), beside a surface variable."""
    cube, _ = synthetic_cube()
    tas = cube["tas"]
    ta = xr.concat([tas, tas - 5.0, tas - 10.0], dim="plev").transpose("time", "plev", "lat", "lon")
    ta = ta.assign_coords(plev=("plev", [1000.0, 850.0, 500.0], {"units": "hPa", "axis": "Z", "positive": "down"}))
    path = tmp_path_factory.mktemp("levels") / "levels.nc"
    xr.Dataset({"ta": ta, "tas": tas}).to_netcdf(path)
    return path


def test_info_lists_a_variable_with_levels_instead_of_refusing(levels_file, refused):
    process = refused("info", levels_file)
    assert process.returncode == 0, process.stderr
    assert "variable:   tas ('time', 'lat', 'lon')" in process.stdout
    assert "variable:   ta on levels plev: 1000, 850, 500 hPa (choose one with --level VALUE)" in process.stdout


def test_detect_and_regions_take_one_level(levels_file, tmp_path, refused):
    common = ("--var", "ta", "--precision", "2")
    detect = ("detect", levels_file, *common, "--train-end", "2005", "--detectors", "gmm")
    process = refused(*detect, "--level", "500", "--out", tmp_path / "o.zarr")
    assert process.returncode == 0, process.stderr
    assert xr.open_zarr(tmp_path / "o.zarr")["fused_irregularity"].dims == ("time", "lat", "lon")
    missing = refused(*detect, "--level", "700", "--out", tmp_path / "x.zarr")
    assert missing.returncode == 2 and "700" in missing.stderr and "1000, 850, 500" in missing.stderr
    process = refused("regions", levels_file, *common, "--level", "850", "--out", tmp_path / "r.csv")
    assert process.returncode == 0, process.stderr
    assert (tmp_path / "r.csv").stat().st_size > 0
    without = refused("regions", levels_file, *common, "--out", tmp_path / "r2.csv")
    assert without.returncode == 2 and "level" in without.stderr


def test_a_level_selects_the_same_as_that_level_alone(levels_file, tmp_path, refused):
    """--level 850 scores ta at 850 hPa exactly as a file holding only that level."""
    alone = tmp_path / "ta850.nc"
    with xr.open_dataset(levels_file) as ds:
        ds[["ta"]].sel(plev=850.0).to_netcdf(alone)
    runs = {}
    for name, args in (("level", (levels_file, "--level", "850")), ("alone", (alone,))):
        out = tmp_path / f"{name}.zarr"
        process = refused("detect", *args, "--var", "ta", "--precision", "2", "--train-end", "2005",
                          "--detectors", "gmm", "--out", out, "-q")
        assert process.returncode == 0, process.stderr
        runs[name] = xr.open_zarr(out)["fused_irregularity"].values
    np.testing.assert_allclose(runs["level"], runs["alone"], equal_nan=True)
