"""The copies of the tile models a lazy result holds (model/score.py's _snapshot)."""

from __future__ import annotations

import numpy as np

import geoanom
from geoanom.model.score import _snapshot


def _fitted_ensemble() -> geoanom.Ensemble:
    rows = np.random.default_rng(3).normal(size=(600, 3))
    return geoanom.Ensemble(random_state=0).fit(rows)


def test_a_snapshot_scores_as_the_model_did_and_keeps_doing_so_when_the_model_changes():
    ensemble = _fitted_ensemble()
    rows = np.random.default_rng(4).normal(size=(300, 3)) * 2.0
    before = ensemble.irregularity(rows)
    copy = _snapshot(ensemble)
    assert np.array_equal(copy.irregularity(rows), before, equal_nan=True)
    for name, detector in ensemble.detectors_.items():  # the model adapts afterwards: the copy does not
        detector.update(ensemble.family_rows(name, rows))
    assert not np.array_equal(ensemble.irregularity(rows), before, equal_nan=True)
    assert np.array_equal(copy.irregularity(rows), before, equal_nan=True)


def test_a_snapshot_shares_read_only_arrays_and_copies_the_others():
    ensemble = _fitted_ensemble()
    copy = _snapshot(ensemble)
    shared = copied = 0
    for name, detector in ensemble.detectors_.items():
        twin = copy.detectors_[name]
        assert type(twin) is type(detector) and twin is not detector
        for key, value in vars(detector).items():
            if isinstance(value, np.ndarray):
                other = vars(twin)[key]
                assert other.dtype == value.dtype and other.flags.c_contiguous == value.flags.c_contiguous
                if value.flags.writeable:
                    assert other is not value and not np.shares_memory(other, value)
                    copied += 1
                else:
                    assert other is value
                    shared += 1
            elif isinstance(value, (list, dict)):
                assert vars(twin)[key] == value and vars(twin)[key] is not value
    assert shared and copied  # the forest's nodes are read-only, the mixtures' arrays are not
