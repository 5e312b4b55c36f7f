"""Federated training rounds on a dask cluster.

Each client's rows are scattered once to one worker and stay there; every
round, each sampled client's local training is a task on that worker, and
only parameter vectors travel. FedAvg's weighted sums are merged by a tree
reduction of tasks (``split_every`` at a time); the robust aggregators need
all updates at once and run in one task at the root.

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
import zlib
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from distributed import Client, LocalCluster, wait

from .. import geohash
from ..errors import GeoanomError
from .aggregators import Aggregator, combine_partials, coordinate_median, finish_partial, make_aggregator
from .convergence import CONVERGED, DIVERGED, MAX_ROUNDS, Convergence
from .local import ATTACKS, ClientData, LocalPlan, add_moments, moments, partial_mean, standardise, summary, \
    train_round
from .mlp import HIDDEN, LayerShapes, init_parameters
from .result import FederatedResult
from .spatial import tile_morans_i

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
        Fan-in of the tree reduction.
    convergence : Convergence, optional
        Stopping rule; :class:`Convergence` defaults.
    class_weight : {"balanced", None}
        Weight anomalies by (negatives / positives) over all clients, from
        counts each client reports; anomalies are rare.
    attacks : mapping of client to {"sign_flip", "scale", "noise"}, optional
        For evaluation: these clients send poisoned updates.
    client_delays : mapping of client to seconds, optional
        For evaluation: these clients are that much slower each round.
    seed : int, default 0
    client : distributed.Client, optional
        The cluster; by default an in-process one for the duration.

    Returns
    -------
    FederatedResult
    """
    config = _check(model, mode, rounds, client_fraction, attacks)
    features, labels, client_ids = _as_rows(X, y, clients)
    aggregate = make_aggregator(aggregator)
    with _cluster(client) as dask_client, dask_client.as_current():
        started = time.perf_counter()
        placed = _place(dask_client, features, labels, client_ids, seed)
        n_rows, total, squares, positives = dask_client.gather(
            _reduce(dask_client, [dask_client.submit(moments, data, pure=False) for data in placed.values()],
                    add_moments, split_every))
        mean = total / n_rows
        scale = np.sqrt(np.maximum(squares / n_rows - mean**2, 0.0))
        scale = np.where(scale > 0, scale, 1.0)
        placed = {cid: dask_client.submit(standardise, data, mean, scale, pure=False) for cid, data in placed.items()}
        wait(list(placed.values()))
        shapes = LayerShapes((features.shape[1],) + tuple(hidden) + (1,))
        positive_weight = _positive_weight(class_weight, n_rows, positives)
        plan = LocalPlan(shapes, local_epochs, lr, batch_size, aggregate.mu, positive_weight)
        rounds_run = _Rounds(dask_client, placed, plan, aggregate, split_every, attacks or {}, client_delays or {},
                             seed, max_staleness, convergence or Convergence())
        parameters, history = rounds_run.run(init_parameters(shapes, seed), rounds, client_fraction, mode)
        history.attrs["seconds"] = time.perf_counter() - started
    return FederatedResult(
        parameters=parameters, mean=mean, scale=scale, sizes=shapes.sizes, history=history,
        config={**config, "aggregator": dataclasses.asdict(aggregate), "local_epochs": local_epochs, "lr": lr,
                "batch_size": batch_size, "client_fraction": client_fraction, "max_staleness": max_staleness,
                "split_every": split_every, "seed": seed, "positive_weight": positive_weight,
                "n_clients": len(placed), "n_rows": int(n_rows), "labels": "given" if y is not None else "pseudo"},
    )


class _Rounds:
    """The server's loop: sample, dispatch, aggregate, check convergence."""

    def __init__(self, dask_client, placed, plan, aggregate, split_every, attacks, delays, seed, max_staleness,
                 convergence):
        self.dask_client, self.placed, self.plan = dask_client, placed, plan
        self.aggregate, self.split_every = aggregate, split_every
        self.attacks, self.delays, self.seed = attacks, delays, seed
        self.max_staleness, self.convergence = max_staleness, convergence
        self.rng = np.random.default_rng(seed)
        self.in_flight: dict[Any, tuple[Any, int]] = {}  # future -> (client, round it started from)

    def run(self, parameters: np.ndarray, rounds: int, fraction: float, mode: str) -> tuple[np.ndarray, pd.DataFrame]:
        rows = []
        for number in range(1, rounds + 1):
            started = time.perf_counter()
            sampled = [cid for cid in self.placed if self.rng.random() < fraction]
            if mode == "sync":
                delta, results, extra = self._sync_round(parameters, sampled, number)
            else:
                delta, results, extra = self._async_round(parameters, sampled, number)
            norm = float(np.linalg.norm(delta))
            state, relative = self.convergence.update(norm)
            if state != DIVERGED:
                parameters = parameters + delta
            rows.append(self._record(number, results, norm, relative, state, extra, time.perf_counter() - started))
            if state in (CONVERGED, DIVERGED):
                break
        else:
            if rows:
                rows[-1]["state"] = MAX_ROUNDS
        self.in_flight.clear()  # released: late answers are dropped
        return parameters, pd.DataFrame(rows).set_index("round")

    def _dispatch(self, parameters: np.ndarray, cid: Any, number: int):
        return self.dask_client.submit(
            train_round, self.placed[cid], parameters, self.plan, _round_seed(self.seed, number, cid),
            self.attacks.get(cid), float(self.delays.get(cid, 0.0)), pure=False)

    def _sync_round(self, parameters, sampled, number):
        futures = [self._dispatch(parameters, cid, number) for cid in sampled]
        if not futures:
            return np.zeros_like(parameters), [], {}
        # One task per client, then the reduction: each client's result is
        # folded into the tree's first level, and the clients' few numbers
        # ride along to the root with the sums.
        if self.aggregate.associative:
            root = _reduce(self.dask_client, futures, combine_results, self.split_every)
            total, weight, results = _as_partial(self.dask_client.gather(root))
            return finish_partial((total, weight)), results, {}
        root = self.dask_client.submit(_aggregate_at_root, self.aggregate, *futures, pure=False)
        delta, results = self.dask_client.gather(root)
        return delta, results, {}

    def _async_round(self, parameters, sampled, number):
        busy = {cid for cid, _ in self.in_flight.values()}
        for cid in sampled:
            if cid not in busy:
                self.in_flight[self._dispatch(parameters, cid, number)] = (cid, number)
        if not self.in_flight:
            return np.zeros_like(parameters), [], {"dropped": 0, "mean_staleness": np.nan}
        wanted = max(1, len(self.in_flight) // 2)
        arrived: list[tuple[dict, int]] = []
        while len(arrived) < wanted:
            done, _ = wait(list(self.in_flight), return_when="FIRST_COMPLETED")
            for future in done:
                _, started_round = self.in_flight.pop(future)
                arrived.append((future.result(), number - started_round))
        kept = [(result, stale) for result, stale in arrived
                if self.max_staleness is None or stale <= self.max_staleness]
        extra = {"dropped": len(arrived) - len(kept),
                 "mean_staleness": float(np.mean([stale for _, stale in arrived]))}
        if not kept:
            return np.zeros_like(parameters), [], extra
        deltas = np.stack([result["delta"] for result, _ in kept])
        weights = np.array([result["weight"] * (1.0 + stale) ** -0.5 for result, stale in kept])
        return robust_or_median(self.aggregate, deltas, weights), [summary(result) for result, _ in kept], extra

    def _record(self, number, results, norm, relative, state, extra, seconds) -> dict[str, Any]:
        weights = np.array([r["weight"] for r in results])
        losses = np.array([r["loss"] for r in results])
        return {
            "round": number,
            "participants": len(results),
            "loss": float(np.average(losses, weights=weights)) if results else np.nan,
            "update_norm": norm,
            "relative_norm": relative,
            "state": state,
            "dropped": extra.get("dropped", 0),
            "mean_staleness": extra.get("mean_staleness", 0.0 if results else np.nan),
            "moran_i": _residual_morans_i({r["client"]: r["residual"] for r in results}),
            "seconds": seconds,
        }


def _residual_morans_i(residuals: dict[Any, float]) -> float:
    """Moran's I of the participants' residuals when clients are geohash tiles of one precision; else NaN."""
    names = [str(name) for name in residuals]
    if len(names) < 3 or len({len(name) for name in names}) != 1 or not all(set(n) <= set(geohash.ALPHABET) for n in names):
        return float("nan")
    return tile_morans_i(dict(zip(names, residuals.values())))


def _aggregate_at_root(aggregate: Aggregator, *results: dict) -> tuple[np.ndarray, list[dict]]:
    deltas = np.stack([result["delta"] for result in results])
    delta = robust_or_median(aggregate, deltas, np.array([result["weight"] for result in results]))
    return delta, [summary(result) for result in results]


def _as_partial(item: dict | tuple) -> tuple[np.ndarray, float, list[dict]]:
    """A client's result as a FedAvg partial (weighted sum, weight, summaries); partials pass through."""
    if isinstance(item, tuple):
        return item
    total, weight = partial_mean(item)
    return total, weight, [summary(item)]


def combine_results(*items: dict | tuple) -> tuple[np.ndarray, float, list[dict]]:
    """Add FedAvg partials (or raw client results) for the tree reduction; associative."""
    parts = [_as_partial(item) for item in items]
    total, weight = combine_partials(*((t, w) for t, w, _ in parts))
    return total, weight, [row for _, _, rows in parts for row in rows]


def robust_or_median(aggregate: Aggregator, deltas: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The aggregate, or the coordinate-wise median when a round has too few updates for Krum (n < 2f + 3)."""
    if aggregate.name in ("krum", "multi_krum") and len(deltas) < 2 * aggregate.f + 3:
        return coordinate_median(deltas)
    return aggregate(deltas, weights)


def _reduce(dask_client, futures: list, combine, split_every: int):
    """Tree-reduce futures with tasks of fan-in ``split_every``; the root's future."""
    split_every = max(2, int(split_every))
    while len(futures) > 1:
        futures = [dask_client.submit(combine, *futures[i : i + split_every], pure=False)
                   for i in range(0, len(futures), split_every)]
    return futures[0]


def _round_seed(seed: int, number: int, cid: Any) -> int:
    # crc32, not hash(): str hashes differ between processes, seeds must not
    return int(np.random.SeedSequence([seed, number, zlib.crc32(str(cid).encode())]).generate_state(1)[0])


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


def _place(dask_client, features, labels, client_ids, seed) -> dict[Any, Any]:
    """Scatter each client's rows to one worker (round-robin), where they stay."""
    workers = sorted(dask_client.scheduler_info()["workers"])
    placed = {}
    for index, cid in enumerate(pd.unique(client_ids)):
        rows = client_ids == cid
        data = ClientData(cid, features[rows], labels[rows] if labels is not None else None)
        if labels is None:
            data = dask_client.submit(_pseudo_labelled, data, seed, workers=[workers[index % len(workers)]],
                                      pure=False)
        else:
            [data] = dask_client.scatter([data], workers=[workers[index % len(workers)]], hash=False)
        placed[cid] = data
    return placed


def _pseudo_labelled(data: ClientData, seed: int) -> ClientData:
    """The client's rows labelled by its own detector ensemble's majority flag."""
    from ..detectors import Ensemble

    flags = Ensemble(("gmm", "kmeans"), random_state=seed).fit(data.features).predict(data.features)
    return ClientData(data.client, data.features, flags.astype(np.float64))


def _check(model: str, mode: str, rounds: int, fraction: float, attacks) -> dict[str, Any]:
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
    return {"model": model, "mode": mode, "rounds": int(rounds)}


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
