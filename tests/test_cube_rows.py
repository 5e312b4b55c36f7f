"""Cube observations as federated feature rows: each row knows its client, time step and cell."""

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import GeoanomError
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
