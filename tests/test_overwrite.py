"""One rule for replacing a .nc or .zarr output (trial A #5, #6): what geoanom did not write, or a result
holding steps the new one does not (months appended), is refused in one sentence unless the user says so."""

from __future__ import annotations

import pytest
import xarray as xr
from test_write_inputs import digest

import geoanom as ga
from geoanom.cli import main
from geoanom.errors import GeoanomError
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def feed(tmp_path_factory):
    folder = tmp_path_factory.mktemp("feed")
    cube = synthetic_cube(n_years=3, n_lat=6, n_lon=6)[0]
    cube.isel(time=slice(0, 24)).to_netcdf(folder / "first.nc")
    cube.isel(time=slice(24, None)).to_netcdf(folder / "new.nc")
    ga.fit(cube.isel(time=slice(0, 12)), variables=["tas"], precision=1,
           detectors=["gmm", "kmeans"]).save(folder / "model.npz")
    return folder


def run(capsys, *argv):
    code = main([*map(str, argv), "-q"])
    return code, capsys.readouterr().err


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_a_result_with_appended_steps_is_kept_unless_overwrite_is_given(feed, tmp_path, capsys, suffix):
    out = tmp_path / f"feed{suffix}"
    assert run(capsys, "score", feed / "model.npz", feed / "first.nc", "--out", out)[0] == 0
    assert run(capsys, "score", feed / "model.npz", feed / "first.nc", "--out", out)[0] == 0  # the same steps again
    if suffix == ".zarr":
        assert run(capsys, "score", feed / "model.npz", feed / "new.nc", "--append", out)[0] == 0
    else:  # a NetCDF result cannot be appended to: a longer one stands for it
        ga.write_dataset(ga.load_model(feed / "model.npz").score(ga.open_cube(
            [str(feed / "first.nc"), str(feed / "new.nc")])), out)
    before = digest(out)
    code, err = run(capsys, "score", feed / "model.npz", feed / "first.nc", "--out", out)
    assert code == 2 and "Traceback" not in err
    assert err.strip() == (f"geoanom: error: cannot write --out '{out}': it holds 12 time steps (2002-01-01 to "
                           "2002-12-01) the new result does not, which would be lost; give --overwrite to replace it.")
    assert digest(out) == before
    assert run(capsys, "score", feed / "model.npz", feed / "first.nc", "--out", out, "--overwrite")[0] == 0
    assert xr.open_dataset(out, engine="zarr" if suffix == ".zarr" else None).sizes["time"] == 24


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_an_output_geoanom_did_not_write_is_kept_unless_overwrite_is_given(feed, tmp_path, capsys, suffix):
    victim = tmp_path / f"victim{suffix}"
    data = xr.open_dataset(feed / "new.nc")
    data.to_zarr(victim, zarr_format=2) if suffix == ".zarr" else data.to_netcdf(victim)
    before = digest(victim)
    code, err = run(capsys, "score", feed / "model.npz", feed / "first.nc", "--out", victim)
    kind = "Zarr store" if suffix == ".zarr" else "file"
    assert code == 2 and err.strip() == (f"geoanom: error: cannot write --out '{victim}': it is a {kind} geoanom did "
                                         "not write; give --overwrite to replace it.")
    assert digest(victim) == before
    assert run(capsys, "score", feed / "model.npz", feed / "first.nc", "--out", victim, "--overwrite")[0] == 0
    assert "irregularity" in xr.open_dataset(victim, engine="zarr" if suffix == ".zarr" else None)


def test_write_dataset_follows_the_same_rule(feed, tmp_path):
    victim = tmp_path / "victim.nc"
    xr.open_dataset(feed / "new.nc").to_netcdf(victim)
    result = ga.load_model(feed / "model.npz").score(ga.open_cube(feed / "first.nc"))
    with pytest.raises(GeoanomError, match=r"is a file geoanom did not write; pass overwrite='force' to replace it\."):
        ga.write_dataset(result, victim)
    assert ga.write_dataset(result, victim, overwrite="force") == victim
    longer = tmp_path / "longer.zarr"
    ga.write_dataset(ga.load_model(feed / "model.npz").score(ga.open_cube(feed / "new.nc")), longer)
    with pytest.raises(GeoanomError, match=r"holds 12 time steps \(2002-01-01 to 2002-12-01\) the new result does not"):
        ga.write_dataset(result, longer)
    with pytest.raises(GeoanomError, match="holds 12 time steps"):
        ga.write_dataset(result, longer, resume=True)  # the resumable writer follows the rule too
