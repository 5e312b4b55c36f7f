"""Tests of geoanom.io on real files written into tmp_path (no mocks)."""

from __future__ import annotations

import importlib.util
import os
import warnings

import cftime
import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geoanom import io
from geoanom.errors import (
    CoordinateError,
    GeoanomError,
    InputFileError,
    NoDataError,
    VariableNotFoundError,
)
from geoanom.io.canonical import default_chunks
from geoanom.io.opening import open_netcdf

HAS_H5PY = importlib.util.find_spec("h5py") is not None


def make_cube(ntime=6, start="2000-01-01", lat=(10.0, 20.0, 30.0), lon=(0.0, 90.0, 180.0, 270.0), seed=0):
    """A small regular cube with tas and psl, CF attributes, bounds and a grid mapping."""
    rng = np.random.default_rng(seed)
    shape = (ntime, len(lat), len(lon))
    time = pd.date_range(start, periods=ntime, freq="D")
    ds = xr.Dataset(
        {
            "tas": (("time", "lat", "lon"), rng.normal(280, 5, shape), {"units": "K"}),
            "psl": (("time", "lat", "lon"), rng.normal(1e5, 100, shape).astype("float32")),
            "time_bnds": (("time", "bnds"), np.stack([time, time + pd.Timedelta("1D")], axis=1)),
            "latitude_longitude": ((), 0, {"grid_mapping_name": "latitude_longitude"}),
        },
        coords={
            "time": ("time", time, {"standard_name": "time", "bounds": "time_bnds"}),
            "lat": ("lat", np.array(lat), {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", np.array(lon), {"units": "degrees_east", "standard_name": "longitude"}),
        },
    )
    ds["time"].encoding["units"] = "days since 2000-01-01"  # shared with time_bnds
    return ds


def assert_canonical(ds, names=("tas", "psl")):
    assert list(ds.data_vars) == list(names)
    for name in names:
        assert ds[name].dims[0] == "time"
        assert ds[name].chunks is not None, "must be dask-backed"
        assert np.issubdtype(ds[name].dtype, np.floating)
    lon = np.asarray(ds["lon"])
    assert lon.min() >= -180 and lon.max() < 180


# --- reading ---------------------------------------------------------------


def test_netcdf4_file_is_canonical_and_lazy(tmp_path):
    path = tmp_path / "tas.nc"
    src = make_cube()
    src.to_netcdf(path, engine="netcdf4")
    ds = io.open_cube(path)
    assert_canonical(ds)
    assert ds["tas"].dims == ("time", "lat", "lon")
    # lon 0, 90, 180, 270 -> -180, -90, 0, 90, data reordered with it
    np.testing.assert_array_equal(ds["lon"], [-180, -90, 0, 90])
    np.testing.assert_allclose(ds["tas"].sel(lon=-90).values, src["tas"].sel(lon=270).values)
    assert ds.attrs["geoanom_source"] == str(path)
    assert ds["time"].dtype.kind == "M"


@pytest.mark.skipif(not HAS_H5PY, reason="h5netcdf needs h5py")
def test_h5netcdf_written_file_reads_with_both_engines(tmp_path):
    path = tmp_path / "h5.nc"
    make_cube().to_netcdf(path, engine="h5netcdf")
    via_default = io.open_cube(str(path), variables="tas")
    via_h5 = open_netcdf(str(path), engines=("h5netcdf",))  # the fallback engine alone
    assert via_h5["time"].dtype.kind == "M"
    np.testing.assert_allclose(via_default["tas"].sel(lon=0).values, via_h5["tas"].sel(lon=0).values)


@pytest.mark.parametrize("zarr_format", [2, 3])
@pytest.mark.parametrize("consolidated", [True, False])
def test_zarr_stores(tmp_path, zarr_format, consolidated):
    # without the .zarr suffix the store is recognised by its metadata files
    path = tmp_path / (f"cube{zarr_format}.zarr" if consolidated else f"store{zarr_format}")
    src = make_cube()
    with warnings.catch_warnings():  # zarr warns that v3 consolidation is not in the spec
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        src.to_zarr(path, zarr_format=zarr_format, consolidated=consolidated)
    ds = io.open_cube(path, variables=["psl"])
    assert_canonical(ds, ["psl"])
    assert ds["psl"].dtype == np.float32
    np.testing.assert_allclose(ds["psl"].sel(lon=0).values, src["psl"].sel(lon=0).values)


def test_list_and_glob_concatenate_in_time_order(tmp_path):
    whole = make_cube(ntime=9)
    for i, sl in enumerate([slice(6, 9), slice(0, 3), slice(3, 6)]):
        whole.isel(time=sl).to_netcdf(tmp_path / f"part{i}.nc")
    files = [tmp_path / "part0.nc", tmp_path / "part1.nc", tmp_path / "part2.nc"]  # out of time order
    for spec in (files, str(tmp_path / "part*.nc")):
        ds = io.open_cube(spec)
        assert ds.sizes["time"] == 9
        assert ds.indexes["time"].is_monotonic_increasing
        np.testing.assert_array_equal(ds["time"].values, whole["time"].values)
        np.testing.assert_allclose(ds["tas"].sel(lon=0).values, whole["tas"].sel(lon=0).values)
        assert ds["tas"].chunks[0] == (9,), "file boundaries are rechunked away"
        assert all(str(f) in ds.attrs["geoanom_source"] for f in files)


def test_odd_names_found_by_cf_metadata(tmp_path):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(3, 4, 5))
    ds = xr.Dataset(
        {"temp": (("t", "y", "x"), data)},
        coords={
            "t": ("t", [0, 1, 2], {"standard_name": "time", "units": "days since 2001-01-01"}),
            "y": ("y", [60.0, 30.0, 0.0, -30.0], {"standard_name": "latitude", "units": "degrees_north"}),
            "x": ("x", [0.0, 100.0, 190.0, 250.0, 359.0], {"units": "degrees_east"}),
        },
    )
    path = tmp_path / "odd.nc"
    ds.to_netcdf(path)
    cube = io.open_cube(path)
    assert cube["temp"].dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(cube["lat"], [-30, 0, 30, 60])
    np.testing.assert_allclose(cube["lon"], [-170, -110, -1, 0, 100])
    assert not {"t", "x", "y"} & set(cube.variables)
    # the value at (y=60, x=190) is now at (lat=60, lon=-170)
    np.testing.assert_allclose(cube["temp"].sel(lat=60, lon=-170).values, data[:, 0, 2])
    assert cube["time"].values[0] == np.datetime64("2001-01-01")


def test_fallback_names_without_cf_attributes(tmp_path):
    ds = xr.Dataset(
        {"v": (("Time", "LAT", "x"), np.ones((2, 3, 4)))},
        coords={
            "Time": ("Time", [0, 1], {"units": "hours since 2000-01-01"}),
            "LAT": ("LAT", [1.0, 2.0, 3.0]),
            "x": ("x", [0.0, 1.0, 2.0, 3.0], {"units": "degrees"}),
        },
    )
    ds.to_netcdf(tmp_path / "plain.nc")
    cube = io.open_cube(tmp_path / "plain.nc")
    assert cube["v"].dims == ("time", "lat", "lon")
    assert cube["lat"].attrs["units"] == "degrees_north"


def test_a_time_axis_known_by_its_units_alone_is_found(tmp_path):
    # ROMS' ocean_time: no standard_name, axis or usual name, only "seconds since ..." units, which xarray moves
    # into the encoding as it decodes; was "no time coordinate found"
    ds = xr.Dataset(
        {"temp": (("ocean_time", "lat", "lon"), np.ones((3, 2, 2)))},
        coords={"ocean_time": ("ocean_time", [0.0, 2678400.0, 5097600.0], {"units": "seconds since 2001-01-15"}),
                "lat": ("lat", [60.0, 61.0], {"units": "degrees_north"}),
                "lon": ("lon", [1.0, 2.0], {"units": "degrees_east"})},
    )
    ds.to_netcdf(tmp_path / "roms.nc")
    cube = io.open_cube(tmp_path / "roms.nc")
    assert cube["temp"].dims == ("time", "lat", "lon")
    assert str(cube["time"].values[1])[:10] == "2001-02-15"


def test_360_day_calendar_stays_cftime(tmp_path):
    ds = make_cube(ntime=4)
    ds = ds.drop_vars("time_bnds").assign_coords(
        time=xr.date_range("2000-02-29", periods=4, freq="D", calendar="360_day", use_cftime=True)
    )
    ds.to_netcdf(tmp_path / "c360.nc")
    cube = io.open_cube(tmp_path / "c360.nc")
    assert isinstance(cube["time"].values[0], cftime.Datetime360Day)
    assert cube["time"].values[1] == cftime.Datetime360Day(2000, 2, 30)
    assert cube.sel(time=slice("2000-03-01", None)).sizes["time"] == 2


def test_curvilinear_grid_keeps_dims(tmp_path):
    y, x = np.meshgrid(np.arange(3.0), np.arange(4.0), indexing="ij")
    ds = xr.Dataset(
        {
            "votemper": (("time_counter", "y", "x"), np.arange(24.0).reshape(2, 3, 4)),
            "nav_lat": (("y", "x"), 40 + y + 0.1 * x, {"standard_name": "latitude", "units": "degrees"}),
            "nav_lon": (("y", "x"), 170 + 5 * x + 0.1 * y, {"standard_name": "longitude", "units": "degrees"}),
        },
        coords={"time_counter": ("time_counter", [15.5, 45.0], {"standard_name": "time", "units": "days since 2015-01-01"})},
    )
    ds.to_netcdf(tmp_path / "orca.nc")
    cube = io.open_cube(tmp_path / "orca.nc")
    assert cube["votemper"].dims == ("time", "y", "x")
    assert cube["lat"].dims == cube["lon"].dims == ("y", "x")
    assert list(cube.data_vars) == ["votemper"]
    # 180 and beyond wrap to negative; no sorting, so cell (0, 2) keeps its value
    np.testing.assert_allclose(cube["lon"].values[0], [170, 175, -180, -175])
    assert float(cube["votemper"][1, 0, 2]) == 14.0
    assert isinstance(cube["lat"].data, np.ndarray), "2-D coordinates are loaded"


def test_size_one_level_is_squeezed_and_longer_levels_refused(tmp_path):
    base = make_cube().drop_vars(["psl", "time_bnds", "latitude_longitude"])
    base.expand_dims(plev=[850.0], axis=1).to_netcdf(tmp_path / "one.nc")
    cube = io.open_cube(tmp_path / "one.nc")
    assert cube["tas"].dims == ("time", "lat", "lon")
    assert float(cube["plev"]) == 850.0
    base.expand_dims(plev=[850.0, 500.0], axis=1).to_netcdf(tmp_path / "two.nc")
    with pytest.raises(CoordinateError, match=r"'tas'.*two\.nc.*2 levels \(plev: 850, 500\).*level="):
        io.open_cube(tmp_path / "two.nc")


def test_int_variables_become_float32(tmp_path):
    ds = make_cube()[["tas"]]
    ds["count"] = ds["tas"].astype("int16")
    ds.to_netcdf(tmp_path / "int.nc")
    cube = io.open_cube(tmp_path / "int.nc", variables=["count"])
    assert cube["count"].dtype == np.float32


def test_chunks_default_and_explicit(tmp_path):
    make_cube(ntime=10).to_netcdf(tmp_path / "c.nc")
    default = io.open_cube(tmp_path / "c.nc")
    assert default["tas"].chunks == ((10,), (3,), (4,))
    explicit = io.open_cube(tmp_path / "c.nc", chunks={"time": 3, "lon": 2})
    assert explicit["tas"].chunks == ((3, 3, 3, 1), (3,), (2, 2))


def test_default_chunks_split_large_grids():
    big = xr.Dataset(
        {"v": (("time", "lat", "lon"), da.zeros((100, 5000, 5000), dtype="float32"))},
        coords={"lat": np.linspace(-90, 90, 5000), "lon": np.linspace(-180, 179, 5000)},
    )
    plan = default_chunks(big)
    assert plan["time"] == 1
    assert plan["lat"] * plan["lon"] * 4 <= io.CHUNK_BYTES * 1.01
    small = big.isel(lat=slice(0, 100), lon=slice(0, 100))
    assert default_chunks(small) == {"time": 100, "lat": -1, "lon": -1}


def test_real_nemo_files_curvilinear_360_day():
    iris_sample_data = pytest.importorskip("iris_sample_data")
    cube = io.open_cube(os.path.join(iris_sample_data.path, "NEMO", "*.nc"))
    assert cube["tos"].dims == ("time", "y", "x") and cube["tos"].shape == (3, 330, 360)
    assert cube["lat"].dims == ("y", "x")
    # time_counter has no units; the dated time_centered is chosen instead
    assert [t.month for t in cube["time"].values] == [1, 2, 3]
    assert isinstance(cube["time"].values[0], cftime.Datetime360Day)
    assert float(cube["lon"].min()) >= -180 and float(cube["lon"].max()) < 180


def test_scalar_time_snapshot_gets_a_time_dimension():
    iris_sample_data = pytest.importorskip("iris_sample_data")
    cube = io.open_cube(os.path.join(iris_sample_data.path, "orca2_votemper.nc"))
    assert cube["votemper"].dims == ("time", "dim0", "dim1")
    assert cube.sizes["time"] == 1 and float(cube["deptht"]) == pytest.approx(5.0, abs=1e-3)  # scalar coords kept


# --- sample data -------------------------------------------------------------


def test_sample_north_america():
    ds = io.sample_cube("north_america")
    tas = ds["air_temperature"]
    assert tas.dims == ("time", "lat", "lon") and tas.shape == (240, 37, 49)
    assert isinstance(ds["time"].values[0], cftime.Datetime360Day)
    assert ds["time"].values[0].year == 1860 and ds["time"].values[-1].year == 2099
    assert -135.01 < float(ds["lon"].min()) and float(ds["lon"].max()) < -44.99
    assert 250 < float(tas.mean()) < 300


def test_sample_sst_has_nan_land_and_finite_ocean():
    ds = io.sample_cube("sst")
    sst = ds["surface_temperature"]
    assert sst.dims == ("time", "lat", "lon") and sst.shape == (54, 18, 432)
    values = sst.values
    assert np.isnan(values).any() and np.isfinite(values).mean() > 0.5
    assert np.nanmin(values) >= 260 and np.nanmax(values) <= 320
    assert ds.indexes["lon"].is_monotonic_increasing and float(ds["lon"].min()) >= -180


def test_unknown_sample():
    with pytest.raises(GeoanomError, match="north_america, sst"):
        io.sample_cube("nope")


# --- errors ---------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(InputFileError, match="nothere.nc"):
        io.open_cube(tmp_path / "nothere.nc")


def test_empty_glob(tmp_path):
    with pytest.raises(InputFileError, match=r"no file matches .*tas_\*\.nc"):
        io.open_cube(str(tmp_path / "tas_*.nc"))


def test_corrupt_file(tmp_path):
    path = tmp_path / "x.nc"
    path.write_text("this is not netcdf\n")
    with pytest.raises(InputFileError, match=r"cannot read '.*x\.nc': not a NetCDF or Zarr file \(.+\)\.$"):
        io.open_cube(path)


def test_directory_that_is_not_zarr(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(InputFileError, match="not a Zarr store"):
        io.open_cube(tmp_path / "d")


def test_unknown_variable_lists_known_ones(tmp_path):
    path = tmp_path / "tas.nc"
    make_cube().to_netcdf(path)
    with pytest.raises(VariableNotFoundError) as info:
        io.open_cube(path, variables=["tas", "tas2"])
    assert str(info.value) == f"variable 'tas2' is not in {path}; known variables: tas, psl."


def test_variable_missing_from_a_later_file_names_that_file(tmp_path):
    make_cube(start="2000-01-01").to_netcdf(tmp_path / "a.nc")
    make_cube(start="2001-01-01")[["tas"]].to_netcdf(tmp_path / "b.nc")
    with pytest.raises(VariableNotFoundError, match=r"'psl' is not in .*b\.nc"):
        io.open_cube([tmp_path / "a.nc", tmp_path / "b.nc"])


def test_no_latitude(tmp_path):
    ds = xr.Dataset({"v": (("time", "station"), np.ones((2, 3)))},
                    coords={"time": pd.date_range("2000", periods=2), "lon": ("station", [1.0, 2.0, 3.0])})
    ds.to_netcdf(tmp_path / "nolat.nc")
    with pytest.raises(CoordinateError, match=r"no latitude coordinate found in .*nolat\.nc"):
        io.open_cube(tmp_path / "nolat.nc")


def test_time_without_units(tmp_path):
    ds = make_cube().drop_vars("time_bnds").assign_coords(time=np.arange(6.0))
    ds.to_netcdf(tmp_path / "notime.nc")
    with pytest.raises(CoordinateError, match=r"notime\.nc"):
        io.open_cube(tmp_path / "notime.nc")


def test_no_field_variable(tmp_path):
    make_cube().drop_vars(["tas", "psl"]).to_netcdf(tmp_path / "bnds.nc")
    with pytest.raises(NoDataError, match="bnds.nc"):
        io.open_cube(tmp_path / "bnds.nc")


def test_overlapping_files_are_refused(tmp_path):
    make_cube().to_netcdf(tmp_path / "a.nc")
    make_cube().to_netcdf(tmp_path / "b.nc")
    with pytest.raises(CoordinateError, match="repeat"):
        io.open_cube(str(tmp_path / "*.nc"))


def test_files_on_different_grids_or_calendars_are_refused(tmp_path):
    make_cube(start="2000-01-01").to_netcdf(tmp_path / "a.nc")
    make_cube(start="2001-01-01", lat=(11.0, 21.0, 31.0)).to_netcdf(tmp_path / "b.nc")
    with pytest.raises(CoordinateError, match="do not share one grid"):
        io.open_cube([tmp_path / "a.nc", tmp_path / "b.nc"])
    c360 = make_cube(start="2001-01-01").drop_vars("time_bnds")
    c360 = c360.assign_coords(time=xr.date_range("2001-01-01", periods=6, calendar="360_day", use_cftime=True))
    c360.to_netcdf(tmp_path / "c.nc")
    with pytest.raises(CoordinateError, match="different calendars"):
        io.open_cube([tmp_path / "a.nc", tmp_path / "c.nc"])


def test_chunks_naming_unknown_dimension(tmp_path):
    make_cube().to_netcdf(tmp_path / "c.nc")
    with pytest.raises(GeoanomError, match=r"chunks name level.*c\.nc"):
        io.open_cube(tmp_path / "c.nc", chunks={"level": 1})


# --- writing --------------------------------------------------------------


def _with_cftime_and_bool(ds):
    ds = ds.assign_coords(
        time=xr.date_range("2000-01-01", periods=ds.sizes["time"], calendar="360_day", use_cftime=True)
    )
    return ds.assign(flag=ds["tas"] > 280)


@pytest.mark.parametrize("name", ["out.zarr", "out.nc"])
def test_write_round_trip(tmp_path, name):
    cube = io.open_cube(_write(make_cube(), tmp_path / "src.nc"))
    cube = _with_cftime_and_bool(cube)
    out = io.write_dataset(cube, tmp_path / name)
    back = xr.open_dataset(out, decode_times=xr.coders.CFDatetimeCoder(use_cftime=None))
    xr.testing.assert_allclose(back["tas"], cube["tas"].compute())
    assert back["flag"].dtype == bool and bool((back["flag"] == cube["flag"]).all())
    assert isinstance(back["time"].values[0], cftime.Datetime360Day)
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []
    back.close()


def test_write_zarr_format_3(tmp_path):
    out = io.write_dataset(make_cube(), tmp_path / "v3.zarr", zarr_format=3)
    assert (out / "zarr.json").exists() and not (out / ".zgroup").exists()
    assert io.open_cube(out)["tas"].shape == (6, 3, 4)


def test_failed_netcdf_write_keeps_previous_output(tmp_path):
    path = io.write_dataset(make_cube(seed=1), tmp_path / "keep.nc")
    before = path.read_bytes()
    bad = make_cube(seed=2)
    bad.attrs["meta"] = {"not": "serialisable"}
    with pytest.raises(GeoanomError, match="keep.nc"):
        io.write_dataset(bad, path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.nc"]


def _boom(block):
    raise RuntimeError("compute failed")


def test_failed_zarr_write_keeps_previous_store(tmp_path):
    path = io.write_dataset(make_cube(seed=1), tmp_path / "keep.zarr")
    bad = make_cube(seed=2).chunk({"time": 2})
    bad["tas"] = bad["tas"].copy(data=bad["tas"].data.map_blocks(_boom, dtype=float))
    with pytest.raises(RuntimeError, match="compute failed"):
        io.write_dataset(bad, path)
    xr.testing.assert_allclose(xr.open_zarr(path)["tas"].compute(), make_cube(seed=1)["tas"])
    assert os.listdir(tmp_path) == ["keep.zarr"]


def test_write_refuses_unknown_suffix_and_existing_without_overwrite(tmp_path):
    with pytest.raises(GeoanomError, match=r"out\.csv.*\.zarr or \.nc"):
        io.write_dataset(make_cube(), tmp_path / "out.csv")
    path = io.write_dataset(make_cube(), tmp_path / "once.nc")
    with pytest.raises(GeoanomError, match="already exists"):
        io.write_dataset(make_cube(), path, overwrite=False)


def _write(ds, path):
    ds.to_netcdf(path)
    return path
