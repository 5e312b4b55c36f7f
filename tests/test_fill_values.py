"""Fill values a file does not declare (geoanom/io/fill_values.py), on real files written here.

The land of iris-sample-data's OSTIA file is 1e20 (CMIP's convention),
declared as _FillValue; the file is written again without the declaration,
as many real files are.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.io.fill_values import FILL_ATTR, find_fill

VAR = "surface_temperature"


@pytest.fixture(scope="module")
def sst_files(tmp_path_factory):
    """The OSTIA sample with its land at 1e20 undeclared, and with it declared (NaN once read)."""
    import iris_sample_data

    original = os.path.join(iris_sample_data.path, "ostia_monthly.nc")
    folder = tmp_path_factory.mktemp("sst")
    raw = xr.open_dataset(original, mask_and_scale=False)
    assert raw[VAR].attrs.pop("_FillValue") == np.float32(1e20)
    raw.to_netcdf(folder / "undeclared.nc", encoding={VAR: {"_FillValue": None}})
    xr.open_dataset(original).to_netcdf(folder / "declared.nc")
    with xr.open_dataset(folder / "undeclared.nc") as check:  # xarray alone leaves the land at 1e20
        assert float((check[VAR] == np.float32(1e20)).mean()) == pytest.approx(0.2643, abs=1e-4)
    return folder / "undeclared.nc", folder / "declared.nc"


def opened(path):
    """The cube and the GeoanomWarnings opening it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = ga.open_cube(path)
    return cube, [str(w.message) for w in caught if issubclass(w.category, ga.GeoanomWarning)]


def test_undeclared_land_is_masked_with_one_warning(sst_files):
    undeclared, declared = sst_files
    cube, messages = opened(undeclared)
    assert messages == [f"{VAR} in '{undeclared}' holds 1e+20 in 26.4% of the values of the 3 time steps looked at, "
                        "far outside the others (289.46 to 303.58), not declared as _FillValue: it is treated as "
                        "missing (declare _FillValue in the file to silence this)."]
    assert cube[VAR].attrs[FILL_ATTR] == 1e20
    xr.testing.assert_identical(cube[VAR].load().drop_attrs(), ga.open_cube(declared)[VAR].load().drop_attrs())


def test_declared_fill_gives_no_warning(sst_files):
    cube, messages = opened(sst_files[1])
    assert messages == [] and FILL_ATTR not in cube[VAR].attrs


def test_fit_and_score_flag_as_on_the_declared_file(sst_files):
    results = []
    for path in sst_files:
        cube = opened(path)[0]
        model = ga.fit(cube.sel(time=slice(None, "2009-03")), precision=2, detectors="gmm")
        results.append(model.score(cube).compute())
    assert int(results[1]["anomalous"].sum()) > 0
    np.testing.assert_array_equal(results[0]["anomalous"].values, results[1]["anomalous"].values)
    np.testing.assert_array_equal(results[0]["irregularity"].values, results[1]["irregularity"].values)


def test_the_fill_is_recorded_by_the_model_and_carried_into_the_result(sst_files, tmp_path, refused):
    # a reader of the model or of the scores must be able to tell which of the file's values were taken for missing
    undeclared, declared = sst_files
    model = ga.fit(opened(undeclared)[0].sel(time=slice(None, "2009-03")), precision=2, detectors="gmm")
    assert model.attrs["undeclared_fills"] == {VAR: 1e20}
    model.save(tmp_path / "model.npz")
    assert ga.load_model(tmp_path / "model.npz").attrs["undeclared_fills"] == {VAR: 1e20}
    for path, expected in ((undeclared, 1e20), (declared, None)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ga.GeoanomWarning)
            written = ga.write_dataset(model.score(ga.open_cube(path)), tmp_path / f"{path.stem}.zarr")
        with xr.open_zarr(written) as result:
            assert result[f"{VAR}_anomaly"].attrs.get(FILL_ATTR) == expected
    said = "1e+20, not declared as a fill value,"
    for path in (undeclared, tmp_path / "model.npz"):  # geoanom info says it of the file and of the model
        run = refused("info", path)
        assert run.returncode == 0 and said in run.stdout, run.stdout
    assert said not in refused("info", declared).stdout


def sample_file(tmp_path, values, name, dtype="float32"):
    """The A1B sample's grid and times holding `values` (time, lat, lon), undeclared fill and all."""
    cube = ga.sample_cube("north_america")
    var = xr.DataArray(values.astype(dtype), dims=("time", "lat", "lon"), attrs={"units": "m"})
    ds = xr.Dataset({"v": var}, coords={c: cube[c] for c in ("time", "lat", "lon")})
    path = tmp_path / name
    ds.to_netcdf(path, encoding={"v": {"_FillValue": None}})
    return path


def a1b_values():
    return ga.sample_cube("north_america")["air_temperature"].values.astype("float64")


def test_a_real_minus_999_among_depths_is_kept(tmp_path):
    temperature = a1b_values()
    rank = temperature.ravel().argsort().argsort().reshape(temperature.shape) / (temperature.size - 1)
    depth = -np.round(rank * 1000)  # -1000..0 m, spread evenly: every whole metre many times
    assert (depth[[0, 120, 239]] == -999).sum() >= 3 and depth.min() == -1000  # in the steps looked at
    cube, messages = opened(sample_file(tmp_path, depth, "depth.nc"))
    assert messages == [] and FILL_ATTR not in cube["v"].attrs
    values = cube["v"].values
    assert np.isnan(values).sum() == 0 and (values == -999).sum() == (depth == -999).sum()


def test_minus_9999_below_temperatures_in_float64_is_masked(tmp_path):
    values = a1b_values()
    values[:, :5, :] = -9999.0
    cube, messages = opened(sample_file(tmp_path, values, "t64.nc", dtype="float64"))
    assert len(messages) == 1 and "holds -9999 in 13.5%" in messages[0]
    assert cube["v"].attrs[FILL_ATTR] == -9999.0
    assert int(np.isnan(cube["v"].values).sum()) == 240 * 5 * 49


def test_a_month_never_written_is_masked_and_said_when_read(tmp_path):
    """netCDF's default fill in one step that open_cube does not look at."""
    values = a1b_values()
    values[37] = 9.969209968386869e36
    path = sample_file(tmp_path, values, "month.nc")
    cube, messages = opened(path)
    assert messages == [] and FILL_ATTR not in cube["v"].attrs  # the first, middle and last steps hold none
    with pytest.warns(ga.GeoanomWarning) as caught:
        masked = cube["v"].values
    assert {str(w.message) for w in caught} == {
        f"v in '{path}' holds 9.96921e+36, not declared as _FillValue, in time steps open_cube did not look at (it "
        "looks at the first, middle and last), far outside the values of those: it is treated as missing (declare "
        "_FillValue in the file to silence this)."}
    assert np.isnan(masked[37]).all() and not np.isnan(np.delete(masked, 37, axis=0)).any()


def test_a_month_never_written_in_training_flags_as_if_missing(tmp_path):
    """Fit and score say nothing of 9.97e36 themselves (tried: 9,186 flags of other steps moved); masked, none do."""
    values = a1b_values()
    values[37, :10, :10] = 9.969209968386869e36
    missing = values.copy()
    missing[37, :10, :10] = np.nan
    results = []
    for path in (sample_file(tmp_path, values, "fill.nc"), sample_file(tmp_path, missing, "nan.nc")):
        cube = ga.open_cube(path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ga.GeoanomWarning)
            model = ga.fit(cube.sel(time=slice(None, "1990")), precision=2, detectors="gmm")
            results.append(model.score(cube)["anomalous"].values)
    np.testing.assert_array_equal(*results)


@pytest.mark.parametrize("values, found", [
    (np.r_[np.full(40, 1e20), np.linspace(1e19, 1e21, 60)], {}),  # a column density around 1e20: no gap
    (np.r_[np.full(40, -9999.0), np.linspace(-5000.0, 0.0, 60)], {}),  # not twice as far as the depths reach
    (np.r_[np.full(2, -999.0), np.linspace(0.0, 30.0, 60)], {}),  # twice only: not a repeat
    (np.r_[np.full(3, -999.0), np.linspace(0.0, 30.0, 60)], {-999.0: 3}),
    (np.full(10, 9.969209968386869e36), {9.969209968386869e36: 10}),  # a variable never written
])
def test_the_rule(values, found):
    assert find_fill(values).found == found


def test_the_command_prints_the_warning_once(sst_files, tmp_path, refused):
    run = refused("detect", sst_files[0], "--var", VAR, "--train-end", "2009-03", "--precision", "1",
                  "--detectors", "gmm", "--out", tmp_path / "r.zarr")
    assert run.returncode == 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if "_FillValue" in line]
    assert len(lines) == 1 and lines[0].startswith(f"geoanom: warning: {VAR} in '{sst_files[0]}' holds 1e+20 in")
