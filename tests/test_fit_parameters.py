"""geoanom.fit's sample_size and seed: refused in one sentence where no model could be right, never a numpy traceback."""

import numpy as np
import pytest

import geoanom as ga
from geoanom.detectors.limits import MIN_TILE_ROWS, resolve_seed
from geoanom.detectors.sketch import sketch_tiles
from geoanom.errors import ParameterError


@pytest.fixture(scope="module")
def cube():
    return ga.testing.synthetic_cube(n_years=2, n_lat=6, n_lon=8, anomaly_rate=0.0, seed=5)[0]


@pytest.mark.parametrize("sample_size", [2, 10, 0, 12.5])
def test_a_sample_size_below_the_least_accepted_is_refused_in_one_sentence(cube, sample_size):
    # 2 raised numpy's LinAlgError, 10 flagged 45% of clean unseen data
    with pytest.raises(ParameterError, match=rf"^sample_size must be a whole number of at least {MIN_TILE_ROWS}, "
                                             rf"got {sample_size}: [^.]*\(4096 by default\)\.$"):
        ga.fit(cube, sample_size=sample_size, precision=1)


def test_the_least_sample_size_fits(cube):
    model = ga.fit(cube, sample_size=MIN_TILE_ROWS, precision=1)
    assert model.attrs["sample_size"] == MIN_TILE_ROWS and model.ensembles


def test_a_sketch_refuses_a_seed_that_is_not_a_whole_number():
    features, groups = np.zeros((1, 2, 3)), [(0, np.arange(3))]
    for seed in (-1, 1.5):
        with pytest.raises(ParameterError, match=rf"^seed must be a whole number of 0 or more, got {seed}\.$"):
            sketch_tiles(features, groups, np.arange(2), np.arange(3), seed)
    with pytest.raises(ParameterError, match=r"^seed must be a whole number of 0 or more, got None: a model records"):
        sketch_tiles(features, groups, np.arange(2), np.arange(3), None)


def test_fit_with_seed_none_draws_a_seed_and_records_it(cube):
    # scikit-learn's random_state=None habit raised "unsupported operand type(s) for *: 'NoneType' and 'int'"
    model = ga.fit(cube, seed=None, precision=1, detectors="gmm,iforest")
    seed = model.attrs["seed"]
    assert isinstance(seed, int) and 0 <= seed < 2**32
    again = ga.fit(cube, seed=seed, precision=1, detectors="gmm,iforest")  # the recorded seed refits it identically
    tile = model.tiles[0]
    np.testing.assert_array_equal(model.ensembles[tile].irregularity(np.zeros((1, 2))),
                                  again.ensembles[tile].irregularity(np.zeros((1, 2))))


def test_a_seed_of_none_is_drawn_fresh_and_an_int_kept():
    drawn = {resolve_seed(None) for _ in range(4)}
    assert len(drawn) > 1 and all(0 <= seed < 2**32 for seed in drawn)
    assert resolve_seed(7) == 7
    with pytest.raises(ParameterError, match="^seed must be a whole number of 0 or more, got 'x'.$"):
        resolve_seed("x")
