"""Similarity between tiles: the Bhattacharyya distance of their fitted feature distributions."""

import time

import numpy as np
import pytest

import geoanom as ga
from geoanom.detectors import Ensemble
from geoanom.errors import GeoanomError, TileError
from geoanom.queries.similarity import (
    bhattacharyya_distances,
    cluster_moments,
    ensemble_moments,
    hellinger,
    mixture_moments,
)


def _random_gaussians(n, d, seed=0):
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(n, d, d))
    return rng.normal(size=(n, d)) * 3, factors @ np.swapaxes(factors, 1, 2) + 0.1 * np.eye(d)


def _textbook(mean_a, cov_a, mean_b, cov_b):
    """The Bhattacharyya distance of two Gaussians, written out with numpy's dense linear algebra."""
    mean_cov = (cov_a + cov_b) / 2
    delta = mean_b - mean_a
    return (delta @ np.linalg.inv(mean_cov) @ delta / 8
            + 0.5 * np.log(np.linalg.det(mean_cov) / np.sqrt(np.linalg.det(cov_a) * np.linalg.det(cov_b))))


def test_the_distances_are_the_textbook_formula_symmetric_and_zero_on_the_diagonal():
    means, covariances = _random_gaussians(12, 3)
    distances = bhattacharyya_distances(means, covariances)
    expected = np.array([[_textbook(means[i], covariances[i], means[j], covariances[j]) for j in range(12)]
                         for i in range(12)])
    np.testing.assert_allclose(distances, expected, rtol=1e-6, atol=1e-9)
    np.testing.assert_array_equal(distances, distances.T)
    assert (np.diag(distances) == 0).all() and (distances[~np.eye(12, dtype=bool)] > 0).all()
    # one set against another gives the same numbers as the rows of the whole matrix
    np.testing.assert_allclose(bhattacharyya_distances(means[:3], covariances[:3], means, covariances),
                               distances[:3], rtol=1e-8, atol=1e-12)  # the ridge is in slightly other units


def test_known_values_in_one_dimension():
    means, covariances = np.array([[0.0], [2.0], [0.0]]), np.array([[[1.0]], [[1.0]], [[4.0]]])
    distances = bhattacharyya_distances(means, covariances)
    assert distances[0, 1] == pytest.approx(0.5)  # (2 ** 2) / 8
    assert distances[0, 2] == pytest.approx(0.5 * np.log(2.5 / 2.0))
    assert hellinger(distances)[0, 1] == pytest.approx(np.sqrt(1 - np.exp(-0.5)))


def test_units_do_not_matter_and_huge_or_degenerate_variances_stay_finite():
    means, covariances = _random_gaussians(20, 4, seed=1)
    scale = np.array([1e5, 1e-4, 1.0, 3e3])  # e.g. pressure in Pa next to a ratio
    rescaled = bhattacharyya_distances(means * scale + 7.0, covariances * np.outer(scale, scale))
    np.testing.assert_allclose(rescaled, bhattacharyya_distances(means, covariances), rtol=1e-6, atol=1e-9)
    covariances[3] = 0.0  # a tile whose features never varied
    distances = bhattacharyya_distances(means, covariances)
    assert np.isfinite(distances).all() and distances[3, 3] == 0


def test_all_pairs_of_two_thousand_tiles_take_well_under_two_seconds():
    means, covariances = _random_gaussians(2000, 4, seed=2)
    bhattacharyya_distances(means[:2], covariances[:2])  # compiled (or loaded from the cache) once
    start = time.perf_counter()
    distances = bhattacharyya_distances(means, covariances)
    assert time.perf_counter() - start < 2.0
    assert distances.shape == (2000, 2000) and np.isfinite(distances).all()


def test_moments_of_each_family_match_the_training_data():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(size=(400, 2)), rng.normal(size=(200, 2)) * 0.5 + [4.0, -1.0]]) * [10.0, 0.1]
    mean, covariance = X.mean(axis=0), np.cov(X.T, bias=True)
    for family, tolerance in (("gmm", 0.05), ("dpmm", 0.05), ("kmeans", 1e-9), ("iforest", 0.2)):
        found_mean, found_cov = ensemble_moments(Ensemble((family,), random_state=0).fit(X))
        std = X.std(axis=0)  # errors in the data's spreads: the features' units differ a hundredfold
        assert np.abs((found_mean - mean) / std).max() < tolerance, family
        assert np.abs((found_cov - covariance) / np.outer(std, std)).max() < tolerance, family


def test_moments_of_the_event_family_where_one_group_covers_every_feature():
    X = np.random.default_rng(4).multivariate_normal([1.0, -2.0], [[4.0, 0.6], [0.6, 0.25]], size=3000)
    for params in ({}, {"pairs": 1}):
        ensemble = Ensemble(("event",), random_state=0).fit(X) if not params else Ensemble.fit_many(
            [X], ("event",), [0], params={"event": params})[0]
        found_mean, found_cov = ensemble_moments(ensemble)
        std = X.std(axis=0)
        assert np.abs((found_mean - X.mean(axis=0)) / std).max() < 0.05, params
        assert np.abs((found_cov - np.cov(X.T, bias=True)) / np.outer(std, std)).max() < 0.1, params
    two_pairs = Ensemble.fit_many([np.hstack([X, X[::-1]])], ("event",), [0], params={"event": {"pairs": 2}})[0]
    with pytest.raises(GeoanomError, match="tile"):
        ensemble_moments(two_pairs)


def test_mixture_and_cluster_moments_agree_on_two_point_masses():
    means = np.array([[-1.0, 0.0], [1.0, 2.0]])
    center, scale = np.array([5.0, 5.0]), np.array([2.0, 1.0])
    from_mixture = mixture_moments(np.array([1.0, 3.0]), means, np.zeros((2, 2, 2)), center, scale)
    from_clusters = cluster_moments(np.array([10.0, 30.0]), means, np.zeros((2, 2, 2)), center, scale)
    np.testing.assert_allclose(from_mixture[0], from_clusters[0])
    np.testing.assert_allclose(from_mixture[1], from_clusters[1])
    np.testing.assert_allclose(from_mixture[0], center + scale * np.array([0.5, 1.5]))


@pytest.fixture(scope="module")
def values_model(opened_cube):
    """Tiles judged on their raw temperatures, which differ from south to north."""
    return ga.fit(opened_cube.isel(time=slice(None, 72)), precision=2, detectors="kmeans", features="values")


def test_tile_distances_of_a_model(values_model):
    distances = values_model.tile_distances()
    assert distances.dims == ("tile", "other_tile") and list(distances["tile"].values) == values_model.tiles
    values = distances.values
    np.testing.assert_array_equal(values, values.T)
    assert (np.diag(values) == 0).all() and np.isfinite(values).all() and (values >= 0).all()
    assert "Bhattacharyya" in distances.attrs["long_name"]
    assert np.isfinite(distances["tile_lat"]).all()


def test_similar_tiles_are_the_nearest_and_lie_at_similar_latitudes(values_model, opened_cube):
    distances = values_model.tile_distances()
    tile = values_model.tiles[len(values_model.tiles) // 2]
    table = values_model.similar_tiles(tile, k=4)
    assert list(table.columns[:3]) == ["tile", "distance", "hellinger"] and len(table) == 4
    assert tile not in set(table["tile"]) and table["distance"].is_monotonic_increasing
    row = distances.sel(tile=tile).drop_sel(other_tile=tile)
    np.testing.assert_allclose(table["distance"], np.sort(row.values)[:4], rtol=1e-8)
    # the temperature falls with latitude, so the most alike tiles are at nearby latitudes
    own_lat = float(distances["tile_lat"].sel(tile=tile))
    all_gaps = np.abs(distances["tile_lat"].values - own_lat)
    assert np.abs(table["lat"] - own_lat).mean() < np.median(all_gaps)


def test_an_unknown_tile_is_named(values_model):
    with pytest.raises(TileError, match="tile 'zz'"):
        values_model.similar_tiles("zz")
    with pytest.raises(GeoanomError, match="k=0"):
        values_model.similar_tiles(values_model.tiles[0], k=0)


def test_a_default_model_compares_its_tiles(fitted_model, opened_cube):
    # the README's example crashed on the default five families: the describing family (gmm) reads
    # (anomaly, neighbours), while the model's features also hold the event family's background ring
    assert len(fitted_model.attrs["feature_names"]) == 3
    table = fitted_model.similar_tiles(fitted_model.tiles[0], k=3)
    assert len(table) == 3 and np.isfinite(table["distance"]).all()
    distances = fitted_model.tile_distances().values
    assert distances.shape == (len(fitted_model.tiles),) * 2 and np.isfinite(distances).all()
    consensus = fitted_model.score(opened_cube.isel(time=slice(0, 6)), consensus="similar")["consensus"].values
    assert np.nanmax(consensus) <= 1 and np.isfinite(consensus).any()
