"""A block that holds the whole grid makes its neighbours and background in its own task, to the bit as the halo did."""

import dask
import dask.array as da
import numpy as np
import pytest

from geoanom.features import pipeline
from geoanom.features.climatology import Climatology
from geoanom.features.neighbourhood import (
    background_anomaly,
    background_anomaly_block,
    neighbour_anomaly,
    neighbour_anomaly_block,
)
from geoanom.features.pipeline import feature_cube, stack_variables
from geoanom.features.vectors import block_features
from geoanom.grid import wraps_in_longitude
from geoanom.testing import synthetic_cube


def bits(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array).view(f"u{array.dtype.itemsize}")


@pytest.mark.parametrize("wrap", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 9, 11), (1, 2, 5, 1), (1, 2, 5, 2), (1, 2, 1, 3), (1, 2, 20, 17)])
def test_a_whole_grid_block_gives_the_halos_bits(wrap, shape):
    rng = np.random.default_rng(sum(shape))
    # magnitudes from 1e-30 to 1e30 (sums that round), NaN and inf holes; grids 1 and 2 columns round too
    z = rng.normal(size=shape) * 10.0 ** rng.integers(-30, 30, size=shape)
    z[rng.random(shape) < 0.3] = np.nan
    z[rng.random(shape) < 0.02] = np.inf
    # the neighbours are exact across chunks; the ring's box sums round by where a block starts: one chunk
    chunked = da.from_array(z, chunks=(-1, -1, 4, 5))
    np.testing.assert_array_equal(bits(neighbour_anomaly_block(z, wrap)), bits(neighbour_anomaly(chunked, wrap).compute()))
    np.testing.assert_array_equal(bits(background_anomaly_block(z, wrap)),
                                  bits(background_anomaly(da.from_array(z), wrap).compute()))


def test_neighbours_wrap_round_the_grid():
    z = np.arange(9.0).reshape(1, 1, 3, 3)
    # cell (1, 0): 2 0 1 / 5 4 / 8 6 7 with wrap, less the largest and smallest
    assert neighbour_anomaly_block(z, wrap=True)[0, 0, 1, 0] == (33.0 - 8.0 - 0.0) / 6
    assert neighbour_anomaly_block(z, wrap=False)[0, 0, 1, 0] == (0.0 + 1 + 4 + 6 + 7 - 7 - 0) / 3


def test_context_is_nan_wherever_a_variable_is_and_nowhere_else():
    values = np.ones((2, 2, 3, 4), dtype=np.float32)
    values[0, 0, 1, 1] = np.nan
    values[1, 1, 2, 3] = np.inf
    anomalies = np.zeros(values.shape)
    out = block_features(values, anomalies, None, ("values", "neighbours", "background"),
                         in_block=("neighbours", "background"))
    assert out.shape == (8, 2, 3, 4)
    missing = ~np.isfinite(values).all(axis=0)
    assert np.isnan(out[4:]).sum() == 4 * missing.sum() and np.isnan(out[4:, missing]).all()
    np.testing.assert_array_equal(out[:2], values)  # the values and anomalies stay as they are
    np.testing.assert_array_equal(out[2:4], anomalies)


def global_cube():
    """A regular grid round the globe (wraps), with holes, two variables."""
    cube, _ = synthetic_cube(n_years=3, n_lat=10, n_lon=16, seed=2)
    cube = cube.assign_coords(lon=-180.0 + (np.arange(16) + 0.5) * 22.5)
    tas = cube["tas"].values.copy()
    tas[4:9, 2:5, 0:3] = np.nan
    tas[:, 7, 15] = np.nan
    cube["tas"] = cube["tas"].copy(data=tas)
    cube["psl"] = (cube["tas"] * 0.5 + 1000.0).astype(np.float32)
    return cube


def curvilinear_cube():
    """A slanted curvilinear grid (does not wrap), with a hole."""
    cube, _ = synthetic_cube(n_years=3, n_lat=12, n_lon=10, seed=4)
    cube["tas"][3:7, 0:4, 6:] = np.nan
    y, x = np.meshgrid(np.arange(12), np.arange(10), indexing="ij")
    flat = cube.rename(lat="y", lon="x").drop_vars(["y", "x"])
    return flat.assign_coords(lat=(("y", "x"), 40 + 0.8 * y + 0.1 * x), lon=(("y", "x"), -30 + 0.9 * x - 0.2 * y))


@pytest.mark.parametrize("make, wraps", [(global_cube, True), (curvilinear_cube, False)])
@pytest.mark.parametrize("training", [False, True])
def test_whole_grid_blocks_give_the_halos_features_to_the_bit(monkeypatch, make, wraps, training):
    cube = make()
    assert wraps_in_longitude(cube) == wraps
    variables = list(cube.data_vars)
    values = stack_variables(cube.chunk({"time": 10}), variables)
    climatology = Climatology.fit(values)
    sets = ("values", "neighbours", "background")
    whole = feature_cube(values, climatology, sets, training=training)
    assert not any("overlap" in str(key) or "trim" in str(key) for key in dict(whole.__dask_graph__()))  # no halo
    monkeypatch.setattr(pipeline, "IN_BLOCK_SETS", ())  # every context set through the halo, as before
    halo = feature_cube(values, climatology, sets, training=training)
    assert any("overlap" in str(key) for key in dict(halo.__dask_graph__()))
    with dask.config.set(scheduler="sync"):
        got, expected = whole.compute(), halo.compute()
    assert got.shape == (4 * len(variables),) + values.shape[1:] and np.isnan(got).any()
    np.testing.assert_array_equal(bits(got), bits(expected))
    # the neighbours are exact across chunks: blocks that split space (halo) give them too
    ydim, xdim = cube[variables[0]].dims[1:]
    split = feature_cube(stack_variables(cube.chunk({"time": 10, ydim: 4, xdim: 6}), variables), climatology,
                         ("anomalies", "neighbours"), training=training)
    with dask.config.set(scheduler="sync"):
        split = split.compute()
    np.testing.assert_array_equal(bits(split), bits(got[len(variables):3 * len(variables)]))
