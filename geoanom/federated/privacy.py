"""Client-level differential privacy for federated rounds (DP-FedAvg), with a real accountant.

The mechanism is DP-FedAvg (McMahan et al. 2018, "Learning differentially
private recurrent language models"), run once per round:

1. **Sample.** Every client takes part independently with probability
   ``q = client_fraction`` (Poisson sampling), as the engine already does.
2. **Clip.** Each participant's update (its ``delta`` vector) is scaled down
   to L2 norm at most ``clip`` (:func:`clip_update`).
3. **Sum and noise.** The server sums the clipped updates and adds Gaussian
   noise of standard deviation ``noise_multiplier * clip`` to every
   coordinate (:func:`add_noise`), in every round, even one nobody joined:
   the sampling is part of the mechanism, and an exact zero would reveal
   that nobody was sampled.
4. **Divide by the expected count.** The noisy sum is divided by
   ``q * n_clients``, the *expected* number of participants
   (:func:`private_mean`).

The privacy unit is a whole client (all of its rows, in every round): the
neighbouring data sets differ by adding or removing one client, so the sum
has L2 sensitivity ``clip`` and each round is the Poisson-subsampled Gaussian
mechanism with noise multiplier ``noise_multiplier``.
:class:`PrivacyAccountant` composes those rounds with dp-accounting's RDP or
PLD accountant and reports epsilon at the configured delta.

Why the fixed denominator ``q * n`` and not the number ``m`` of clients who
actually took part: ``m`` changes when a client is added or removed, so
``sum / m`` moves by ``(u - mean) / (m + 1)``, which depends on every other
update and on the random, data-dependent ``m``; the noise would have to be
scaled by ``1 / m`` and so would leak participation, and ``m`` itself is not
protected. Dividing by the public constant ``q * n`` is post-processing of
the Gaussian mechanism on the sum, costs no privacy, and is unbiased for the
mean clipped update over all clients.

Why updates are unweighted: FedAvg weights a client by its row count, and a
client with ``w`` times the average weight would shift the sum by up to
``w * clip``, breaking the sensitivity bound. Under DP every participant's
clipped update counts once (McMahan et al. cap the weights instead).
"""

from __future__ import annotations

import contextlib
import logging
import math
import numbers
from dataclasses import dataclass
from typing import Iterator, Sequence

import dp_accounting
import numpy as np
from dp_accounting.pld import PLDAccountant
from dp_accounting.rdp import RdpAccountant

from ..errors import GeoanomError

__all__ = [
    "ACCOUNTANTS", "GaussianDP", "PrivacyAccountant", "add_noise", "clip_update", "epsilons", "noisy_mean",
    "private_mean",
]  # fmt: skip

#: The dp-accounting accountants :class:`GaussianDP` can name.
ACCOUNTANTS = ("rdp", "pld")

# Relative slack when checking that an update was clipped: rescaling to norm
# `clip` can overshoot it by a few ulps.
_CLIP_SLACK = 1e-9


@dataclass(frozen=True)
class GaussianDP:
    """Settings of the Gaussian mechanism applied to each round's sum of client updates.

    Parameters
    ----------
    noise_multiplier : float
        Noise standard deviation divided by ``clip``; the accounting depends
        only on this ratio.
    clip : float
        L2 bound on each client's update (its ``delta`` vector).
    delta : float, default 1e-5
        The delta at which epsilon is reported; well below ``1 / n_clients``.
    max_epsilon : float, optional
        Privacy budget: no round may be started that would take epsilon above it.
    accountant : {"rdp", "pld"}, default "rdp"
        dp-accounting's Renyi-DP accountant, or its privacy-loss-distribution
        accountant (tighter, slower).
    """

    noise_multiplier: float
    clip: float
    delta: float = 1e-5
    max_epsilon: float | None = None
    accountant: str = "rdp"

    def __post_init__(self) -> None:
        _check_positive("noise_multiplier", self.noise_multiplier)
        _check_positive("clip", self.clip)
        _check_delta(self.delta)
        if self.max_epsilon is not None:
            _check_positive("max_epsilon", self.max_epsilon)
        if self.accountant not in ACCOUNTANTS:
            raise GeoanomError(f"accountant must be 'rdp' or 'pld', got {self.accountant!r}.")

    @property
    def noise_std(self) -> float:
        """Standard deviation of the noise added to each coordinate of the sum."""
        return float(self.noise_multiplier * self.clip)


def clip_update(delta: np.ndarray, clip: float) -> tuple[np.ndarray, float]:
    """A client's update scaled down to L2 norm at most ``clip``.

    Parameters
    ----------
    delta : ndarray
        The update; left as it is when its norm is at most ``clip``.
    clip : float
        The L2 bound, positive.

    Returns
    -------
    clipped : ndarray of float64
    norm : float
        The update's norm before clipping (worth recording: it guides the
        choice of ``clip``).
    """
    _check_positive("clip", clip)
    delta = np.asarray(delta, dtype=np.float64)
    norm = float(np.linalg.norm(delta))
    if not math.isfinite(norm):
        raise GeoanomError("A client's update holds NaN or infinite values, so it cannot be clipped.")
    if norm <= clip:
        return delta, norm
    return delta * (clip / norm), norm


def add_noise(total: np.ndarray, privacy: GaussianDP, rng: np.random.Generator) -> np.ndarray:
    """The sum of clipped updates plus N(0, (noise_multiplier * clip)^2) on every coordinate."""
    total = np.asarray(total, dtype=np.float64)
    return total + rng.normal(0.0, privacy.noise_std, size=total.shape)


def private_mean(
    clipped_updates: Sequence[np.ndarray],
    n_clients: int,
    privacy: GaussianDP,
    sampling_rate: float,
    rng: np.random.Generator,
    *,
    shape: tuple[int, ...] | None = None,
) -> np.ndarray:
    """A round's DP-FedAvg update: noisy sum of the clipped updates over ``q * n_clients``.

    Parameters
    ----------
    clipped_updates : sequence of ndarray
        The participants' updates, each of L2 norm at most ``privacy.clip``
        (see :func:`clip_update`); possibly none.
    n_clients : int
        All clients, sampled or not.
    privacy : GaussianDP
    sampling_rate : float
        ``q``, the probability each client takes part in a round.
    rng : numpy.random.Generator
        Source of the noise; the server's, never a client's.
    shape : tuple of int, optional
        Shape of an update; required when no client took part, since noise
        is added all the same.

    Returns
    -------
    ndarray of float64
        ``(sum + noise) / (q * n_clients)``: unbiased for the mean clipped
        update over all clients.
    """
    _check_clients_and_rate(n_clients, sampling_rate)
    return noisy_mean(_sum_clipped(clipped_updates, privacy.clip, shape), n_clients, privacy, sampling_rate, rng)


def noisy_mean(total: np.ndarray, n_clients: int, privacy: GaussianDP, sampling_rate: float,
               rng: np.random.Generator) -> np.ndarray:
    """The Gaussian mechanism on a sum of clipped updates, over the expected count ``q * n_clients``.

    :func:`private_mean` sums the updates here; the federated engine sums
    them in its tree reduction and finishes with this.

    Parameters
    ----------
    total : ndarray
        The sum of the participants' clipped updates (zeros when none took part).
    n_clients : int
        All clients, sampled or not.
    privacy : GaussianDP
    sampling_rate : float
        ``q``, the probability each client takes part in a round.
    rng : numpy.random.Generator
        Source of the noise; the server's, never a client's.

    Returns
    -------
    ndarray of float64
        ``(total + noise) / (q * n_clients)``.

    Examples
    --------
    >>> dp = GaussianDP(noise_multiplier=1.0, clip=0.5)
    >>> noisy_mean(np.zeros(3), 10, dp, 0.5, np.random.default_rng(0)).shape
    (3,)
    """
    _check_clients_and_rate(n_clients, sampling_rate)
    return add_noise(total, privacy, rng) / (sampling_rate * n_clients)


class PrivacyAccountant:
    """Tracks the privacy spent by rounds of the sampled Gaussian mechanism (client-level DP).

    Each count of rounds is accounted afresh, as one
    ``SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(z)), rounds)``,
    by the accountant ``privacy.accountant`` names; results are cached.
    Composing round by round would give the same epsilon, but the PLD
    accountant convolves once per compose and takes minutes for a hundred
    rounds, while a self-composed event takes it under a second.

    Parameters
    ----------
    privacy : GaussianDP
    sampling_rate : float
        ``q``, the probability each client takes part in a round (the
        engine's ``client_fraction``).

    Attributes
    ----------
    rounds_spent : int
        Rounds recorded with :meth:`spend_round`.
    """

    def __init__(self, privacy: GaussianDP, sampling_rate: float) -> None:
        if not isinstance(privacy, GaussianDP):
            raise GeoanomError(f"privacy must be a GaussianDP, got {type(privacy).__name__}.")
        _check_rate(sampling_rate)
        self.privacy = privacy
        self.sampling_rate = float(sampling_rate)
        self.rounds_spent = 0
        self._cache: dict[int, float] = {0: 0.0}

    def __repr__(self) -> str:
        return (f"PrivacyAccountant(rounds_spent={self.rounds_spent}, epsilon={self.epsilon:.4g}, "
                f"delta={self.privacy.delta:g}, accountant={self.privacy.accountant!r})")

    @property
    def epsilon(self) -> float:
        """Epsilon spent so far, at ``privacy.delta``; 0.0 before any round."""
        return self.epsilon_after(self.rounds_spent)

    def epsilon_after(self, rounds: int) -> float:
        """Epsilon, at ``privacy.delta``, after ``rounds`` rounds in all."""
        _check_rounds(rounds)
        rounds = int(rounds)
        if rounds not in self._cache:
            self._cache[rounds] = _epsilon(self.privacy.accountant, self.privacy.noise_multiplier,
                                           self.sampling_rate, rounds, self.privacy.delta)
        return self._cache[rounds]

    def spend_round(self) -> float:
        """Record one more round and return the epsilon spent so far.

        The round is recorded even beyond ``max_epsilon``: once noise has been
        released its cost is real. Call :meth:`can_afford_round` first.
        """
        self.rounds_spent += 1
        return self.epsilon

    def can_afford_round(self) -> bool:
        """Whether one more round keeps epsilon within ``max_epsilon`` (always, without a budget)."""
        if self.privacy.max_epsilon is None:
            return True
        return self.epsilon_after(self.rounds_spent + 1) <= self.privacy.max_epsilon


def calibrate_noise(target_epsilon: float, sampling_rate: float, rounds: int, delta: float,
                    accountant: str = "rdp") -> float:
    """The smallest noise multiplier (to 0.1%) whose ``rounds`` rounds spend at most ``target_epsilon``.

    Bisection on the accountant's epsilon, which falls as the noise grows.
    """
    _check_positive("the target epsilon", target_epsilon)
    low, high = 0.1, 1000.0
    if _epsilon(accountant, high, sampling_rate, rounds, delta) > target_epsilon:
        raise GeoanomError(f"no noise multiplier up to {high:g} keeps {rounds} rounds within epsilon "
                           f"{target_epsilon:g}; allow a larger epsilon or fewer rounds.")
    while high / low > 1.001:
        middle = (low * high) ** 0.5
        if _epsilon(accountant, middle, sampling_rate, rounds, delta) > target_epsilon:
            low = middle
        else:
            high = middle
    return high


def epsilons(noise_multiplier: float, sampling_rate: float, rounds: int, delta: float) -> dict[str, float]:
    """Epsilon after ``rounds`` rounds by each of dp-accounting's accountants, for comparison.

    Parameters
    ----------
    noise_multiplier : float
    sampling_rate : float
        ``q``; 1.0 means every client every round (no amplification by sampling).
    rounds : int
    delta : float

    Returns
    -------
    dict
        ``{"rdp": epsilon, "pld": epsilon}``.
    """
    _check_positive("noise_multiplier", noise_multiplier)
    _check_delta(delta)
    _check_rate(sampling_rate)
    _check_rounds(rounds)
    return {name: _epsilon(name, noise_multiplier, sampling_rate, int(rounds), delta) for name in ACCOUNTANTS}


def _epsilon(accountant: str, noise_multiplier: float, sampling_rate: float, rounds: int, delta: float) -> float:
    """Epsilon of ``rounds`` Poisson-sampled Gaussian rounds, from a fresh dp-accounting accountant."""
    if rounds == 0:
        return 0.0
    one_round = dp_accounting.PoissonSampledDpEvent(
        float(sampling_rate), dp_accounting.GaussianDpEvent(float(noise_multiplier)))
    event = dp_accounting.SelfComposedDpEvent(one_round, rounds)
    # Add or remove one client: the relation Poisson sampling's amplification is proved for.
    relation = dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE
    ledger = RdpAccountant(neighboring_relation=relation) if accountant == "rdp" else PLDAccountant(relation)
    with _quiet_unconverged_orders():
        ledger.compose(event)
        return float(ledger.get_epsilon(float(delta)))  # the RDP accountant returns numpy floats


class _UnconvergedOrders(logging.Filter):
    """Drops the RDP accountant's warning that a low fractional order's series did not converge."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("_compute_log_a_frac failed to converge")


_UNCONVERGED_ORDERS = _UnconvergedOrders()


@contextlib.contextmanager
def _quiet_unconverged_orders() -> Iterator[None]:
    # For q = 0.1, sigma = 1.1 orders 1.1-1.4 warn on every call. Such an order
    # is excluded (its bound taken as infinite), which can only loosen epsilon,
    # and the optimal order lies far above; the warning would repeat each round.
    logger = logging.getLogger("absl")
    logger.addFilter(_UNCONVERGED_ORDERS)
    try:
        yield
    finally:
        logger.removeFilter(_UNCONVERGED_ORDERS)


def _sum_clipped(updates: Sequence[np.ndarray], clip: float, shape: tuple[int, ...] | None) -> np.ndarray:
    """The sum of the updates, after checking each is clipped; zeros of ``shape`` for none."""
    if len(updates) == 0:
        if shape is None:
            raise GeoanomError("private_mean needs the update shape when no client took part, to add the noise.")
        return np.zeros(shape, dtype=np.float64)
    stacked = np.stack([np.asarray(update, dtype=np.float64) for update in updates])
    if shape is not None and stacked.shape[1:] != tuple(shape):
        raise GeoanomError(f"Updates have shape {stacked.shape[1:]}, not the given shape {tuple(shape)}.")
    norms = np.linalg.norm(stacked.reshape(len(stacked), -1), axis=1)
    if not np.all(norms <= clip * (1 + _CLIP_SLACK)):
        raise GeoanomError(f"An update has L2 norm {norms.max():.6g}, above clip {clip:g}; clip it first.")
    return stacked.sum(axis=0)


def _check_positive(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise GeoanomError(f"{name} must be a positive finite number, got {value!r}.")


def _check_delta(delta: object) -> None:
    if isinstance(delta, bool) or not isinstance(delta, numbers.Real) or not 0 < delta < 1:
        raise GeoanomError(f"delta must be in (0, 1), got {delta!r}.")


def _check_rate(rate: object) -> None:
    if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 < rate <= 1:
        raise GeoanomError(f"sampling_rate must be in (0, 1], got {rate!r}.")


def _check_clients_and_rate(n_clients: object, rate: object) -> None:
    _check_rate(rate)
    if isinstance(n_clients, bool) or not isinstance(n_clients, numbers.Integral) or n_clients < 1:
        raise GeoanomError(f"n_clients must be a positive integer, got {n_clients!r}.")


def _check_rounds(rounds: object) -> None:
    if isinstance(rounds, bool) or not isinstance(rounds, numbers.Integral) or rounds < 0:
        raise GeoanomError(f"rounds must be a non-negative integer, got {rounds!r}.")
