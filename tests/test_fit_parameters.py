"""geoanom.fit's sample_size: refused in one sentence where no model could be right, never a numpy traceback."""

import pytest

import geoanom as ga
from geoanom.detectors.limits import MIN_TILE_ROWS
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
