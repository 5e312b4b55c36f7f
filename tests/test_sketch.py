"""Mergeable tile sketches: exact moments and an order-free bottom-k sample."""

import numpy as np

from geoanom.detectors.sketch import TileSketch, merge_sketch_maps, observation_keys


def _rows_and_keys(n_times=50, n_cells=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = rng.normal(size=(n_times * n_cells, 3)) * [1.0, 10.0, 0.1] + [5.0, -3.0, 280.0]
    keys = observation_keys(np.arange(n_times), np.arange(n_cells), seed=11).ravel()
    return rows, keys


def test_keys_depend_on_position_and_seed_only():
    keys = observation_keys(np.arange(10), np.arange(20), seed=3)
    np.testing.assert_array_equal(keys[4:7, 5:9], observation_keys(np.arange(4, 7), np.arange(5, 9), seed=3))
    assert len(np.unique(keys)) == keys.size
    assert not np.array_equal(keys, observation_keys(np.arange(10), np.arange(20), seed=4))


def test_merging_halves_equals_sketching_the_whole():
    rows, keys = _rows_and_keys()
    whole = TileSketch.from_rows(rows, keys, capacity=256)
    parts = [TileSketch.from_rows(rows[i::3], keys[i::3], capacity=256) for i in range(3)]
    merged = parts[0].merge(parts[1]).merge(parts[2])
    assert merged.count == whole.count == len(rows)
    np.testing.assert_allclose(merged.mean, rows.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(merged.covariance, np.cov(rows.T), rtol=1e-8)
    np.testing.assert_array_equal(merged.keys, whole.keys)
    np.testing.assert_array_equal(merged.rows, whole.rows)


def test_merge_order_does_not_matter():
    rows, keys = _rows_and_keys()
    parts = [TileSketch.from_rows(rows[i::4], keys[i::4], capacity=100) for i in range(4)]
    left = ((parts[0].merge(parts[1])).merge(parts[2])).merge(parts[3])
    right = parts[3].merge(parts[2].merge(parts[0].merge(parts[1])))
    np.testing.assert_array_equal(left.rows, right.rows)
    np.testing.assert_allclose(left.scatter, right.scatter, rtol=1e-10)


def test_sample_is_uniform():
    rows, keys = _rows_and_keys(200, 100)
    sketch = TileSketch.from_rows(rows, keys, capacity=4000)
    # the sample's mean is within a few standard errors of the population's
    error = np.abs(sketch.rows.mean(axis=0) - rows.mean(axis=0)) / (rows.std(axis=0) / np.sqrt(4000))
    assert np.all(error < 4)


def test_merge_sketch_maps_by_tile():
    rows, keys = _rows_and_keys()
    a = {1: TileSketch.from_rows(rows[:100], keys[:100]), 2: TileSketch.from_rows(rows[100:200], keys[100:200])}
    b = {1: TileSketch.from_rows(rows[200:300], keys[200:300])}
    merged = merge_sketch_maps(a, b)
    assert merged[1].count == 200 and merged[2].count == 100
