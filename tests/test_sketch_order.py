"""The sketches' linear-time key order against numpy's sort."""

import numpy as np
import pytest

from geoanom.detectors.sketch import _key_order, observation_keys


@pytest.mark.parametrize("n", [0, 1, 2, 3, 17, 4096, 11880])
def test_key_order_is_numpys_argsort_of_hashed_keys(n):
    rng = np.random.default_rng(n)
    keys = observation_keys(np.arange(n // 9 + 1), rng.permutation(100_000)[:9], seed=7).ravel()[:n]
    padded = np.concatenate([keys, np.array([0, 2**64 - 1], dtype=np.uint64)])  # beyond n: ignored
    np.testing.assert_array_equal(_key_order(padded, n), np.argsort(keys, kind="stable"))


def test_key_order_sorts_keys_sharing_a_bucket():
    keys = np.array([2**63 + 5, 2**63 + 1, 3, 2**63 + 3, 1], dtype=np.uint64)  # three in the top bucket
    np.testing.assert_array_equal(_key_order(keys, 5), np.argsort(keys))


@pytest.mark.parametrize("sizes", [(0, 0), (0, 5), (5, 0), (300, 4000), (4096, 4096), (10, 12)])
def test_a_merge_keeps_the_smallest_keys_of_the_union(sizes):
    from geoanom.detectors.sketch import TileSketch, _merged_smallest, _smallest

    rng = np.random.default_rng(sum(sizes))
    keys = observation_keys(np.arange(sum(sizes)), np.array([3]), seed=1).ravel()
    a, b = np.sort(keys[:sizes[0]]), np.sort(keys[sizes[0]:])
    np.testing.assert_array_equal(_merged_smallest(a, b, 4096), _smallest(np.concatenate([a, b]), 4096))
    # a hand-built sketch with unsorted keys is merged by sorting the union
    left = TileSketch(len(a), np.zeros(1), np.zeros((1, 1)), rng.permutation(a), rng.normal(size=(len(a), 1)), 64)
    right = TileSketch(len(b), np.zeros(1), np.zeros((1, 1)), b, rng.normal(size=(len(b), 1)), 64)
    merged = left.merge(right)
    np.testing.assert_array_equal(merged.keys, np.sort(keys)[:64])
