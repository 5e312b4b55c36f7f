"""Federated training rounds on a dask cluster.

Each client's rows are scattered once to one worker and stay there; every
round, each sampled client's local training is a task on that worker, and
only parameter vectors travel. FedAvg's weighted sums are merged by a tree
reduction of tasks (``split_every`` at a time), built while the clients' tasks
are submitted (:class:`geoanom.reduction.TreeReducer`: first level per
worker, merges ahead of queued clients), so the root follows the last client
by one merge per level; the robust aggregators need all updates at once and
run in one task at the root.

``mode="sync"`` waits for every sampled client. ``mode="async"`` closes a
round as soon as half of the clients it dispatched (at least one) have
answered; clients still training answer in a later round with a stale
update, which is weighted by ``(1 + staleness) ** -0.5`` (FedAsync's
polynomial staleness function) and dropped beyond ``max_staleness`` rounds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, wait

from ..errors import GeoanomError
from ..reduction import tree_reduce_futures
from .aggregators import Aggregator, make_aggregator
from .audit import AuditLog
from .convergence import Convergence
from .local import ATTACKS, SIGNING_ATTACKS, ClientData, LocalPlan, add_moments, moments, standardise
from .mlp import HIDDEN, LayerShapes, init_parameters
from .privacy import GaussianDP, PrivacyAccountant
from .result import FederatedResult
from .rounds import Rounds
from .signing import ClientKeys, UpdateVerifier

MODES = ("sync", "async")


def train(
    X: Any,
    y: Any = None,
    *,
    clients: Sequence[Any],
    model: str = "mlp",
    rounds: int = 50,
    local_epochs: int = 1,
    lr: float = 0.05,
    batch_size: int = 64,
    hidden: tuple[int, int] = HIDDEN,
    aggregator: str | Aggregator = "fedavg",
    client_fraction: float = 1.0,
    mode: str = "sync",
    max_staleness: int | None = None,
    split_every: int = 8,
    convergence: Convergence | None = None,
    class_weight: str | None = "balanced",
    attacks: Mapping[Any, str] | None = None,
    client_delays: Mapping[Any, float] | None = None,
    seed: int = 0,
    client: Any = None,
    privacy: GaussianDP | None = None,
    audit_log: str | Path | None = None,
    signed: bool = False,
    placement: Mapping[Any, str] | None = None,
) -> FederatedResult:
    """Train one classifier across clients whose rows never leave their worker.

    Parameters
    ----------
    X : array-like (n_rows, n_features)
        Feature vectors, e.g. region features (:func:`geoanom.features.region_features`).
    y : array-like (n_rows,) of {0, 1}, optional
        1 for anomalous. Without labels, each client labels its own rows with
        the majority flag of a detector ensemble fitted on them
        (:class:`geoanom.Ensemble`, gmm and kmeans) and trains on those
        pseudo-labels.
    clients : array-like (n_rows,)
        The client of each row: a geohash tile, an institution, any label.
    model : {"mlp"}
        A perceptron with two hidden ReLU layers (sizes ``hidden``).
    rounds : int, default 50
        At most this many rounds (see ``convergence`` for stopping earlier).
    local_epochs, lr, batch_size
        Local minibatch SGD of each client in each round.
    aggregator : str or Aggregator, default "fedavg"
        "fedavg", "fedprox(mu)", "median", "trimmed_mean(beta)", "krum(f)",
        "multi_krum(f)" (see :mod:`geoanom.federated.aggregators`).
    client_fraction : float, default 1.0
        Each client takes part in a round with this probability (Poisson
        sampling); a round may have no participant.
    mode : {"sync", "async"}
    max_staleness : int, optional
        In async mode, drop updates more than this many rounds old.
    split_every : int, default 8
        Fan-in of the tree reduction; its depth is ceil(log_split_every(clients)),
        plus at most one level for the first level's grouping by worker.
    convergence : Convergence, optional
        Stopping rule; :class:`Convergence` defaults.
    class_weight : {"balanced", None}
        Weight anomalies by (negatives / positives) over all clients, from
        counts each client reports; anomalies are rare.
    attacks : mapping of client to {"sign_flip", "scale", "noise", "tamper", "replay", "wrong_key"}, optional
        For evaluation: these clients send poisoned updates (the last three
        break their signatures, and need ``signed=True``).
    client_delays : mapping of client to seconds, optional
        For evaluation: these clients are that much slower each round.
    seed : int, default 0
    client : distributed.Client, optional
        The cluster; by default an in-process one for the duration.
    privacy : GaussianDP, optional
        Client-level differential privacy (DP-FedAvg): updates clipped to
        ``privacy.clip``, Gaussian noise of ``noise_multiplier * clip`` on
        their sum, privacy spent accounted with dp-accounting for Poisson
        sampling at ``client_fraction`` over the rounds run
        (``result.epsilon``, ``history["epsilon"]``); training stops before
        ``max_epsilon`` would be exceeded (state ``budget_spent``). Needs
        ``mode="sync"`` and ``fedavg`` or ``fedprox``.
    signed : bool, default False
        Every client gets an Ed25519 key pair (the private key travels once,
        with its data, to its worker) and signs each update over (round,
        client, nonce, parameter digest). The server checks shape, size and
        values first, then the signature, digest, round and nonce, and
        refuses unsigned, tampered, wrong-key and replayed updates, listing
        each in ``result.rejected``. Updates are then verified where the
        server is, so they gather there rather than in a tree.
    placement : mapping of client to a worker resource name, optional
        Institutions on their own workers: each client's rows go only to a
        worker started with that resource (``dask-worker --resources
        "inst-a=1"``), and every task that touches them (moments, scaling,
        local training) is pinned to such workers, so no raw data cross to
        another institution's worker; only parameters and a few numbers
        leave.
    audit_log : path, optional
        Append one hash-chained JSON line per event (round start, accepted
        update with its digest and weight, aggregation, epsilon spent,
        end); check it with :func:`geoanom.federated.verify_audit`.

    Returns
    -------
    FederatedResult
    """
    config = _check(model, mode, rounds, client_fraction, attacks, signed)
    aggregate = make_aggregator(aggregator)
    _check_privacy(privacy, mode, aggregate, client_fraction)
    features, labels, client_ids = _as_rows(X, y, clients)
    audit = AuditLog(audit_log) if audit_log is not None else None
    with _cluster(client) as dask_client, dask_client.as_current():
        started = time.perf_counter()
        keys = {cid: ClientKeys.generate() for cid in pd.unique(client_ids)} if signed else {}
        pins = _pins(dask_client, placement, pd.unique(client_ids))
        placed = _place(dask_client, features, labels, client_ids, seed, keys, pins)
        n_rows, total, squares, positives = dask_client.gather(
            tree_reduce_futures(dask_client, [dask_client.submit(moments, data, pure=False, **pins[cid])
                                              for cid, data in placed.items()], add_moments, split_every,
                                workers=[pins[cid]["workers"][0] for cid in placed]))
        mean = total / n_rows
        scale = np.sqrt(np.maximum(squares / n_rows - mean**2, 0.0))
        scale = np.where(scale > 0, scale, 1.0)
        placed = {cid: dask_client.submit(standardise, data, mean, scale, pure=False, **pins[cid])
                  for cid, data in placed.items()}
        wait(list(placed.values()))
        shapes = LayerShapes((features.shape[1],) + tuple(hidden) + (1,))
        positive_weight = _positive_weight(class_weight, n_rows, positives)
        plan = LocalPlan(shapes, local_epochs, lr, batch_size, aggregate.mu, positive_weight)
        rounds_run = Rounds(dask_client, placed, plan, aggregate, split_every, attacks or {}, client_delays or {},
                            seed, max_staleness, convergence or Convergence(), privacy, client_fraction, audit,
                            _verifier(keys, shapes.size), pins)
        parameters, history = rounds_run.run(init_parameters(shapes, seed), rounds, client_fraction, mode)
        history.attrs["seconds"] = time.perf_counter() - started
    return FederatedResult(
        parameters=parameters, mean=mean, scale=scale, sizes=shapes.sizes, history=history,
        config={**config, "aggregator": dataclasses.asdict(aggregate), "local_epochs": local_epochs, "lr": lr,
                "batch_size": batch_size, "client_fraction": client_fraction, "max_staleness": max_staleness,
                "split_every": split_every, "seed": seed, "positive_weight": positive_weight,
                "n_clients": len(placed), "n_rows": int(n_rows), "labels": "given" if y is not None else "pseudo",
                "privacy": dataclasses.asdict(privacy) if privacy is not None else None,
                "audit_log": str(audit_log) if audit_log is not None else None,
                "audit_head": audit.head if audit is not None else None},
        rejected=rounds_run.rejected,
        epsilon=rounds_run.accountant.epsilon if rounds_run.accountant is not None else None,
    )


def _verifier(keys: dict[Any, ClientKeys], size: int) -> UpdateVerifier | None:
    if not keys:
        return None
    return UpdateVerifier({str(cid): key.public_bytes() for cid, key in keys.items()}, expected_size=size)


def _positive_weight(class_weight: str | None, n_rows: float, positives: float) -> float:
    if class_weight is None or positives <= 0 or positives >= n_rows:
        return 1.0
    if class_weight != "balanced":
        raise GeoanomError(f"class_weight must be 'balanced' or None, got {class_weight!r}.")
    return float(np.clip((n_rows - positives) / positives, 1.0, 1000.0))


@contextlib.contextmanager
def _cluster(client: Any):
    if client is not None:
        yield client
        return
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as local:
        yield local


def _pins(dask_client, placement: Mapping[Any, str] | None, client_ids) -> dict[Any, dict[str, Any]]:
    """For each client, the ``submit`` options that keep its tasks on its institution's workers."""
    workers = dask_client.scheduler_info()["workers"]
    pins: dict[Any, dict[str, Any]] = {}
    for index, cid in enumerate(client_ids):
        if placement is None:
            addresses = sorted(workers)
            pins[cid] = {"workers": [addresses[index % len(addresses)]]}
            continue
        if cid not in placement:
            raise GeoanomError(f"client {cid!r} has no entry in placement; give every client a worker resource.")
        resource = placement[cid]
        holders = sorted(a for a, info in workers.items() if resource in info.get("resources", {}))
        if not holders:
            raise GeoanomError(f"no worker carries the resource {resource!r} of client {cid!r}; start one with "
                               f"dask-worker --resources \"{resource}=1\".")
        pins[cid] = {"workers": holders, "allow_other_workers": False}
    return pins


def _place(dask_client, features, labels, client_ids, seed, keys: dict[Any, ClientKeys],
           pins: dict[Any, dict[str, Any]]) -> dict[Any, Any]:
    """Scatter each client's rows (and private key) to one of its workers, where they stay."""
    placed = {}
    for cid in pd.unique(client_ids):
        rows = client_ids == cid
        key = keys[cid].private_bytes() if cid in keys else None
        data = ClientData(cid, features[rows], labels[rows] if labels is not None else None, key)
        [data] = dask_client.scatter([data], workers=pins[cid]["workers"][:1], hash=False)
        if labels is None:
            data = dask_client.submit(_pseudo_labelled, data, seed, pure=False, **pins[cid])
        placed[cid] = data
    return placed


def _pseudo_labelled(data: ClientData, seed: int) -> ClientData:
    """The client's rows labelled by its own detector ensemble's majority flag."""
    from ..detectors import Ensemble

    flags = Ensemble(("gmm", "kmeans"), random_state=seed).fit(data.features).predict(data.features)
    return ClientData(data.client, data.features, flags.astype(np.float64), data.key)


def _check_privacy(privacy: GaussianDP | None, mode: str, aggregate: Aggregator, fraction: float) -> None:
    if privacy is None:
        return
    if not isinstance(privacy, GaussianDP):
        raise GeoanomError(f"privacy must be a GaussianDP, got {type(privacy).__name__}.")
    if mode != "sync" or not aggregate.associative:
        raise GeoanomError("differential privacy needs mode='sync' and the fedavg or fedprox aggregator: "
                           "the accountant's mechanism is a noisy sum of Poisson-sampled, clipped updates.")
    if not PrivacyAccountant(privacy, fraction).can_afford_round():
        raise GeoanomError(f"one round at noise multiplier {privacy.noise_multiplier:g} and client fraction "
                           f"{fraction:g} already spends more than max_epsilon {privacy.max_epsilon:g}; "
                           "raise the noise, lower the fraction or allow a larger epsilon.")


def _check(model: str, mode: str, rounds: int, fraction: float, attacks, signed: bool) -> dict[str, Any]:
    if model != "mlp":
        raise GeoanomError(f"model must be 'mlp', got {model!r}; federate detector families with geoanom.fit.")
    if mode not in MODES:
        raise GeoanomError(f"mode must be 'sync' or 'async', got {mode!r}.")
    if int(rounds) < 1:
        raise GeoanomError(f"rounds must be at least 1, got {rounds}.")
    if not 0 < fraction <= 1:
        raise GeoanomError(f"client_fraction must be in (0, 1], got {fraction}.")
    for cid, attack in (attacks or {}).items():
        if attack not in ATTACKS:
            raise GeoanomError(f"attack of client {cid!r} must be one of {', '.join(ATTACKS)}, got {attack!r}.")
        if attack in SIGNING_ATTACKS and not signed:
            raise GeoanomError(f"the {attack!r} attack of client {cid!r} breaks a signature: train with signed=True.")
    return {"model": model, "mode": mode, "rounds": int(rounds), "signed": bool(signed)}


def _as_rows(X, y, clients) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    features = np.asarray(X, dtype=np.float64)
    if features.ndim != 2 or not np.isfinite(features).all():
        raise GeoanomError(f"X must be a finite 2-D array of rows, got shape {features.shape}.")
    client_ids = np.asarray(clients)
    if client_ids.shape != (len(features),):
        raise GeoanomError(f"clients must give one client per row ({len(features)}), got shape {client_ids.shape}.")
    labels = None
    if y is not None:
        labels = np.asarray(y, dtype=np.float64)
        if labels.shape != (len(features),) or not np.isin(labels, (0.0, 1.0)).all():
            raise GeoanomError(f"y must hold one 0 or 1 per row ({len(features)}), got shape {labels.shape}.")
    return features, labels, client_ids
