"""geoanom.testing.inject_events: events where the mask says, only after the start, NaN kept, seeded."""

from __future__ import annotations

import numpy as np
import pytest

from geoanom.testing import EVENT_KINDS, inject_events, synthetic_cube

START = 36


@pytest.fixture(scope="module")
def cube():
    """A small clean monthly cube with a strip of 'land' (NaN everywhere) and one gap."""
    cube, _ = synthetic_cube(n_years=5, n_lat=12, n_lon=16, anomaly_rate=0.0, seed=3)
    values = cube["tas"].values.copy()
    values[:, :, :3] = np.nan
    values[40, 5, 8] = np.nan
    cube["tas"].values = values
    return cube


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_mask_is_where_values_changed_and_only_after_start(cube, kind):
    out, events = inject_events(cube, "tas", kind, start=START, seed=7)
    before, after = cube["tas"].values, out["tas"].values
    changed = ~((before == after) | (np.isnan(before) & np.isnan(after)))
    np.testing.assert_array_equal(events.values, changed)
    assert events.values.any()
    assert not events.values[:START].any()
    np.testing.assert_array_equal(after[:START], before[:START])
    np.testing.assert_array_equal(np.isnan(after), np.isnan(before))
    assert events.dims == ("time", "lat", "lon") and events.dtype == bool
    assert out["tas"].dtype == cube["tas"].dtype and out["tas"].attrs == cube["tas"].attrs


@pytest.mark.parametrize("kind", EVENT_KINDS)
def test_same_seed_same_events_other_seed_other_events(cube, kind):
    first, events = inject_events(cube, "tas", kind, start=START, seed=11)
    again, events_again = inject_events(cube, "tas", kind, start=START, seed=11)
    np.testing.assert_array_equal(first["tas"].values, again["tas"].values)
    np.testing.assert_array_equal(events.values, events_again.values)
    other, _ = inject_events(cube, "tas", kind, start=START, seed=12)
    assert not np.array_equal(np.nan_to_num(first["tas"].values), np.nan_to_num(other["tas"].values))


def test_sizes_are_in_local_standard_deviations(cube):
    noise = np.full((12, 16), 2.0)
    out, events = inject_events(cube, "tas", "spike", start=START, seed=0, size=4.0, noise=noise)
    shift = (out["tas"] - cube["tas"]).values[events.values]
    np.testing.assert_allclose(np.abs(shift), 8.0, atol=1e-4)
    out, events = inject_events(cube, "tas", "warm_blob", start=START, seed=0, size=2.5)
    shift = (out["tas"] - cube["tas"]).values[events.values]
    assert (shift > 0).all() and shift.max() < 2.5 * 2 * 1.5  # unit noise: peak about 2.5 K per blob
    out, events = inject_events(cube, "tas", "cold_blob", start=START, seed=0)
    assert ((out["tas"] - cube["tas"]).values[events.values] < 0).all()


def test_rates_step_and_drift_shapes(cube):
    valid_after = np.isfinite(cube["tas"].values[START:]).sum()
    _, spikes = inject_events(cube, "tas", "spike", start=START, seed=1, rate=0.05)
    assert 0.03 < spikes.values.sum() / valid_after < 0.07
    _, blobs = inject_events(cube, "tas", "warm_blob", start=START, seed=1, rate=0.05)
    assert blobs.values.sum() / valid_after >= 0.05
    out, step = inject_events(cube, "tas", "step", start=START, seed=2)
    shift = (out["tas"] - cube["tas"]).values
    onset = int(np.argmax(step.values.any(axis=(1, 2))))
    assert step.values[onset:].any(axis=(1, 2)).all()  # lasts to the end
    cells = step.values[-1]
    np.testing.assert_allclose(shift[onset:, cells], np.broadcast_to(shift[-1, cells], shift[onset:, cells].shape),
                               atol=1e-4)  # a constant shift per cell
    out, drift = inject_events(cube, "tas", "drift", start=START, seed=2)
    cell = tuple(np.argwhere(drift.values[-1])[0])
    path = np.abs((out["tas"] - cube["tas"]).values[:, cell[0], cell[1]])
    assert np.all(np.diff(path[START:]) >= -1e-4) and path[-1] > path[START:].max() - 1e-4 and path[-1] > 1.0


def test_start_as_time_label_and_refusals(cube):
    _, events = inject_events(cube, "tas", "spike", start="2003-01-01", seed=0)
    assert not events.values[:36].any() and events.values[36:].any()
    with pytest.raises(ValueError, match="kind"):
        inject_events(cube, "tas", "tornado", start=START)
    with pytest.raises(ValueError, match="variable"):
        inject_events(cube, "psl", "spike", start=START)
    with pytest.raises(ValueError, match="noise"):
        inject_events(cube, "tas", "spike", start=2)
