"""What runs at a client: its data's summary, and one round of local training.

These functions run as dask tasks on the worker that holds the client's
data; they receive parameters and return parameters and a few numbers,
never rows of data.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from distributed import get_worker

from .mlp import LayerShapes, local_sgd, predict_logits, sigmoid
from .signing import ClientKeys, SignedUpdate, parameter_digest

ATTACKS = ("sign_flip", "scale", "noise", "tamper", "replay", "wrong_key")
SIGNING_ATTACKS = ("tamper", "replay", "wrong_key")
REPLAYED_NONCE = bytes(16)  # a replaying client reuses this nonce every round
ATTACK_STRENGTH = 10.0


@dataclass(frozen=True)
class LocalPlan:
    """How every client trains in a round (the same for all)."""

    shapes: LayerShapes
    epochs: int
    lr: float
    batch_size: int
    mu: float
    positive_weight: float


@dataclass
class ClientData:
    """One client's rows, standardised in place once the global scaler is known."""

    client: Any
    features: np.ndarray
    labels: np.ndarray
    key: bytes | None = None  # the client's Ed25519 private key (raw), which stays on its worker


def moments(data: ClientData) -> tuple[float, np.ndarray, np.ndarray, float]:
    """(rows, sum, sum of squares, positives): all the server learns of the data before training."""
    features = data.features
    return float(len(features)), features.sum(axis=0), (features**2).sum(axis=0), float(data.labels.sum())


def add_moments(*parts: tuple) -> tuple:
    """Sum of :func:`moments` tuples (associative, for a tree reduction)."""
    return tuple(sum(values) for values in zip(*parts))


def standardise(data: ClientData, mean: np.ndarray, scale: np.ndarray) -> ClientData:
    """The client's data scaled by the global mean and spread (stays on the worker)."""
    return ClientData(data.client, (data.features - mean) / scale, data.labels, data.key)


@dataclass(frozen=True)
class ClientSummary:
    """What the server records of a client's round: no parameters.

    Examples
    --------
    >>> ClientSummary("a", weight=120.0, loss=0.4, residual=0.01, digest="ab", worker=None).weight
    120.0
    """

    client: Any
    weight: float  # the client's rows
    loss: float  # of the global model, on this client's data, before training
    residual: float  # mean label minus mean predicted probability
    digest: str  # hex SHA-256 of the update
    worker: str | None  # the dask worker that trained, for the audit log


@dataclass(frozen=True)
class ClientUpdate:
    """A client's answer to a round: its change of the parameters and what the server records of it.

    Examples
    --------
    >>> about = ClientSummary("a", 1.0, 0.4, 0.0, "ab", None)
    >>> ClientUpdate(np.zeros(3), about).summary.client
    'a'
    """

    delta: np.ndarray  # parameters after local training minus those the round started from
    summary: ClientSummary
    signed: SignedUpdate | None = None  # the update signed for this round, when the client holds a key

    @property
    def client(self) -> Any:
        """The client that sent it."""
        return self.summary.client

    @property
    def weight(self) -> float:
        """The client's rows: its FedAvg weight."""
        return self.summary.weight


def train_round(data: ClientData, start: np.ndarray, plan: LocalPlan, seed: int, attack: str | None = None,
                delay: float = 0.0, round_number: int = 0) -> ClientUpdate:
    """One client's round: evaluate the global model, train locally, return the change.

    Returns
    -------
    ClientUpdate
        The change (poisoned when ``attack`` says so), its summary and, when
        the client holds a key, its signature for this round.

    Examples
    --------
    >>> update = train_round(data, start, plan, seed=0)  # doctest: +SKIP
    """
    if delay:
        time.sleep(delay)  # a straggler, in simulations
    trained, loss = local_sgd(plan.shapes, start, data.features, data.labels, epochs=plan.epochs, lr=plan.lr,
                              batch_size=plan.batch_size, mu=plan.mu, positive_weight=plan.positive_weight,
                              seed=seed)
    probability = sigmoid(predict_logits(plan.shapes, start, data.features))
    delta = trained - start
    if attack and attack not in SIGNING_ATTACKS:
        delta = poison(delta, attack, seed)
    about = ClientSummary(data.client, float(len(data.labels)), loss, float(np.mean(data.labels - probability)),
                          parameter_digest(delta).hex(), _worker_address())
    signed = sign(data, delta, round_number, attack) if data.key is not None else None
    return ClientUpdate(delta, about, signed)


def sign(data: ClientData, delta: np.ndarray, round_number: int, attack: str | None) -> SignedUpdate:
    """The client's signed update; the signing attacks break it on purpose, for evaluation.

    ``tamper`` changes the parameters after signing, ``replay`` reuses one
    nonce every round, ``wrong_key`` signs with a key the server does not know.
    """
    keys = ClientKeys.generate() if attack == "wrong_key" else ClientKeys.from_private_bytes(data.key)
    nonce = REPLAYED_NONCE if attack == "replay" else None
    signed = keys.sign_update(round_number, str(data.client), nonce, delta)
    if attack == "tamper":
        return dataclasses.replace(signed, parameters=delta * ATTACK_STRENGTH)
    return signed


def poison(delta: np.ndarray, attack: str, seed: int) -> np.ndarray:
    """A Byzantine client's update, for evaluating robust aggregation.

    ``sign_flip`` sends the opposite of its honest change, ``scale`` a
    change ten times larger, ``noise`` Gaussian noise ten times the size of
    its honest change.
    """
    if attack == "sign_flip":
        return -ATTACK_STRENGTH * delta
    if attack == "scale":
        return ATTACK_STRENGTH * delta
    if attack == "noise":
        spread = ATTACK_STRENGTH * (np.linalg.norm(delta) / np.sqrt(delta.size) + 1e-3)
        return np.random.default_rng(seed).normal(0.0, spread, size=delta.shape)
    raise ValueError(f"unknown attack {attack!r}")


def _worker_address() -> str | None:
    """The dask worker running this task (for the audit log), or None outside one."""
    try:
        return get_worker().address
    except ValueError:
        return None
