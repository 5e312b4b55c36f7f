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
