"""Tile models merged up the geohash prefix tree: model.region and scoring by a coarser region."""

import numpy as np
import pytest

from geoanom.errors import GeoanomWarning, TileError
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
    with pytest.warns(GeoanomWarning, match="not its values"):
        scores = fitted_model.score(training, tile=prefix)
    assert scores["irregularity"].attrs["geoanom_scored_by_tile"] == prefix
    inside = (fitted_model.labels.str.startswith(prefix)).values
    flagged = scores["ensemble"].values[:, inside].mean()
    assert flagged < 0.1


def test_unknown_or_too_long_regions_are_refused(fitted_model):
    with pytest.raises(TileError, match="holds no fitted tile"):
        fitted_model.region("0")
    with pytest.raises(TileError, match="shorter than the tiles \\(2 characters\\), so of 1 character"):
        fitted_model.region("dj4")
    tile = fitted_model.tiles[0]
    assert fitted_model.region(tile) is fitted_model.ensembles[tile]


def _two_tiles():
    """Two tiles' sketches of a 2-D cloud, and their fitted gmm + kmeans ensembles."""
    import dask

    from geoanom.detectors import Ensemble
    from geoanom.detectors.sketch import TileSketch

    rng = np.random.default_rng(0)
    rows = [rng.normal([0.0, 0.0], 1.0, (600, 2)), rng.normal([3.0, 1.0], [0.5, 2.0], (400, 2))]
    sketches = {code: TileSketch.from_rows(r, rng.permutation(len(r)).astype(np.uint64), 4096)
                for code, r in enumerate(rows)}
    ensembles = {f"d{code}x": Ensemble(("gmm", "kmeans"), random_state=0).fit(r) for code, r in enumerate(rows)}
    batches = [(dask.delayed(sketches), {0: "d0x", 1: "d1x"})]
    return rows, ensembles, batches


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # one EM step, on purpose
def test_one_federated_em_round_is_one_em_step_on_the_pooled_data():
    from sklearn.mixture import GaussianMixture

    from geoanom.model.federated_regions import refine_regions

    rows, ensembles, batches = _two_tiles()
    pyramid = build_pyramid(ensembles, 3)
    start = pyramid["d"].detectors_["gmm"]
    Z = (np.concatenate(rows) - start.center_) / start.scale_
    reference = GaussianMixture(len(start.weights_), weights_init=start.weights_, means_init=start.means_,
                                precisions_init=np.linalg.inv(start.covariances_), reg_covar=start.reg_covar,
                                max_iter=1, tol=0).fit(Z)
    start_means = pyramid["d"].detectors_["kmeans"].means_.copy()
    tile_means = ensembles["d0x"].detectors_["gmm"].means_.copy()
    refine_regions(pyramid, batches, rounds=1)
    np.testing.assert_array_equal(ensembles["d0x"].detectors_["gmm"].means_, tile_means)  # tiles untouched
    refined = pyramid["d"].detectors_["gmm"]
    np.testing.assert_allclose(refined.weights_, reference.weights_, rtol=1e-8)
    np.testing.assert_allclose(refined.means_, reference.means_, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(refined.covariances_, reference.covariances_, rtol=1e-8, atol=1e-10)
    # and one Lloyd step for K-Means: each centroid moves to the mean of the rows nearest to it
    kmeans = pyramid["d"].detectors_["kmeans"]
    Zk = (np.concatenate(rows) - kmeans.center_) / kmeans.scale_
    nearest = np.argmin(((Zk[None] - start_means[:, None]) ** 2).sum(axis=2), axis=0)
    expected = np.stack([Zk[nearest == k].mean(axis=0) for k in np.unique(nearest)])
    np.testing.assert_allclose(kmeans.means_, expected, rtol=1e-10)
    assert kmeans.n_samples_ == 1000


def test_a_federated_fit_scores_tiles_too_small_to_fit_alone(tmp_path):
    import geoanom as ga
    from geoanom.testing import synthetic_cube

    cube, _ = synthetic_cube(n_years=6, n_lat=24, n_lon=36)
    half = cube.sizes["time"] // 2
    training = cube.isel(time=slice(None, half))
    options = dict(precision=3, detectors=["gmm", "kmeans"], min_observations=60)
    plain = ga.fit(training, **options)
    federated = ga.fit(training, federated=True, federated_rounds=3, federated_relevance=0.0, **options)
    assert plain.skipped and plain.skipped.keys() == federated.skipped.keys()
    plain_scores = plain.score(cube)["fused_irregularity"].values
    federated_scores = federated.score(cube)["fused_irregularity"].values
    assert np.isnan(plain_scores).any() and np.isfinite(federated_scores).all()
    # with relevance 0, fitted tiles keep their own models (tests/test_personalise.py adapts them)
    fitted = np.isfinite(plain_scores)
    np.testing.assert_allclose(federated_scores[fitted], plain_scores[fitted], rtol=1e-6)
    # the refined regions survive saving
    federated.save(tmp_path / "federated.npz")
    loaded = ga.load_model(tmp_path / "federated.npz")
    prefix = sorted(federated.region_models)[0]
    np.testing.assert_array_equal(loaded.region(prefix).detectors_["gmm"].means_,
                                  federated.region(prefix).detectors_["gmm"].means_)


def test_the_region_modules_only_orchestrate():
    """No module of the federation touches another's private names (the algorithms are the detectors')."""
    import ast
    from pathlib import Path

    import geoanom.model as package

    for name in ("federated_regions.py", "personalise.py", "pyramid.py"):
        tree = ast.parse((Path(package.__file__).parent / name).read_text())
        private = [node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                   and node.attr.startswith("_") and not node.attr.startswith("__")
                   and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))]
        imported = [alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                    for alias in node.names if alias.name.startswith("_")]
        assert private == [] and imported == [], (name, private, imported)
