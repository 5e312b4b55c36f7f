"""A model records its variables' units, and refuses data in others (E1 in degC against a model of A1B in K)."""

from pathlib import Path

import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import UnitsError
from geoanom.units import normalised_units

VARIABLE = "air_temperature"


@pytest.fixture(scope="module")
def sample_data() -> Path:
    module = pytest.importorskip("iris_sample_data")
    return Path(module.__file__).parent / "sample_data"


@pytest.fixture(scope="module")
def a1b_model(sample_data) -> ga.AnomalyModel:
    """A model of a corner of A1B North America (K), fitted on 1860-1960."""
    cube = ga.open_cube(sample_data / "A1B_north_america.nc").isel(lat=slice(0, 12), lon=slice(0, 16))
    return ga.fit(cube.sel(time=slice(None, "1960")), precision=2, detectors=("gmm", "kmeans"))


def e1_file(sample_data: Path, folder: Path, units: str | None, offset: float = 0.0) -> Path:
    """E1 North America's air temperature, shifted by ``offset`` and labelled ``units`` (no attribute: None)."""
    with xr.open_dataset(sample_data / "E1_north_america.nc") as e1:
        data = e1.load()
    attrs = {key: value for key, value in data[VARIABLE].attrs.items() if key != "units"}
    data[VARIABLE] = data[VARIABLE] + offset
    data[VARIABLE].attrs = attrs if units is None else {**attrs, "units": units}
    path = folder / f"e1_{(units or 'none').replace('/', '_')}.nc"
    data.to_netcdf(path)
    return path


def corner(path: Path) -> xr.Dataset:
    return ga.open_cube(path).isel(lat=slice(0, 12), lon=slice(0, 16))


def test_the_model_records_units_and_keeps_them(a1b_model, tmp_path):
    assert a1b_model.attrs["units"] == {VARIABLE: "K"}
    a1b_model.save(tmp_path / "a1b.npz")
    assert ga.load_model(tmp_path / "a1b.npz").attrs["units"] == {VARIABLE: "K"}


def test_scoring_celsius_with_a_kelvin_model_is_refused(a1b_model, sample_data, tmp_path):
    path = e1_file(sample_data, tmp_path, "degC", offset=-273.15)
    with pytest.raises(UnitsError) as refused:
        a1b_model.score(corner(path))
    message = str(refused.value)
    for part in (VARIABLE, path.name, "'degC'", "'K'"):
        assert part in message
    with pytest.raises(UnitsError):  # adaptive scoring too
        a1b_model.adapt(corner(path))


@pytest.mark.parametrize("units", ["K", "kelvin", "degK", None])
def test_the_same_units_in_any_spelling_or_none_are_scored(a1b_model, sample_data, tmp_path, units):
    result = a1b_model.score(corner(e1_file(sample_data, tmp_path, units)))
    assert 0 < float(result["ensemble"].mean()) < 0.5


def test_a_model_without_units_checks_nothing(a1b_model, sample_data, tmp_path):
    a1b_model.save(tmp_path / "a1b.npz")
    model = ga.load_model(tmp_path / "a1b.npz")
    del model.attrs["units"]  # as in models saved before units were recorded
    assert model.score(corner(e1_file(sample_data, tmp_path, "degC", offset=-273.15)))["ensemble"].size


def test_the_command_line_says_so_and_exits_2(a1b_model, sample_data, tmp_path, capsys):
    from geoanom.cli import main

    # a model of the whole grid, since the command scores whole files
    cube = ga.open_cube(sample_data / "A1B_north_america.nc")
    ga.fit(cube.sel(time=slice(None, "1960")), precision=2, detectors=("kmeans",)).save(tmp_path / "a1b.npz")
    path = e1_file(sample_data, tmp_path, "degC", offset=-273.15)
    status = main(["score", str(tmp_path / "a1b.npz"), str(path), "--out", str(tmp_path / "x.zarr")])
    assert status == 2
    error = capsys.readouterr().err
    assert "'degC'" in error and "'K'" in error and VARIABLE in error and "Traceback" not in error
    assert not (tmp_path / "x.zarr").exists()


@pytest.mark.parametrize("a, b", [("K", "kelvin"), ("degC", "Celsius"), ("degC", "degree_Celsius"), ("degC", "°C"),
                                  ("degC", "deg C"), ("kg m-2 s-1", "kg m^-2 s^-1"), ("Pa", "pascal"),
                                  # trial A #9: refused as other units
                                  ("0.001", "1e-3"), ("g/kg", "1e-3"), ("psu", "1e-3"), ("W/m2", "W m-2"),
                                  ("m", "metre"), ("kg/m2/s", "kg m-2 s-1"), ("W.m-2", "W m^-2"), ("m/s", "m s-1"),
                                  ("metre second-1", "m s-1"), ("mm/day", "mm d-1")])
def test_spellings_of_one_unit_are_equal(a, b):
    assert normalised_units(a) == normalised_units(b)


@pytest.mark.parametrize("a, b", [("K", "degC"), ("degC", "degF"), ("Pa", "hPa"), ("m", "mm"), ("1", "1e-3"),
                                  ("C", "degC"), ("mm s-1", "kg m-2 s-1"), ("W m-2", "W"), ("mm/day", "mm s-1"),
                                  ("0.01", "1e-3"), ("m2", "m")])
def test_different_units_differ(a, b):
    assert normalised_units(a) != normalised_units(b)
