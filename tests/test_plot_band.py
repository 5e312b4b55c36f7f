"""The band of an event region's series is the spread of the region's mean, not one cell's."""

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.plot import event_timeseries
from geoanom.plot.series import regional_spread
from geoanom.testing import synthetic_cube

ROWS, COLS = slice(1, 7), slice(1, 7)  # the event's 36 cells
EVENT_STEPS = [100, 101]


def band_half_widths(ax):
    """Half the band's height at each x: (upper - lower) / 2, from the drawn polygon."""
    [band] = [c for c in ax.collections if c.get_gid() == "band"]
    x, y = band.get_paths()[0].vertices.T
    return np.array([(y[x == v].max() - y[x == v].min()) / 2 for v in np.unique(x)])


def region_figure(common: bool, calendar: str = "standard"):
    """Cells with unit noise, independent or shared by all; a 4-spread event on 36 of them; the mean's band."""
    cube, _ = synthetic_cube(n_years=10, n_lat=8, n_lon=8, seed=1)
    if calendar != "standard":
        cube = cube.convert_calendar(calendar, align_on="date" if calendar == "360_day" else None)
    rng = np.random.default_rng(5)
    seasonal = cube["tas"].groupby("time.month").mean().sel(month=cube["time"].dt.month).values
    shape = cube["tas"].shape
    noise = rng.normal(size=(shape[0], 1, 1)) + 0.05 * rng.normal(size=shape) if common else rng.normal(size=shape)
    values = seasonal + noise
    values[EVENT_STEPS, ROWS, COLS] += 4.0
    cube["tas"] = cube["tas"].copy(data=values.astype("float32"))
    model = ga.fit(cube.isel(time=slice(None, 72)), detectors="gmm", precision=2)
    result = model.score(cube).compute()
    labels = xr.zeros_like(result["ensemble"], dtype="int64")
    labels[EVENT_STEPS, ROWS, COLS] = 1
    fig = event_timeseries(model, cube, result, event=1, labels=labels)
    climatology = model.climatology.block(ROWS, COLS)
    cell_spread = climatology.spread_at(cube["time"])[0].mean(axis=(1, 2))
    return fig, cell_spread


@pytest.mark.parametrize("common, low, high, calendar", [(False, 0.1, 0.3, "standard"), (True, 0.75, 1.3, "standard"),
                                                        (False, 0.1, 0.3, "360_day")])
def test_region_band_is_the_spread_of_the_regional_mean(common, low, high, calendar):
    fig, cell_spread = region_figure(common, calendar)
    ax = fig.axes[0]
    ratio = band_half_widths(ax) / (2.0 * cell_spread)
    # 36 independent cells: 1/6 of a cell's spread (was 1: the band hid a 4-spread regional event); shared: all of it
    assert low < np.median(ratio) < high
    np.testing.assert_allclose(ratio, np.median(ratio), rtol=1e-4)  # one factor, the season's shape kept
    [label] = [t.get_text() for t in ax.get_legend().get_texts() if "36-cell mean" in t.get_text()]
    assert "outside the event" in label and "118 steps" in label


def test_regional_spread_is_robust_and_falls_back_when_it_cannot_tell():
    rng = np.random.default_rng(0)
    mean = rng.normal(scale=0.2, size=500)
    mean[:20] += 30.0  # other anomalies among the quiet steps barely move it
    factor, steps = regional_spread(mean, np.zeros(500), np.ones(500), np.ones(500, bool))
    assert steps == 500 and 0.18 < factor < 0.23
    assert regional_spread(mean[:5], np.zeros(5), np.ones(5), np.ones(5, bool)) == (1.0, 5)
    discrete = np.where(np.arange(500) % 4 == 0, 1.0, 0.0)  # mostly exactly expected: the root mean square
    assert regional_spread(discrete, np.zeros(500), np.ones(500), np.ones(500, bool))[0] == pytest.approx(0.5)
