"""write_dataset never replaces a file or store the data it writes are still read from (trial B #2)."""

from __future__ import annotations

import hashlib

import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.io.sources import read_sources
from geoanom.testing import synthetic_cube


def digest(path):
    """A hash of a file or every file of a store: any change shows."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return hashlib.sha256(b"".join(f.read_bytes() for f in files)).hexdigest()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    cube = synthetic_cube(n_years=1, n_lat=4, n_lon=4)[0]
    cube.to_netcdf(folder / "my.nc")
    cube.to_zarr(folder / "my.zarr", zarr_format=2, consolidated=True)
    return folder


@pytest.mark.parametrize("name", ["my.nc", "my.zarr"])
@pytest.mark.parametrize("how", ["open_cube", "xarray", "loaded"])
def test_writing_over_an_input_is_refused_and_it_is_kept(inputs, name, how):
    source = inputs / name
    before = digest(source)
    if how == "open_cube":
        data = ga.open_cube(source)
    elif how == "xarray":  # not through open_cube: the dask graph still names the file
        data = xr.open_zarr(source) if name.endswith(".zarr") else xr.open_dataset(source, chunks={})
    else:
        data = ga.open_cube(source).load()  # in memory: the source geoanom recorded still names it
    with pytest.raises(GeoanomError, match=f"read from '.*{name}', which would be lost") as caught:
        ga.write_dataset(data * 2, source)
    assert str(caught.value).count(".") <= 4  # one sentence (the paths' dots aside)
    assert digest(source) == before


def test_another_path_is_written_and_its_inputs_are_found(inputs, tmp_path):
    cube = ga.open_cube(inputs / "my.zarr")
    assert read_sources(cube) == {(inputs / "my.zarr").resolve()}
    written = ga.write_dataset(cube * 2, tmp_path / "out.zarr")
    assert float(xr.open_zarr(written)["tas"].isel(time=0, lat=0, lon=0)) == pytest.approx(
        2 * float(cube["tas"].isel(time=0, lat=0, lon=0)))
