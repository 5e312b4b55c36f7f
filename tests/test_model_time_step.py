"""A model refuses data of another kind of time step or another vertical level, in one sentence (issue 11).

Real files written here from `synthetic_cube` (monthly, 2000-2003): annual
and quarterly means of it, one month, a record with a missing month, the
record in a 360-day calendar; and a file with two depths (0.5 and 10 m).
"""

from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.cli import main
from geoanom.errors import CoordinateError
from geoanom.testing import synthetic_cube

VARIABLE = "tas"


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("time_step")


@pytest.fixture(scope="module")
def monthly(folder) -> Path:
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=8)
    cube[VARIABLE].attrs["units"] = "K"
    cube.to_netcdf(folder / "monthly.nc")
    return folder / "monthly.nc"


@pytest.fixture(scope="module")
def model(monthly, folder) -> ga.AnomalyModel:
    fitted = ga.fit(ga.open_cube(monthly).sel(time=slice(None, "2001")), precision=1, detectors="gmm")
    fitted.save(folder / "monthly.npz")
    return fitted


def written(data: xr.Dataset, path: Path) -> xr.Dataset:
    """`data` written to `path` and opened again, as a user's file is."""
    data.to_netcdf(path)
    return ga.open_cube(path)


def scoring(monthly: Path) -> xr.Dataset:
    with xr.open_dataset(monthly) as ds:
        return ds.sel(time=slice("2002", None)).load()


@pytest.mark.parametrize("freq, days", [("YS", "365"), ("QS-DEC", "91")])
def test_means_over_years_or_seasons_are_refused(model, monthly, folder, freq, days):
    means = written(scoring(monthly).resample(time=freq).mean(), folder / f"means_{freq}.nc")
    with pytest.raises(CoordinateError, match=f"means_{freq}.nc' steps by {days}") as refusal:
        model.score(means)
    message = str(refusal.value)
    assert VARIABLE in message and "means over seasons, years or longer" in message and "monthly values" in message
    with pytest.raises(CoordinateError):  # every path that scores with a model checks it
        model.anomalies(means)


def test_the_command_line_says_so_and_exits_2(model, monthly, folder, capsys):
    written(scoring(monthly).resample(time="YS").mean(), folder / "annual.nc")
    status = main(["score", str(folder / "monthly.npz"), str(folder / "annual.nc"), "--var", VARIABLE,
                   "--out", str(folder / "annual.zarr")])
    assert status == 2
    error = capsys.readouterr().err
    assert "annual.nc' steps by 365 days" in error and "monthly values" in error and "Traceback" not in error
    assert not (folder / "annual.zarr").exists()


def test_one_month_a_gap_and_another_calendar_are_scored(model, monthly, folder):
    data = scoring(monthly)
    one = written(data.isel(time=[5]), folder / "one.nc")
    assert model.score(one)["fused_irregularity"].sizes["time"] == 1
    gap = written(data.drop_isel(time=[3]), folder / "gap.nc")  # April 2002 missing
    assert model.score(gap)["fused_irregularity"].sizes["time"] == 23
    days360 = written(data.convert_calendar("360_day", align_on="year"), folder / "days360.nc")
    assert model.score(days360)["fused_irregularity"].sizes["time"] == 24


@pytest.fixture(scope="module")
def two_depths(monthly, folder) -> Path:
    with xr.open_dataset(monthly) as ds:
        data = ds.load()
    shallow, deep = data[VARIABLE], data[VARIABLE] - 5.0
    depth = xr.DataArray([0.5, 10.0], dims="depth", attrs={"units": "m", "positive": "down", "axis": "Z"})
    data[VARIABLE] = xr.concat([shallow, deep], dim="depth").assign_coords(depth=depth).transpose(
        "time", "depth", "lat", "lon")
    data[VARIABLE].attrs["units"] = "K"
    data.to_netcdf(folder / "two_depths.nc")
    return folder / "two_depths.nc"


@pytest.fixture(scope="module")
def deep_model(two_depths) -> ga.AnomalyModel:
    return ga.fit(ga.open_cube(two_depths, level=10).sel(time=slice(None, "2001")), precision=1, detectors="gmm")


def test_the_model_records_its_level_and_keeps_it(deep_model, model, folder, capsys):
    assert deep_model.attrs["level"] == {"name": "depth", "value": 10.0, "units": "m"}
    deep_model.save(folder / "deep.npz")
    assert ga.load_model(folder / "deep.npz").attrs["level"] == deep_model.attrs["level"]
    assert model.attrs["level"] is None and ga.load_model(folder / "monthly.npz").attrs["level"] is None
    assert main(["info", str(folder / "deep.npz")]) == 0
    assert "level:      depth 10 m" in capsys.readouterr().out


def test_another_level_is_refused_and_none_is_said(deep_model, two_depths, monthly):
    with pytest.raises(CoordinateError, match=r"two_depths.nc' is at depth 0.5 m, but the model was fitted at "
                                              r"depth 10 m"):
        deep_model.score(ga.open_cube(two_depths, level=0.5))
    # data that say nothing of their level cannot be compared: said, and scored
    with pytest.warns(ga.GeoanomWarning, match=r"monthly.nc' says nothing of its vertical level, but the model was "
                                               r"fitted at depth 10 m: it is scored as if at that level"):
        deep_model.score(ga.open_cube(monthly))


@pytest.mark.parametrize("depth, units, advice", [
    (1000.0, "cm", r"if that is the same level in other units \(cm against the model's m\), convert the level "
                   r"coordinate to m"),
    (-10.0, "m", r"if that is the same level counted the other way \(positive up against down\), flip the sign"),
])
def test_the_same_level_in_other_units_or_sign_is_named_as_such(deep_model, two_depths, depth, units, advice):
    # was "score data at that level (--level 10)", a level such a file does not have
    cube = ga.open_cube(two_depths, level=10)
    other = cube.assign_coords(depth=cube["depth"].copy(data=depth).assign_attrs(units=units))
    with pytest.raises(CoordinateError, match=advice):
        deep_model.score(other)


def test_the_same_level_is_scored(deep_model, model, two_depths):
    scored = deep_model.score(ga.open_cube(two_depths, level=10).sel(time=slice("2002", None)))
    assert np.isfinite(scored["fused_irregularity"].values).mean() > 0.9
    # a model without a level scores a cube with one chosen: nothing to tell them apart by
    assert model.score(ga.open_cube(two_depths, level=0.5).sel(time="2002"))["fused_irregularity"].sizes["time"] == 12
