"""The detector contract, each family's rule, merging and plain-data round trips."""

import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.ensemble import IsolationForest
from sklearn.metrics import roc_auc_score

from geoanom.detectors import (
    DPMMDetector,
    Ensemble,
    EventDetector,
    GMMDetector,
    IForestDetector,
    KMeansDetector,
)
from geoanom.detectors.families import check_detector_names
from geoanom.detectors.fusion import fuse, majority, view_weights
from geoanom.detectors.thresholds import choose_threshold
from geoanom.errors import GeoanomError

FAMILIES = [GMMDetector, KMeansDetector, DPMMDetector, IForestDetector, EventDetector]


@pytest.fixture(scope="module")
def blobs():
    """Two Gaussian clusters for training; test data with 20 far outliers."""
    rng = np.random.default_rng(1)
    train = np.concatenate([rng.normal(0, 1, (1500, 2)), rng.normal([6, 3], 0.5, (500, 2))])
    normal = np.concatenate([rng.normal(0, 1, (300, 2)), rng.normal([6, 3], 0.5, (100, 2))])
    outliers = rng.uniform(-12, 12, (40, 2))
    outliers = outliers[np.linalg.norm(outliers, axis=1) > 9][:20]
    test = np.concatenate([normal, outliers])
    labels = np.r_[np.zeros(len(normal)), np.ones(len(outliers))]
    return train, test, labels


@pytest.mark.parametrize("family", FAMILIES)
def test_contract_irregularity_is_score_over_threshold(family, blobs):
    train, test, labels = blobs
    detector = family(random_state=0).fit(train)
    score = detector.native_score(test)
    irregularity = detector.irregularity(test)
    np.testing.assert_allclose(irregularity, score / detector.native_threshold_)
    flagged = score > detector.native_threshold_ if family.anomalous_above else score < detector.native_threshold_
    np.testing.assert_array_equal(detector.predict(test), flagged.astype(int))
    np.testing.assert_array_equal(detector.predict(test) == 1, irregularity > 1)
    assert detector.threshold_source_ in {"paper", "estimated"}
    # far outliers are found, normal data mostly not
    assert roc_auc_score(labels, irregularity) > 0.97
    assert detector.predict(test)[labels == 1].mean() >= 0.9
    assert detector.predict(test)[labels == 0].mean() <= 0.1


@pytest.mark.parametrize("family", FAMILIES)
def test_get_set_params_and_clone(family, blobs):
    detector = family(random_state=3)
    assert detector.get_params()["random_state"] == 3
    detector.set_params(random_state=4)
    assert clone(detector).get_params()["random_state"] == 4


@pytest.mark.parametrize("family", FAMILIES)
def test_same_seed_same_model(family, blobs):
    train, test, _ = blobs
    a = family(random_state=7).fit(train).native_score(test)
    b = family(random_state=7).fit(train).native_score(test)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("family", FAMILIES)
def test_plain_data_round_trip_is_exact(family, blobs):
    train, test, _ = blobs
    detector = family(random_state=0).fit(train)
    data = detector.to_dict()
    json.dumps(data["params"])  # params are JSON
    for value in data["state"].values():
        assert isinstance(value, (np.ndarray, int, float, str))
    rebuilt = family.from_dict(data)
    np.testing.assert_array_equal(rebuilt.native_score(test), detector.native_score(test))
    assert rebuilt.native_threshold_ == detector.native_threshold_


@pytest.mark.parametrize("family", FAMILIES)
def test_user_threshold_is_used(family, blobs):
    train, test, _ = blobs
    threshold = 0.7 if family.anomalous_above else -3.0
    detector = family(threshold=threshold, random_state=0).fit(train)
    assert (detector.native_threshold_, detector.threshold_source_) == (threshold, "user")


def test_iforest_scores_agree_with_scikit_learn(blobs):
    # The trees are grown by geoanom's own batched builder (same algorithm, other random
    # numbers), so the scores agree with scikit-learn's in distribution, not value by value.
    from scipy.stats import spearmanr

    train, test, labels = blobs
    ours = IForestDetector(n_estimators=100, random_state=0).fit(train).native_score(test)
    theirs = -IsolationForest(n_estimators=100, max_samples=256, random_state=0).fit(train).score_samples(test)
    assert abs(roc_auc_score(labels, ours) - roc_auc_score(labels, theirs)) < 0.01
    assert spearmanr(ours, theirs)[0] > 0.95
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.01


def test_gmm_fitness_rule_matches_formula(blobs):
    train, test, _ = blobs
    detector = GMMDetector(random_state=0).fit(train)
    from sklearn.mixture import GaussianMixture

    mixture = GaussianMixture(len(detector.weights_), covariance_type="full")
    mixture.weights_, mixture.means_, mixture.covariances_ = detector.weights_, detector.means_, detector.covariances_
    mixture.precisions_cholesky_ = detector._precision_chol
    z = (test - detector.center_) / detector.scale_
    llk = mixture.score_samples(z)
    assigned = mixture.predict(z)
    sigma = np.sqrt(np.einsum("kii->ki", detector.covariances_))[assigned]
    x_dist = np.sqrt((((z - detector.means_[assigned]) / sigma) ** 2).sum(axis=1))
    expected = (llk - detector.model_llk_) / max(abs(detector.model_llk_), 1.0) * x_dist
    np.testing.assert_allclose(detector.native_score(test), expected, rtol=1e-9)


def test_gmm_chooses_components_by_bic(blobs):
    train, _, _ = blobs
    assert len(GMMDetector(random_state=0).fit(train).weights_) == 2
    one_cluster = np.random.default_rng(0).normal(size=(2000, 2))
    assert len(GMMDetector(random_state=0).fit(one_cluster).weights_) == 1


def test_threshold_falls_back_when_constant_is_implausible():
    rng = np.random.default_rng(0)
    blind = rng.normal(0.45, 0.02, 5000)  # an isolation forest where 0.6 flags nothing
    threshold, source = choose_threshold(blind, 0.6, anomalous_above=True, contamination=0.01)
    assert source == "estimated"
    assert np.mean(blind > threshold) == pytest.approx(0.01, abs=1e-3)
    lenient = rng.normal(0.0, 1.0, 5000)  # a density score where -1 flags 16%
    threshold, source = choose_threshold(lenient, -1.0, anomalous_above=False, contamination=0.01)
    assert source == "estimated" and threshold < -2
    plausible = np.r_[blind, np.full(50, 0.7)]  # 1% above 0.6
    assert choose_threshold(plausible, 0.6, anomalous_above=True, contamination=0.01) == (0.6, "paper")


def test_contamination_sets_the_training_false_alarm_rate(blobs):
    train, _, _ = blobs
    for contamination in (0.002, 0.05):
        detector = GMMDetector(contamination=contamination, random_state=0).fit(train)
        rate = detector.predict(train).mean()
        if detector.threshold_source_ == "estimated":
            assert rate == pytest.approx(contamination, abs=0.002)
        else:
            assert contamination / 10 <= rate <= 2 * contamination


def test_gmm_merge_keeps_exact_moments(blobs):
    train, _, _ = blobs
    rng = np.random.default_rng(2)
    order = rng.permutation(len(train))
    a = GMMDetector(random_state=0).fit(train[order[:1000]])
    b = GMMDetector(random_state=0).fit(train[order[1000:]])
    merged = a.merge(b)
    assert merged.n_samples_ == len(train)
    assert len(merged.weights_) == max(len(a.weights_), len(b.weights_))
    # counts and the mean have an exact parallel form (EM's means are weighted means)
    np.testing.assert_allclose(merged.center_, train.mean(axis=0), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(merged.scale_, train.std(axis=0), rtol=2e-2)
    np.testing.assert_allclose(merged.weights_.sum(), 1.0)
    whole = GMMDetector(random_state=0).fit(train)
    z = (train - whole.center_) / whole.scale_
    zm = (train - merged.center_) / merged.scale_
    llk_whole = whole._log_likelihood(z)[0].mean() - np.log(whole.scale_).sum()
    llk_merged = merged._log_likelihood(zm)[0].mean() - np.log(merged.scale_).sum()
    assert abs(llk_merged - llk_whole) < 0.02 * abs(llk_whole)


def test_iforest_merge_is_weighted_union_of_trees(blobs):
    train, test, _ = blobs
    a = IForestDetector(n_estimators=30, random_state=0).fit(train[:1500])
    b = IForestDetector(n_estimators=30, random_state=1).fit(train[1500:])
    merged = a.merge(b)
    assert len(merged.tree_root_) == 60
    assert merged.n_samples_ == len(train)
    sa, sb, sm = (d.native_score(test) for d in (a, b, merged))
    # path lengths average with weights 1500 : 500 in the exponent
    expected = np.exp2(0.75 * np.log2(sa) + 0.25 * np.log2(sb))
    np.testing.assert_allclose(sm, expected, rtol=1e-10)
    rebuilt = IForestDetector.from_dict(merged.to_dict())
    np.testing.assert_array_equal(rebuilt.native_score(test), sm)
    # the merged reservoir draws from each part in proportion to what it has seen (1500 : 500)
    assert merged.reservoir_.shape == (256, 2) and merged.reservoir_seen_ == len(train)
    np.testing.assert_array_equal(merged.reservoir_[:192], a.reservoir_[:192])
    np.testing.assert_array_equal(merged.reservoir_[192:], b.reservoir_[:64])


def test_ensemble_votes_majority_and_round_trip(blobs):
    train, test, labels = blobs
    ensemble = Ensemble(random_state=0).fit(train)
    assert ensemble.names == ("gmm", "kmeans", "dpmm", "iforest", "event")
    irregularity = ensemble.irregularity(test)
    assert irregularity.shape == (5, len(test))
    votes = ensemble.votes(test)
    np.testing.assert_array_equal(votes, (irregularity > 1).sum(axis=0))
    np.testing.assert_array_equal(ensemble.majority_vote(test), (votes >= 3).astype(int))
    assert roc_auc_score(labels, ensemble.fused_irregularity(test)) > 0.97
    rebuilt = Ensemble.from_dict(ensemble.to_dict())
    np.testing.assert_array_equal(rebuilt.irregularity(test), irregularity)
    merged = ensemble.merge(Ensemble(random_state=1).fit(train))
    assert merged.irregularity(test).shape == (5, len(test))


def test_majority_and_fuse():
    assert list(majority(np.array([0, 1, 2]), 2)) == [False, False, True]
    assert list(majority(np.array([1, 2, 3]), 3)) == [False, True, True]
    fused = fuse(np.array([[4.0, -1.0], [1.0, 0.5]]), ["gmm", "kmeans"])
    np.testing.assert_allclose(fused, [2.0, np.sqrt(0.01 * 0.5)])


def test_each_view_counts_once_in_the_fused_score():
    five = ["gmm", "kmeans", "dpmm", "iforest", "event"]
    # the four density families' 4 against the event family's 0.25: one view each, so 1, not 4 ** 0.8 * 0.25 ** 0.2
    irregularity = np.array([[4.0], [4.0], [4.0], [4.0], [0.25]])
    np.testing.assert_allclose(fuse(irregularity, five), [1.0])
    np.testing.assert_allclose(fuse(irregularity[[0, 4]], ["gmm", "event"]), [1.0])
    np.testing.assert_allclose(fuse(irregularity[:4], five[:4]), [4.0])  # one view: the plain geometric mean
    np.testing.assert_allclose(view_weights(five).sum(), 1.0)
    with pytest.raises(ValueError, match="5 irregularities along axis 0 for 4 families"):
        fuse(irregularity, five[:4])


def test_unknown_detector_name_is_one_clear_error():
    with pytest.raises(GeoanomError, match="unknown detector 'svm'; known detectors: gmm, kmeans, dpmm, iforest"):
        check_detector_names("gmm,svm")
    assert check_detector_names("gmm, iforest") == ("gmm", "iforest")


def test_kmeans_canopies_find_the_clusters_and_distance_is_mahalanobis(blobs):
    from geoanom.detectors.kmeans import canopy_centres

    train, test, _ = blobs
    z = (train - train.mean(axis=0)) / train.std(axis=0)
    centres = canopy_centres(z, 2 * np.sqrt(2), np.sqrt(2), np.random.default_rng(0))
    assert 2 <= len(centres) <= 8
    detector = KMeansDetector(random_state=0).fit(train)
    assert detector.counts_.sum() == len(train)
    zt = (test - detector.center_) / detector.scale_
    nearest = np.argmin(((zt[:, None, :] - detector.means_[None]) ** 2).sum(axis=2), axis=1)
    offsets = zt - detector.means_[nearest]
    inverse = np.linalg.inv(detector.covariances_[nearest])
    expected = np.sqrt(np.einsum("nd,nde,ne->n", offsets, inverse, offsets))
    np.testing.assert_allclose(detector.native_score(test), expected, rtol=1e-9)
    euclidean = KMeansDetector(metric="euclidean", random_state=0).fit(train)
    np.testing.assert_allclose(euclidean.native_score(test), np.linalg.norm(
        zt - euclidean.means_[np.argmin(((zt[:, None] - euclidean.means_[None]) ** 2).sum(2), 1)], axis=1))


def test_kmeans_merge_pools_exact_cluster_statistics(blobs):
    train, _, _ = blobs
    a = KMeansDetector(random_state=0).fit(train[:1000])
    b = KMeansDetector(random_state=0).fit(train[1000:])
    merged = a.merge(b)
    assert merged.n_samples_ == len(train)
    assert merged.counts_.sum() == len(train)
    # pooled centroids, back in data units, are the count-weighted means of both parts
    data_means = merged.center_ + merged.means_ * merged.scale_
    part_means = np.concatenate([d.center_ + d.means_ * d.scale_ for d in (a, b)])
    np.testing.assert_allclose(data_means, part_means, rtol=1e-10)
    np.testing.assert_allclose(merged.center_, train.mean(axis=0), rtol=1e-10)


def test_dpmm_uses_the_dirichlet_process_and_flags_near_empty_components(blobs):
    train, test, labels = blobs
    detector = DPMMDetector(random_state=0).fit(train)
    assert detector.get_params()["concentration"] == 0.01
    assert len(detector.weights_) == 6 and detector.weights_.sum() == pytest.approx(1.0)
    # put a near-empty component far from the data: observations there are suspect
    weights = np.r_[detector.weights_[:-1] * (1 - 1e-4) / detector.weights_[:-1].sum(), 1e-4]
    means = detector.means_.copy()
    means[-1] = [8.0, -8.0]
    covariances = detector.covariances_.copy()
    covariances[-1] = 0.01 * np.eye(2)
    data = detector.to_dict()
    detector = DPMMDetector.from_dict(dict(data, state=dict(data["state"], weights_=weights, means_=means,
                                                              covariances_=covariances)))
    far = detector.center_ + means[-1] * detector.scale_
    assert detector.predict(far[None])[0] == 1


def _em_rounds(detector, X, rounds: int):
    """EM (or Lloyd) rounds on X through the public federation steps, as a federation of one party runs them."""
    for _ in range(rounds):
        detector.m_step(detector.sufficient_statistics(X))
    return detector.renew_threshold(detector.native_score(X))


@pytest.mark.parametrize("family", [GMMDetector, DPMMDetector])
def test_merge_then_em_rounds_match_fitting_the_whole(family, blobs):
    train, _, _ = blobs
    order = np.random.default_rng(5).permutation(len(train))
    a = family(random_state=0).fit(train[order[:1000]])
    b = family(random_state=0).fit(train[order[1000:]])
    merged = _em_rounds(a.merge(b), train, 30)
    whole = family(random_state=0).fit(train)

    def data_llk(detector):  # mean log-likelihood in data units, comparable across standardisations
        stats = detector.sufficient_statistics(train)
        return stats.llk_sum / stats.total - np.log(detector.scale_).sum()

    assert abs(data_llk(merged) - data_llk(whole)) <= 0.01 * abs(data_llk(whole))
    assert merged.n_samples_ == len(train)


def test_kmeans_merge_then_lloyd_rounds_are_as_compact_as_fitting_the_whole(blobs):
    train, test, labels = blobs
    order = np.random.default_rng(5).permutation(len(train))
    a = KMeansDetector(random_state=0).fit(train[order[:1000]])
    b = KMeansDetector(random_state=0).fit(train[order[1000:]])
    merged = _em_rounds(a.merge(b), train, 30)
    whole = KMeansDetector(random_state=0).fit(train)

    def inertia(detector):  # within-cluster sum of squares, in data units
        return float((detector.scatter_ * np.outer(detector.scale_, detector.scale_)).trace(axis1=1, axis2=2).sum())

    assert merged.counts_.sum() == len(train)
    assert inertia(merged) <= 1.01 * inertia(whole)
    assert roc_auc_score(labels, merged.irregularity(test)) > 0.97


@pytest.mark.parametrize("family", [GMMDetector, KMeansDetector, EventDetector])
def test_sufficient_statistics_of_two_parts_add_up_to_the_whole(family, blobs):
    train, _, _ = blobs
    detector = family(random_state=0).fit(train)
    whole = detector.sufficient_statistics(train, weight=2.0)
    parts = detector.sufficient_statistics(train[:700], weight=2.0) + detector.sufficient_statistics(train[700:], 2.0)
    for name in ("counts", "sums", "squares", "llk_sum", "total"):
        np.testing.assert_allclose(getattr(parts, name), getattr(whole, name), rtol=1e-10, atol=1e-9)
    assert whole.total == 2.0 * len(train)
    # an M-step on the model's own statistics keeps it a model of the same data
    before = detector.irregularity(train)
    detector.m_step(whole)
    assert detector.n_samples_ == 2.0 * len(train)
    assert roc_auc_score(before > 1, detector.irregularity(train)) > 0.95


# -- a saved state is checked before a detector is rebuilt from it ---------------------------

# per family: an array whose first axis counts components, clusters or nodes, and what the error names
GROWN = {"gmm": "weights_", "dpmm": "weights_", "kmeans": "counts_", "iforest": "node_path_", "event": "counts_"}


@pytest.mark.parametrize("family", FAMILIES)
def test_from_dict_refuses_arrays_that_disagree(family, blobs):
    train, _, _ = blobs
    data = family(random_state=0).fit(train).to_dict()
    family.check_state(dict(data["state"]))  # a real state passes
    key = GROWN[family.family]
    longer = np.concatenate([data["state"][key], data["state"][key][:1]])
    with pytest.raises(ValueError, match=rf"^{family.family} detector: {key} has shape \({len(longer)},\), not"):
        family.from_dict({**data, "state": {**data["state"], key: longer}})
    if family.family not in ("iforest", "event"):  # the standardisation's width is the number of features
        with pytest.raises(ValueError, match="scale_ has shape"):
            family.from_dict({**data, "state": {**data["state"], "scale_": np.ones(3)}})


def test_an_ensemble_refuses_detectors_of_different_widths(blobs):
    train, _, _ = blobs
    wider = np.column_stack([train, train[:, :1]])
    data = {"detectors": {"gmm": GMMDetector(random_state=0).fit(train).to_dict(),
                          "kmeans": KMeansDetector(random_state=0).fit(wider).to_dict()}}
    with pytest.raises(ValueError, match=r"disagree on the number of features \(gmm 2, kmeans 3\)"):
        Ensemble.from_dict(data)
