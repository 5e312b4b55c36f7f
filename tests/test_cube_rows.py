"""Cube observations as federated feature rows: each row knows its client, time step and cell."""

import numpy as np
import pytest
import xarray as xr
from dask.callbacks import Callback

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.features import Climatology
from geoanom.features.pipeline import stack_variables
from geoanom.testing import blob_cube


@pytest.fixture(scope="module")
def cube_and_events():
    cube, events = blob_cube(n_years=4, n_lat=12, n_lon=16, n_events=4, seed=1)
    cube["tas"].values[:, :2, :3] = np.nan  # a patch of land
    return cube, events


def test_rows_point_back_to_their_observation_and_client(cube_and_events):
    cube, events = cube_and_events
    owners = xr.DataArray(np.where(np.arange(16) < 8, "west", "east")[None].repeat(12, 0), dims=("lat", "lon"),
                          coords={"lat": cube["lat"], "lon": cube["lon"]})
    rows = ga.federated.cube_rows(cube, "tas", owners)
    values = cube["tas"].values.reshape(cube.sizes["time"], -1)
    np.testing.assert_allclose(rows.features[:, 0], values[rows.time_index, rows.cell_index], rtol=1e-6)
    np.testing.assert_array_equal(rows.clients, owners.values.ravel()[rows.cell_index])
    np.testing.assert_array_equal(rows.pick(events), events.values.reshape(len(values), -1)[rows.time_index,
                                                                                             rows.cell_index])
    assert rows.names == ["tas", "tas_anomaly", "tas_smoothed", "tas_region_area"]
    assert np.isfinite(rows.features).all() and not np.isin(rows.cell_index, [0, 1, 2, 16, 17, 18]).any()


def test_cells_without_a_client_are_left_out(cube_and_events):
    cube, _ = cube_and_events
    owners = xr.DataArray(np.full((12, 16), "", dtype="<U8"), dims=("lat", "lon"))
    owners.values[5:, :] = "south"
    rows = ga.federated.cube_rows(cube, "tas", owners)
    assert set(rows.clients) == {"south"} and (rows.cell_index >= 5 * 16).all()
    with pytest.raises(GeoanomError, match="has both data and a client"):
        ga.federated.cube_rows(cube, "tas", xr.DataArray(np.full((12, 16), ""), dims=("lat", "lon")))


def test_rows_do_not_depend_on_the_chunks(cube_and_events):
    cube, _ = cube_and_events
    whole = ga.federated.cube_rows(cube, "tas", precision=2)
    chunked = ga.federated.cube_rows(cube.chunk({"time": 7, "lat": 5, "lon": 6}), "tas", precision=2)
    np.testing.assert_array_equal(chunked.features, whole.features)
    np.testing.assert_array_equal(chunked.clients, whole.clients)
    np.testing.assert_array_equal(chunked.time_index, whole.time_index)
    np.testing.assert_array_equal(chunked.cell_index, whole.cell_index)
    flat = whole.time_index * 16 * 12 + whole.cell_index
    assert (np.diff(flat) > 0).all()  # in time order, then cell order


def test_rows_hold_the_climatologys_leave_one_out_anomalies(cube_and_events):
    cube, _ = cube_and_events
    rows = ga.federated.cube_rows(cube, "tas", precision=2)
    values = stack_variables(cube, ["tas"])
    anomaly = Climatology.fit(values).standardise(values, training=True).values[0]
    np.testing.assert_allclose(rows.features[:, 1], anomaly.reshape(len(anomaly), -1)[rows.time_index,
                                                                                        rows.cell_index])


def test_rows_are_computed_block_by_block(cube_and_events):
    """No task holds a feature cube of the whole grid: only the rows kept meet, at the end."""
    cube, _ = cube_and_events
    largest = []

    class Largest(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            parts = result if isinstance(result, tuple) else (result,)
            largest.extend(part.size for part in parts if isinstance(part, np.ndarray))

    with Largest():
        rows = ga.federated.cube_rows(cube.chunk({"time": 12, "lat": 6, "lon": 8}), "tas", precision=2)
    assert len(rows.features) > 0.9 * cube["tas"].size
    assert max(largest) < 2 * cube["tas"].size  # the old path held two context features of every observation
