"""The grouped settings of :func:`geoanom.federated.train`, each a frozen dataclass.

``RoundOptions`` says how the server runs rounds, ``LocalTraining`` how a
client trains, ``Security`` how updates are authenticated and recorded, and
``Simulation`` which clients misbehave in an evaluation. Differential
privacy has its own, :class:`~geoanom.federated.privacy.GaussianDP`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..errors import GeoanomError
from .convergence import Convergence
from .local import ATTACKS, SIGNING_ATTACKS
from .mlp import HIDDEN

__all__ = ["LOST_WORKER_ACTIONS", "MODES", "LocalTraining", "RoundOptions", "Security", "Simulation"]

MODES = ("sync", "async")
LOST_WORKER_ACTIONS = ("retry", "skip")


@dataclass(frozen=True, kw_only=True)
class RoundOptions:
    """How the server runs rounds.

    Parameters
    ----------
    rounds : int, default 50
        At most this many rounds (see ``convergence`` for stopping earlier).
    client_fraction : float, default 1.0
        Each client takes part in a round with this probability (Poisson
        sampling); a round may have no participant.
    mode : {"sync", "async"}, default "sync"
        ``"async"`` closes a round once half the dispatched clients answered.
    max_staleness : int, optional
        In async mode, drop updates more than this many rounds old.
    split_every : int, default 8
        Fan-in of the FedAvg tree reduction.
    convergence : Convergence
        Stopping rule; each training run watches with its own fresh copy.
    seed : int, default 0
        Seeds sampling, initial parameters, local minibatches and noise.
    on_lost_worker : {"retry", "skip"}, default "retry"
        When a worker holding clients' rows dies (or their rows are lost)
        during a round, those rows are placed again from their source on a
        live worker, and the round is run again with the same clients
        ("retry", which gives the model an undisturbed run would) or
        without the lost clients ("skip"). Each event is an audit log entry
        ``worker_lost``.
    max_retries : int, default 3
        How many lost-worker events one round survives; one more ends
        training with a :class:`~geoanom.errors.GeoanomError` naming the
        round and the clients (and a ``round_failed`` audit entry).

    Examples
    --------
    >>> RoundOptions(rounds=30, client_fraction=0.5, seed=1).mode
    'sync'
    """

    rounds: int = 50
    client_fraction: float = 1.0
    mode: str = "sync"
    max_staleness: int | None = None
    split_every: int = 8
    convergence: Convergence = field(default_factory=Convergence)
    seed: int = 0
    on_lost_worker: str = "retry"
    max_retries: int = 3

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise GeoanomError(f"mode must be 'sync' or 'async', got {self.mode!r}.")
        if self.on_lost_worker not in LOST_WORKER_ACTIONS:
            raise GeoanomError(f"on_lost_worker must be 'retry' or 'skip', got {self.on_lost_worker!r}.")
        if isinstance(self.max_retries, bool) or not isinstance(self.max_retries, Integral) or self.max_retries < 0:
            raise GeoanomError(f"max_retries must be a whole number of at least 0, got {self.max_retries!r}.")
        if int(self.rounds) < 1:
            raise GeoanomError(f"rounds must be at least 1, got {self.rounds}.")
        if not 0 < self.client_fraction <= 1:
            raise GeoanomError(f"client_fraction must be in (0, 1], got {self.client_fraction}.")
        if not isinstance(self.convergence, Convergence):
            raise GeoanomError(f"convergence must be a Convergence, got {type(self.convergence).__name__}.")


def _whole(value: Any) -> bool:
    """Whether ``value`` is a whole number (an int or integer numpy scalar, not a bool)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


@dataclass(frozen=True, kw_only=True)
class LocalTraining:
    """How every client trains its copy of the model in a round.

    Parameters
    ----------
    model : {"mlp"}, default "mlp"
        A perceptron with two hidden ReLU layers (sizes ``hidden``).
    hidden : tuple of int, default (32, 16)
    epochs, lr, batch_size : int, float, int
        Local minibatch SGD; defaults 1, 0.05 and 64.
    class_weight : {"balanced", None}, default "balanced"
        Weight anomalies by (negatives / positives) over all clients, from
        counts each client reports; anomalies are rare.

    Examples
    --------
    >>> LocalTraining(epochs=3, lr=0.1).batch_size
    64
    """

    model: str = "mlp"
    hidden: tuple[int, int] = HIDDEN
    epochs: int = 1
    lr: float = 0.05
    batch_size: int = 64
    class_weight: str | None = "balanced"

    def __post_init__(self) -> None:
        if self.model != "mlp":
            raise GeoanomError(f"model must be 'mlp', got {self.model!r}; federate detector families with "
                               "geoanom.fit.")
        if self.class_weight not in ("balanced", None):
            raise GeoanomError(f"class_weight must be 'balanced' or None, got {self.class_weight!r}.")
        hidden = tuple(self.hidden) if isinstance(self.hidden, (tuple, list)) else ()  # 32 is not two layers
        if len(hidden) != 2 or not all(_whole(size) and size >= 1 for size in hidden):
            raise GeoanomError(f"hidden must be two layer sizes of at least 1, got {self.hidden!r}.")
        if not _whole(self.epochs) or self.epochs < 1:
            raise GeoanomError(f"epochs must be a whole number of at least 1 (0 trains nothing), got {self.epochs!r}.")
        if not _whole(self.batch_size) or self.batch_size < 1:
            raise GeoanomError(f"batch_size must be a whole number of at least 1, got {self.batch_size!r}.")
        if not (isinstance(self.lr, Real) and math.isfinite(self.lr) and self.lr > 0):
            raise GeoanomError(f"lr must be a positive learning rate, got {self.lr!r}.")


@dataclass(frozen=True, kw_only=True)
class Security:
    """How updates are authenticated and training recorded.

    Parameters
    ----------
    signed : bool, default False
        Every client gets an Ed25519 key pair (the private key travels once,
        with its data, to its worker) and signs each update over (round,
        client, nonce, parameter digest); the server refuses unsigned,
        tampered, wrong-key and replayed updates (``result.rejected``).
    audit_log : path, optional
        Append one hash-chained JSON line per event; check it with
        :func:`geoanom.federated.verify_audit`.
    placement : mapping of client to a worker resource name, optional
        Institutions on their own workers: each client's rows and tasks stay
        on workers started with that resource (``dask-worker --resources
        "inst-a=1"``).

    Examples
    --------
    >>> Security(signed=True, audit_log="audit.jsonl").signed
    True
    """

    signed: bool = False
    audit_log: str | Path | None = None
    placement: Mapping[Any, str] | None = None


@dataclass(frozen=True, kw_only=True)
class Simulation:
    """Misbehaving clients, for evaluating robustness; never set in production.

    Parameters
    ----------
    attacks : mapping of client to {"sign_flip", "scale", "noise", "tamper", "replay", "wrong_key"}
        These clients send poisoned updates (the last three break their
        signatures, and need ``Security(signed=True)``).
    client_delays : mapping of client to seconds
        These clients are that much slower each round.

    Examples
    --------
    >>> Simulation(attacks={"a": "sign_flip"}).client_delays
    {}
    """

    attacks: Mapping[Any, str] = field(default_factory=dict)
    client_delays: Mapping[Any, float] = field(default_factory=dict)

    def check(self, signed: bool, clients: Sequence[Any] | None = None) -> None:
        """Refuse unknown attacks, signature attacks without signing, and attacks or delays of no client.

        Examples
        --------
        >>> Simulation(attacks={"a": "tamper"}).check(signed=True, clients=["a", "b"])
        """
        for what, chosen in (("attack", self.attacks), ("delay", self.client_delays)):
            unknown = [cid for cid in chosen if clients is not None and cid not in set(clients)]
            if unknown:
                raise GeoanomError(f"the {what} of client {unknown[0]!r} names no client; the clients are "
                                   f"{', '.join(map(repr, list(clients)[:5]))}{', ...' if len(clients) > 5 else ''}.")
        for cid, attack in self.attacks.items():
            if attack not in ATTACKS:
                raise GeoanomError(f"attack of client {cid!r} must be one of {', '.join(ATTACKS)}, got {attack!r}.")
            if attack in SIGNING_ATTACKS and not signed:
                raise GeoanomError(f"the {attack!r} attack of client {cid!r} breaks a signature: train with "
                                   "Security(signed=True).")
