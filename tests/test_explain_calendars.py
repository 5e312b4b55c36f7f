"""One cell explained on the calendars of climate-model output (noleap, 360_day), flagged or not."""

import numpy as np
import pytest

import geoanom as ga
from geoanom.plot import cell
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module", params=["noleap", "360_day"])
def model_calendar(request):
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=6, seed=11)
    cube = cube.convert_calendar(request.param, align_on="date" if request.param == "360_day" else None)
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=1)
    return cube, model, model.score(cube).compute()


def line(ax, gid):
    [found] = [artist for artist in ax.get_lines() if artist.get_gid() == gid]
    return found


def test_a_never_flagged_cell_is_drawn_in_a_model_calendar(model_calendar):
    cube, model, result = model_calendar
    quiet = result.copy()
    quiet["ensemble"] = quiet["ensemble"] & False  # nothing flagged anywhere
    lat, lon = float(cube["lat"][2]), float(cube["lon"][3])
    fig = cell(model, cube, lat=lat, lon=lon, result=quiet)
    assert line(fig.axes[0], "flagged").get_xdata().size == 0
    assert line(fig.axes[0], "observations").get_xdata().size == cube.sizes["time"]
    assert "0 of " in fig.axes[0].get_title()


def test_flagged_steps_sit_at_their_dates_in_a_model_calendar(model_calendar):
    cube, model, result = model_calendar
    lat, lon = float(cube["lat"][2]), float(cube["lon"][3])
    marked = result.copy()
    flags = np.zeros(result["ensemble"].shape, dtype=bool)
    flags[[30, 40], 2, 3] = True
    marked["ensemble"] = (result["ensemble"].dims, flags)
    fig = cell(model, cube, lat=lat, lon=lon, result=marked)
    observed_x = line(fig.axes[0], "observations").get_xdata()
    np.testing.assert_array_equal(line(fig.axes[0], "flagged").get_xdata(), observed_x[[30, 40]])
    np.testing.assert_array_equal(line(fig.axes[0], "flagged").get_ydata(), cube["tas"].values[[30, 40], 2, 3])
