"""ga.fit(contamination=): the share of normal data every family's threshold flags, recorded by the model."""

import pytest

import geoanom as ga
from geoanom.errors import ParameterError
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def clean():
    return synthetic_cube(n_years=6, n_lat=12, n_lon=12, seed=1, anomaly_rate=0.0)[0]


@pytest.mark.slow
def test_contamination_sets_the_share_each_family_flags(clean, tmp_path):
    shares = {}
    for contamination in (0.01, 0.05):
        model = ga.fit(clean.isel(time=slice(None, 36)), contamination=contamination, precision=1)
        result = model.score(clean.isel(time=slice(36, None)))
        shares[contamination] = result["anomalous"].mean(("time", "lat", "lon")).values
        model.save(tmp_path / "model.npz")
        loaded = ga.load_model(tmp_path / "model.npz")
        assert loaded.attrs["contamination"] == contamination
        assert {d.contamination for e in loaded.ensembles.values() for d in e.detectors_.values()} == {contamination}
    # held-back normal data: each family near its share (measured 0.5-1.1% and 4.3-5.6%)
    assert ((shares[0.01] > 0.002) & (shares[0.01] < 0.025)).all()
    assert ((shares[0.05] > 0.03) & (shares[0.05] < 0.08)).all()


@pytest.mark.parametrize("contamination", [0.0, 0.5, 0.6, -0.01, "1%"])
def test_a_contamination_outside_0_to_half_is_refused(clean, contamination):
    with pytest.raises(ParameterError, match="contamination must be a share of the observations above 0 and below "
                                             "0.5"):
        ga.fit(clean, contamination=contamination)


def test_the_command_line_takes_it(clean, tmp_path, refused):
    path = tmp_path / "clean.nc"
    clean.to_netcdf(path)
    run = refused("detect", path, "--var", "tas", "--train-end", "2002", "--detectors", "gmm", "--precision", "1",
                  "--contamination", "0.05", "--out", tmp_path / "r.zarr", "--model-out", tmp_path / "m.npz")
    assert run.returncode == 0, run.stderr
    assert ga.load_model(tmp_path / "m.npz").attrs["contamination"] == 0.05
    run = refused("detect", path, "--var", "tas", "--train-end", "2002", "--contamination", "0.7",
                  "--out", tmp_path / "s.zarr")
    assert run.returncode == 2 and "contamination must be a share of the observations" in run.stderr
    assert "Traceback" not in run.stderr and not (tmp_path / "s.zarr").exists()
