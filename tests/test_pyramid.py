"""Tile models merged up the geohash prefix tree: model.region and scoring by a coarser region."""

import numpy as np
import pytest

from geoanom.errors import TileError
from geoanom.model.pyramid import build_pyramid


def test_a_region_holds_every_sample_of_its_tiles(fitted_model):
    prefix = sorted(fitted_model.tiles)[0][0]
    region = fitted_model.region(prefix)
    inside = [t for t in fitted_model.tiles if t.startswith(prefix)]
    for family in fitted_model.detectors:
        expected = sum(fitted_model.ensembles[t].detectors_[family].n_samples_ for t in inside)
        assert region.detectors_[family].n_samples_ == pytest.approx(expected)
    # the mixture's overall mean is exact: the sample-weighted mean of the tiles' means
    gmm = [fitted_model.ensembles[t].detectors_["gmm"] for t in inside]
    counts = np.array([d.n_samples_ for d in gmm])
    means = np.array([d.center_ for d in gmm])
    np.testing.assert_allclose(region.detectors_["gmm"].center_, counts @ means / counts.sum(), rtol=1e-8)


def test_the_tree_shape_does_not_change_a_region(fitted_model):
    narrow = build_pyramid(fitted_model.ensembles, fitted_model.precision, split_every=2)
    wide = build_pyramid(fitted_model.ensembles, fitted_model.precision, split_every=64)
    assert narrow.keys() == wide.keys()
    for prefix in narrow:
        a, b = narrow[prefix].detectors_["gmm"], wide[prefix].detectors_["gmm"]
        assert a.n_samples_ == b.n_samples_
        np.testing.assert_allclose(a.center_, b.center_, rtol=1e-8)


def test_scoring_with_a_region_judges_its_own_training_data_normal(fitted_model, opened_cube):
    prefix = sorted(fitted_model.tiles)[0][0]
    half = opened_cube.sizes["time"] // 2
    training = opened_cube.isel(time=slice(None, half))
    scores = fitted_model.score(training, tile=prefix)
    assert scores["irregularity"].attrs["geoanom_scored_by_tile"] == prefix
    inside = (fitted_model.labels.str.startswith(prefix)).values
    flagged = scores["ensemble"].values[:, inside].mean()
    assert flagged < 0.1


def test_unknown_or_too_long_regions_are_refused(fitted_model):
    with pytest.raises(TileError, match="holds no fitted tile"):
        fitted_model.region("0")
    with pytest.raises(TileError, match="1 to"):
        fitted_model.region("dj4")
    tile = fitted_model.tiles[0]
    assert fitted_model.region(tile) is fitted_model.ensembles[tile]
