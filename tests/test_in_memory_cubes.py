"""Data given in memory go through open_cube's normalisation (geoanom.io.read.as_cube): names, time checks, fills.

Before it, a Dataset with land at -999, with ``_FillValue`` left in its attrs or with int16 -32768 was fitted and
scored as data (coastal land flagged, no warning); time going back or repeating was accepted (events ran backwards);
coordinates named by CF attributes only were refused with "'<file>' has no time dimension".
"""

from __future__ import annotations

import datetime as dt
import warnings

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import CoordinateError, GeoanomWarning
from geoanom.io.read import as_cube

SST = "surface_temperature"


@pytest.fixture(scope="module")
def sst():
    """Real OSTIA SST, 18 x 72 cells (0-60E: African coasts), 54 months, land NaN; a gmm model of 36 months, scores."""
    cube = ga.sample_cube("sst").isel(lon=slice(216, 288))
    model = ga.fit(cube.isel(time=slice(0, 36)), detectors="gmm", precision=2)
    return cube, model, model.score(cube).compute()


def _quiet(call):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = call()
    return out, [str(w.message) for w in caught if issubclass(w.category, GeoanomWarning)]


def test_land_at_minus_999_in_memory_is_missing_with_a_warning_and_scores_as_nan_land(sst):
    cube, model, clean = sst
    raw = cube.compute()
    raw[SST] = cube[SST].fillna(-999.0)  # as a model dump or mask_and_scale=False gives it
    result, said = _quiet(lambda: model.score(raw).compute())
    assert any(f"{SST} in the dataset read from" in text and "holds -999 in" in text for text in said), said
    land = cube[SST].isnull()
    assert int(np.isfinite(result["fused_irregularity"].where(land)).sum()) == 0
    xr.testing.assert_identical(result["ensemble"], clean["ensemble"])


def test_a_declared_fill_left_in_attrs_is_masked_like_the_file_open_cube_reads(sst, tmp_path):
    cube, model, _ = sst
    raw = cube.compute()
    raw[SST] = cube[SST].fillna(-999.0)
    raw[SST].encoding = {"_FillValue": -999.0}
    raw.attrs.pop("geoanom_source")
    raw.to_netcdf(tmp_path / "declared.nc")
    opened = xr.open_dataset(tmp_path / "declared.nc", mask_and_scale=False)  # _FillValue stays in attrs
    assert opened[SST].attrs["_FillValue"] == -999.0
    result, said = _quiet(lambda: model.score(opened).compute())
    assert not said  # declared: nothing to warn about
    expected = model.score(ga.open_cube(tmp_path / "declared.nc")).compute()
    np.testing.assert_array_equal(result["irregularity"].values, expected["irregularity"].values)
    assert int(np.isfinite(result["irregularity"].where(cube[SST].isnull())).sum()) == 0


def test_int16_land_at_minus_32768_through_the_accessor_is_missing(sst):
    cube, _, _ = sst
    i16 = cube.compute()
    i16[SST] = (cube[SST] * 100 - 27000).fillna(-32768).astype("int16")  # centi-K offset, no attrs
    model, said = _quiet(lambda: i16.isel(time=slice(0, 36)).geoanom.fit(detectors="gmm", precision=2))
    assert any("holds -32768 in" in text for text in said), said
    result = i16.geoanom.score(model).compute()
    assert int(np.isfinite(result["fused_irregularity"].where(cube[SST].isnull())).sum()) == 0
    assert int(result["ensemble"].where(cube[SST].isnull(), False).sum()) == 0


def test_time_going_back_or_repeating_in_memory_is_refused_naming_the_dates(sst):
    cube, model, _ = sst
    mixed = xr.concat([cube.isel(time=slice(45, 54)), cube.isel(time=slice(36, 45))], "time")  # 2010, then 2009
    with pytest.raises(CoordinateError, match=r"^time in the dataset read from .*ostia_monthly.nc goes back: "
                                              r"2009-04-16 follows 2010-09-16; put it in order first"):
        model.score(mixed)
    repeated = xr.concat([cube.isel(time=slice(0, 24)), cube.isel(time=slice(12, 36))], "time")
    with pytest.raises(CoordinateError, match=r"^time steps repeat in the dataset read from .*: 2007-04-16 appears "
                                              r"2 times; drop the repeats first"):
        ga.fit(repeated, detectors="gmm")
    with pytest.raises(CoordinateError, match="goes back"):
        model.anomalies(mixed)


@pytest.mark.parametrize("names", [{"lat": "latitude", "lon": "longitude", "time": "valid_time"},
                                   {"lat": "y", "lon": "x", "time": "t"}])
def test_coordinates_named_otherwise_are_found_by_their_cf_attributes(sst, names):
    cube, model, clean = sst
    renamed = cube.rename(names)
    for old, new in names.items():  # y and x count as latitude and longitude by their standard_name alone
        renamed[new].attrs = {"standard_name": {"lat": "latitude", "lon": "longitude", "time": "time"}[old]}
    assert dict(ga.open_cube(renamed).sizes) == dict(cube.sizes)
    xr.testing.assert_equal(model.score(renamed).compute()["ensemble"], clean["ensemble"])


def test_one_time_step_without_a_time_dimension_says_so():
    cube = ga.sample_cube("sst").isel(lon=slice(0, 8))
    cube.attrs.pop("geoanom_source")
    with pytest.raises(CoordinateError, match=r"^the dataset holds one time step \(2009-08-16T12:00\) without a time "
                                              r"dimension; keep the dimension by selecting with a list, as in "
                                              r"isel\(time=\[40\]\) rather than isel\(time=40\)\.$"):
        ga.open_cube(cube.isel(time=40))
    assert ga.open_cube(cube.isel(time=[40])).sizes["time"] == 1


def test_a_cube_from_open_cube_passes_through_unchanged_without_reading_its_values(sst):
    cube, _, _ = sst
    for given in (cube, cube.isel(time=slice(10, 30)), cube.sel(lat=slice(-5, 5))):
        again = as_cube(given)
        assert again[SST].data.name == given[SST].data.name  # the same graph: nothing read, bit-identical
        for name in ("time", "lat", "lon"):
            np.testing.assert_array_equal(again[name].values, given[name].values)


def test_open_cubes_time_is_checked_once_and_new_times_every_time(sst, monkeypatch):
    from geoanom.io import canonical

    cube, _, _ = sst
    checked = []
    original = canonical.check_one_step_each
    monkeypatch.setattr(canonical, "check_one_step_each", lambda times, label: (checked.append(len(times)),
                                                                                original(times, label)))
    as_cube(cube)
    as_cube(cube[[SST]].chunk({"time": 6}))  # the same time axis: checked by open_cube already
    assert checked == []
    shifted = cube.assign_coords(time=cube.indexes["time"].shift(1, "D"))
    as_cube(shifted)
    as_cube(shifted)  # a new axis is checked once, then known
    assert checked == [54]
    twice = cube.assign_coords(time=cube.indexes["time"].insert(3, cube.indexes["time"][2] + dt.timedelta(days=14)
                                                                  ).delete(4))
    with pytest.raises(CoordinateError, match="holds one time step twice"):
        as_cube(twice)


def test_values_changed_in_place_after_loading_are_checked_again(sst):
    cube, _, _ = sst
    loaded = cube.compute()  # keeps open_cube's marks, but numpy values can be changed in place
    loaded[SST].values[10, 9, 20] = np.inf
    again = as_cube(loaded)
    assert np.isnan(again[SST].values[10, 9, 20])
    assert ga.io.count_infinite(again) == {SST: 1}


def _monthly(times) -> xr.Dataset:
    values = np.random.default_rng(0).normal(280.0, 1.0, (len(times), 4, 5))
    return xr.Dataset({"tas": (("time", "lat", "lon"), values, {"units": "K"})},
                      coords={"time": times, "lat": np.arange(4.0), "lon": np.arange(5.0)})


def test_a_month_held_twice_in_one_file_or_dataset_is_refused(tmp_path):
    # March at 03-16 and again at 03-31: the join and the append refused it across files, not inside one
    import pandas as pd

    times = pd.date_range("2000-01-01", periods=24, freq="MS") + pd.Timedelta(days=15)
    twice = _monthly(times.insert(3, pd.Timestamp("2000-03-31")))
    twice.to_netcdf(tmp_path / "twice.nc")
    expected = "holds one time step twice: 2000-03-16 and 2000-03-31 are both 2000-03 of this monthly record"
    with pytest.raises(CoordinateError, match=expected):
        ga.open_cube(tmp_path / "twice.nc")
    with pytest.raises(CoordinateError, match=expected):
        ga.fit(twice)
    _monthly(times).to_netcdf(tmp_path / "once.nc")
    assert ga.open_cube(tmp_path / "once.nc").sizes["time"] == 24


def test_region_features_and_federated_rows_take_data_as_a_fit_does():
    # region_features, tune_region_params and federated.cube_rows said "'<file>' has no time dimension; open it
    # with geoanom.open_cube" of data a fit took: they go through the same normalisation now
    from geoanom.federated.cube import cube_rows
    from geoanom.testing import synthetic_cube

    cube, _ = synthetic_cube(n_years=2, n_lat=8, n_lon=8, seed=2)
    renamed = cube.rename(time="valid_time", lat="latitude", lon="longitude")
    pd_testing = pytest.importorskip("pandas.testing")
    pd_testing.assert_frame_equal(ga.region_features(renamed, variable="tas", precision=1),
                                  ga.region_features(cube, variable="tas", precision=1))
    np.testing.assert_array_equal(cube_rows(renamed, "tas", precision=1).features,
                                  cube_rows(cube, "tas", precision=1).features)
