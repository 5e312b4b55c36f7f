"""Scored data the model cannot judge warn: values in other units than their label, a trend stretched too far."""

import copy
import warnings

import numpy as np
import pytest

import geoanom as ga
from geoanom.errors import GeoanomWarning
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def cube():
    return synthetic_cube(n_years=4, n_lat=8, n_lon=8, seed=3)[0]


def _messages(model, data):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.score(data)
    return [str(w.message) for w in caught if issubclass(w.category, GeoanomWarning)]


def test_values_in_other_units_than_their_label_warn(cube):
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=1)
    assert not [m for m in _messages(model, cube.isel(time=slice(24, None))) if "spreads" in m]
    celsius = cube.isel(time=slice(24, None)).copy()
    celsius["tas"] = celsius["tas"] - 273.15  # converted, still labelled K
    [message] = [m for m in _messages(model, celsius) if "spreads" in m]
    assert message.startswith("tas in ") and " spreads below the model's expected values at " in message
    assert "in its units (K)" in message


def test_a_linear_trend_extrapolated_beyond_its_own_length_warns():
    cube = synthetic_cube(n_years=8, n_lat=6, n_lon=6, seed=3)[0]  # a trend needs 3 years of training at least
    model = ga.fit(cube.isel(time=slice(48, None)), detectors="gmm", precision=1, trend="linear")
    assert model.climatology.design.trend
    assert not [m for m in _messages(model, cube.isel(time=slice(24, 48))) if "extrapolated" in m]  # 2 years before
    shift = (cube["time"][48] - cube["time"][0]) * 2
    earlier = cube.isel(time=slice(None, 48)).assign_coords(time=cube["time"][:48] - shift)  # 8 to 12 years before
    [message] = [m for m in _messages(model, earlier) if "extrapolated" in m]
    assert "years beyond the model's training period" in message and "linear trend is extrapolated" in message


def test_values_in_cells_without_training_values_warn(cube):
    training = cube.isel(time=slice(None, 24)).copy()
    training["tas"] = training["tas"].where(training["lat"] < training["lat"][-2])  # the two northern rows iced
    model = ga.fit(training, detectors="gmm", precision=1)
    [message] = [m for m in _messages(model, cube.isel(time=slice(24, None))) if "no training values" in m]
    assert message.startswith(f"tas in the cube has values in {2 * cube.sizes['lon']} of ") and "score NaN" in message
    assert not [m for m in _messages(model, training) if "no training values" in m]


def test_a_step_with_far_fewer_cells_than_training_warns_for_a_model_without_the_neighbours_relation(cube):
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=1)
    assert model.attrs["training_coverage"] == {"tas": 1.0}
    later = cube.isel(time=slice(24, None))
    kept = np.random.default_rng(0).random(later["tas"].shape[1:]) < 0.3  # a cloudy L3 field: 30% of cells
    cloudy = later.assign(tas=later["tas"].where(kept))
    # the model stands the missing neighbours in: it judges the gappy step as a full one, nothing to say
    assert not [m for m in _messages(model, cloudy) if "neighbours' mean" in m]
    old = copy.deepcopy(model)
    old.climatology.neighbour_relation = None  # as a model saved before the relation was fitted
    assert not [m for m in _messages(old, later) if "neighbours' mean" in m]
    [message] = [m for m in _messages(old, cloudy) if "neighbours' mean" in m]
    assert f"holds values in {kept.mean():.0%} of the model's cells at " in message
    assert "where its training steps held 100%" in message and "fit it again" in message
