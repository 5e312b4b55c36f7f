"""Tiles by cell centre, the automatic precision and the fit plan."""

import numpy as np
import xarray as xr

import geoanom as ga
from geoanom import geohash
from geoanom.tiling import choose_precision, plan_batches, tile_codes


def test_labels_are_the_geohash_of_each_cell_centre():
    cube = xr.Dataset(coords={"lat": [10.1, 20.2, 30.3], "lon": [-170.0, 0.5, 179.9]})
    labels = ga.tile_labels(cube, 3)
    assert labels.dims == ("lat", "lon")
    assert labels.sel(lat=20.2, lon=0.5).item() == geohash.encode(20.2, 0.5, 3).item()
    assert labels.attrs["precision"] == 3


def test_curvilinear_labels():
    lat = np.array([[10.0, 10.5], [11.0, 11.5]])
    lon = np.array([[100.0, 101.0], [100.2, 101.2]])
    cube = xr.Dataset(coords={"lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})
    labels = ga.tile_labels(cube, 5)
    assert labels.dims == ("y", "x")
    np.testing.assert_array_equal(labels.values, geohash.encode(lat, lon, 5))


def test_precision_for_north_america_is_two():
    cube = ga.sample_cube("north_america").sel(time=slice(None, "1959"))
    precision, reason = choose_precision(cube)
    assert precision == 2
    assert "2700 observations" in reason
    labels = ga.tile_labels(cube)
    assert labels.attrs["precision"] == 2 and "target" in labels.attrs["precision_reason"]


def test_precision_grows_with_training_length():
    cube = xr.Dataset(coords={"lat": np.arange(0, 10, 0.1), "lon": np.arange(0, 10, 0.1)})
    short, _ = choose_precision(cube, n_times=10)
    long, _ = choose_precision(cube, n_times=10_000)
    assert long > short


def test_plan_batches_sends_blocks_to_the_batches_that_need_them():
    codes = np.array([[0, 0, 1, 1], [0, 2, 2, 1], [3, 3, 2, 1]])
    plan = plan_batches(codes, ((2, 1), (2, 2)), max_tiles=1)
    assert sorted(plan.batch_of_tile) == [0, 1, 2, 3]
    tile2 = plan.blocks_of_batch[plan.batch_of_tile[2]]
    assert set(tile2) == {(0, 0), (0, 1), (1, 1)}
    tile3 = plan.blocks_of_batch[plan.batch_of_tile[3]]
    assert tile3 == [(1, 0)]


def test_tile_codes_round_trip():
    labels = np.array([["b", "a"], ["c", "a"]])
    codes, names = tile_codes(labels)
    np.testing.assert_array_equal(names[codes], labels)
