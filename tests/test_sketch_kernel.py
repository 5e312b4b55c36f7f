"""The compiled sketches of a block (sketch_tiles) are TileSketch.from_rows of each tile's valid rows."""

import numpy as np

from geoanom.detectors.hashing import GOLDEN_GAMMA, splitmix64_mix
from geoanom.detectors.sketch import TileSketch, observation_keys, seed_term, sketch_tiles
from geoanom.tiling import group_cells


def _numpy_sketches(features, codes, time_index, cell_index, seed, capacity):
    """The reference: gather each tile's rows, drop the invalid, TileSketch.from_rows."""
    n_features, n_times = features.shape[:2]
    flat = features.reshape(n_features, n_times, -1)
    keys = observation_keys(time_index, cell_index, seed)
    out = {}
    for code, cells in group_cells(codes):
        rows = flat[:, :, cells].reshape(n_features, -1).T
        valid = np.isfinite(rows).all(axis=1)
        if valid.any():
            out[code] = TileSketch.from_rows(rows[valid], keys[:, cells].ravel()[valid], capacity)
    return out


def test_compiled_sketches_hold_the_same_sample_count_and_moments():
    rng = np.random.default_rng(5)
    features = rng.normal(size=(2, 30, 6, 7))
    features[0, 3, 1, 1] = np.nan  # one feature missing drops the row
    features[:, :, 5, :] = np.nan  # a tile row all NaN
    codes = np.repeat(np.arange(3), 14).reshape(6, 7)
    codes[0, 0] = -1  # a cell of no tile
    codes[5, :] = 3  # tile 3 has no valid value: no sketch
    time_index, cell_index = np.arange(100, 130), np.arange(42) + 1000
    capacity = 64  # below most tiles' counts: the bottom-k choice matters
    expected = _numpy_sketches(features, codes, time_index, cell_index, 11, capacity)
    got = sketch_tiles(features.reshape(2, 30, -1), group_cells(codes), time_index, cell_index, 11, capacity)
    assert sorted(got) == sorted(expected) == [0, 1, 2]
    for code, sketch in expected.items():
        assert got[code].count == sketch.count
        np.testing.assert_array_equal(got[code].keys, sketch.keys)
        np.testing.assert_array_equal(got[code].rows, sketch.rows)
        np.testing.assert_allclose(got[code].mean, sketch.mean, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(got[code].scatter, sketch.scatter, rtol=1e-12, atol=1e-12)


def test_a_tile_smaller_than_the_capacity_keeps_every_row_in_key_order():
    features = np.arange(24.0).reshape(1, 4, 6)
    [(code, sketch)] = sketch_tiles(features, [(2, np.array([1, 4]))], np.arange(4), np.arange(6), 3).items()
    assert code == 2 and sketch.count == 8 and len(sketch.rows) == 8
    assert np.all(np.diff(sketch.keys.astype(np.float64)) > 0)
    assert sorted(sketch.rows[:, 0].tolist()) == [1.0, 4.0, 7.0, 10.0, 13.0, 16.0, 19.0, 22.0]


def test_the_seed_term_is_the_one_of_the_observation_keys():
    z = (np.uint64(5) << np.uint64(32)) ^ np.uint64(9) ^ seed_term(7)
    assert observation_keys(np.array([5]), np.array([9]), 7)[0, 0] == splitmix64_mix(np.array([z]) + GOLDEN_GAMMA)[0]
