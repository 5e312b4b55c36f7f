"""The event family: its closed-form GLR, its robust moments, thresholds, federation hooks and model files."""

import json

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import geoanom as ga
from geoanom.detectors import FAMILIES, Ensemble, EventDetector
from geoanom.errors import GeoanomError
from geoanom.model.family_inputs import default_features
from geoanom.model.store import JSON_KEY
from geoanom.testing import synthetic_cube

# (z, n): a cell's anomaly and its neighbours' mean anomaly, correlated as on a smooth field.
COVARIANCE = np.array([[1.0, 0.6], [0.6, 0.5]])


def pairs_sample(n, seed, pairs=1):
    """Gaussian rows [z_1..z_V, n_1..n_V] with each variable's (z, n) covariance COVARIANCE."""
    rng = np.random.default_rng(seed)
    blocks = [rng.multivariate_normal([0.0, 0.0], COVARIANCE, size=n) for _ in range(pairs)]
    return np.column_stack([b[:, 0] for b in blocks] + [b[:, 1] for b in blocks])


@parametrize_with_checks([EventDetector(), EventDetector(pairs=1)])
def test_scikit_learn_check(estimator, check):
    check(estimator)


def test_in_the_default_ensemble_with_its_background_ring():
    assert FAMILIES["event"] is EventDetector and "event" in ga.detectors.DEFAULT_DETECTORS
    assert ga.EventDetector is EventDetector
    assert "background" in default_features(ga.detectors.DEFAULT_DETECTORS)
    assert "background" not in default_features(("gmm", "kmeans"))


def test_closed_form_equals_a_dense_grid_over_alpha():
    detector = EventDetector(pairs=1).fit(pairs_sample(3000, 0))
    rng = np.random.default_rng(1)
    rows = np.r_[rng.normal(scale=3.0, size=(400, 2)), [[2.0, 0.0], [0.0, 2.0], [2.0, 2.0], [-2.0, -1.0], [1.0, -1.0]]]
    precision = np.linalg.inv(detector.covariances_[0])
    d = rows - detector.means_[0]
    u = np.stack([np.ones(20001), np.linspace(0.0, 1.0, 20001)], axis=1)  # (alpha, 2)
    ratio = (d @ precision @ u.T) ** 2 / np.einsum("ai,ij,aj->a", u, precision, u)
    np.testing.assert_allclose(detector.native_score(rows), ratio.max(axis=1), rtol=1e-6, atol=1e-12)
    inside = (d[:, 0] * d[:, 1] >= 0) & (np.abs(d[:, 1]) <= np.abs(d[:, 0]))
    mahalanobis = np.einsum("ni,ij,nj->n", d, precision, d)
    assert inside.any() and (~inside).any()
    np.testing.assert_allclose(detector.native_score(rows)[inside], mahalanobis[inside], rtol=1e-12)
    assert (detector.native_score(rows)[~inside] < mahalanobis[~inside] * (1 - 1e-9)).all()


def test_several_pairs_score_the_largest_pair():
    X = pairs_sample(2000, 2, pairs=3)
    detector = EventDetector(pairs=3).fit(X)
    rows = np.random.default_rng(3).normal(scale=2.0, size=(50, 6))
    single = [EventDetector(pairs=1).fit(X[:, [v, 3 + v]]) for v in range(3)]
    expected = np.max([s.native_score(rows[:, [v, 3 + v]]) for v, s in enumerate(single)], axis=0)
    np.testing.assert_allclose(detector.native_score(rows), expected, rtol=1e-12)


def test_scores_do_not_depend_on_the_row_order():
    X = pairs_sample(1500, 4)
    rows = np.random.default_rng(5).normal(scale=2.0, size=(100, 2))
    order = np.random.default_rng(6).permutation(len(X))
    for pairs in (None, 1):
        a, b = EventDetector(pairs=pairs).fit(X), EventDetector(pairs=pairs).fit(X[order])
        np.testing.assert_allclose(a.irregularity(rows), b.irregularity(rows), rtol=1e-10)
        np.testing.assert_allclose(a.irregularity(rows[::-1]), a.irregularity(rows)[::-1], rtol=0)


def test_spike_and_blob_are_flagged_and_neighbours_only_counts_less():
    X = pairs_sample(3000, 7)
    event, plain = EventDetector(pairs=1).fit(X), EventDetector().fit(X)
    spike, blob, neighbours_only, opposite = event.irregularity([[5.0, 0.6], [4.0, 3.5], [0.0, 2.5], [2.0, -1.5]])
    assert spike > 1 and blob > 1
    plain_neighbours, plain_opposite = plain.irregularity([[0.0, 2.5], [2.0, -1.5]])
    # on a smooth field a normal cell under warm neighbours is partly a cold spike: lower, not zero
    assert plain_neighbours > 1 and neighbours_only < 0.8 * plain_neighbours
    assert opposite < 0.95 * plain_opposite


def test_training_events_neither_move_nor_widen_the_moments():
    clean = pairs_sample(2000, 8)
    polluted = np.r_[clean, np.tile([[8.0, 6.0]], (15, 1))]
    robust, classical = EventDetector(pairs=1).fit(polluted), EventDetector(pairs=1, trim=1.0).fit(polluted)
    reference = np.cov(clean.T)
    np.testing.assert_allclose(robust.covariances_[0], reference, rtol=0.08, atol=0.02)
    assert classical.covariances_[0][0, 0] > 1.3 * reference[0, 0]


@pytest.mark.parametrize("pairs", [None, 1, 2])
def test_flagged_share_of_fresh_gaussian_data_is_near_the_contamination(pairs):
    width = 2 * (pairs or 1)
    detector = EventDetector(pairs=pairs).fit(pairs_sample(5000, 9, pairs=width // 2))
    fresh = pairs_sample(50000, 10, pairs=width // 2)
    share = float((detector.irregularity(fresh) > 1).mean())
    assert 0.003 <= share <= 0.02, share


def test_merge_of_two_halves_is_close_to_a_fit_on_all():
    X = pairs_sample(4000, 11)
    whole = EventDetector(pairs=1).fit(X)
    merged = EventDetector(pairs=1).fit(X[:2000]).merge(EventDetector(pairs=1).fit(X[2000:]))
    assert merged.n_samples_ == 4000
    np.testing.assert_allclose(merged.means_, whole.means_, atol=0.02)
    np.testing.assert_allclose(merged.covariances_, whole.covariances_, rtol=0.03, atol=0.01)
    rows = np.random.default_rng(12).normal(scale=2.0, size=(200, 2))
    np.testing.assert_allclose(merged.irregularity(rows), whole.irregularity(rows), rtol=0.08)
    with pytest.raises(ValueError, match="cannot merge"):
        whole.merge(EventDetector().fit(pairs_sample(100, 0, pairs=2)))


def test_update_absorbs_inliers_and_keeps_events_out():
    X = pairs_sample(2000, 13)
    detector = EventDetector(pairs=1).fit(X)
    before = detector.means_.copy()
    detector.update(np.tile([[9.0, 7.0]], (50, 1)))
    np.testing.assert_array_equal(detector.means_, before)
    assert detector.n_samples_ == 2050
    detector.update(pairs_sample(2000, 14) + 0.5)
    assert 0.2 < detector.means_[0, 0] - before[0, 0] < 0.3


def test_sufficient_statistics_and_m_step_reproduce_the_fit():
    X = pairs_sample(2000, 15, pairs=2)
    detector = EventDetector(pairs=2).fit(X)
    halves = detector.sufficient_statistics(X[:1000]) + detector.sufficient_statistics(X[1000:])
    refitted = EventDetector.from_dict(detector.to_dict()).m_step(halves)
    np.testing.assert_allclose(refitted.covariances_, detector.covariances_, rtol=0.02)
    np.testing.assert_allclose(refitted.means_, detector.means_, atol=1e-3)
    assert refitted.n_samples_ == 2000


def test_adapt_towards_a_region_shrinks_a_small_tile_only():
    region = EventDetector(pairs=1).fit(pairs_sample(4000, 16))
    small = EventDetector(pairs=1).fit(pairs_sample(40, 17) + 1.0)
    adapted = small.adapt_towards(region, pairs_sample(40, 17) + 1.0, n_observations=40, relevance=16)
    assert np.abs(adapted.means_ - region.means_).max() < np.abs(small.means_ - region.means_).max()
    np.testing.assert_array_equal(small.means_, EventDetector(pairs=1).fit(pairs_sample(40, 17) + 1.0).means_)
    same = region.adapt_towards(region, pairs_sample(4000, 16), 4000)
    np.testing.assert_allclose(same.means_, region.means_)


def test_ensemble_adapts_with_the_event_family():
    X = pairs_sample(600, 18)
    ensemble = Ensemble(("gmm", "event"), random_state=0).fit(X)
    assert ensemble.irregularity_adapting(X + 0.2, adapt_every=100).shape == (2, 600)
    assert ensemble.detectors_["event"].n_samples_ == 1200


def test_pairs_wider_than_the_features_are_refused():
    with pytest.raises(ValueError, match="pairs=2 needs at least 4 features"):
        EventDetector(pairs=2).fit(pairs_sample(100, 0))


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=8)
    model = ga.fit(cube.sel(time=slice(None, "2001")), precision=1, detectors="gmm,event")
    path = tmp_path_factory.mktemp("event") / "model.npz"
    model.save(path)
    return model, path, cube.sel(time=slice("2002", None))


def test_save_and_load_give_identical_scores(saved_model):
    model, path, test = saved_model
    loaded = ga.load_model(path)
    assert loaded.detectors == ("gmm", "event")
    # ga.fit gives the family the (anomaly, neighbours) pair of the default features, and the file keeps it
    assert {e.detectors_["event"].pairs for m in (model, loaded) for e in m.ensembles.values()} == {1}
    before = model.score(test)["irregularity"].sel(detector="event").values
    after = loaded.score(test)["irregularity"].sel(detector="event").values
    assert np.isfinite(before).any()
    np.testing.assert_array_equal(before, after)


def _edit_event_header(path, change):
    """Rewrite the JSON part of a saved .npz model after `change(event detector entry)` (digests kept)."""
    with np.load(path) as store:
        arrays = {name: store[name] for name in store.files}
    header = json.loads(arrays.pop(JSON_KEY).tobytes().decode())
    change(next(iter(header["tree"]["tiles"].values()))["ensemble"]["detectors"]["event"])
    arrays[JSON_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)


@pytest.mark.parametrize("change, fragment", [
    (lambda entry: entry["params"].update(pairs=2), "pairs=2 needs at least 6 features"),
    (lambda entry: entry["state"].update(n_features_=1), "neither every one of n_features_ 1"),
    (lambda entry: entry["state"].update(n_samples_="many"), "n_samples_ is 'many'"),
])
def test_bad_state_is_refused_in_one_sentence(saved_model, tmp_path, change, fragment):
    _, path, _ = saved_model
    copy = tmp_path / "model.npz"
    copy.write_bytes(path.read_bytes())
    _edit_event_header(copy, change)
    with pytest.raises(GeoanomError) as caught:
        ga.load_model(copy)
    assert str(copy) in str(caught.value) and fragment in str(caught.value)


def test_federated_fit_regions_and_adaptation_carry_the_event_family():
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=8)
    model = ga.fit(cube.sel(time=slice(None, "2001")), precision=2, detectors="gmm,event", federated=True,
                   federated_rounds=1, min_observations=20)
    test = cube.sel(time=slice("2002", None))
    region = model.region(next(iter(model.ensembles))[:1])
    assert region.detectors_["event"].pairs == 1
    assert region.detectors_["event"].n_samples_ >= max(e.detectors_["event"].n_samples_
                                                        for e in model.ensembles.values())
    result, adapted = model.adapt(test, adapt_every=6)
    assert np.isfinite(result["irregularity"].sel(detector="event").values).any()
    tile = next(iter(adapted.ensembles))
    assert adapted.ensembles[tile].detectors_["event"].n_samples_ > model.ensembles[tile].detectors_["event"].n_samples_


@pytest.mark.parametrize("feature_sets, expected", [
    (("anomalies", "neighbours"), 2),
    (("anomalies", "neighbours", "regions"), 2),
    (("values", "anomalies", "neighbours"), None),
    (("anomalies",), None),
])
def test_pairs_follow_the_model_feature_names(feature_sets, expected):
    from geoanom.detectors.event import pairs_from_feature_names
    from geoanom.features.vectors import feature_names

    assert pairs_from_feature_names(feature_names(["sst", "tas"], feature_sets)) == expected


# (z, n, b): the cell, its neighbours and its background ring, all sharing a large-scale state.
TRIPLE_COVARIANCE = np.array([[1.0, 0.7, 0.6], [0.7, 0.6, 0.5], [0.6, 0.5, 0.5]])


def triples_sample(n, seed):
    return np.random.default_rng(seed).multivariate_normal(np.zeros(3), TRIPLE_COVARIANCE, size=n)


def test_with_background_the_closed_form_equals_a_dense_grid_over_alpha():
    detector = EventDetector(pairs=1, background=True).fit(triples_sample(4000, 20))
    rng = np.random.default_rng(21)
    rows = np.r_[rng.normal(scale=3.0, size=(400, 3)), [[2.0, 0.0, 0.0], [2.0, 2.0, 2.0], [-2.0, -1.0, 1.0]]]
    precision = np.linalg.inv(detector.covariances_[0])
    d = rows - detector.means_[0]
    alphas = np.linspace(0.0, 1.0, 20001)
    u = np.stack([np.ones_like(alphas), alphas, np.zeros_like(alphas)], axis=1)  # the event leaves b alone
    ratio = (d @ precision @ u.T) ** 2 / np.einsum("ai,ij,aj->a", u, precision, u)
    np.testing.assert_allclose(detector.native_score(rows), ratio.max(axis=1), rtol=1e-6, atol=1e-12)
    # the pair alone, without its background, is a different statistic
    assert not np.allclose(EventDetector(pairs=1).fit(triples_sample(4000, 20)[:, :2]).native_score(rows[:, :2]),
                           detector.native_score(rows))


def test_background_explains_a_departure_the_whole_region_shares():
    X = triples_sample(5000, 22)
    with_background = EventDetector(pairs=1, background=True).fit(X)
    pair_only = EventDetector(pairs=1).fit(X[:, :2])
    regional, local = np.array([[3.0, 3.0, 3.0]]), np.array([[3.0, 3.0, 0.0]])
    # a warm region (cell, neighbours and ring alike) is explained by its background; a local blob is not
    assert with_background.native_score(regional)[0] < 0.5 * with_background.native_score(local)[0]
    assert pair_only.native_score(regional[:, :2])[0] == pytest.approx(pair_only.native_score(local[:, :2])[0])
    fresh = triples_sample(50000, 23)
    assert 0.003 <= float((with_background.irregularity(fresh) > 1).mean()) <= 0.02


def test_background_columns_follow_the_pairs():
    X = np.column_stack([triples_sample(500, 24), triples_sample(500, 25)])[:, [0, 3, 1, 4, 2, 5]]
    detector = EventDetector(pairs=2, background=True).fit(X)
    assert detector.means_.shape == (2, 3)
    single = EventDetector(pairs=1, background=True).fit(X[:, [1, 3, 5]])
    np.testing.assert_allclose(detector.means_[1], single.means_[0])
    with pytest.raises(ValueError, match="pairs=2 needs at least 6 features"):
        EventDetector(pairs=2, background=True).fit(X[:, :5])
    restored = EventDetector.from_dict(detector.to_dict())
    np.testing.assert_array_equal(restored.native_score(X), detector.native_score(X))


@pytest.mark.parametrize("feature_sets, expected", [
    (("anomalies", "neighbours", "background"), {"pairs": 2, "background": True}),
    (("anomalies", "neighbours"), {"pairs": 2, "background": False}),
    (("anomalies", "neighbours", "background", "regions"), {"pairs": 2, "background": True}),
    (("anomalies", "background"), {"pairs": None, "background": False}),
])
def test_event_params_follow_the_model_feature_names(feature_sets, expected):
    from geoanom.detectors.event import event_params
    from geoanom.features.vectors import feature_names

    assert event_params(feature_names(["sst", "tas"], feature_sets)) == expected


def test_a_model_with_background_features_fits_event_triples(tmp_path):
    cube, _ = synthetic_cube(n_years=3, n_lat=12, n_lon=16, seed=3, frequency="month")
    model = ga.fit(cube, detectors="event", features=("anomalies", "neighbours", "background"))
    detector = next(iter(model.ensembles.values())).detectors_["event"]
    assert detector.background and detector.means_.shape == (1, 3)
    assert model.attrs["features"] == ["anomalies", "neighbours", "background"]
    scored = model.score(cube)["irregularity"].sel(detector="event").values
    assert np.isfinite(scored).all()
    model.save(tmp_path / "model.npz")
    loaded = ga.load_model(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.score(cube)["irregularity"].sel(detector="event").values, scored)
