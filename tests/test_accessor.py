"""The ``.geoanom`` accessor: registered whatever the import order, and the same answers as the functions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.testing import synthetic_cube


@pytest.mark.parametrize("imports", ["import geoanom, xarray as xr", "import xarray as xr, geoanom"])
def test_the_accessor_is_registered_in_either_import_order(imports):
    code = f"{imports}; print(hasattr(xr.Dataset(), 'geoanom'), hasattr(xr.DataArray([1.0]), 'geoanom'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "True"]


def test_importing_geoanom_alone_does_not_import_xarray():
    code = "import sys, geoanom; print('xarray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.fixture(scope="module")
def cube():
    return synthetic_cube(n_years=3, anomaly_rate=0.02)[0]


def test_fit_and_score_through_the_accessor_equal_the_functions(cube):
    training = cube.isel(time=slice(0, 24))
    model = training.geoanom.fit(precision=2, detectors="gmm")
    direct = ga.fit(training, precision=2, detectors="gmm")
    via_accessor = cube.geoanom.score(model).compute()
    xr.testing.assert_equal(via_accessor["fused_irregularity"], direct.score(cube)["fused_irregularity"].compute())


def test_a_results_tiles_plot_and_table(cube, tmp_path):
    model = cube.geoanom.fit(precision=2, detectors="gmm")
    result = cube.geoanom.score(model).compute()
    tiles = result.geoanom.tiles()
    np.testing.assert_array_equal(tiles.values, model.labels.values)  # decoded from the CF flags
    figure = result.geoanom.plot(tmp_path / "map.png")
    assert (tmp_path / "map.png").stat().st_size > 0 and len(figure.axes) >= 2
    table = result.geoanom.top_tiles(n=3)
    assert len(table) == 3 and set(table.index) <= set(np.unique(tiles.values))
