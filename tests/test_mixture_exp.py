"""The EM's vectorised exp: within 1 ulp of libm's, exp(0) exactly 1, the same bits wherever a value sits."""

import numpy as np

from geoanom.detectors.mixture import _exp_in_place


def _exp(values):
    out = np.array(values, dtype=np.float64)
    _exp_in_place(out, np.empty(len(out), dtype=np.int64))
    return out


def test_within_one_ulp_of_libm_and_exact_at_zero():
    rng = np.random.default_rng(3)
    x = np.concatenate([-rng.exponential(5.0, 200_000), -rng.uniform(0, 1, 50_000), -rng.uniform(600, 708, 1000)])
    got, expected = _exp(x), np.exp(x)
    assert np.max(np.abs(got - expected) / np.spacing(expected)) <= 1.0
    assert _exp([0.0, -0.0]).tolist() == [1.0, 1.0]


def test_below_minus_708_is_taken_as_minus_708():
    assert _exp([-709.0, -1e6, -np.inf]).tolist() == [_exp([-708.0])[0]] * 3
    assert 0 < _exp([-708.0])[0] < 1e-307


def test_bits_do_not_depend_on_position_or_length():
    x = -np.random.default_rng(4).exponential(3.0, 1001)
    whole = _exp(x)
    pieces = np.concatenate([_exp(x[start:start + size]) for start, size in ((0, 1), (1, 7), (8, 993))])
    np.testing.assert_array_equal(whole.view(np.uint64), pieces.view(np.uint64))
    np.testing.assert_array_equal(_exp(x[::-1])[::-1].view(np.uint64), whole.view(np.uint64))
