"""Aggregators of client updates, each checked against its formula computed by brute force."""

from __future__ import annotations

import dataclasses
import math
from fractions import Fraction

import dask
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geoanom.errors import GeoanomError
from geoanom.federated.aggregators import (
    combine_partials,
    coordinate_median,
    fedavg,
    finish_partial,
    krum,
    krum_scores,
    multi_krum,
    trimmed_mean,
    weighted_partial,
)
from geoanom.federated.rules import (
    AGGREGATORS,
    Aggregator,
    FedAvg,
    FedProx,
    Krum,
    Median,
    MultiKrum,
    TrimmedMean,
    make_aggregator,
)
from geoanom.reduction import tree_reduce

# ------------------------------------------------------- independent formulas


def brute_fedavg(x, w):
    total, weight = [0.0] * x.shape[1], 0.0
    for row, wi in zip(x.tolist(), w.tolist()):
        total = [t + wi * v for t, v in zip(total, row)]
        weight += wi
    return np.array([t / weight for t in total])


def brute_median(x):
    out = []
    for col in x.T.tolist():
        s, n = sorted(col), len(col)
        out.append(s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2)
    return np.array(out)


def brute_trimmed(x, beta):
    n = x.shape[0]
    k = math.floor(Fraction(str(beta)) * n)  # exact, with no float rounding
    return np.array([sum(sorted(col)[k : n - k]) / (n - 2 * k) for col in x.T.tolist()])


def brute_scores(x, f):
    n = x.shape[0]
    scores = []
    for i in range(n):
        d = sorted(sum((a - b) ** 2 for a, b in zip(x[i], x[j])) for j in range(n) if j != i)
        scores.append(sum(d[: n - f - 2]))
    return np.array(scores)


def honest_and_byzantine(rng, n_honest, n_byz, p=6, clumped=False):
    """Honest updates near 1, Byzantine ones near 100 (rows shuffled); returns (x, is_byzantine)."""
    honest = 1.0 + 0.1 * rng.standard_normal((n_honest, p))
    if clumped:  # colluding attackers send the same vector, so they are each other's neighbours
        byz = np.tile(100.0 + rng.standard_normal(p), (n_byz, 1))
    else:
        byz = 100.0 + 30.0 * rng.standard_normal((n_byz, p))
    order = rng.permutation(n_honest + n_byz)
    x = np.vstack([honest, byz])[order]
    return x, order >= n_honest


@pytest.fixture
def rng():
    return np.random.default_rng(20240611)


# ------------------------------------------------------------------- FedAvg


def test_fedavg_matches_formula(rng):
    for n, p in [(1, 3), (5, 1), (9, 17)]:
        x = rng.standard_normal((n, p)) * 10
        w = rng.integers(0, 50, n).astype(float)
        w[0] += 1  # a positive sum; other clients may have zero samples
        np.testing.assert_allclose(fedavg(x, w), brute_fedavg(x, w), rtol=1e-12, atol=1e-12)


def test_fedavg_ignores_zero_weight_clients(rng):
    x = rng.standard_normal((4, 3))
    x[2] = 1e9
    np.testing.assert_allclose(fedavg(x, np.array([1.0, 2.0, 0.0, 3.0])), brute_fedavg(x[[0, 1, 3]], np.array([1.0, 2, 3])))


def reduce_randomly(parts, data):
    """Merge ``parts`` with ``combine_partials`` in an arbitrary grouping chosen by hypothesis."""
    parts = list(parts)
    while len(parts) > 1:
        size = data.draw(st.integers(2, len(parts)))
        start = data.draw(st.integers(0, len(parts) - size))
        parts[start : start + size] = [combine_partials(*parts[start : start + size])]
    return parts[0]


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 12),
    p=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    data=st.data(),
)
def test_fedavg_equals_tree_reduction_in_any_grouping_and_order(n, p, seed, data):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, p)) * 100
    w = rng.integers(0, 1000, n).astype(float)
    w[rng.integers(n)] += 1
    order = data.draw(st.permutations(range(n)))
    root = reduce_randomly([weighted_partial(x[i], w[i]) for i in order], data)
    assert root[1] == pytest.approx(w.sum())
    np.testing.assert_allclose(finish_partial(root), fedavg(x, w), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("split_every", [2, 3, 7])
def test_fedavg_equals_dask_tree_reduce(rng, split_every):
    x = rng.standard_normal((23, 4))
    w = rng.integers(1, 100, 23).astype(float)
    parts = [dask.delayed(weighted_partial)(x[i], w[i]) for i in range(23)]
    root = tree_reduce(parts, combine_partials, split_every)
    (partial,) = dask.compute(root, scheduler="sync")
    np.testing.assert_allclose(finish_partial(partial), brute_fedavg(x, w), rtol=1e-12)


def test_partials_are_exact_and_leave_inputs_alone(rng):
    u, v = rng.standard_normal(3), rng.standard_normal(3)
    pu, pv = weighted_partial(u, 2.0), weighted_partial(v, 5)
    np.testing.assert_array_equal(pu[0], 2.0 * u)
    assert pu[1] == 2.0 and pv[1] == 5.0
    before = pu[0].copy()
    merged = combine_partials(pu, pv)
    np.testing.assert_array_equal(pu[0], before)
    np.testing.assert_allclose(merged[0], 2 * u + 5 * v)
    assert merged[1] == 7.0
    assert combine_partials(pu)[0] is not pu[0]
    np.testing.assert_allclose(finish_partial(merged), (2 * u + 5 * v) / 7)


def test_partial_errors():
    with pytest.raises(GeoanomError, match="1-D"):
        weighted_partial(np.ones((2, 3)), 1.0)
    with pytest.raises(GeoanomError, match="-1"):
        weighted_partial(np.ones(3), -1.0)
    with pytest.raises(GeoanomError, match="finite"):
        weighted_partial(np.array([1.0, np.nan]), 1.0)
    with pytest.raises(GeoanomError, match="at least one"):
        combine_partials()
    with pytest.raises(GeoanomError, match="same shape"):
        combine_partials((np.ones(2), 1.0), (np.ones(3), 1.0))
    with pytest.raises(GeoanomError, match="positive sum"):
        finish_partial((np.zeros(3), 0.0))


# ------------------------------------------------------ median, trimmed mean


@pytest.mark.parametrize("n", [1, 2, 7, 10])
def test_median_matches_formula(rng, n):
    x = rng.standard_normal((n, 5))
    np.testing.assert_array_equal(coordinate_median(x, np.ones(n)), brute_median(x))


def test_median_ignores_huge_outliers(rng):
    honest = rng.uniform(0, 1, (7, 4))
    x = np.vstack([honest, np.full((3, 4), 1e12)])
    out = coordinate_median(x)
    assert np.all((out >= honest.min(axis=0)) & (out <= honest.max(axis=0)))
    assert np.all(fedavg(x, np.ones(10)) > 1e10)  # the plain mean is ruined


@pytest.mark.parametrize(
    ("n", "beta"), [(1, 0.4), (5, 0.0), (10, 0.1), (10, 0.2), (11, 0.25), (100, 0.29), (7, 0.49)]
)
def test_trimmed_mean_matches_formula(rng, n, beta):
    x = rng.standard_normal((n, 3))
    np.testing.assert_allclose(trimmed_mean(x, beta), brute_trimmed(x, beta), rtol=1e-12, atol=1e-12)


def test_trimmed_mean_drops_floor_beta_n_from_each_end():
    x = np.arange(10.0)[:, None]  # 0..9: beta=0.2 drops {0, 1} and {8, 9}
    assert trimmed_mean(x, 0.2)[0] == pytest.approx(np.mean([2, 3, 4, 5, 6, 7]))
    assert trimmed_mean(x, 0.19)[0] == pytest.approx(np.mean(range(1, 9)))
    assert trimmed_mean(x, 0.0)[0] == pytest.approx(4.5)


def test_trimmed_mean_ignores_huge_outliers_on_both_sides(rng):
    honest = rng.uniform(0, 1, (6, 4))
    x = np.vstack([honest, np.full((2, 4), 1e12), np.full((2, 4), -1e12)])[rng.permutation(10)]
    out = trimmed_mean(x, 0.2, np.ones(10))
    np.testing.assert_allclose(out, honest.mean(axis=0), rtol=1e-12)


@pytest.mark.parametrize("beta", [0.5, -0.1, float("nan"), float("inf"), "abc"])
def test_trimmed_mean_rejects_bad_beta(rng, beta):
    with pytest.raises(GeoanomError, match="beta"):
        trimmed_mean(rng.standard_normal((5, 2)), beta)


# ----------------------------------------------------------- Krum, multi-Krum


@pytest.mark.parametrize(("n", "f"), [(3, 0), (5, 1), (9, 3), (12, 2)])
def test_krum_scores_match_formula(rng, n, f):
    x = rng.standard_normal((n, 4))
    np.testing.assert_allclose(krum_scores(x, f), brute_scores(x, f), rtol=1e-9)


def test_krum_scores_are_accurate_far_from_the_origin(rng):
    x = 0.01 * rng.standard_normal((9, 50))
    np.testing.assert_allclose(krum_scores(x + 1e6, 2), brute_scores(x, 2), rtol=1e-6)


@pytest.mark.parametrize("clumped", [False, True])
def test_krum_picks_an_honest_update(rng, clumped):
    x, byz = honest_and_byzantine(rng, 8, 3, clumped=clumped)
    out = krum(x, 3, np.ones(11))
    matches = np.flatnonzero(np.all(x == out, axis=1))
    assert matches.size == 1 and not byz[matches[0]]
    assert matches[0] == np.argmin(brute_scores(x, 3))


def test_krum_needs_2f_plus_3_clients(rng):
    krum(rng.standard_normal((5, 2)), 1)  # 5 = 2*1 + 3 is enough
    with pytest.raises(GeoanomError, match=r"n=4.*f=1"):
        krum(rng.standard_normal((4, 2)), 1)
    with pytest.raises(GeoanomError, match=r"n=6.*f=2"):
        multi_krum(rng.standard_normal((6, 2)), 2)


@pytest.mark.parametrize("f", [-1, 1.5, True, "2"])
def test_krum_rejects_bad_f(rng, f):
    with pytest.raises(GeoanomError, match="Krum f"):
        krum_scores(rng.standard_normal((9, 2)), f)


@pytest.mark.parametrize(("n", "f", "m"), [(7, 1, None), (7, 1, 3), (10, 3, 1), (10, 2, 8)])
def test_multi_krum_matches_formula(rng, n, f, m):
    x = rng.standard_normal((n, 3))
    w = rng.integers(1, 20, n).astype(float)
    chosen = np.argsort(brute_scores(x, f))[: n - f if m is None else m]
    np.testing.assert_allclose(multi_krum(x, f, m, w), brute_fedavg(x[chosen], w[chosen]), rtol=1e-12)


@pytest.mark.parametrize("clumped", [False, True])
def test_multi_krum_averages_exactly_the_honest_updates(rng, clumped):
    x, byz = honest_and_byzantine(rng, 9, 3, clumped=clumped)
    w = rng.integers(1, 50, 12).astype(float)
    out = multi_krum(x, 3, weights=w)  # m = n - f = 9 = the honest clients
    np.testing.assert_allclose(out, brute_fedavg(x[~byz], w[~byz]), rtol=1e-12)


def test_multi_krum_with_m_1_is_krum_and_unweighted_by_default(rng):
    x = rng.standard_normal((8, 3))
    np.testing.assert_array_equal(multi_krum(x, 2, m=1, weights=np.full(8, 3.0)), krum(x, 2))
    chosen = np.argsort(brute_scores(x, 2))[:6]
    np.testing.assert_allclose(multi_krum(x, 2), x[chosen].mean(axis=0), rtol=1e-12)


def test_multi_krum_rejects_bad_m_and_zero_weight_selection(rng):
    x, byz = honest_and_byzantine(rng, 6, 1)
    with pytest.raises(GeoanomError, match="m=7"):
        multi_krum(x, 1, m=7)
    with pytest.raises(GeoanomError, match="at least 1"):
        multi_krum(x, 1, m=0)
    w = np.where(byz, 1.0, 0.0)  # only the attacker, which is never selected, has samples
    with pytest.raises(GeoanomError, match="zero weight"):
        multi_krum(x, 1, weights=w)


# --------------------------------------------------------------- validation

BAD_UPDATES = [
    (np.ones(3), r"\(3,\)"),
    (np.ones((2, 3, 4)), r"\(2, 3, 4\)"),
    (np.ones((0, 3)), r"\(0, 3\)"),
    (np.ones((3, 0)), r"\(3, 0\)"),
    (np.array([[1.0, 2.0], [np.nan, 1.0], [1.0, 1.0]]), "client 1"),
    (np.array([[1.0, 2.0], [1.0, 1.0], [1.0, np.inf]]), "client 2"),
    (np.array([["a", "b"]]), "dtype"),
    (np.ones((3, 2), dtype=complex), "complex"),
]
BAD_WEIGHTS = [
    (np.ones(4), "3 real numbers"),
    (np.ones((3, 1)), r"\(3, 1\)"),
    (np.array([1.0, -2.0, 1.0]), "client 1 has weight -2"),
    (np.array([1.0, 1.0, np.nan]), "client 2 has weight nan"),
    (np.zeros(3), "positive sum"),
]


@pytest.mark.parametrize("name", AGGREGATORS)
@pytest.mark.parametrize(("updates", "message"), BAD_UPDATES)
def test_every_aggregator_rejects_bad_updates(name, updates, message):
    with pytest.raises(GeoanomError, match=message) as info:
        make_aggregator(name, **({"f": 0} if "krum" in name else {}))(updates, np.ones(len(updates)))
    assert str(info.value).endswith(".")


@pytest.mark.parametrize("name", AGGREGATORS)
@pytest.mark.parametrize(("weights", "message"), BAD_WEIGHTS)
def test_every_aggregator_rejects_bad_weights(rng, name, weights, message):
    with pytest.raises(GeoanomError, match=message):
        make_aggregator(name, **({"f": 0} if "krum" in name else {}))(rng.standard_normal((3, 2)), weights)


@pytest.mark.parametrize("dtype", [np.int64, np.float64])
@pytest.mark.parametrize("name", AGGREGATORS)
def test_aggregators_accept_integers_and_leave_inputs_alone(name, dtype):
    x = np.array([[1, 2], [3, 4], [5, 7], [2, 2], [9, 0]], dtype=dtype)
    w = np.array([1, 2, 3, 4, 5], dtype=dtype)
    x0, w0 = x.copy(), w.copy()
    out = make_aggregator(name)(x, w)
    assert out.dtype == np.float64 and out.shape == (2,)
    out[:] = -1  # the result is a new array, not a view of the input
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


# ------------------------------------------------- Aggregator, make_aggregator


def test_associative_only_for_weighted_means():
    assert {name for name in AGGREGATORS if make_aggregator(name).associative} == {"fedavg", "fedprox"}


def test_every_name_is_one_aggregator_type():
    rules = {name: type(make_aggregator(name)) for name in AGGREGATORS}
    assert all(issubclass(rule, Aggregator) and rule.name == name for name, rule in rules.items())
    assert len(set(rules.values())) == len(AGGREGATORS)


def test_aggregator_call_applies_its_rule(rng):
    x, w = rng.standard_normal((9, 4)), rng.integers(1, 9, 9).astype(float)
    chosen = np.argsort(brute_scores(x, 2))[:4]
    expected = [
        (FedAvg(), brute_fedavg(x, w)),
        (FedProx(mu=0.5), brute_fedavg(x, w)),
        (Median(), brute_median(x)),
        (TrimmedMean(beta=0.25), brute_trimmed(x, 0.25)),
        (Krum(f=2), x[np.argmin(brute_scores(x, 2))]),
        (MultiKrum(f=2, m=4), brute_fedavg(x[chosen], w[chosen])),
    ]
    for agg, want in expected:
        np.testing.assert_allclose(agg(x, w), want, rtol=1e-12, err_msg=agg.name)
        np.testing.assert_allclose(agg.aggregate_round(x, w), want, rtol=1e-12, err_msg=agg.name)


def test_krum_rounds_with_too_few_updates_fall_back_to_the_median(rng):
    x, w = rng.standard_normal((6, 3)), np.ones(6)  # Krum(f=2) needs 2f + 3 = 7
    for agg in (Krum(f=2), MultiKrum(f=2)):
        np.testing.assert_array_equal(agg.aggregate_round(x, w), np.median(x, axis=0))
        with pytest.raises(GeoanomError, match="2f \\+ 3"):
            agg(x, w)


def test_only_fedprox_has_a_proximal_weight():
    assert FedProx(mu=0.3).mu == 0.3
    assert all(make_aggregator(name).mu == 0.0 for name in AGGREGATORS)


def test_settings_are_plain_data():
    assert MultiKrum(f=2, m=3).settings() == {"name": "multi_krum", "f": 2, "m": 3}
    assert Median().settings() == {"name": "median"}


def test_aggregator_is_frozen():
    agg = Krum(f=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        agg.f = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("spec", "options", "expected"),
    [
        ("fedavg", {}, FedAvg()),
        ("fedprox", {}, FedProx(mu=0.0)),
        ("fedprox(0.01)", {}, FedProx(mu=0.01)),
        ("fedprox", {"mu": 0.5}, FedProx(mu=0.5)),
        ("median", {}, Median()),
        ("trimmed_mean", {}, TrimmedMean(beta=0.2)),
        ("trimmed_mean(0.1)", {}, TrimmedMean(beta=0.1)),
        ("krum", {}, Krum(f=1)),
        ("krum(2)", {}, Krum(f=2)),
        (" krum ( 3 ) ", {}, Krum(f=3)),
        ("multi_krum(2)", {}, MultiKrum(f=2)),
        ("multi_krum(2)", {"m": 5}, MultiKrum(f=2, m=5)),
        ("Multi_Krum", {"f": 0}, MultiKrum(f=0)),
    ],
)
def test_make_aggregator_parses(spec, options, expected):
    agg = make_aggregator(spec, **options)
    assert agg == expected and type(agg) is type(expected)  # FedProx() is not FedAvg()
    assert all(type(value) in (int, float, type(None)) for value in dataclasses.asdict(agg).values())


def test_make_aggregator_returns_an_aggregator_as_is():
    agg = MultiKrum(f=2, m=3)
    assert make_aggregator(agg) is agg


@pytest.mark.parametrize(
    ("spec", "options", "message"),
    [
        ("foo", {}, "'foo'"),
        ("krum(1.5)", {}, "'1.5'"),
        ("krum(-1)", {}, "-1"),
        ("krum()", {}, "''"),
        ("krum(", {}, "'krum\\('"),
        ("fedprox(abc)", {}, "'abc'"),
        ("fedprox(-1)", {}, "-1"),
        ("fedprox(nan)", {}, "nan"),
        ("trimmed_mean(0.5)", {}, "0.5"),
        ("median(3)", {}, r"median\(3\)"),
        ("fedavg(0.1)", {}, r"fedavg\(0.1\)"),
        ("krum(2)", {"f": 3}, "f is given twice"),
        ("median", {"beta": 0.2}, "'beta'"),
        ("krum", {"foo": 1}, "'foo'"),
        ("krum", {"m": 3}, "'m'"),
        ("multi_krum", {"m": 0}, "0"),
        (3, {}, "3"),
        (None, {}, "None"),
    ],
)
def test_make_aggregator_rejects(spec, options, message):
    with pytest.raises(GeoanomError, match=message) as info:
        make_aggregator(spec, **options)
    text = str(info.value)
    assert text.endswith(".") and text.count(". ") == 0  # one sentence


def test_make_aggregator_refuses_options_for_an_aggregator():
    with pytest.raises(GeoanomError, match="'f'"):
        make_aggregator(Krum(), f=2)


@pytest.mark.parametrize(
    ("rule", "fields"), [(Krum, {"f": -1}), (FedProx, {"mu": -0.1}), (TrimmedMean, {"beta": 0.6}),
                         (MultiKrum, {"m": 0}), (Krum, {"f": 1.5})]
)  # fmt: skip
def test_aggregator_validates_its_fields(rule, fields):
    with pytest.raises(GeoanomError):
        rule(**fields)


def test_an_aggregator_without_a_rule_cannot_be_made():
    with pytest.raises(TypeError):
        Aggregator()  # type: ignore[abstract]


def test_aggregator_fields_are_plain_python_numbers():
    multi, prox, trimmed = MultiKrum(f=np.int64(2), m=np.int32(3)), FedProx(mu=np.float32(0.5)), TrimmedMean(1 / 4)
    assert [type(v) for v in (prox.mu, trimmed.beta, multi.f, multi.m)] == [float, float, int, int]


def test_default_trimmed_mean_resists_two_sign_flippers_of_ten(rng):
    # Flower's FedTrimmedAvg default, 0.2, trims two a side of ten; 0.1 trims one and lets the second
    # sign-flipper (ten times the opposite of an honest change) drag every coordinate.
    honest = 1.0 + 0.1 * rng.standard_normal((8, 50))
    updates = np.vstack([honest, -10 * honest[:2]])
    truth = honest.mean(axis=0)
    median_error = np.abs(Median()(updates, np.ones(10)) - truth).max()
    default_error = np.abs(TrimmedMean()(updates, np.ones(10)) - truth).max()
    light_error = np.abs(TrimmedMean(beta=0.1)(updates, np.ones(10)) - truth).max()
    assert TrimmedMean().beta == 0.2 and trimmed_mean(updates).tolist() == TrimmedMean()(updates, None).tolist()
    assert default_error < 0.2 and default_error <= 2 * median_error + 0.05
    assert light_error > 1.0  # what beta 0.1 gave
