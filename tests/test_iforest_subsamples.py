"""The compiled subsample draws of the isolation-forest builder equal numpy's ``Generator.choice``, stream and all."""

import numpy as np
import pytest

from geoanom.detectors.isolation_trees import subsamples


def _numpy_subsamples(rng, n, psi, n_trees):
    if psi >= n:
        return np.tile(np.arange(n), n_trees)
    return np.concatenate([rng.choice(n, psi, replace=False) for _ in range(n_trees)])


@pytest.mark.parametrize(("n", "psi"), [(2, 1), (3, 2), (300, 256), (4096, 256), (4096, 4095), (10_000, 256),
                                        (10_001, 256), (12_800, 256), (20_000, 256), (50_000, 1500), (100, 100),
                                        (7, 9)])
def test_subsamples_are_numpys_choice_and_leave_the_same_state(n, psi):
    """Same rows, same order, and the generator left where numpy leaves it (the split keys are drawn next)."""
    ours, theirs = np.random.default_rng([n, psi]), np.random.default_rng([n, psi])
    picks = subsamples(ours, n, psi, 7)
    assert np.array_equal(picks, _numpy_subsamples(theirs, n, psi, 7))
    assert np.array_equal(ours.integers(0, 2**64, size=4, dtype=np.uint64),
                          theirs.integers(0, 2**64, size=4, dtype=np.uint64))


def test_subsamples_over_random_sizes_and_seeds():
    """Many (n, psi, seed): a rejection in Lemire's draw or a collision in Floyd's set happens in some of them."""
    sizes = np.random.default_rng(1)
    for seed in range(150):
        n = int(sizes.integers(2, 12_000))
        psi = int(sizes.integers(1, min(n, 700) + 1))
        ours, theirs = np.random.default_rng(seed), np.random.default_rng(seed)
        assert np.array_equal(subsamples(ours, n, psi, 3), _numpy_subsamples(theirs, n, psi, 3)), (seed, n, psi)
        assert ours.bit_generator.state == theirs.bit_generator.state


def test_subsamples_are_rows_without_replacement():
    picks = subsamples(np.random.default_rng(3), 5000, 256, 50).reshape(50, 256)
    assert picks.min() >= 0 and picks.max() < 5000
    assert all(len(np.unique(row)) == 256 for row in picks)


def test_without_numbas_bit_generator_access_the_subsamples_come_from_numpy(monkeypatch):
    """Another numba (no ``next_uint32``): Generator.choice draws them, the same rows."""
    from geoanom.detectors import isolation_trees

    compiled = subsamples(np.random.default_rng(4), 3000, 256, 5)
    monkeypatch.setattr(isolation_trees, "next_uint32", None)
    assert np.array_equal(subsamples(np.random.default_rng(4), 3000, 256, 5), compiled)
