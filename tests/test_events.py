"""The event catalogue: event_labels and events on handmade and scored results."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

import geoanom as ga
from geoanom.errors import GeoanomError, VariableNotFoundError
from geoanom.queries.events import COLUMNS, event_labels, events

R = 6371.0088  # the mean Earth radius geoanom uses, km


def make_result(flags, lat, lon, *, anomaly=None, fused=None, consensus=None, dims=("lat", "lon"), tiles=None):
    """A scored-result-like Dataset from a (time, *spatial) flag array."""
    flags = np.asarray(flags, dtype=bool)
    spatial = flags.shape[1:]
    full = ("time", *dims)
    data = {
        "ensemble": (full, flags),
        "fused_irregularity": (full, np.where(flags, 2.0, 0.5) if fused is None else fused),
        "tas_anomaly": (full, np.where(flags, 1.5, 0.0) if anomaly is None else anomaly),
    }
    if consensus is not None:
        data["consensus"] = (full, consensus)
    names = ["aa", "bb"] if tiles is None else sorted(set(np.ravel(tiles)))
    codes = np.zeros(spatial, dtype=np.int32) if tiles is None else np.searchsorted(names, tiles).astype(np.int32)
    data["tile"] = (dims, codes, {"flag_values": list(range(len(names))), "flag_meanings": " ".join(names)})
    time = pd.date_range("2001-01-01", periods=flags.shape[0], freq="MS")
    if np.ndim(lat) == 2:
        coords = {"time": time, "lat": (dims, lat), "lon": (dims, lon)}
    else:
        coords = {"time": time, dims[0]: lat, dims[1]: lon}
    return xr.Dataset(data, coords=coords)


def reference_labels(flags, connectivity, wrap, bridge, min_cells):
    """Labels of the whole cube in memory, by explicit neighbour pairs (no chunks)."""
    flags = np.asarray(flags, dtype=bool)
    nt, ny, nx = flags.shape
    index = np.arange(flags.size).reshape(flags.shape)
    spatial = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if connectivity == 2 else [])
    offsets = [(0, dy, dx) for dy, dx in spatial]
    offsets += [(1, 0, 0)] + ([(1, dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
                              if connectivity == 2 else [])
    offsets += [(2, 0, 0)] if bridge else []
    rows, cols = [], []
    for t, y, x in zip(*np.nonzero(flags)):
        for dt, dy, dx in offsets:
            tt, yy, xx = t + dt, y + dy, x + dx
            if wrap:
                xx %= nx
            if 0 <= tt < nt and 0 <= yy < ny and 0 <= xx < nx and flags[tt, yy, xx]:
                rows.append(index[t, y, x])
                cols.append(index[tt, yy, xx])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(flags.size, flags.size))
    _, component = connected_components(graph, directed=False)
    component = component.reshape(flags.shape)
    out = np.zeros(flags.shape, dtype=np.int32)
    number = 0
    seen = {}
    for position in np.flatnonzero(flags):  # C order: (time, raster) order of first cells
        c = component.flat[position]
        if c not in seen:
            size = int((component[flags] == c).sum())
            seen[c] = number + 1 if size >= min_cells else 0
            number += size >= min_cells
        out.flat[position] = seen[c]
    return out


def global_grid(nt=5, ny=6, nx=12, seed=0, density=0.3):
    flags = np.random.default_rng(seed).random((nt, ny, nx)) < density
    lat = np.linspace(-75, 75, ny)
    lon = np.arange(nx) * 360.0 / nx - 180.0
    return make_result(flags, lat, lon)


def band_area(lat_south, lat_north, dlon):
    """Exact area (km^2) of a latitude-longitude cell on the sphere."""
    return R**2 * np.radians(dlon) * (np.sin(np.radians(lat_north)) - np.sin(np.radians(lat_south)))


# -- known events -------------------------------------------------------------------------

def test_known_blobs_give_known_events():
    flags = np.zeros((8, 10, 12), dtype=bool)
    anomaly = np.zeros(flags.shape)
    flags[1:4, 2:4, 3:6] = True   # warm: steps 1-3, 2 x 3 cells
    anomaly[1:4, 2:4, 3:6] = 2.0
    flags[5:7, 7, 9] = True       # cold: steps 5-6, one cell
    anomaly[5:7, 7, 9] = -3.0
    fused = np.where(flags, 1.5, 0.2)
    fused[2, 3, 4] = 6.0
    lat, lon = np.arange(10) * 2.0 + 30.0, np.arange(12) * 2.0 - 100.0
    table = events(make_result(flags, lat, lon, anomaly=anomaly, fused=fused))
    assert list(table.columns) == list(COLUMNS)
    assert table["event"].tolist() == [1, 2]
    warm, cold = table.iloc[0], table.iloc[1]
    assert (warm["start"], warm["end"]) == (pd.Timestamp("2001-02-01"), pd.Timestamp("2001-04-01"))
    assert (warm["duration"], warm["cells"], warm["sign"]) == (3, 18, 1)
    assert (cold["start"], cold["duration"], cold["cells"], cold["sign"]) == (pd.Timestamp("2001-06-01"), 2, 2, -1)
    assert warm["peak_irregularity"] == 6.0
    assert warm["mean_irregularity"] == pytest.approx((17 * 1.5 + 6.0) / 18)
    # centroid: area-weighted; rows 34 and 36 degrees weigh as their bands
    w34, w36 = band_area(33, 35, 2), band_area(35, 37, 2)
    assert warm["lat"] == pytest.approx((34 * w34 + 36 * w36) / (w34 + w36))
    assert warm["lon"] == pytest.approx(-92.0)
    assert (cold["lat"], cold["lon"]) == (pytest.approx(44.0), pytest.approx(-82.0))
    assert np.isnan(warm["consensus"])


def test_an_event_is_signed_by_the_variable_that_departs_most():
    flags = np.zeros((4, 6, 8), dtype=bool)
    tas, pr = np.zeros(flags.shape), np.zeros(flags.shape)
    flags[1, 1:3, 1:3] = True    # a drought, a little warm: dry, by pr
    tas[1, 1:3, 1:3], pr[1, 1:3, 1:3] = 0.5, -3.0
    flags[3, 4, 5:7] = True      # a heat wave, a little wet: warm, by tas
    tas[3, 4, 5:7], pr[3, 4, 5:7] = 2.5, 0.4
    result = make_result(flags, np.arange(6.0), np.arange(8.0), anomaly=tas)
    result["pr_anomaly"] = result["tas_anomaly"].copy(data=pr)
    table = events(result)
    assert table["variable"].tolist() == ["pr", "tas"]
    assert table["sign"].tolist() == [-1, 1]
    assert table["mean_anomaly"].tolist() == pytest.approx([-3.0, 2.5])


def test_an_event_without_anomalies_has_no_sign():
    result = make_result(np.ones((2, 2, 2), dtype=bool), np.arange(2.0), np.arange(2.0)).drop_vars("tas_anomaly")
    row = events(result).iloc[0]
    assert (row["sign"], row["variable"]) == (0, "") and np.isnan(row["mean_anomaly"])


def test_no_flags_gives_an_empty_table():
    result = make_result(np.zeros((3, 4, 5), dtype=bool), np.arange(4.0), np.arange(5.0))
    table = events(result)
    assert list(table.columns) == list(COLUMNS) and len(table) == 0
    assert int(event_labels(result).max()) == 0


def test_max_area_is_the_largest_footprint_on_the_sphere():
    flags = np.zeros((3, 6, 6), dtype=bool)
    flags[0, 1:3, 1:4] = True  # 2 x 3 cells at 60-62 and 62-64 N
    flags[1, 1, 1] = True      # one cell, same event
    lat, lon = 59.5 + np.arange(6), 10.5 + np.arange(6)  # 1 degree cells, edges on whole degrees
    row = events(make_result(flags, lat, lon)).iloc[0]
    expected = 3 * (band_area(60, 61, 1) + band_area(61, 62, 1))
    assert row["duration"] == 2 and row["cells"] == 7
    assert row["max_area_km2"] == pytest.approx(expected, rel=1e-9)
    assert row["max_area_km2"] == pytest.approx(6 * 111.2**2 * np.cos(np.radians(61)), rel=0.01)


def test_consensus_is_averaged_where_scored():
    flags = np.zeros((2, 3, 3), dtype=bool)
    flags[0, 0, 0:2] = True
    consensus = np.full(flags.shape, np.nan)
    consensus[0, 0, 0] = 0.25  # the other flagged cell has no neighbour model
    row = events(make_result(flags, np.arange(3.0), np.arange(3.0), consensus=consensus)).iloc[0]
    assert row["consensus"] == 0.25


# -- connectivity, chunks, antimeridian ------------------------------------------------------

@pytest.mark.parametrize("connectivity,bridge,min_cells", [(1, False, 1), (2, False, 1), (1, True, 2), (2, True, 3)])
def test_labels_match_the_whole_cube_for_every_chunking(connectivity, bridge, min_cells):
    result = global_grid(nt=7, ny=6, nx=12, seed=connectivity + 2 * bridge, density=0.25 if connectivity == 1 else 0.1)
    expected = reference_labels(result["ensemble"].values, connectivity, True, bridge, min_cells)
    assert expected.max() > 3
    options = dict(connectivity=connectivity, bridge_gaps=bridge, min_cells=min_cells)
    for chunks in ({}, {"time": 1, "lon": 5}, {"time": 3, "lat": 1, "lon": 7}):
        labels = event_labels(result.chunk(chunks) if chunks else result, **options)
        np.testing.assert_array_equal(labels.values, expected, err_msg=str(chunks))
    if connectivity == 1 and bridge:  # the table's ids and sizes are the labels' (once is enough: it is slow)
        table = events(result.chunk({"time": 2, "lat": 3, "lon": 4}), **options)
        assert table["event"].tolist() == list(range(1, expected.max() + 1))
        assert table["cells"].tolist() == np.bincount(expected.ravel())[1:].tolist()


def test_an_event_across_the_antimeridian_is_one_event():
    flags = np.zeros((3, 4, 12), dtype=bool)
    flags[1, 1:3, [0, 1, 11]] = True  # columns at -165, -135 and 165 degrees
    lon = np.arange(12) * 30.0 - 165.0
    result = make_result(flags, np.array([-30.0, -10.0, 10.0, 30.0]), lon).chunk({"lon": 6})
    table = events(result)
    assert len(table) == 1 and table.iloc[0]["cells"] == 6
    assert table.iloc[0]["lon"] == pytest.approx(-165.0)  # circular mean of 165, -165, -135
    assert table.iloc[0]["lat"] == pytest.approx(0.0)
    # the same cells on a regional grid (not closing the globe) are two events
    regional = make_result(flags, np.array([-30.0, -10.0, 10.0, 30.0]), np.arange(12) * 5.0)
    assert len(events(regional)) == 2


def test_a_one_step_gap_is_bridged_only_when_asked():
    flags = np.zeros((7, 3, 3), dtype=bool)
    flags[[0, 1, 3], 1, 1] = True  # a one-step gap at step 2
    flags[6, 1, 1] = True           # a two-step gap after step 3: never bridged
    result = make_result(flags, np.arange(3.0), np.arange(3.0))
    assert len(events(result)) == 3
    bridged = events(result.chunk({"time": 1}), bridge_gaps=True)
    assert bridged["duration"].tolist() == [4, 1] and bridged["cells"].tolist() == [3, 1]
    labels = event_labels(result, bridge_gaps=True).values
    assert labels[2, 1, 1] == 0  # the gap itself is not flagged


def test_gaps_are_bridged_only_in_the_same_cell():
    flags = np.zeros((3, 3, 3), dtype=bool)
    flags[0, 1, 1] = flags[2, 1, 2] = True
    result = make_result(flags, np.arange(3.0), np.arange(3.0))
    assert len(events(result, bridge_gaps=True, connectivity=2)) == 2


def test_connectivity_two_joins_corners_in_space_and_time():
    flags = np.zeros((2, 3, 3), dtype=bool)
    flags[0, 0, 0] = flags[1, 1, 1] = True
    flags[0, 2, 2] = flags[0, 1, 2] = True
    result = make_result(flags, np.arange(3.0), np.arange(3.0))
    assert len(events(result, connectivity=1)) == 3
    assert len(events(result, connectivity=2)) == 1


def test_min_cells_drops_small_events_and_renumbers():
    flags = np.zeros((4, 5, 5), dtype=bool)
    flags[0, 0, 0] = True             # 1 cell
    flags[1, 2:4, 2:4] = True         # 4 cells
    flags[2, 0, 4] = flags[3, 0, 4] = True  # 2 cells over two steps
    result = make_result(flags, np.arange(5.0), np.arange(5.0))
    assert events(result)["cells"].tolist() == [1, 4, 2]
    table = events(result, min_cells=2)
    assert table["event"].tolist() == [1, 2] and table["cells"].tolist() == [4, 2]
    labels = event_labels(result.chunk({"time": 1, "lat": 2}), min_cells=2).values
    assert labels[0, 0, 0] == 0 and labels[1, 2, 2] == 1 and labels[3, 0, 4] == 2


def test_curvilinear_grids_work():
    ny, nx = 6, 8
    y, x = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    lat = 40.0 + 1.0 * y + 0.3 * x  # a rotated grid, like an ocean model's
    lon = -30.0 + 1.0 * x - 0.3 * y
    flags = np.zeros((3, ny, nx), dtype=bool)
    flags[1, 2:4, 3:5] = True
    tiles = np.asarray(ga.geohash.encode(lat, lon, 3))
    result = make_result(flags, lat, lon, dims=("y", "x"), tiles=tiles).chunk({"x": 4, "y": 3})
    table = events(result)
    assert len(table) == 1
    row = table.iloc[0]
    assert row["lat"] == pytest.approx(lat[2:4, 3:5].mean(), abs=0.05)
    assert row["lon"] == pytest.approx(lon[2:4, 3:5].mean(), abs=0.05)
    assert row["tiles"].split() == sorted(set(tiles[2:4, 3:5].ravel()))
    assert row["max_area_km2"] == pytest.approx(4 * 1.09 * 111.2**2 * np.cos(np.radians(lat[2:4, 3:5].mean())), rel=0.05)
    labels = event_labels(result)
    assert labels.dims == ("time", "y", "x") and int(labels.sum()) == 4


def test_given_labels_give_the_same_table():
    result = global_grid(seed=3)
    labels = event_labels(result, min_cells=2).compute()
    given = events(result.chunk({"lat": 2, "time": 2}), labels=labels)  # in-memory labels split as the result is
    pd.testing.assert_frame_equal(given, events(result, min_cells=2))
    assert given["event"].tolist() == list(range(1, int(labels.max()) + 1))


def test_bad_arguments_raise_one_sentence():
    result = global_grid()
    with pytest.raises(VariableNotFoundError, match="no flag variable 'flagged'"):
        events(result, flag="flagged")
    with pytest.raises(GeoanomError, match="connectivity must be 1"):
        event_labels(result, connectivity=3)
    with pytest.raises(GeoanomError, match="min_cells"):
        events(result, min_cells=0)
    four_d = result.assign(anomalous=result["ensemble"].expand_dims(detector=["gmm"]))
    with pytest.raises(GeoanomError, match="select one detector"):
        events(four_d, flag="anomalous")
    with pytest.raises(GeoanomError, match="labels must be"):
        events(result, labels=result["ensemble"].isel(time=0))


# -- a real scored result -------------------------------------------------------------------

@pytest.fixture(scope="module")
def scored():
    cube = ga.sample_cube("north_america").isel(lat=slice(0, 8), lon=slice(0, 10))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ga.fit(cube.isel(time=slice(0, 60)), detectors=("gmm", "kmeans"))
    return model.score(cube.isel(time=slice(60, 120)), consensus="neighbours")


def test_a_scored_result_gives_consistent_events(scored, tmp_path):
    table = events(scored)
    labels = event_labels(scored).values
    flags = scored["ensemble"].values
    assert len(table) > 3
    np.testing.assert_array_equal(labels > 0, flags)
    anomaly = scored["air_temperature_anomaly"].values
    times = scored["time"].values
    for row in table.itertuples():
        inside = labels == row.event
        steps = np.flatnonzero(inside.any(axis=(1, 2)))
        assert (row.start, row.end, row.cells) == (times[steps[0]], times[steps[-1]], inside.sum())
        assert row.sign == np.sign(anomaly[inside].mean())
        assert row.peak_irregularity == pytest.approx(scored["fused_irregularity"].values[inside].max())
        assert set(row.tiles.split()) <= set(scored["tile"].attrs["flag_meanings"].split())
        agree = scored["consensus"].values[inside]
        assert row.consensus == pytest.approx(np.nanmean(agree)) if np.isfinite(agree).any() else np.isnan(row.consensus)
    # a stored copy, read back lazily in other chunks, gives the same catalogue
    scored.drop_vars(["irregularity", "anomalous"]).to_zarr(tmp_path / "result.zarr")
    stored = xr.open_zarr(tmp_path / "result.zarr").chunk({"time": 7, "lat": 4})
    pd.testing.assert_frame_equal(events(stored), table)


@pytest.mark.parametrize("bridge_gaps", [False, True])
@pytest.mark.parametrize("time_chunk", [2, 3, 7])
def test_events_do_not_join_steps_across_a_gap_in_the_time_axis(bridge_gaps, time_chunk):
    # an append after three missing months joined March to July into one event of "duration 2"
    flags = np.zeros((7, 2, 3), dtype=bool)
    flags[1:3, 0, 0] = flags[3:5, 0, 0] = True  # one cell flagged from the second step to the fifth
    flags[5, 1, 2] = flags[6, 1, 2] = True
    result = make_result(flags, [0.0, 1.0], [0.0, 1.0, 2.0])
    months = pd.date_range("2001-01-01", periods=10, freq="MS").delete([3, 4, 5])  # April to June missing
    gapped = result.assign_coords(time=months).chunk({"time": time_chunk})
    labels = event_labels(gapped, bridge_gaps=bridge_gaps).values
    assert labels[1, 0, 0] == labels[2, 0, 0] != labels[3, 0, 0] == labels[4, 0, 0]  # split at the gap
    assert int(event_labels(result.chunk({"time": time_chunk}), bridge_gaps=bridge_gaps).max()) == 2  # no gap: 2
    table = events(gapped, bridge_gaps=bridge_gaps)
    assert table["event"].tolist() == [1, 2, 3] and table["duration"].tolist() == [2, 2, 2]
    assert table["end"].tolist()[0] == pd.Timestamp("2001-03-01")  # before the gap
    assert table["start"].tolist()[1] == pd.Timestamp("2001-07-01")  # after it


def test_the_table_is_bit_identical_for_every_chunking():
    # float sums in other partial sums differed in the last bits (areas, centroids, means): DataFrame.equals failed
    rng = np.random.default_rng(7)
    flags = rng.random((6, 20, 36)) < 0.45
    lat, lon = np.linspace(-81.3, 79.9, 20), np.arange(36) * 10.0 - 177.7
    result = make_result(flags, lat, lon, fused=rng.gamma(2.0, 1.3, flags.shape),
                         anomaly=rng.normal(0.0, 2.0, flags.shape), consensus=rng.random(flags.shape))
    whole = events(result)
    assert len(whole) > 5 and whole["cells"].max() > 100
    for chunks in ({"time": 1, "lon": 5}, {"time": 4, "lat": 3, "lon": 7}, {"lat": 11}):
        table = events(result.chunk(chunks))
        assert table.equals(whole), str(chunks)


@pytest.mark.parametrize("time_chunk", [1, 2, 5])
def test_bridge_gaps_does_not_cross_a_step_with_no_data(time_chunk):
    # trial A: flags in May and July with June missing everywhere were one event "2015-05 -> 2015-07, duration 3"
    flags = np.zeros((6, 2, 3), dtype=bool)
    flags[[1, 3], 0, 0] = True  # step 2 has no data anywhere
    flags[[3, 5], 1, 2] = True  # step 4 has data and no flag: quiet, bridged
    anomaly = np.where(flags, 1.5, 0.1)
    anomaly[2] = np.nan
    fused = np.where(flags, 2.0, 0.5)
    fused[2] = np.nan
    result = make_result(flags, [0.0, 1.0], [0.0, 1.0, 2.0], anomaly=anomaly, fused=fused).chunk({"time": time_chunk})
    table = events(result, bridge_gaps=True)
    assert table["duration"].tolist() == [1, 1, 3] and table["cells"].tolist() == [1, 1, 2]
    labels = event_labels(result, bridge_gaps=True).values
    assert labels[1, 0, 0] != labels[3, 0, 0] and labels[3, 1, 2] == labels[5, 1, 2]
    # a result without anomalies: the fused irregularity says where data are
    assert len(events(result.drop_vars("tas_anomaly"), bridge_gaps=True)) == 3
