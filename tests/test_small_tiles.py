"""Thresholds that hold on new data: conformal quantiles, out-of-fold scores on small tiles, pooled spreads."""

import numpy as np
import pytest

from geoanom.detectors import GMMDetector, KMeansDetector
from geoanom.detectors.crossfit import fit_many_out_of_fold, fold_of_rows
from geoanom.detectors.thresholds import contamination_quantile
from geoanom.features.spread_pooling import pool_spread


def test_folds_are_equal_shares_and_reproducible():
    folds = fold_of_rows(103, seed=7, n_folds=5)
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 21, 21, 21]
    assert np.array_equal(folds, fold_of_rows(103, seed=7, n_folds=5))
    assert not np.array_equal(folds, fold_of_rows(103, seed=8, n_folds=5))


def test_conformal_quantile_flags_at_most_the_contamination_of_new_scores():
    rng = np.random.default_rng(0)
    conformal, plain = [], []
    for _ in range(2000):
        train, new = rng.normal(size=144), rng.normal(size=200)
        conformal.append(np.mean(new > contamination_quantile(train, 0.01, anomalous_above=True, held_out=True)))
        plain.append(np.mean(new > contamination_quantile(train, 0.01, anomalous_above=True)))
    assert np.mean(conformal) <= 0.0105  # exact for exchangeable scores: (n + 1 - rank) / (n + 1) = 1 / 145
    assert np.mean(plain) > 0.012  # the sample quantile's 1 / n too many


def test_small_samples_get_out_of_fold_thresholds_and_large_ones_keep_theirs():
    rng = np.random.default_rng(1)
    small, large = rng.normal(size=(150, 3)), rng.normal(size=(600, 3))
    fitted = fit_many_out_of_fold(GMMDetector, [small, large], [0, 1], below=300)
    in_sample = GMMDetector.fit_many([small, large], [0, 1])
    assert fitted[1].native_threshold_ == in_sample[1].native_threshold_
    assert fitted[0].native_threshold_ != in_sample[0].native_threshold_
    # the tile's model itself is the one fitted on all its rows
    X = rng.normal(size=(50, 3))
    assert np.array_equal(fitted[0].native_score(X), in_sample[0].native_score(X))


@pytest.mark.parametrize("family", [GMMDetector, KMeansDetector])
def test_out_of_fold_thresholds_flag_new_data_near_the_contamination(family):
    # contamination 5% so 200 rows hold ten flagged ones; averaged over tiles
    rng = np.random.default_rng(2)
    samples = [rng.standard_t(6, size=(200, 3)) for _ in range(30)]
    seeds = list(range(30))
    out_of_fold = fit_many_out_of_fold(family, samples, seeds, {"contamination": 0.05})
    in_sample = family.fit_many(samples, seeds, contamination=0.05)
    new = rng.standard_t(6, size=(4000, 3))
    share = [np.mean(d.irregularity(new) > 1) for d in out_of_fold]
    naive = [np.mean(d.irregularity(new) > 1) for d in in_sample]
    assert np.mean(share) < np.mean(naive)
    # a family keeps the paper's constant where it flags 0.1-2x the contamination in training
    assert 0.01 <= np.mean(share) <= 0.065, np.mean(share)


def test_a_smooth_field_pools_its_noisy_spreads():
    rng = np.random.default_rng(3)
    noisy = np.sqrt(rng.chisquare(9, size=(2, 1, 24, 30)) / 9)  # true spread 1, worth 9
    worth = np.full(noisy.shape, 9.0)
    pooled, pooled_worth = pool_spread(noisy, worth)
    # the neighbourhood counts as much as the cell itself (its cap): the noise variance about halves
    assert np.median(pooled_worth / worth) == 2.0
    assert np.std(np.log(pooled)) < 0.8 * np.std(np.log(noisy))
    assert abs(np.mean(pooled**2) - 1.0) < 0.05  # means of variances: no low bias


def test_a_front_keeps_both_sides_spreads_and_empty_cells_stay_empty():
    rng = np.random.default_rng(4)
    truth = np.where(np.arange(30) < 15, 1.0, 4.0)[None, None, None, :] * np.ones((1, 1, 24, 30))
    noisy = truth * np.sqrt(rng.chisquare(30, size=truth.shape) / 30)
    noisy[0, 0, 5, 5] = np.nan
    pooled, worth = pool_spread(noisy, np.full(noisy.shape, 30.0))
    assert np.isnan(pooled[0, 0, 5, 5]) and np.isfinite(pooled).sum() == noisy.size - 1
    at_front = pooled[0, 0, :, 13:17]
    # a fixed 24-observation pool would pull both sides halfway towards the other (about 2.5 on each)
    assert np.median(np.abs(at_front / truth[0, 0, :, 13:17] - 1)) < 0.15


def test_only_a_two_dimensional_grid_is_pooled():
    noisy = np.sqrt(np.random.default_rng(5).chisquare(9, size=(1, 1, 40)) / 9)  # 40 stations: no neighbours
    pooled, worth = pool_spread(noisy, np.full(noisy.shape, 9.0))
    assert np.array_equal(pooled, noisy) and (worth == 9.0).all()


def test_a_handful_of_rows_keeps_its_in_sample_threshold():
    # fold models of two rows would break the Dirichlet-process mixture; a tiny sample fits as before
    from geoanom.detectors import Ensemble

    X = np.random.default_rng(6).normal(size=(5, 3))
    [ensemble] = Ensemble.fit_many([X], ("gmm", "kmeans", "dpmm", "iforest", "event"), [0])
    [alone] = GMMDetector.fit_many([X], [0])
    assert ensemble.detectors_["gmm"].native_threshold_ == alone.native_threshold_


def test_tiles_of_a_few_dozen_rows_flag_about_the_contamination_of_new_normal_rows():
    # the trial of session 27: tiles of 20-29 rows kept in-sample thresholds and flagged 8-11% by the majority
    from geoanom.detectors import Ensemble
    from geoanom.detectors.event import event_params

    names = ("gmm", "kmeans", "dpmm", "iforest", "event")
    rng = np.random.default_rng(24)

    def rows(n):
        a = rng.normal(size=n)
        return np.c_[a, 0.6 * a + 0.8 * rng.normal(size=n), 0.3 * a + 0.95 * rng.normal(size=n)]

    samples = [rows(24) for _ in range(40)]
    fitted = Ensemble.fit_many(samples, names, list(range(40)),
                               params={"event": event_params(["x_anomaly", "x_neighbours", "x_background"])},
                               columns={name: [0, 1] for name in names[:4]})
    flags = np.array([ensemble.irregularity(rows(500)) > 1 for ensemble in fitted])  # (tile, family, row)
    assert (flags.sum(axis=1) >= 3).mean() < 0.02  # 0.082 before
    assert flags.mean(axis=(0, 2)).max() < 0.035  # kmeans 0.189 before


def test_the_tail_beyond_the_largest_of_few_scores_is_extrapolated():
    from geoanom.detectors.thresholds import tail_quantile

    rng = np.random.default_rng(7)
    flagged = []
    for _ in range(400):
        train, new = np.abs(rng.normal(size=(2, 24, 2))).sum(axis=2)  # 24 held-out distances, and new ones
        threshold = contamination_quantile(train, 0.01, anomalous_above=True, held_out=True)
        assert threshold == tail_quantile(train, 0.01, anomalous_above=True) >= train.max()
        flagged.append(np.mean(np.abs(rng.normal(size=(2000, 2))).sum(axis=1) > threshold))
    assert np.mean(flagged) < 0.015  # the largest score alone flags 1 / 25 = 4%
    # anomalous below: mirrored
    assert tail_quantile(-train, 0.01, anomalous_above=False) == -tail_quantile(train, 0.01, anomalous_above=True)


def test_kmeans_has_at_most_one_cluster_per_twelve_rows():
    rng = np.random.default_rng(8)
    fitted = KMeansDetector.fit_many([rng.normal(size=(24, 2)) for _ in range(20)], list(range(20)))
    assert max(len(detector.means_) for detector in fitted) <= 2  # canopies gave 4-6 before
    large = KMeansDetector.fit_many([rng.normal(size=(400, 2))], [0])[0]
    assert len(large.means_) > 2  # a large tile keeps its canopies


@pytest.mark.slow
def test_fit_on_tiles_of_24_rows_flags_about_the_contamination_of_unseen_clean_data():
    import geoanom as ga

    cube, _ = ga.testing.synthetic_cube(n_years=4, n_lat=12, n_lon=16, anomaly_rate=0.0, seed=3)
    model = ga.fit(cube.isel(time=slice(0, 24)), precision=3, min_observations=20)
    result = model.score(cube.isel(time=slice(24, None))).compute()
    assert float(result.ensemble.mean()) < 0.02  # 0.107 before (kmeans 0.24)


@pytest.mark.parametrize("name, check", [("min_observations", "check_min_observations"),
                                         ("sample_size", "check_sample_size")])
def test_sizes_below_what_the_families_support_are_refused_in_one_sentence(name, check):
    from geoanom.detectors import limits
    from geoanom.errors import ParameterError

    with pytest.raises(ParameterError, match=rf"^{name} must be a whole number of at least 12, got 11: [^.]*\.$"):
        getattr(limits, check)(11)
    assert getattr(limits, check)(12) == 12
