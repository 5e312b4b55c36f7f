"""One cell explained when its tile was skipped in fitting: the picture and the command say why it has no scores."""

import numpy as np
import pytest

import geoanom as ga
from geoanom.cli.commands import explain_cell
from geoanom.plot import cell
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def skipping_model():
    """Precision 2 on an 8 x 8 grid: tiles of 2 cells hold 72 training observations (< 100) and are skipped."""
    cube, _ = synthetic_cube(n_years=6, n_lat=8, n_lon=8, seed=2)
    model = ga.fit(cube.isel(time=slice(None, 36)), detectors="gmm", precision=2)
    assert str(model.labels.values[0, 0]) in model.skipped and str(model.labels.values[2, 2]) in model.ensembles
    return cube, model, model.score(cube).compute()


def test_a_skipped_tiles_cell_says_why_it_has_no_scores(skipping_model):
    cube, model, result = skipping_model
    tile = str(model.labels.values[0, 0])
    fig = cell(model, cube, lat=float(cube["lat"][0]), lon=float(cube["lon"][0]), result=result)
    title = fig.axes[0].get_title().splitlines()
    assert len(title) == 3 and f"tile {tile} was skipped in fitting: {model.skipped[tile]}" in title[2]
    assert "not scored" in title[2]
    [note] = [text for text in fig.axes[1].texts if text.get_gid() == "unscored"]
    assert model.skipped[tile] in note.get_text()


def test_a_fitted_tiles_cell_has_no_such_note(skipping_model):
    cube, model, result = skipping_model
    fig = cell(model, cube, lat=float(cube["lat"][2]), lon=float(cube["lon"][2]), result=result)
    assert len(fig.axes[0].get_title().splitlines()) == 2
    assert not [text for text in fig.axes[1].texts if text.get_gid() == "unscored"]


def test_the_command_says_the_tile_was_skipped(skipping_model, tmp_path, capsys):
    cube, model, result = skipping_model
    out = tmp_path / "scores.zarr"
    result.to_zarr(out)
    tile = str(model.labels.values[0, 0])
    point = (float(cube["lat"][0]), float(cube["lon"][0]))
    explain_cell(model, cube, point, out, tmp_path / "cell.png")
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"tile {tile} was skipped in fitting: {model.skipped[tile]}; its cells are not scored" in printed
    assert (tmp_path / "cell.png").stat().st_size > 20_000
    assert np.isnan(result["fused_irregularity"].values[:, 0, 0]).all()


def test_a_fitted_cell_without_scores_says_it_has_no_valid_observation(skipping_model):
    cube, model, result = skipping_model
    gap = cube.copy(deep=True)
    gap["tas"][:, 2, 2] = np.nan  # the cell has its climatology, but no observation in this cube
    fig = cell(model, gap, lat=float(cube["lat"][2]), lon=float(cube["lon"][2]))
    title = fig.axes[0].get_title().splitlines()
    assert "0 of 0 scored steps flagged" in title[1]
    assert title[2] == "no step of this cell has a valid observation to score"
