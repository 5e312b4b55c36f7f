"""``geoanom info`` of a model and of a result names the units the variables were fitted and scored in."""

import geoanom as ga
from geoanom.testing import synthetic_cube


def test_a_precipitation_model_and_result_keep_their_units_in_info(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=4, n_lat=4, n_lon=4, seed=5)
    # a CF precipitation flux (values of 1e-6 to 3e-5 kg m-2 s-1) beside a variable whose file gives no units
    pr = ((cube["tas"] - cube["tas"].min()) * 1e-6).assign_attrs(units="kg m-2 s-1")
    both = cube.assign(pr=pr)[["pr", "tas"]]
    both["tas"].attrs.pop("units")
    model = ga.fit(both.isel(time=slice(None, 36)), detectors="gmm", precision=1)
    model.save(tmp_path / "model.npz")
    model.score(both).to_netcdf(tmp_path / "result.nc")
    described = refused("info", tmp_path / "model.npz")
    assert described.returncode == 0, described.stderr
    assert "variables:  pr (kg m-2 s-1), tas (no units given)" in described.stdout.splitlines()
    described = refused("info", tmp_path / "result.nc")
    assert described.returncode == 0, described.stderr
    assert "scored:     pr (kg m-2 s-1), tas (no units given) by gmm, " in described.stdout
