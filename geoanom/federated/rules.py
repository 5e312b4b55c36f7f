"""Aggregation rules as types: each ``Aggregator`` subclass configures one function of :mod:`.aggregators`.

The engine asks a rule, never its name, what to do: ``associative`` says
whether partial sums merge in a tree reduction, ``mu`` is local training's
proximal weight, and ``aggregate_round`` handles a round with fewer updates
than the rule needs (Krum falls back to the median); ``rule_for`` names the
rule that aggregates ``n`` updates and ``fallback_reason`` says why it is not
the one asked for, which the rounds warn of and record.
"""

from __future__ import annotations

import abc
import dataclasses
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import GeoanomError
from .aggregators import check_count, check_real, coordinate_median, fedavg, krum, multi_krum, trimmed_mean

__all__ = ["AGGREGATORS", "Aggregator", "FedAvg", "FedProx", "Krum", "Median", "MultiKrum", "TrimmedMean",
           "make_aggregator"]

#: The aggregator names ``make_aggregator`` accepts (the ``name`` of each ``Aggregator`` class).
AGGREGATORS = ("fedavg", "fedprox", "median", "trimmed_mean", "krum", "multi_krum")

_SPEC = re.compile(r"^\s*([A-Za-z_]\w*)\s*(?:\(\s*([^()]*?)\s*\))?\s*$")


class Aggregator(abc.ABC):
    """A configured aggregation rule, called as ``agg(updates, weights)``; subclasses are the rules.

    Class attributes
    ----------------
    name : str
        The rule's name in ``AGGREGATORS``, for logs and ``make_aggregator``.
    associative : bool
        True when partial aggregates merge by a tree reduction
        (``weighted_partial``, ``combine_partials``, ``finish_partial``);
        the others need every update at once, at the root.
    mu : float
        FedProx proximal weight for local training; 0 for every other rule.

    Examples
    --------
    >>> Median()(np.array([[0.0], [1.0], [9.0]]), np.ones(3))
    array([1.])
    """

    name: ClassVar[str]
    associative: ClassVar[bool] = False
    mu: float = 0.0

    @abc.abstractmethod
    def __call__(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """Aggregate ``updates`` (n_clients, n_params) with ``weights`` (n_clients,) into (n_params,)."""

    def aggregate_round(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """A round's aggregate, whatever number of clients answered (see :class:`Krum`)."""
        return self(updates, weights)

    def rule_for(self, n_updates: int) -> str:
        """The name of the rule :meth:`aggregate_round` applies to ``n_updates`` updates.

        Examples
        --------
        >>> Krum(f=2).rule_for(7), Krum(f=2).rule_for(6)
        ('krum', 'median')
        """
        return self.name

    def fallback_reason(self, n_updates: int) -> str | None:
        """Why ``n_updates`` updates are not aggregated by this rule, or None when they are.

        Examples
        --------
        >>> Krum(f=2).fallback_reason(6)
        'krum(f=2) needs n >= 2f + 3 = 7 updates'
        """
        return None

    def settings(self) -> dict[str, Any]:
        """The rule and its options as plain data, e.g. ``{"name": "krum", "f": 2}``."""
        return {"name": self.name, **dataclasses.asdict(self)}


@dataclass(frozen=True)
class FedAvg(Aggregator):
    """FedAvg: the sample-count-weighted mean (see :func:`fedavg`); associative.

    Examples
    --------
    >>> FedAvg()(np.array([[0.0], [3.0]]), np.array([2.0, 1.0]))
    array([1.])
    """

    name: ClassVar[str] = "fedavg"
    associative: ClassVar[bool] = True

    def __call__(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return fedavg(updates, weights)


@dataclass(frozen=True)
class FedProx(FedAvg):
    """FedProx: aggregates as FedAvg; its proximal weight ``mu >= 0`` acts in local training.

    Examples
    --------
    >>> FedProx(mu=0.01).mu
    0.01
    """

    name: ClassVar[str] = "fedprox"
    mu: float = 0.0

    def __post_init__(self) -> None:
        # Plain float (not a numpy scalar), so the settings serialise as JSON.
        object.__setattr__(self, "mu", check_real(self.mu, "FedProx mu", 0.0))


@dataclass(frozen=True)
class Median(Aggregator):
    """The coordinate-wise median, unweighted (see :func:`coordinate_median`).

    Examples
    --------
    >>> Median()(np.array([[0.0], [1.0], [9.0]]), np.ones(3))
    array([1.])
    """

    name: ClassVar[str] = "median"

    def __call__(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return coordinate_median(updates, weights)


@dataclass(frozen=True)
class TrimmedMean(Aggregator):
    """The coordinate-wise mean after dropping ``floor(beta n)`` values at each end (see :func:`trimmed_mean`).

    ``beta`` defaults to 0.2, as Flower's FedTrimmedAvg: with 10 clients,
    0.1 trims one value per side and two sign-flipping clients break it.

    Examples
    --------
    >>> TrimmedMean()(np.array([[-50.0], [1.0], [2.0], [3.0], [90.0]]), np.ones(5))
    array([2.])
    """

    name: ClassVar[str] = "trimmed_mean"
    beta: float = 0.2

    def __post_init__(self) -> None:
        object.__setattr__(self, "beta", check_real(self.beta, "trimmed_mean beta", 0.0, 0.5))

    def __call__(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return trimmed_mean(updates, self.beta, weights)


@dataclass(frozen=True)
class Krum(Aggregator):
    """Krum, tolerating ``f`` Byzantine clients (see :func:`krum`).

    A round with too few updates for Krum (``n < 2f + 3``) is aggregated by
    the coordinate-wise median instead (:meth:`aggregate_round`): sampling
    or async rounds may bring fewer clients than Krum needs. Training warns
    the first time it happens and ``result.history["aggregated_by"]`` names
    each round's rule.

    Examples
    --------
    >>> Krum(f=0)(np.array([[0.0], [0.1], [5.0]]), np.ones(3))
    array([0.])
    """

    name: ClassVar[str] = "krum"
    f: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "f", check_count(self.f, "Krum f", 0))

    def __call__(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return krum(updates, self.f, weights)

    def aggregate_round(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        if self.rule_for(len(updates)) == Median.name:
            return coordinate_median(updates, weights)
        return self(updates, weights)

    def rule_for(self, n_updates: int) -> str:
        return Median.name if n_updates < self.needed else self.name

    def fallback_reason(self, n_updates: int) -> str | None:
        if n_updates >= self.needed:
            return None
        return f"{self.name}(f={self.f}) needs n >= 2f + 3 = {self.needed} updates"

    @property
    def needed(self) -> int:
        """The fewest updates Krum can aggregate: ``2f + 3``."""
        return 2 * self.f + 3


@dataclass(frozen=True)
class MultiKrum(Krum):
    """Multi-Krum: FedAvg over the ``m`` updates of lowest Krum score (see :func:`multi_krum`).

    Examples
    --------
    >>> MultiKrum(f=0, m=2)(np.array([[0.0], [0.2], [5.0]]), np.ones(3))
    array([0.1])
    """

    name: ClassVar[str] = "multi_krum"
    m: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.m is not None:
            object.__setattr__(self, "m", check_count(self.m, "multi-Krum m", 1))

    def __call__(self, updates: np.ndarray, weights: np.ndarray) -> np.ndarray:
        return multi_krum(updates, self.f, self.m, weights)


_RULES: dict[str, type[Aggregator]] = {
    rule.name: rule for rule in (FedAvg, FedProx, Median, TrimmedMean, Krum, MultiKrum)
}


def _options(rule: type[Aggregator]) -> tuple[str, ...]:
    """The options a rule takes; the first is the one "name(number)" sets."""
    return tuple(option.name for option in dataclasses.fields(rule))


def _parse_argument(rule: type[Aggregator], text: str) -> dict:
    """The option that ``text`` in ``name(text)`` sets, e.g. ``{"f": 2}`` for ``krum(2)``."""
    if not _options(rule):
        raise GeoanomError(f"aggregator {rule.name!r} takes no argument, got {rule.name}({text}).")
    option = _options(rule)[0]
    try:
        return {option: int(text) if option == "f" else float(text)}
    except ValueError:
        kind = "an integer" if option == "f" else "a number"
        raise GeoanomError(f"the argument of {rule.name}(...) must be {kind}, got {text!r}.") from None


def make_aggregator(spec: str | Aggregator, **options: Any) -> Aggregator:
    """An ``Aggregator`` from a name, a call-like string or an ``Aggregator``.

    Parameters
    ----------
    spec : str or Aggregator
        A name of ``AGGREGATORS``, or ``"fedprox(mu)"``, ``"trimmed_mean(beta)"``,
        ``"krum(f)"`` or ``"multi_krum(f)"``, e.g. ``"krum(2)"``. An
        ``Aggregator`` is returned as is (and then takes no ``options``).
    **options
        Options of the named rule, e.g. ``make_aggregator("multi_krum(2)", m=5)``.

    Returns
    -------
    Aggregator

    Raises
    ------
    GeoanomError
        For an unknown name, a malformed string, an option the rule does not
        use or that is given twice, or an invalid value.

    Examples
    --------
    >>> make_aggregator("krum(2)")
    Krum(f=2)
    >>> make_aggregator("trimmed_mean")
    TrimmedMean(beta=0.2)
    """
    if isinstance(spec, Aggregator):
        if options:
            raise GeoanomError(f"options {sorted(options)} cannot be applied to an existing Aggregator.")
        return spec
    match = _SPEC.match(spec) if isinstance(spec, str) else None
    if match is None:
        raise GeoanomError(f"cannot read aggregator {spec!r}; write a name such as 'median' or a call such as 'krum(2)'.")
    name, text = match.group(1).lower(), match.group(2)
    if name not in _RULES:
        raise GeoanomError(f"unknown aggregator {name!r}; choose one of {', '.join(AGGREGATORS)}.")
    rule = _RULES[name]
    unused = sorted(set(options) - set(_options(rule)))
    if unused:
        raise GeoanomError(f"option {unused[0]!r} is not used by aggregator {name!r}.")
    settings = _parse_argument(rule, text) if text is not None else {}
    twice = sorted(settings.keys() & options.keys())
    if twice:
        raise GeoanomError(f"{twice[0]} is given twice for aggregator {spec!r}, in the string and as an option.")
    return rule(**settings, **options)
