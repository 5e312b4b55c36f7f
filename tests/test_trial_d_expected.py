"""Trial D, finding 12: the picture and ``geoanom info`` say what a cell's expected value is.

Both said "the mean and seasonal cycle of the training period" for every
cell, while most cells are fitted robustly (Huber, then bisquare: daily rain
of a wet season at 0.4 times its mean) and only zero-inflated cells (on their
lowest value much of the time, ``weight_scale`` infinite) by their mean.
"""

import warnings

import numpy as np
import pytest

import geoanom as ga
from geoanom.plot import cell
from geoanom.plot.explain import zero_inflated
from geoanom.testing import synthetic_cube

DRY = (slice(0, 2), slice(0, 3))  # the rain-like cells


@pytest.fixture(scope="module")
def mixed():
    """Daily temperature, but six cells of daily rain: dry 60% of days, gamma amounts on the others."""
    cube, _ = synthetic_cube(n_years=3, n_lat=4, n_lon=6, anomaly_rate=0.0, frequency="day", seed=4)
    rng = np.random.default_rng(4)
    shape = (cube.sizes["time"], 2, 3)
    rain = np.where(rng.random(shape) < 0.6, 0.0, rng.gamma(0.8, 6.0, shape))
    cube["tas"].values[:, DRY[0], DRY[1]] = rain
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ga.fit(cube.isel(time=slice(None, 730)), detectors="gmm", precision=1)
    return cube, model


def picture_words(model, cube, row, col):
    figure = cell(model, cube, lat=float(cube["lat"][row]), lon=float(cube["lon"][col]))
    ax = figure.axes[0]
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    return ax.get_title().splitlines()[1], next(label for label in legend if label.startswith("expected value"))


def test_the_model_knows_which_cells_are_fitted_by_their_mean(mixed):
    expected = np.zeros((4, 6), dtype=bool)
    expected[DRY] = True
    np.testing.assert_array_equal(zero_inflated(mixed[1]), expected)


def test_a_robustly_fitted_cell_is_not_called_the_mean(mixed):
    title, legend = picture_words(mixed[1], mixed[0], 3, 5)
    assert title.startswith("expected value: robust fit of the level and seasonal cycle in training period "), title
    assert "mean" not in title and legend == "expected value (robust seasonal fit)"


def test_a_zero_inflated_cell_is_called_the_mean_it_is(mixed):
    cube, model = mixed
    title, legend = picture_words(model, cube, 0, 0)
    assert title.startswith("expected value: mean and seasonal cycle (zero-inflated cell) in training period "), title
    assert legend == "expected value (mean and seasonal cycle, zero-inflated cell)"
    training = cube["tas"].isel(time=slice(None, 730))
    drawn = model.climatology.block(slice(0, 1), slice(0, 1)).expected(training["time"])[0, :, 0, 0]
    assert drawn.mean() == pytest.approx(float(training.values[:, 0, 0].mean()), rel=0.02)  # what the words say


def test_info_says_a_robust_fit_and_counts_the_zero_inflated_cells(mixed, tmp_path, refused):
    mixed[1].save(tmp_path / "model.npz")
    run = refused("info", tmp_path / "model.npz")
    assert run.returncode == 0, run.stderr
    text = " ".join(run.stdout.split())
    assert ("expected: a robust fit (Huber, then bisquare) of each cell's level and seasonal cycle in the training "
            "period, but the mean and seasonal cycle (least squares) in zero-inflated cells (on their lowest value, "
            "dry or frozen, much of the time): tas 6 of 24 cells") in text
