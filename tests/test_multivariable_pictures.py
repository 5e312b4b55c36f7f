"""A multi-variable model's pictures say which variable they draw and that the flags judge all (trial A #4)."""

from __future__ import annotations

import numpy as np
import pytest

import geoanom as ga
from geoanom.cli import main
from geoanom.plot import cell, irregularity_figure
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """tas and a second variable, pr, fitted together; their file."""
    folder = tmp_path_factory.mktemp("two")
    cube = synthetic_cube(n_years=4, n_lat=6, n_lon=8)[0][["tas"]]
    rng = np.random.default_rng(1)
    cube["pr"] = cube["tas"] * 0 + rng.gamma(2.0, 1.0, cube["tas"].shape).astype("float32")
    cube["pr"].attrs["units"] = "kg m-2 s-1"
    cube.to_netcdf(folder / "two.nc")
    cube = ga.open_cube(folder / "two.nc")
    model = ga.fit(cube.sel(time=slice(None, "2001")), precision=1, detectors=["gmm", "kmeans"])
    return folder, cube, model, model.score(cube)


def test_the_map_says_the_flags_judge_every_variable(two):
    _, _, model, result = two
    assert model.variables == ["tas", "pr"]
    title = irregularity_figure(result, time=-1)._suptitle.get_text().replace("\n", " ")
    assert "the flags judge tas and pr together: a flag may come from pr, not from tas drawn here" in title
    title = irregularity_figure(result, time=-1, variable="pr")._suptitle.get_text().replace("\n", " ")
    assert "a flag may come from tas, not from pr drawn here" in title
    one = ga.fit(two[1][["tas"]].sel(time=slice(None, "2001")), precision=1, detectors=["gmm", "kmeans"])
    assert "judge" not in irregularity_figure(one.score(two[1][["tas"]]), time=-1)._suptitle.get_text()


def test_the_cell_legend_says_a_flag_may_come_from_another_variable(two):
    _, cube, model, result = two
    figure = cell(model, cube, lat=35, lon=-80, result=result, variable="pr")
    assert figure.axes[0].get_title().startswith("pr (kg m-2 s-1) at ")
    labels = [text.get_text() for text in figure.axes[0].get_legend().get_texts()]
    assert any("tas, pr judged together: a flag may come from tas" in label for label in labels), labels


def test_detect_draws_the_variable_named(two, tmp_path, capsys):
    folder = two[0]
    common = ["detect", str(folder / "two.nc"), "--var", "tas", "--var", "pr", "--train-end", "2001",
              "--precision", "1", "--detectors", "gmm", "--out", str(tmp_path / "r.zarr")]
    assert main([*common, "--plot", str(tmp_path / "m.png"), "--variable", "sst"]) == 2
    assert capsys.readouterr().err.strip() == ("geoanom: error: --variable sst: it is not one of the variables "
                                               "fitted (tas, pr).")
    assert list(tmp_path.iterdir()) == []  # refused before any work
    assert main([*common, "--explain", "35,-80", "--variable", "pr"]) == 0
    assert "(nearest cell to 35, -80, " in (out := capsys.readouterr().out) and "(pr (kg m-2 s-1) at" in out
