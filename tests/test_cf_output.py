"""What a written result says of itself, as CF asks: flag codes of the flags' type, coordinates without fill."""

import netCDF4
import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def result():
    cube, _ = synthetic_cube(n_years=3, n_lat=6, n_lon=6, seed=1)
    return ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=1).score(cube)


def test_netcdf_flags_and_coordinates_are_cf(result, tmp_path):
    ga.write_dataset(result, tmp_path / "r.nc")
    with netCDF4.Dataset(tmp_path / "r.nc") as written:
        for name in ("ensemble", "anomalous"):
            flags = written[name]
            assert flags.dtype == np.int8 and flags.getncattr("flag_values").dtype == np.int8
        for name in ("lat", "lon", "time"):
            assert "_FillValue" not in written[name].ncattrs()
    np.testing.assert_array_equal(xr.open_dataset(tmp_path / "r.nc")["ensemble"].values, result["ensemble"].values)


def test_zarr_coordinates_have_no_fill(result, tmp_path):
    ga.write_dataset(result, tmp_path / "r.zarr")
    stored = xr.open_zarr(tmp_path / "r.zarr")
    assert all(stored[name].encoding.get("_FillValue") is None for name in ("lat", "lon"))
