"""Client-level DP for federated rounds: clipping, noise, and epsilons checked against dp-accounting itself."""

from __future__ import annotations

import dp_accounting
import numpy as np
import pytest
from dp_accounting.pld import PLDAccountant
from dp_accounting.rdp import RdpAccountant

from geoanom.errors import GeoanomError
from geoanom.federated import privacy as dp
from geoanom.federated.privacy import (
    GaussianDP,
    PrivacyAccountant,
    add_noise,
    clip_update,
    epsilons,
    noisy_mean,
    private_mean,
)

# The issue's reference point: noise multiplier 1.1, 10% of clients per round, 100 rounds, delta 1e-5.
Z, Q, ROUNDS, DELTA = 1.1, 0.1, 100, 1e-5


def reference_epsilon(accountant_class, noise_multiplier: float, q: float, rounds: int, delta: float) -> float:
    """Epsilon computed straight from dp-accounting, independently of geoanom."""
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(noise_multiplier)), rounds)
    return float(accountant_class().compose(event).get_epsilon(delta))


@pytest.fixture(scope="module")
def reference_point() -> dict[str, float]:
    return epsilons(Z, Q, ROUNDS, DELTA)


def test_clip_update_scales_long_vectors_to_the_bound():
    rng = np.random.default_rng(0)
    for _ in range(50):
        delta = rng.normal(size=30) * rng.uniform(2, 100)
        clipped, norm = clip_update(delta, 1.5)
        assert norm == pytest.approx(np.linalg.norm(delta), rel=1e-12)
        assert np.linalg.norm(clipped) <= 1.5 * (1 + 1e-12)
        assert np.linalg.norm(clipped) == pytest.approx(1.5, rel=1e-12)
        np.testing.assert_allclose(clipped / np.linalg.norm(clipped), delta / norm, rtol=1e-12)  # same direction


def test_clip_update_leaves_short_vectors_unchanged():
    delta = np.array([0.3, -0.4])  # norm 0.5
    clipped, norm = clip_update(delta, 1.0)
    np.testing.assert_array_equal(clipped, delta)
    assert norm == pytest.approx(0.5)
    zeros, zero_norm = clip_update(np.zeros(4), 1.0)
    np.testing.assert_array_equal(zeros, 0.0)
    assert zero_norm == 0.0


def test_clip_update_refuses_non_finite_updates():
    with pytest.raises(GeoanomError):
        clip_update(np.array([1.0, np.nan]), 1.0)


def test_private_mean_noise_has_the_right_std_and_the_mean_the_fixed_denominator():
    rng = np.random.default_rng(1)
    privacy = GaussianDP(noise_multiplier=1.3, clip=2.0)
    n_clients, q, dim, draws = 50, 0.2, 100, 400
    updates = [clip_update(rng.normal(size=dim) * 3, privacy.clip)[0] for _ in range(7)]
    expected = np.mean(updates, axis=0) * (len(updates) / (q * n_clients))  # sum / (q n)
    outputs = np.stack([private_mean(updates, n_clients, privacy, q, rng) for _ in range(draws)])
    noise = outputs - expected
    assert noise.std() == pytest.approx(1.3 * 2.0 / (q * n_clients), rel=0.03)
    # Mean over draws: within 5 standard errors of the noise-free estimate, coordinate by coordinate.
    assert np.abs(outputs.mean(axis=0) - expected).max() < 5 * 1.3 * 2.0 / (q * n_clients) / np.sqrt(draws)


def test_add_noise_is_centred_gaussian_of_std_noise_multiplier_times_clip():
    total = np.full(40_000, 3.0)
    noisy = add_noise(total, GaussianDP(noise_multiplier=0.8, clip=0.5), np.random.default_rng(2))
    assert (noisy - total).std() == pytest.approx(0.4, rel=0.03)
    assert abs((noisy - total).mean()) < 0.01


def test_private_mean_adds_noise_even_when_nobody_took_part():
    privacy = GaussianDP(noise_multiplier=1.0, clip=1.0)
    out = private_mean([], 10, privacy, 0.5, np.random.default_rng(3), shape=(1000,))
    assert out.shape == (1000,)
    assert out.std() == pytest.approx(1.0 / 5, rel=0.1)
    with pytest.raises(GeoanomError):
        private_mean([], 10, privacy, 0.5, np.random.default_rng(3))


def test_the_engines_noisy_mean_of_a_tree_sum_is_private_mean():
    # The engine sums clipped updates in its tree reduction and finishes with noisy_mean: the same
    # release as private_mean of the updates, for the same noise draw.
    rng = np.random.default_rng(5)
    privacy = GaussianDP(noise_multiplier=0.7, clip=1.0)
    updates = [clip_update(rng.normal(size=6) * 2, privacy.clip)[0] for _ in range(5)]
    tree_sum = (updates[0] + updates[1]) + (updates[2] + updates[3] + updates[4])
    released = noisy_mean(tree_sum, 20, privacy, 0.25, np.random.default_rng(9))
    np.testing.assert_allclose(released, private_mean(updates, 20, privacy, 0.25, np.random.default_rng(9)),
                               rtol=1e-12, atol=1e-15)
    assert not np.allclose(released, np.sum(updates, axis=0) / 5)  # noise was added
    for bad in (0, 2.5, True):
        with pytest.raises(GeoanomError, match="n_clients"):
            noisy_mean(tree_sum, bad, privacy, 0.25, rng)


def test_private_mean_refuses_unclipped_updates():
    privacy = GaussianDP(noise_multiplier=1.0, clip=1.0)
    with pytest.raises(GeoanomError):
        private_mean([np.array([3.0, 4.0])], 10, privacy, 0.5, np.random.default_rng(4))


@pytest.mark.parametrize("rounds", [1, 7, 100])
def test_rdp_epsilon_matches_dp_accounting(rounds):
    accountant = PrivacyAccountant(GaussianDP(noise_multiplier=Z, clip=1.0, delta=DELTA), Q)
    expected = reference_epsilon(RdpAccountant, Z, Q, rounds, DELTA)
    assert accountant.epsilon_after(rounds) == pytest.approx(expected, rel=1e-9)


def test_pld_epsilon_matches_dp_accounting():
    accountant = PrivacyAccountant(GaussianDP(noise_multiplier=Z, clip=1.0, delta=DELTA, accountant="pld"), Q)
    expected = reference_epsilon(PLDAccountant, Z, Q, ROUNDS, DELTA)
    assert accountant.epsilon_after(ROUNDS) == pytest.approx(expected, rel=1e-9)


def test_spent_rounds_compose_like_one_event():
    accountant = PrivacyAccountant(GaussianDP(noise_multiplier=Z, clip=1.0, delta=DELTA), Q)
    assert accountant.epsilon == 0.0 and accountant.rounds_spent == 0
    spent = [accountant.spend_round() for _ in range(3)]
    assert accountant.rounds_spent == 3
    assert spent[0] < spent[1] < spent[2] == accountant.epsilon
    assert accountant.epsilon == pytest.approx(reference_epsilon(RdpAccountant, Z, Q, 3, DELTA), rel=1e-9)
    assert accountant.can_afford_round()  # no budget, no limit


def test_epsilons_are_cached(monkeypatch):
    accountant = PrivacyAccountant(GaussianDP(noise_multiplier=Z, clip=1.0), Q)
    calls = []
    original = dp._epsilon
    monkeypatch.setattr(dp, "_epsilon", lambda *args: calls.append(args) or original(*args))
    first = accountant.epsilon_after(5)
    assert accountant.epsilon_after(5) == first
    assert len(calls) == 1


def test_rdp_and_pld_agree_roughly(reference_point):
    rdp, pld = reference_point["rdp"], reference_point["pld"]
    assert rdp > 0 and pld > 0
    assert pld <= rdp + 0.05  # PLD is the tighter accountant
    assert pld > 0.8 * rdp


def test_reference_point_and_amplification_by_sampling(reference_point):
    # dp-accounting 0.6.0 gives RDP 6.6208 and PLD 5.9127 here.
    assert reference_point["rdp"] == pytest.approx(6.6, abs=0.3)
    everyone = epsilons(Z, 1.0, ROUNDS, DELTA)  # q = 1: every client every round, no amplification
    assert everyone["rdp"] >= 80  # 83.10
    assert everyone["rdp"] > 10 * reference_point["rdp"]
    assert everyone["pld"] > 10 * reference_point["pld"]


def test_can_afford_round_stops_at_the_last_round_within_budget():
    budget, z, q = 5.0, 1.0, 0.2
    last = next(r for r in range(1, 100) if reference_epsilon(RdpAccountant, z, q, r + 1, DELTA) > budget)
    accountant = PrivacyAccountant(GaussianDP(noise_multiplier=z, clip=1.0, delta=DELTA, max_epsilon=budget), q)
    while accountant.can_afford_round():
        accountant.spend_round()
    assert accountant.rounds_spent == last
    assert accountant.epsilon <= budget < accountant.epsilon_after(last + 1)


@pytest.mark.parametrize("settings", [
    {"noise_multiplier": 0.0}, {"noise_multiplier": -1.0}, {"noise_multiplier": float("nan")},
    {"noise_multiplier": "1"}, {"clip": 0.0}, {"clip": float("inf")}, {"delta": 0.0}, {"delta": 1.0},
    {"max_epsilon": 0.0}, {"max_epsilon": -2.0}, {"accountant": "moments"},
])
def test_invalid_settings_raise(settings):
    with pytest.raises(GeoanomError):
        GaussianDP(**{"noise_multiplier": 1.0, "clip": 1.0, **settings})


@pytest.mark.parametrize("rate", [0.0, -0.1, 1.5, float("nan")])
def test_invalid_sampling_rate_raises(rate):
    with pytest.raises(GeoanomError):
        PrivacyAccountant(GaussianDP(noise_multiplier=1.0, clip=1.0), rate)
    with pytest.raises(GeoanomError):
        epsilons(1.0, rate, 10, 1e-5)


def test_invalid_arguments_raise():
    accountant = PrivacyAccountant(GaussianDP(noise_multiplier=1.0, clip=1.0), 0.1)
    for rounds in (-1, 2.5):
        with pytest.raises(GeoanomError):
            accountant.epsilon_after(rounds)
    with pytest.raises(GeoanomError):
        PrivacyAccountant({"noise_multiplier": 1.0}, 0.1)
    with pytest.raises(GeoanomError):
        epsilons(1.0, 0.1, 10, 0.0)
    with pytest.raises(GeoanomError):
        clip_update(np.ones(3), 0.0)
    with pytest.raises(GeoanomError):
        private_mean([np.ones(3) * 0.1], 0, GaussianDP(noise_multiplier=1.0, clip=1.0), 0.1, np.random.default_rng(0))
