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

When a worker holding clients' rows is lost mid-round, those rows are derived
again from their source on a live worker (:mod:`geoanom.federated.placement`)
and the round is retried or run without them (``RoundOptions.on_lost_worker``),
each time with a ``worker_lost`` line in the audit log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import time
import warnings
from typing import Any, Sequence

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster

from ..errors import GeoanomError, GeoanomWarning
from ..reduction import tree_reduce_futures
from .audit import AuditLog
from .local import LocalPlan, add_moments, moments
from .mlp import LayerShapes, init_parameters
from .options import LocalTraining, RoundOptions, Security, Simulation
from .placement import LostClients, Residency, collect, name_clients
from .privacy import GaussianDP, PrivacyAccountant
from .result import FederatedResult
from .rounds import Rounds
from .rules import Aggregator, make_aggregator
from .signing import ClientKeys, UpdateVerifier


def train(
    X: Any,
    y: Any = None,
    *,
    clients: Sequence[Any],
    aggregator: str | Aggregator = "fedavg",
    schedule: RoundOptions | None = None,
    local: LocalTraining | None = None,
    privacy: GaussianDP | None = None,
    security: Security | None = None,
    simulation: Simulation | None = None,
    client: Any = None,
) -> FederatedResult:
    """Train one classifier across clients whose rows never leave their worker.

    Parameters
    ----------
    X : array-like (n_rows, n_features)
        Feature vectors, e.g. region features (:func:`geoanom.features.region_features`).
    y : array-like (n_rows,) of {0, 1}, optional
        1 for anomalous; both classes must occur (labels of one class raise
        :class:`~geoanom.errors.GeoanomError`). Without labels, each client labels its own rows with
        the majority flag of a detector ensemble fitted on them
        (:class:`geoanom.Ensemble`, gmm and kmeans) and trains on those
        pseudo-labels (with a warning when they are all of one class).
    clients : array-like (n_rows,)
        The client of each row: a geohash tile, an institution, any label.
    aggregator : str or Aggregator, default "fedavg"
        "fedavg", "fedprox(mu)", "median", "trimmed_mean(beta)", "krum(f)",
        "multi_krum(f)", or an :class:`Aggregator` such as ``Krum(f=2)``
        (see :mod:`geoanom.federated.rules`).
    schedule : RoundOptions, optional
        Rounds, client fraction (Poisson sampling), sync or async mode,
        staleness, the tree's fan-in, the stopping rule and the seed;
        :class:`RoundOptions` defaults.
    local : LocalTraining, optional
        The model and each client's local SGD; :class:`LocalTraining` defaults.
    privacy : GaussianDP, optional
        Client-level differential privacy (DP-FedAvg): updates clipped to
        ``privacy.clip``, Gaussian noise of ``noise_multiplier * clip`` on
        their sum, privacy spent accounted with dp-accounting for Poisson
        sampling at the client fraction over the rounds run
        (``result.epsilon``, ``history["epsilon"]``); training stops before
        ``max_epsilon`` would be exceeded (state ``budget_spent``). Needs
        sync mode and ``fedavg`` or ``fedprox``.
    security : Security, optional
        Signed updates (Ed25519; bad ones are refused and listed in
        ``result.rejected``), a hash-chained audit log, and institutions'
        placement on their own workers, so that no raw data cross to
        another institution's worker.
    simulation : Simulation, optional
        For evaluation: clients that send poisoned updates or answer late.
    client : distributed.Client, optional
        The cluster; by default an in-process one for the duration.

    Returns
    -------
    FederatedResult

    Examples
    --------
    >>> result = train(X, y, clients=tiles, aggregator="median",
    ...                schedule=RoundOptions(rounds=30, seed=1))  # doctest: +SKIP
    >>> result.predict_proba(X)[:, 1]  # doctest: +SKIP
    """
    schedule, local = schedule or RoundOptions(), local or LocalTraining()
    security, simulation = security or Security(), simulation or Simulation()
    aggregate = make_aggregator(aggregator)
    _check_privacy(privacy, schedule, aggregate)
    features, labels, client_ids = _as_rows(X, y, clients)
    simulation.check(security.signed, pd.unique(client_ids).tolist())
    audit = AuditLog(security.audit_log) if security.audit_log is not None else None
    with _cluster(client) as dask_client, dask_client.as_current():
        started = time.perf_counter()
        keys = {cid: ClientKeys.generate() for cid in pd.unique(client_ids)} if security.signed else {}
        residency = Residency(dask_client, features, labels, client_ids, seed=schedule.seed, keys=keys,
                              placement=security.placement)
        mean, scale, n_rows, positives = _prepare(dask_client, residency, schedule, audit)
        if y is None and positives in (0, n_rows):
            warnings.warn(f"the clients' detectors flag {'none' if positives == 0 else 'all'} of their {int(n_rows)} "
                          "rows: the classifier learns one class and will say it of every row.", GeoanomWarning,
                          stacklevel=2)
        shapes = LayerShapes((features.shape[1],) + tuple(local.hidden) + (1,))
        positive_weight = _positive_weight(local.class_weight, n_rows, positives)
        plan = LocalPlan(shapes, local.epochs, local.lr, local.batch_size, aggregate.mu, positive_weight)
        rounds_run = Rounds(dask_client, residency, plan, aggregate, options=schedule, simulation=simulation,
                            privacy=privacy, audit=audit, verifier=_verifier(keys, shapes.size))
        parameters, history = rounds_run.run(init_parameters(shapes, schedule.seed))
        history.attrs["seconds"] = time.perf_counter() - started
    config = _config(aggregate, schedule, local, privacy, security, audit)
    config.update(positive_weight=positive_weight, n_clients=len(residency.clients), n_rows=int(n_rows),
                  labels="given" if y is not None else "pseudo")
    return FederatedResult(
        parameters=parameters, mean=mean, scale=scale, sizes=shapes.sizes, history=history, config=config,
        rejected=rounds_run.rejected, lost_workers=rounds_run.lost_workers,
        epsilon=rounds_run.accountant.epsilon if rounds_run.accountant is not None else None,
    )


def _prepare(dask_client, residency: Residency, schedule: RoundOptions,
             audit: AuditLog | None) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Every client's rows placed and standardised by the global scaler; prepared again when a worker is lost.

    Losses are logged as round 0. Every client's rows are derived again, as
    some may already be standardised when a loss is found.
    """
    for losses in itertools.count(1):
        try:
            residency.scaler = None
            residency.place(residency.clients, 0)
            scaler = _global_scaler(dask_client, residency, schedule.split_every)
            residency.standardise(*scaler[:2])
            return scaler
        except LostClients as lost:
            names = [str(cid) for cid in lost.clients]
            exhausted = losses > schedule.max_retries
            _log(audit, "worker_lost", round=0, clients=names, workers=residency.workers_of(lost.clients),
                 action="abort" if exhausted else "retry", attempt=losses)
            if exhausted:
                reason = f"their workers were lost {losses} times (max_retries={schedule.max_retries})"
                _log(audit, "round_failed", round=0, clients=names, reason=reason)
                raise GeoanomError(f"the clients' rows could not be prepared for training (clients "
                                   f"{name_clients(names)}): {reason}.") from None
        except GeoanomError as error:  # no worker appeared to hold the rows again
            _log(audit, "round_failed", round=0, clients=[str(cid) for cid in residency.clients],
                 reason=str(error).rstrip("."))
            raise
    raise AssertionError("unreachable")


def _log(audit: AuditLog | None, event: str, **fields: Any) -> None:
    if audit is not None:
        audit.record(event, **fields)


def _global_scaler(dask_client, residency: Residency, split_every: int) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The features' mean and spread over all clients, from the moments each reports; rows and positives."""
    pins = residency.pins
    root = tree_reduce_futures(dask_client, [dask_client.submit(moments, data, pure=False, **pins[cid])
                                             for cid, data in residency.placed.items()], add_moments, split_every,
                               workers=[residency.groups[cid] for cid in residency.placed])
    n_rows, total, squares, positives = collect(residency, root, residency.clients, 0)
    mean = total / n_rows
    scale = np.sqrt(np.maximum(squares / n_rows - mean**2, 0.0))
    return mean, np.where(scale > 0, scale, 1.0), n_rows, positives


def _config(aggregate: Aggregator, schedule: RoundOptions, local: LocalTraining, privacy: GaussianDP | None,
            security: Security, audit: AuditLog | None) -> dict[str, Any]:
    """How the model was trained, as plain data (saved with it)."""
    return {"model": local.model, "mode": schedule.mode, "rounds": int(schedule.rounds), "signed": security.signed,
            "aggregator": aggregate.settings(), "local_epochs": local.epochs, "lr": local.lr,
            "batch_size": local.batch_size, "client_fraction": schedule.client_fraction,
            "max_staleness": schedule.max_staleness, "split_every": schedule.split_every, "seed": schedule.seed,
            "on_lost_worker": schedule.on_lost_worker, "max_retries": schedule.max_retries,
            "privacy": dataclasses.asdict(privacy) if privacy is not None else None,
            "audit_log": str(security.audit_log) if security.audit_log is not None else None,
            "audit_head": audit.head if audit is not None else None}


def _verifier(keys: dict[Any, ClientKeys], size: int) -> UpdateVerifier | None:
    if not keys:
        return None
    return UpdateVerifier({str(cid): key.public_bytes() for cid, key in keys.items()}, expected_size=size)


def _positive_weight(class_weight: str | None, n_rows: float, positives: float) -> float:
    if class_weight is None or positives <= 0 or positives >= n_rows:
        return 1.0
    return float(np.clip((n_rows - positives) / positives, 1.0, 1000.0))


@contextlib.contextmanager
def _cluster(client: Any):
    if client is not None:
        yield client
        return
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster, \
            Client(cluster, set_as_default=False) as local:
        yield local


def _check_privacy(privacy: GaussianDP | None, schedule: RoundOptions, aggregate: Aggregator) -> None:
    if privacy is None:
        return
    if not isinstance(privacy, GaussianDP):
        raise GeoanomError(f"privacy must be a GaussianDP, got {type(privacy).__name__}.")
    if schedule.mode != "sync" or not aggregate.associative:
        raise GeoanomError("differential privacy needs mode='sync' and the fedavg or fedprox aggregator: "
                           "the accountant's mechanism is a noisy sum of Poisson-sampled, clipped updates.")
    if not PrivacyAccountant(privacy, schedule.client_fraction).can_afford_round():
        raise GeoanomError(f"one round at noise multiplier {privacy.noise_multiplier:g} and client fraction "
                           f"{schedule.client_fraction:g} already spends more than max_epsilon "
                           f"{privacy.max_epsilon:g}; raise the noise, lower the fraction or allow a larger epsilon.")


def _as_rows(X, y, clients) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    features = np.asarray(X, dtype=np.float64)
    if features.ndim != 2:
        raise GeoanomError(f"X must be a 2-D array of rows (observations by features), got shape {features.shape}.")
    if not np.isfinite(features).all():
        bad = np.argwhere(~np.isfinite(features))
        raise GeoanomError(f"X must be finite, but {len(bad)} of its {features.size} values "
                           f"{'is' if len(bad) == 1 else 'are'} NaN or infinite (the first at row {bad[0][0]}, "
                           f"column {bad[0][1]}); drop or fill those rows.")
    client_ids = np.asarray(clients)
    if client_ids.shape != (len(features),):
        raise GeoanomError(f"clients must give one client per row ({len(features)}), got shape {client_ids.shape}.")
    labels = None
    if y is not None:
        labels = np.asarray(y, dtype=np.float64)
        if labels.shape != (len(features),):
            raise GeoanomError(f"y must hold one label per row ({len(features)}), got shape {labels.shape}.")
        if not np.isin(labels, (0.0, 1.0)).all():
            others = np.unique(labels[~np.isin(labels, (0.0, 1.0))])
            shown = ", ".join(f"{value:g}" for value in others[:5]) + (", ..." if len(others) > 5 else "")
            raise GeoanomError(f"y must hold 0 or 1 in each row (1: an event), but also holds {shown}; "
                               "map the labels to 0 and 1 (for -1/+1 labels, (y + 1) // 2).")
        if labels.min() == labels.max():  # a classifier of one class says it whatever the row
            raise GeoanomError(f"y holds only {int(labels[0])}s ({len(labels)} rows): the classifier needs rows of "
                               "both classes (events and none); omit y to train on each client's detector flags.")
    return features, labels, client_ids
