"""Scored coordinates that are the model's grid up to rounding become the model's exactly; further off is refused.

Before: a model fitted on float64 lat/lon scoring the same grid stored as float32 passed the grid check
(np.allclose), and the result outer-joined both coordinate sets: 22 x 43 interleaved cells instead of 12 x 24,
flags turned float with NaN.
"""

from __future__ import annotations

import numpy as np
import pytest

import geoanom as ga
from geoanom.errors import CoordinateError
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    """A 0.1-degree grid (values not exact in float32) in a file, a gmm model of its first two years, its scores."""
    cube, _ = synthetic_cube(n_years=3, n_lat=12, n_lon=24)
    cube = cube.assign_coords(lat=np.round(np.linspace(30.1, 31.2, 12), 6), lon=np.round(np.linspace(-40.1, -37.8, 24), 6))
    path = tmp_path_factory.mktemp("grid") / "f64.nc"
    cube.to_netcdf(path)
    opened = ga.open_cube(path)
    model = ga.fit(opened.isel(time=slice(0, 24)), detectors="gmm", precision=3)
    return cube, path.parent, model, model.score(opened).compute()


def test_float32_coordinates_of_the_models_grid_score_on_the_models_grid(grid):
    cube, folder, model, expected = grid
    narrow = cube.assign_coords(lat=cube["lat"].astype("float32"), lon=cube["lon"].astype("float32"))
    narrow.to_netcdf(folder / "f32.nc")
    assert not np.array_equal(narrow["lat"].values, cube["lat"].values)  # 30.1 is 30.100000381 in float32
    result = model.score(ga.open_cube(folder / "f32.nc")).compute()
    assert dict(result.sizes) == {"detector": 1, "time": 36, "lat": 12, "lon": 24}
    assert result["ensemble"].dtype == bool
    np.testing.assert_array_equal(result["lat"].values, model.labels["lat"].values)
    np.testing.assert_array_equal(result["irregularity"].values, expected["irregularity"].values)


def test_a_shift_of_a_ten_thousandth_of_a_cell_is_the_same_grid_but_a_fiftieth_is_refused(grid):
    cube, _, model, expected = grid
    jitter = cube.assign_coords(lat=cube["lat"] + 1e-5)  # 1e-4 of a 0.1-degree cell
    np.testing.assert_array_equal(model.score(jitter)["irregularity"].values, expected["irregularity"].values)
    shifted = cube.assign_coords(lon=cube["lon"] + 2e-4)  # inside np.allclose's tolerance, 0.002 of a cell
    with pytest.raises(CoordinateError, match=r"^lon of the dataset differs from the model's by up to 0.0002 degrees, "
                                              r"0.002 of a cell, more than the 0.001 of a cell taken as the same grid; "
                                              r"score data on the grid the model was fitted on\.$"):
        model.score(shifted)
    with pytest.raises(CoordinateError, match="0.002 of a cell"):
        model.anomalies(shifted)
