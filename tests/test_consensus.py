"""Consensus: the share of other tiles' ensembles that also flag an observation."""

import warnings

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import GeoanomError, TileError
from geoanom.queries.consensus import neighbour_partners, parse_consensus, region_partners, similar_partners


@pytest.fixture(scope="module")
def model(opened_cube):
    return ga.fit(opened_cube.isel(time=slice(None, 72)), precision=2, detectors=("gmm", "kmeans", "dpmm"))


@pytest.fixture(scope="module")
def cube(opened_cube):
    """A year after training (chunked so that blocks cut through tiles)."""
    return opened_cube.isel(time=slice(96, 108)).chunk({"time": 6, "lat": 8, "lon": 12})


def _one_model_flags(model, cube, tile):
    """How ``tile``'s ensemble alone judges every cell's own features (the public ``tile=`` option)."""
    with warnings.catch_warnings():  # it warns that anomaly features are compared, which is what we want
        warnings.simplefilter("ignore", ga.GeoanomWarning)
        return model.score(cube, tile=tile)["ensemble"].compute()


def test_neighbour_consensus_is_the_share_of_neighbouring_ensembles_flagging_the_features(model, cube):
    result = model.score(cube, consensus="neighbours")
    consensus = result["consensus"].compute()
    partners = model.consensus_partners("neighbours")
    tile = "dp"  # eight partners that agree in part on these data (not only all or none)
    assert set(partners[tile]) <= set(model.ensembles) and 0 < len(partners[tile]) <= 8
    expected = sum(_one_model_flags(model, cube, other).astype(float) for other in partners[tile]) / len(partners[tile])
    cells = ga.tile_names(result) == tile
    assert np.unique(expected.where(cells)).size > 3  # NaN and partners agreeing in part, not only all or none
    np.testing.assert_allclose(consensus.where(cells), expected.where(cells).astype(np.float32), rtol=0, atol=1e-7)


def test_consensus_is_lazy_float32_in_0_1_and_changes_nothing_else(model, cube):
    before = {tile: ensemble.detectors_["gmm"].means_.copy() for tile, ensemble in model.ensembles.items()}
    result = model.score(cube, consensus="similar")
    assert result["consensus"].chunks is not None and result["consensus"].dtype == np.float32
    assert result["consensus"].dims == result["ensemble"].dims
    computed = result.compute()
    values = computed["consensus"].values
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1 and np.isfinite(values).any()
    assert 0 < np.nanmean(values) < 1
    xr.testing.assert_identical(computed.drop_vars("consensus"), model.score(cube).compute())
    for tile, ensemble in model.ensembles.items():
        np.testing.assert_array_equal(ensemble.detectors_["gmm"].means_, before[tile])
    attrs = computed["consensus"].attrs
    assert attrs["geoanom_consensus"] == "similar" and "share" in attrs["long_name"]
    assert attrs["geoanom_detectors"] == "gmm,kmeans,dpmm" and "flag_values" not in attrs


def test_the_chunking_does_not_change_the_consensus(model, cube):
    once = model.score(cube, consensus="neighbours")["consensus"].compute()
    other = model.score(cube.chunk({"time": 5, "lat": 5, "lon": 9}), consensus="neighbours")["consensus"].compute()
    xr.testing.assert_identical(once, other)


def test_region_consensus_covers_the_region_only(model, cube):
    result = model.score(cube, consensus="region:d").compute()
    inside = ga.tile_names(result).str.startswith("d")
    assert result["consensus"].where(~inside).isnull().all()
    assert result["consensus"].where(inside).notnull().any()
    partners = model.consensus_partners("region:d")
    assert all(tile.startswith("d") and tile not in others for tile, others in partners.items())


def test_similar_partners_are_the_five_nearest_tiles(model):
    partners = model.consensus_partners("similar")
    for tile, others in partners.items():
        assert others == list(model.similar_tiles(tile, k=5)["tile"])


@pytest.mark.parametrize("spec, message", [
    ("foo", "consensus 'foo' is not one of"),
    ("region:", "is not one of"),
    ("neighbours:dj", "is not one of"),
    ("region:z", "region 'z' holds no fitted tile"),
    ("region:dj", "region 'dj' is not a region of this model: regions are .* so of 1 character"),
])
def test_a_bad_spec_is_refused_in_one_sentence(model, cube, spec, message):
    with pytest.raises(GeoanomError, match=message) as refused:
        model.score(cube, consensus=spec)
    assert str(refused.value).count(". ") == 0


def test_consensus_and_one_tile_for_every_cell_do_not_mix(model, cube):
    with pytest.raises(TileError, match="cannot be combined with tile='dj'"):
        model.score(cube, tile="dj", consensus="neighbours")


def test_partner_rules_on_plain_names():
    assert parse_consensus(" region:DJ ").prefix == "dj"
    assert neighbour_partners(["dj", "9g"], {"dn", "dk", "zz"}) == {"dj": ["dk", "dn"]}
    distances = np.array([[0.0, 2.0, 1.0], [2.0, 0.0, 3.0], [1.0, 3.0, 0.0]])
    assert similar_partners(["a", "b", "c"], distances, k=5) == {"a": ["c", "b"], "b": ["a", "c"], "c": ["a", "b"]}
    assert region_partners("d", {"dj", "dn", "9g"}, 3) == {"dj": ["dn"], "dn": ["dj"]}
