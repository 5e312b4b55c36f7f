"""The reference paper's Table III idea on real data: each region has its own normal."""

import pytest

import geoanom as ga
from geoanom.model.result import tile_names

FLORIDA, HUDSON_BAY = "dj", "f4"


@pytest.fixture(scope="module")
def scores():
    cube = ga.sample_cube("north_america").sel(time=slice(None, "1959"))
    model = ga.fit(cube, precision=2, detectors="gmm,kmeans,dpmm,iforest", features="values")
    return {
        "own": model.score(cube).compute(),
        FLORIDA: model.score(cube, tile=FLORIDA).compute(),
        HUDSON_BAY: model.score(cube, tile=HUDSON_BAY).compute(),
    }


def _flagged_share(result, cells_of, flag="ensemble"):
    mine = tile_names(result) == cells_of
    return float(result[flag].where(mine).mean())


@pytest.mark.parametrize("region, other", [(FLORIDA, HUDSON_BAY), (HUDSON_BAY, FLORIDA)])
def test_normal_for_own_model_anomalous_for_the_other(scores, region, other):
    assert _flagged_share(scores["own"], region) < 0.05
    assert _flagged_share(scores[region], region) < 0.05  # the region's own tile model, asked directly
    assert _flagged_share(scores[other], region) > 0.95
    for detector in ("gmm", "kmeans", "dpmm"):
        by_other = scores[other]["anomalous"].sel(detector=detector)
        assert float(by_other.where(tile_names(scores[other]) == region).mean()) > 0.95, detector
