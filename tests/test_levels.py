"""Vertical levels: open_cube(level=...) and describe_levels, on iris-sample-data files and files written here.

Real files from the iris-sample-data package: hybrid_height.nc (15 model
levels on a rotated-pole grid), atlantic_profiles.nc (40 depths),
orca2_votemper.nc (one depth, a scalar coordinate).
"""

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import CoordinateError
from geoanom.io import describe_levels

iris_sample_data = pytest.importorskip("iris_sample_data")
SAMPLES = iris_sample_data.path
HYBRID = os.path.join(SAMPLES, "hybrid_height.nc")
PROFILES = os.path.join(SAMPLES, "atlantic_profiles.nc")


def test_a_model_level_is_selected_by_its_number():
    cube = ga.open_cube(HYBRID, level=3)
    raw = xr.open_dataset(HYBRID)
    field = cube["air_potential_temperature"]
    assert field.dims == ("time", "grid_latitude", "grid_longitude")
    assert int(cube["model_level_number"]) == 3
    np.testing.assert_array_equal(field.values[0], raw["air_potential_temperature"].sel(model_level_number=3).values)
    # a rotated-pole grid too: true coordinates over Wales
    assert 52 < float(cube["lat"].mean()) < 53 and -4 < float(cube["lon"].mean()) < -2


def test_a_depth_is_selected_by_its_value_within_float32_rounding():
    raw = xr.open_dataset(PROFILES)
    cube = ga.open_cube(PROFILES, level=4478)  # stored as float32 4478.0049...
    assert float(cube["depth"]) == pytest.approx(4478, rel=1e-4)
    lon_order = np.argsort((raw["lon"].values + 180) % 360 - 180)
    np.testing.assert_array_equal(cube["theta"].values[0], raw["theta"].isel(depth=-1).values[:, lon_order])


def test_levels_without_level_are_refused_naming_them():
    with pytest.raises(CoordinateError, match=r"'air_potential_temperature'.*hybrid_height\.nc.*15 levels "
                                              r"\(model_level_number: 1, 2, 3, .*15\).*level="):
        ga.open_cube(HYBRID)


def test_an_absent_level_is_refused_listing_the_levels():
    with pytest.raises(CoordinateError, match=r"atlantic_profiles\.nc has no level 16; its levels are depth: 5, 15,"):
        ga.open_cube(PROFILES, level=16)


def test_a_level_for_a_file_without_levels_is_refused():
    with pytest.raises(CoordinateError, match=r"level 850.*orca2_votemper\.nc \('votemper'\) has levels"):
        ga.open_cube(os.path.join(SAMPLES, "orca2_votemper.nc"), level=850)


def test_describe_levels_lists_what_info_needs():
    levels = describe_levels(PROFILES)
    assert set(levels) == {"salinity", "theta"}
    assert levels["theta"].dim == "depth" and len(levels["theta"].values) == 40 and levels["theta"].units == "m"
    assert str(levels["theta"]).startswith("depth: 5, 15, 25") and str(levels["theta"]).endswith("4478 m")
    assert describe_levels(os.path.join(SAMPLES, "orca2_votemper.nc")) == {"votemper": None}


def pressure_file(path, extra: str = "plev", units: str = "hPa") -> None:
    """tas on (time, plev, lat, lon) and psl on (time, lat, lon), plev without CF markers."""
    time = pd.date_range("2001-01-01", periods=4, freq="D")
    rng = np.random.default_rng(0)
    xr.Dataset(
        {"tas": (("time", extra, "lat", "lon"), rng.normal(size=(4, 3, 2, 3))),
         "psl": (("time", "lat", "lon"), rng.normal(size=(4, 2, 3)))},
        coords={"time": time, extra: (extra, [1000.0, 850.0, 500.0], {"units": units}),
                "lat": ("lat", [10.0, 20.0], {"units": "degrees_north"}),
                "lon": ("lon", [0.0, 10.0, 20.0], {"units": "degrees_east"})},
    ).to_netcdf(path)


def test_a_pressure_level_is_selected_and_other_variables_kept(tmp_path):
    pressure_file(tmp_path / "p.nc")
    cube = ga.open_cube(tmp_path / "p.nc", level=850)
    assert set(cube.data_vars) == {"tas", "psl"} and cube["tas"].dims == ("time", "lat", "lon")
    raw = xr.open_dataset(tmp_path / "p.nc")
    np.testing.assert_array_equal(cube["tas"].values, raw["tas"].sel(plev=850).values)
    assert {k: None if v is None else v.values for k, v in describe_levels(tmp_path / "p.nc").items()} == {
        "tas": (1000.0, 850.0, 500.0), "psl": None}
    with pytest.raises(CoordinateError, match=r"level 850 .*p\.nc \('psl'\) has levels"):
        ga.open_cube(tmp_path / "p.nc", variables="psl", level=850)


def test_an_extra_dimension_that_is_not_vertical_is_refused(tmp_path):
    pressure_file(tmp_path / "m.nc", extra="member", units="1")
    with pytest.raises(CoordinateError, match=r"'tas'.*m\.nc.*dimension 'member' of size 3 .*nor a vertical level"):
        ga.open_cube(tmp_path / "m.nc")


def test_several_files_each_give_the_level(tmp_path):
    for name, start in (("a.nc", "2001-01-01"), ("b.nc", "2001-01-05")):
        pressure_file(tmp_path / name)
        ds = xr.open_dataset(tmp_path / name).load()
        ds.assign_coords(time=pd.date_range(start, periods=4, freq="D")).to_netcdf(tmp_path / f"t{name}")
    cube = ga.open_cube([tmp_path / "ta.nc", tmp_path / "tb.nc"], level=500)
    assert cube.sizes["time"] == 8 and float(cube["plev"]) == 500


def test_a_dataset_opened_without_open_cube_names_its_levels_instead_of_xarrays_error():
    # ga.fit on xr.open_dataset of a file with depths gave xarray's "must be a permuted list" ValueError
    cube, _ = ga.testing.synthetic_cube(n_years=2, n_lat=4, n_lon=5)
    deep = xr.concat([cube, cube + 1.0], dim=pd.Index([0.5, 50.0], name="depth"))
    deep["depth"].attrs.update(units="m", positive="down")
    # in-memory data go through open_cube's own level selection (geoanom.io.read.as_cube), with its message
    with pytest.raises(CoordinateError, match=r"^variable 'tas' in the dataset has 2 levels \(depth: 0.5, 50 m\); "
                                              r"pass level= to open_cube"):
        ga.fit(deep)
    assert float(ga.open_cube(deep, level=50.0)["depth"]) == 50.0
    members = xr.concat([cube, cube], dim="member")
    with pytest.raises(CoordinateError, match=r"a dimension 'member' of size 2 that is neither time"):
        ga.fit(members)
    assert ga.fit(deep.sel(depth=50.0), detectors="gmm").variables == ["tas"]  # one level chosen: fitted
