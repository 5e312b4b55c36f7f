"""Undeclared fill values in packed integer variables (geoanom/io/packed.py, geoanom/io/fill_values.py).

The A1B sample's temperatures are written as int16 with scale_factor and
add_offset, as ERA5 NetCDF and OSTIA store them, their land held at the
int16 sentinel without a _FillValue; xarray then unpacks the land to a
temperature of -54.53 K, which no float convention matches.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.io.fill_values import FILL_ATTR

LAND = (slice(None), slice(None, 5), slice(None))  # 5 rows of latitude at every step: 13.5% of the values
PACKING = {"dtype": "int16", "scale_factor": 0.01, "add_offset": 273.15}


@pytest.fixture(scope="module")
def a1b():
    return ga.sample_cube("north_america")


def write(cube, values, path, encoding=None, attrs=None, engine="netcdf4", name="tas"):
    """`values` (time, lat, lon) on the A1B grid and times, as given or packed by `encoding`."""
    var = xr.DataArray(values, dims=("time", "lat", "lon"), attrs={"units": "K", **(attrs or {})})
    ds = xr.Dataset({name: var}, coords={c: cube[c] for c in ("time", "lat", "lon")})
    with warnings.catch_warnings():  # packing floats without a _FillValue: they hold no NaN here
        warnings.simplefilter("ignore", xr.SerializationWarning)
        ds.to_netcdf(path, engine=engine, encoding={name: {"_FillValue": None, **(encoding or {})}})
    return path


def opened(path):
    """The cube and the GeoanomWarnings opening it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = ga.open_cube(path)
    return cube, [str(w.message) for w in caught if issubclass(w.category, ga.GeoanomWarning)]


@pytest.fixture(scope="module")
def packed_files(a1b, tmp_path_factory):
    """Land at int16 -32768 undeclared, and the same land declared as _FillValue -32768."""
    folder = tmp_path_factory.mktemp("packed")
    values = a1b["air_temperature"].values.astype("float64")
    undeclared = values.copy()
    undeclared[LAND] = -32768 * 0.01 + 273.15  # packs to -32768 exactly
    write(a1b, undeclared, folder / "undeclared.nc", PACKING)
    values[LAND] = np.nan
    write(a1b, values, folder / "declared.nc", {**PACKING, "_FillValue": np.int16(-32768)})
    for name in ("undeclared.nc", "declared.nc"):
        with xr.open_dataset(folder / name, mask_and_scale=False) as raw:
            assert raw["tas"].dtype == np.int16 and (raw["tas"].values[LAND] == -32768).all()
    with xr.open_dataset(folder / "undeclared.nc") as plain:  # xarray alone: land is -54.53 K
        assert float(plain["tas"].min()) == pytest.approx(-54.53)
    return folder / "undeclared.nc", folder / "declared.nc"


def test_undeclared_packed_land_is_masked_with_one_warning(packed_files):
    undeclared, declared = packed_files
    cube, messages = opened(undeclared)
    assert messages == [f"tas in '{undeclared}' holds the packed int16 -32768 (-54.53 unpacked) in 13.5% of the "
                        "values of the 3 time steps looked at, far outside the others (258.03 to 303.49), not "
                        "declared as _FillValue: it is treated as missing (declare _FillValue in the file to "
                        "silence this)."]
    assert cube["tas"].attrs[FILL_ATTR] == -32768
    values = cube["tas"].values
    assert np.isnan(values[LAND]).all() and np.isnan(values).sum() == 240 * 5 * 49
    xr.testing.assert_identical(cube["tas"].drop_attrs(), ga.open_cube(declared)["tas"].load().drop_attrs())


def test_declared_packed_fill_is_untouched(packed_files):
    cube, messages = opened(packed_files[1])
    assert messages == [] and FILL_ATTR not in cube["tas"].attrs
    assert np.isnan(cube["tas"].values[LAND]).all()


def test_the_climatology_of_the_undeclared_file_is_the_declared_ones(a1b, packed_files):
    """Left in, -54.53 K land would pull every land cell's expected value 300 K down; masked, nothing moves."""
    expected = []
    for path in packed_files:
        tas = opened(path)[0]["tas"].sel(time=slice(None, "1990"))
        expected.append(ga.Climatology.fit(tas.expand_dims(variable=["tas"])).expected(tas["time"])[0])
    np.testing.assert_array_equal(*expected)
    data = a1b["air_temperature"].sel(time=slice(None, "1990")).values
    assert np.isnan(expected[0][LAND]).all()
    sea = (slice(None), slice(5, None), slice(None))
    assert np.nanmax(np.abs(expected[0][sea] - data[sea])) < 10  # K: near the data, not hundreds off


def test_dry_cells_at_the_packed_minimum_are_rain_not_fill(a1b, tmp_path):
    """0 mm packed at -32768: the least rain, at the edge of the values, not far outside them."""
    rain = np.clip(a1b["air_temperature"].values.astype("float64") - 280.0, 0.0, 30.0)
    path = write(a1b, rain, tmp_path / "rain.nc", {"dtype": "int16", "scale_factor": 0.001, "add_offset": 32.768})
    with xr.open_dataset(path, mask_and_scale=False) as raw:
        dry = raw["tas"].values == -32768
    assert dry[[0, 120, 239]].sum() >= 3 and dry.mean() > 0.1
    cube, messages = opened(path)
    assert messages == [] and FILL_ATTR not in cube["tas"].attrs
    values = cube["tas"].values
    assert not np.isnan(values).any() and (values[dry] == values.min()).all()


@pytest.mark.parametrize("engine, scale_type, sentinel", [
    ("netcdf4", np.float32, -32767),  # netCDF's default fill for int16: a variable never written
    ("h5netcdf", np.float64, 32767),
])
def test_other_sentinels_types_and_engines(a1b, tmp_path, engine, scale_type, sentinel):
    """Raw int16 written as it is, its scale_factor and add_offset in their own type (float32 unpacks to float32)."""
    raw = np.rint((a1b["air_temperature"].values.astype("float64") - 273.15) / 0.01).astype("int16")
    raw[LAND] = sentinel
    attrs = {"scale_factor": scale_type(0.01), "add_offset": scale_type(273.15)}
    path = write(a1b, raw, tmp_path / f"{engine}.nc", attrs=attrs, engine=engine)
    cube, messages = opened(path)
    unpacked = np.asarray(scale_type(sentinel) * scale_type(0.01) + scale_type(273.15)).item()
    assert cube["tas"].dtype == scale_type
    assert len(messages) == 1 and f"holds the packed int16 {sentinel} ({unpacked:g} unpacked) in 13.5%" in messages[0]
    assert cube["tas"].attrs[FILL_ATTR] == sentinel and np.isnan(cube["tas"].values).sum() == 240 * 5 * 49


def test_unsigned_255_above_a_fraction(a1b, tmp_path):
    """uint8 ice-concentration-like fractions of 0..1 in hundredths, land at 255 (2.55 unpacked)."""
    rank = a1b["air_temperature"].values.ravel().argsort().argsort().reshape(240, 37, 49) / (240 * 37 * 49 - 1)
    raw = np.rint(rank * 100).astype("uint8")
    raw[LAND] = 255
    path = write(a1b, raw, tmp_path / "ice.nc", attrs={"scale_factor": np.float32(0.01), "add_offset": np.float32(0)})
    cube, messages = opened(path)
    assert len(messages) == 1 and "holds the packed uint8 255 (2.55 unpacked)" in messages[0]
    assert cube["tas"].attrs[FILL_ATTR] == 255 and np.isnan(cube["tas"].values).sum() == 240 * 5 * 49


def test_a_sentinel_only_in_steps_not_looked_at_is_masked_when_read(a1b, tmp_path):
    raw = np.rint((a1b["air_temperature"].values.astype("float64") - 273.15) / 0.01).astype("int16")
    raw[37, :10, :10] = 32767  # a saturated patch in a step open_cube does not look at
    attrs = {"scale_factor": np.float32(0.01), "add_offset": np.float32(273.15)}
    path = write(a1b, raw, tmp_path / "step.nc", attrs=attrs)
    cube, messages = opened(path)
    assert messages == [] and FILL_ATTR not in cube["tas"].attrs
    with pytest.warns(ga.GeoanomWarning) as caught:
        values = cube["tas"].values
    assert {str(w.message) for w in caught} == {
        f"tas in '{path}' holds the packed int16 32767 (600.82 unpacked), not declared as _FillValue, in time steps "
        "open_cube did not look at (it looks at the first, middle and last), far outside the values of those: it is "
        "treated as missing (declare _FillValue in the file to silence this)."}
    assert np.isnan(values[37, :10, :10]).all() and np.isnan(values).sum() == 100


def test_files_packed_each_their_own_way(a1b, tmp_path):
    """ERA5 packs every file apart: the same -32768 unpacks to another value in each."""
    values = a1b["air_temperature"].values.astype("float64")
    paths = []
    for half, offset in ((slice(None, 120), 273.15), (slice(120, None), 280.0)):
        part = values[half].copy()
        part[:, :5, :] = -32768 * 0.01 + offset
        subset = a1b.isel(time=half)
        paths.append(write(subset, part, tmp_path / f"{offset}.nc", {**PACKING, "add_offset": offset}))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cube = ga.open_cube(paths)
    messages = [str(w.message) for w in caught if issubclass(w.category, ga.GeoanomWarning)]
    assert len(messages) == 1 and "(-54.53 unpacked)" in messages[0] and "(-47.68 unpacked)" in messages[0]
    assert all(f"'{path}'" in messages[0] for path in paths)
    assert cube["tas"].attrs[FILL_ATTR] == -32768 and np.isnan(cube["tas"].values).sum() == 240 * 5 * 49
