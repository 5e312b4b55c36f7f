"""A tile's rows out of a block of features and its scores back in, compiled: the numpy selection's numbers."""

import numpy as np
from numba.core.registry import CPUDispatcher

from geoanom.features import tile_rows as module
from geoanom.features.tile_rows import place_scores, tile_rows


def _block(seed=0):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(3, 7, 20))
    features[0, 2, 5] = np.nan
    features[2, 4, 11] = np.inf
    features[1, 6, 3] = -np.inf
    return features


def test_rows_are_the_numpy_selection_in_its_order():
    features = _block()
    cells = np.array([11, 3, 5, 0, 19])
    rows, places = tile_rows(features, cells)
    expected = features[:, :, cells].reshape(3, -1).T
    valid = np.isfinite(expected).all(axis=1)
    assert np.array_equal(rows, expected[valid])
    assert np.array_equal(places, np.flatnonzero(valid))
    assert rows.flags["C_CONTIGUOUS"]


def test_scores_land_where_the_numpy_scatter_put_them_clipped_to_float32():
    features = _block(1)
    cells = np.array([4, 5, 11, 2])
    _, places = tile_rows(features, cells)
    largest = float(np.finfo(np.float32).max)
    scores = np.random.default_rng(2).lognormal(0.0, 2.0, size=(2, places.size))
    scores[0, :3] = [np.inf, -1e300, np.nan]
    out = np.full((2, 7, 20), np.nan, dtype=np.float32)
    place_scores(out, scores, places, cells)
    expected = np.full((2, 7 * cells.size), np.nan, dtype=np.float32)
    expected[:, places] = np.clip(scores, -largest, largest)
    reference = np.full((2, 7, 20), np.nan, dtype=np.float32)
    reference[:, :, cells] = expected.reshape(2, 7, cells.size)
    assert np.array_equal(out.view(np.uint32), reference.view(np.uint32))
    assert np.isfinite(out[0, 0, 4]) and out[0, 0, 4] == np.float32(largest)


def test_no_complete_row():
    features = np.full((2, 3, 4), np.nan)
    rows, places = tile_rows(features, np.array([0, 1]))
    assert rows.shape == (0, 2) and places.size == 0


def test_kernels_release_the_gil():
    kernels = [value for value in vars(module).values() if isinstance(value, CPUDispatcher)]
    assert len(kernels) == 2
    assert all(kernel.targetoptions.get("nogil") for kernel in kernels)
