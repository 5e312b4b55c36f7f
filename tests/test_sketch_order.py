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
