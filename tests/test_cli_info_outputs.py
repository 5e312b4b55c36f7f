"""``geoanom info`` on what geoanom writes (a result, a saved model) and on grids named y, x or without units."""

import numpy as np
import pytest

import geoanom as ga
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A small model saved as .npz and .zarr, and its result as .zarr and .nc."""
    folder = tmp_path_factory.mktemp("written")
    cube, _ = synthetic_cube(n_years=6, n_lat=8, n_lon=8, seed=2)
    model = ga.fit(cube.isel(time=slice(None, 36)), detectors="gmm,kmeans", precision=2)
    model.save(folder / "model.npz")
    model.save(folder / "model.zarr")
    result = model.score(cube).compute()
    result.to_zarr(folder / "result.zarr")
    result.to_netcdf(folder / "result.nc")
    return folder, model


def info(refused, path):
    """``geoanom info PATH``'s output and its lines, after checking it succeeded."""
    process = refused("info", path)
    assert process.returncode == 0, process.stderr
    return process.stdout, process.stdout.splitlines()


@pytest.mark.parametrize("name", ["result.zarr", "result.nc"])
def test_info_describes_a_result_and_its_per_detector_variables(written, name, refused):
    folder, model = written
    out, lines = info(refused, folder / name)
    assert lines[0].startswith(f"source:     {folder / name}: a geoanom result")
    assert "time:       2000-01-01 to 2005-12-01 (72 steps, calendar" in out
    assert "grid:       8 x 8 cells (lat, lon), lat 20 to 50" in out
    tiles = len(set(model.labels.values.ravel()))
    assert (f"scored:     tas (K) by gmm, kmeans, {tiles} tiles at precision 2, model trained 2000-01-01 to "
            "2002-12-01" in lines)
    assert any(line.startswith("variable:   irregularity ('detector', 'time', 'lat', 'lon') float32, one per "
                               "detector: ") for line in lines)
    assert any(line.startswith("variable:   ensemble ('time', 'lat', 'lon') bool: majority") for line in lines)


@pytest.mark.parametrize("name", ["model.npz", "model.zarr"])
def test_info_describes_a_saved_model(written, name, refused):
    folder, model = written
    out, lines = info(refused, folder / name)
    assert lines[0].startswith(f"source:     {folder / name}: a geoanom model")
    assert "variables:  tas (K)" in lines and "detectors:  gmm, kmeans" in lines
    assert "training:   2000-01-01 to 2002-12-01 (36 steps, calendar" in out
    assert "grid:       8 x 8 cells (lat, lon), lat 20 to 50, lon -100 to -60" in lines
    assert (f"tiles:      precision 2: {len(model.ensembles)} fitted, {len(model.skipped)} skipped "
            "(a tile needs 100 valid observations)") in lines
    assert len(model.skipped) > 10
    for tile in sorted(model.skipped)[:10]:
        assert f"  skipped {tile}: {model.skipped[tile]}" in lines
    assert f"  ... and {len(model.skipped) - 10} more skipped" in lines


def test_info_names_a_curvilinear_grid_and_missing_units(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=1, n_lat=6, n_lon=5, seed=3)
    y, x = np.meshgrid(np.arange(6), np.arange(5), indexing="ij")
    cube = cube.rename({"lat": "y", "lon": "x"}).drop_vars(["y", "x"])
    cube = cube.assign_coords(lat=(("y", "x"), 30 + 1.6 * y + 0.7 * x, {"standard_name": "latitude"}),
                              lon=(("y", "x"), -90 + 1.8 * x - 0.9 * y, {"standard_name": "longitude"}))
    del cube["tas"].attrs["units"]
    cube.to_netcdf(tmp_path / "curvilinear.nc")
    process = refused("info", tmp_path / "curvilinear.nc")
    assert process.returncode == 0, process.stderr
    assert "grid:       6 x 5 cells (y, x, curvilinear: 2-D lat and lon), lat 30 to 40.8" in process.stdout
    assert "y x x" not in process.stdout and "units ?" not in process.stdout
    assert "chunks 12x6x5, no units given" in process.stdout


def test_info_refuses_a_foreign_npz_in_one_sentence(tmp_path, refused):
    np.savez(tmp_path / "other.npz", a=np.arange(3))
    process = refused("info", tmp_path / "other.npz")
    assert process.returncode == 2
    assert process.stderr.strip() == f"geoanom: error: '{tmp_path / 'other.npz'}' is not a geoanom model file: it " \
                                     "has no model description."


def test_info_describes_a_federated_classifier(tmp_path, refused):
    import pandas as pd

    from geoanom.federated.mlp import LayerShapes
    from geoanom.federated.result import FederatedResult

    sizes = (4, 8, 8, 1)
    history = pd.DataFrame({"round": [1, 2, 3], "loss": [0.7, 0.6, 0.5], "state": ["running"] * 3}).set_index("round")
    parameters = np.zeros(LayerShapes(sizes).size)
    FederatedResult(parameters, np.zeros(4), np.ones(4), sizes, history, {}, epsilon=2.0).save(tmp_path / "fed.npz")
    process = refused("info", tmp_path / "fed.npz")
    assert process.returncode == 0, process.stderr
    assert "a federated anomaly classifier" in process.stdout.splitlines()[0]
    assert "layers:     4 -> 8 -> 8 -> 1" in process.stdout and "rounds:     3" in process.stdout
    assert "privacy:    epsilon 2" in process.stdout
