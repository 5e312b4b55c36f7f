"""The compiled standardised anomaly (features/anomaly.py) is the numpy oracle's, to the bit."""

import numpy as np
import pytest
from reference_kernels import anomaly_reference

from geoanom.features import Climatology
from geoanom.testing import synthetic_cube


def _anomalies(clim, values, terms, compiled):
    return clim.anomaly(values, terms) if compiled else anomaly_reference(clim, values, terms)


@pytest.mark.parametrize("trend", [None, "linear"])
def test_the_compiled_anomaly_equals_numpys_for_training_and_new_steps_with_gaps(trend):
    cube, _ = synthetic_cube(n_years=6, n_lat=6, n_lon=7, seed=3)
    stacked = cube["tas"].expand_dims(variable=["tas"]).transpose("variable", "time", "lat", "lon")
    values = stacked.values.copy()
    values[:, 5, 2, 3] = np.nan  # a missing observation
    values[:, :, 0, 0] = np.nan  # a cell without data: NaN coefficients
    values[:, 7, 4, 4] += 40.0  # an outlier the bisquare weighs down to 0
    stacked = stacked.copy(data=values)
    train = stacked.isel(time=slice(0, 48))
    clim = Climatology.fit(train, trend=trend)
    training = np.arange(stacked.sizes["time"]) < 48  # training and new steps in one block
    terms = clim.time_terms(stacked["time"], training)
    compiled = _anomalies(clim, values, terms, True)
    reference = _anomalies(clim, values, terms, False)
    assert compiled.dtype == np.float64 and compiled.shape == values.shape
    assert np.isnan(compiled[0, :, 0, 0]).all() and np.isnan(compiled[0, 5, 2, 3])
    np.testing.assert_array_equal(compiled, reference)  # NaN where NaN, identical elsewhere
    as_new = clim.anomaly(values, clim.time_terms(stacked["time"], False))
    assert (compiled[:, :48] != as_new[:, :48]).any()  # the training steps took the leave-one-out branch


def test_the_compiled_anomaly_equals_numpys_on_a_block_without_spatial_axes():
    cube, _ = synthetic_cube(n_years=5, n_lat=3, n_lon=4, seed=2)
    stacked = cube["tas"].expand_dims(variable=["tas"]).transpose("variable", "time", "lat", "lon")
    clim = Climatology.fit(stacked.isel(time=slice(0, 36)))
    one_cell = Climatology(clim.design, *(a[..., 1, 2] for a in clim._cell_arrays()), clim.gram_inverse)
    values = stacked.values[..., 1, 2]  # (variable, time)
    terms = clim.time_terms(stacked["time"], np.arange(stacked.sizes["time"]) < 36)
    found = one_cell.anomaly(values, terms)
    assert found.shape == values.shape
    np.testing.assert_array_equal(found, anomaly_reference(one_cell, values, terms))
    np.testing.assert_array_equal(found, clim.anomaly(stacked.values, terms)[..., 1, 2])


def test_the_compiled_anomaly_takes_float32_blocks_of_two_variables():
    cube, _ = synthetic_cube(n_years=4, n_lat=5, n_lon=4, seed=1)
    tas = cube["tas"].expand_dims(variable=["tas"])
    stacked = tas.pipe(lambda a: a.reindex(variable=["tas", "twice"]))
    stacked = stacked.copy(data=np.concatenate([tas.values, 2 * tas.values]).astype(np.float32))
    stacked = stacked.transpose("variable", "time", "lat", "lon")
    clim = Climatology.fit(stacked)
    terms = clim.time_terms(stacked["time"], False)
    values = stacked.values
    np.testing.assert_array_equal(_anomalies(clim, values, terms, True), _anomalies(clim, values, terms, False))
