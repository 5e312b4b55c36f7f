"""The server's side of federated rounds: sample, dispatch, aggregate, account, log.

See :mod:`geoanom.federated.engine` for how data are placed and what a
round costs. With ``privacy`` a sync round is DP-FedAvg (McMahan et al.,
2018): each update is clipped where the reduction receives it, the clipped
updates are summed unweighted by the tree, and the root adds Gaussian noise
and divides by the expected number of participants; the accountant
(:mod:`geoanom.federated.privacy`) stops training before ``max_epsilon``
would be exceeded. With an audit log every round, update, aggregation and
privacy figure is one hash-chained line (:mod:`geoanom.federated.audit`).
"""

from __future__ import annotations

import dataclasses
import functools
import time
import warnings
import zlib
from typing import Any, Callable

import numpy as np
import pandas as pd
from distributed import Future

from .. import geohash
from ..errors import GeoanomError, GeoanomWarning
from ..reduction import TreeReducer
from .aggregators import combine_partials, finish_partial, weighted_partial
from .audit import AuditLog
from .convergence import CONVERGED, DIVERGED, MAX_ROUNDS
from .local import ClientSummary, ClientUpdate, LocalPlan, train_round
from .options import RoundOptions, Simulation
from .placement import LostClients, Residency, collect, name_clients, result_of
from .privacy import GaussianDP, PrivacyAccountant, clip_update, noisy_mean, private_mean
from .rules import Aggregator
from .signing import UpdateVerifier
from .spatial import tile_morans_i

BUDGET_SPENT = "budget_spent"

# A round's aggregate update, the summaries of the updates in it, and async extras (staleness, dropped).
Outcome = tuple[np.ndarray, list[ClientSummary], dict[str, Any]]
# A FedAvg partial in the tree: weighted sum, weight, the summaries folded into it.
Partial = tuple[np.ndarray, float, list[ClientSummary]]


class Rounds:
    """The server's loop: sample, dispatch, aggregate, account privacy, log, check convergence."""

    def __init__(self, dask_client, residency: Residency, plan: LocalPlan, aggregate: Aggregator, *,
                 options: RoundOptions, simulation: Simulation, privacy: GaussianDP | None = None,
                 audit: AuditLog | None = None, verifier: UpdateVerifier | None = None):
        self.dask_client, self.residency, self.plan, self.aggregate = dask_client, residency, plan, aggregate
        self.options, self.simulation = options, simulation
        # A fresh watcher each run: Convergence keeps the norms it has seen.
        self.convergence = dataclasses.replace(options.convergence, norms=[], calm_rounds=0)
        self.rng = np.random.default_rng(options.seed)
        self.noise_rng = np.random.default_rng([options.seed, 1])  # the server's own, apart from sampling
        self.in_flight: dict[Any, tuple[Any, int]] = {}  # future -> (client, round it started from)
        self.privacy, self.audit = privacy, audit
        self.accountant = PrivacyAccountant(privacy, options.client_fraction) if privacy is not None else None
        self.verifier = verifier
        self.rejected: list[dict[str, Any]] = []
        self.lost_workers: list[dict[str, Any]] = []  # round, clients, workers, action of each loss
        self.fell_back = False  # warned that a round had too few updates for the rule asked for
        self._attempt: list[Future] = []  # the running attempt's client tasks, cancelled when it is abandoned

    def run(self, parameters: np.ndarray) -> tuple[np.ndarray, pd.DataFrame]:
        """Run the rounds from ``parameters``; the final parameters and one history row per round."""
        rows: list[dict[str, Any]] = []
        fraction, mode = self.options.client_fraction, self.options.mode
        for number in range(1, self.options.rounds + 1):
            if self.accountant is not None and not self.accountant.can_afford_round():
                if rows:
                    rows[-1]["state"] = BUDGET_SPENT
                break
            started = time.perf_counter()
            sampled = [cid for cid in self.residency.clients if self.rng.random() < fraction]
            self._log("round_start", round=number, sampled=[str(cid) for cid in sampled])
            if mode == "sync":
                delta, results, extra = self._surviving_sync_round(parameters, sampled, number)
            else:
                delta, results, extra = self._async_round(parameters, sampled, number)
            norm = float(np.linalg.norm(delta))
            state, relative = self.convergence.update(norm)
            if state != DIVERGED:
                parameters = parameters + delta
            row = self._record(number, results, norm, relative, state, extra, time.perf_counter() - started)
            row["aggregated_by"] = self._aggregated_by(number, len(results))
            self._log_round(number, results, row)
            rows.append(row)
            if state in (CONVERGED, DIVERGED):
                break
        else:
            if rows:
                rows[-1]["state"] = MAX_ROUNDS
        self.in_flight.clear()  # released: late answers are dropped
        self._log("training_end", state=rows[-1]["state"] if rows else "not_run")
        return parameters, pd.DataFrame(rows).set_index("round")

    def _log(self, event: str, **fields: Any) -> None:
        if self.audit is not None:
            self.audit.record(event, **fields)

    def _log_round(self, number: int, results: list[ClientSummary], row: dict[str, Any]) -> None:
        for result in results:
            self._log("update_accepted", round=number, client=str(result.client), digest=result.digest,
                      weight=result.weight, worker=result.worker)
        self._log("aggregation", round=number, aggregator=row["aggregated_by"] or self.aggregate.name,
                  participants=len(results), update_norm=row["update_norm"])
        if self.accountant is not None:
            self._log("privacy", round=number, epsilon=row["epsilon"])

    def _aggregated_by(self, number: int, n_updates: int) -> str | None:
        """The rule that aggregated the round's ``n_updates`` (None: no update, nothing aggregated).

        A rule that needs more updates than arrived (Krum) was replaced by the
        median; the first such round of a run is warned of, every one recorded.
        """
        if n_updates == 0 and self.accountant is None:  # DP adds noise even to an empty round
            return None
        reason = self.aggregate.fallback_reason(n_updates)
        if reason is not None and not self.fell_back:
            self.fell_back = True
            used = self.aggregate.rule_for(n_updates)
            warnings.warn(f"round {number} received {n_updates} update{'' if n_updates == 1 else 's'}, but {reason}: "
                          f"it was aggregated by the coordinate-wise {used} instead (history['aggregated_by'] names "
                          "every round's rule); sample more clients or lower f.", GeoanomWarning, stacklevel=4)
        return self.aggregate.rule_for(n_updates)

    def _surviving_sync_round(self, parameters: np.ndarray, sampled: list[Any], number: int) -> Outcome:
        """A sync round that outlives lost workers: their clients are placed again, then retried or skipped.

        A retry dispatches the same clients with the same parameters and
        seeds into a tree of the same shape: its outcome is the undisturbed one.
        """
        taking_part, losses = list(sampled), 0
        while True:
            try:
                return self._sync_round(parameters, taking_part, number)
            except LostClients as lost:
                losses, affected = self._recover(number, lost.clients, losses + 1)
                if self.options.on_lost_worker == "skip":
                    taking_part = [cid for cid in taking_part if cid not in affected]
            finally:
                self._attempt = []  # never keep a round's results alive on the workers

    def _recover(self, number: int, clients: list[Any], losses: int) -> tuple[int, set[Any]]:
        """Abandon the attempt, record the loss, place the clients' rows again.

        Returns the round's losses so far and every client that lost its rows.

        A loss while the rows are placed again is one more, recorded too;
        past ``max_retries`` a GeoanomError ends training.
        """
        self.dask_client.cancel(self._attempt)
        self._attempt = []
        affected = set(clients)
        while True:
            names, workers = [str(cid) for cid in clients], self.residency.workers_of(clients)
            exhausted = losses > self.options.max_retries
            action = "abort" if exhausted else self.options.on_lost_worker
            self._log("worker_lost", round=number, clients=names, workers=workers, action=action, attempt=losses)
            self.lost_workers.append({"round": number, "clients": names, "action": action})
            if exhausted:
                self._fail(number, names, f"their workers were lost {losses} times "
                                          f"(max_retries={self.options.max_retries})")
            try:
                self.residency.place(clients, number)
                return losses, affected
            except LostClients as again:
                losses, clients = losses + 1, again.clients
                affected.update(clients)
            except GeoanomError as error:
                self._fail(number, names, str(error).rstrip("."))

    def _fail(self, number: int, names: list[str], reason: str) -> None:
        self._log("round_failed", round=number, clients=names, reason=reason)
        raise GeoanomError(f"round {number} could not complete for clients {name_clients(names)}: {reason}.") from None

    def _collect(self, futures: Any, clients: list[Any], number: int) -> Any:
        return collect(self.residency, futures, clients, number)

    def _dispatch(self, parameters: np.ndarray, cid: Any, number: int) -> Future:
        future = self.dask_client.submit(
            train_round, self.residency.placed[cid], parameters, self.plan, _round_seed(self.options.seed, number, cid),
            self.simulation.attacks.get(cid), float(self.simulation.client_delays.get(cid, 0.0)), number,
            pure=False, **self.residency.pins[cid])
        self._attempt.append(future)
        return future

    def _sync_round(self, parameters: np.ndarray, sampled: list[Any], number: int) -> Outcome:
        if self.verifier is not None:
            futures = [self._dispatch(parameters, cid, number) for cid in sampled]
            return self._verified_round(parameters, futures, sampled, number)
        if self.privacy is not None:
            return self._private_round(parameters, sampled, number)
        if not sampled:
            return np.zeros_like(parameters), [], {}
        if not self.aggregate.associative:
            futures = [self._dispatch(parameters, cid, number) for cid in sampled]
            root = self.dask_client.submit(_aggregate_at_root, self.aggregate, *futures, pure=False)
            delta, results = self._collect(root, sampled, number)
            return delta, results, {}
        # One task per client, folded into the tree's first level as it is
        # submitted: the clients' few numbers ride to the root with the sums.
        root = self._dispatch_into_tree(parameters, sampled, number, combine_results)
        total, weight, results = _as_partial(self._collect(root, sampled, number))
        return finish_partial((total, weight)), results, {}

    def _dispatch_into_tree(self, parameters: np.ndarray, sampled: list[Any], number: int,
                            combine: Callable[..., Partial]) -> Future:
        """Submit each sampled client's round into a FedAvg tree (first level per worker); the root's future."""
        tree = TreeReducer(self.dask_client, combine, self.options.split_every)
        for cid in sampled:
            tree.add(self._dispatch(parameters, cid, number), group=self.residency.groups[cid])
        return tree.result()

    def _verified_round(self, parameters: np.ndarray, futures: list[Future], sampled: list[Any], number: int) -> Outcome:
        """Gather signed updates, refuse the bad ones, aggregate the rest here."""
        arrived = [(result, number) for result in self._collect(futures, sampled, number)]
        accepted = [result for result, _ in self._verify(arrived, number)]
        summaries = [update.summary for update in accepted]
        if self.privacy is not None:
            clipped = [clip_update(update.delta, self.privacy.clip)[0] for update in accepted]
            delta = private_mean(clipped, len(self.residency.clients), self.privacy, self.accountant.sampling_rate,
                                 self.noise_rng, shape=parameters.shape)
            self.accountant.spend_round()
            return delta, summaries, {}
        if not accepted:
            return np.zeros_like(parameters), [], {}
        deltas = np.stack([update.delta for update in accepted])
        return self.aggregate.aggregate_round(deltas, np.array([u.weight for u in accepted])), summaries, {}

    def _verify(self, arrived: list[tuple[ClientUpdate, int]], number: int) -> list[tuple[ClientUpdate, int]]:
        """The accepted (update, round dispatched), each delta taken from its verified signed parameters.

        A late (async) update is checked against the round it was dispatched
        in; every refusal is recorded with its reason.
        """
        accepted = []
        for update, dispatched in arrived:
            reason = self.verifier.check(update.signed, dispatched)
            if reason is None:
                accepted.append((dataclasses.replace(update, delta=np.asarray(update.signed.parameters)), dispatched))
                continue
            self.rejected.append({"round": number, "client": str(update.client), "reason": reason})
            self._log("update_refused", round=number, client=str(update.client), reason=reason)
        return accepted

    def _noisy_mean(self, total: np.ndarray) -> np.ndarray:
        """The round's DP-FedAvg update from the tree's sum of clipped updates; spends the round."""
        delta = noisy_mean(total, len(self.residency.clients), self.privacy, self.accountant.sampling_rate, self.noise_rng)
        self.accountant.spend_round()
        return delta

    def _private_round(self, parameters: np.ndarray, sampled: list[Any], number: int) -> Outcome:
        """DP-FedAvg: clipped, unweighted sum by the tree; Gaussian noise and the fixed denominator at the root.

        Noise is added and the round is spent even when no client was
        sampled: that is the Poisson-sampled Gaussian mechanism the
        accountant composes.
        """
        total, results = np.zeros_like(parameters), []
        if sampled:
            combine = functools.partial(combine_results, clip=self.privacy.clip)
            root = self._dispatch_into_tree(parameters, sampled, number, combine)
            total, _, results = _as_partial(self._collect(root, sampled, number), self.privacy.clip)
        return self._noisy_mean(total), results, {}

    def _async_round(self, parameters: np.ndarray, sampled: list[Any], number: int) -> Outcome:
        busy = {cid for cid, _ in self.in_flight.values()}
        for cid in sampled:
            if cid not in busy:
                self.in_flight[self._dispatch(parameters, cid, number)] = (cid, number)
        self._attempt = []  # in async mode, in_flight holds the tasks
        if not self.in_flight:
            return np.zeros_like(parameters), [], {"dropped": 0, "mean_staleness": np.nan}
        return self._close_async_round(parameters, number)

    def _close_async_round(self, parameters: np.ndarray, number: int) -> Outcome:
        """Wait for half the clients in flight; aggregate their updates, staleness-weighted."""
        wanted = max(1, len(self.in_flight) // 2)
        arrived: list[tuple[ClientUpdate, int]] = []
        losses = 0
        while len(arrived) < wanted and self.in_flight:
            try:
                self._first_arrivals(number, arrived)
            except LostClients as lost:
                losses = self._recover_in_flight(parameters, number, lost.clients, losses + 1)
        if self.verifier is not None:
            arrived = self._verify(arrived, number)
        arrived = [(result, number - started) for result, started in arrived]
        limit = self.options.max_staleness
        kept = [(result, stale) for result, stale in arrived if limit is None or stale <= limit]
        extra = {"dropped": len(arrived) - len(kept),
                 "mean_staleness": float(np.mean([stale for _, stale in arrived])) if arrived else np.nan}
        if not kept:
            return np.zeros_like(parameters), [], extra
        deltas = np.stack([result.delta for result, _ in kept])
        weights = np.array([result.weight * (1.0 + stale) ** -0.5 for result, stale in kept])
        return self.aggregate.aggregate_round(deltas, weights), [result.summary for result, _ in kept], extra

    def _first_arrivals(self, number: int, arrived: list[tuple[ClientUpdate, int]]) -> None:
        """Add to ``arrived`` the updates in flight that answer first, each with the round it was dispatched in.

        A lost client's task stays in flight, for :meth:`_recover_in_flight`.
        """
        clients = [cid for cid, _ in self.in_flight.values()]
        done = collect(self.residency, list(self.in_flight), clients, number, return_when="FIRST_COMPLETED")
        for future in done:
            cid, started_round = self.in_flight[future]
            arrived.append((result_of(self.residency, future, [cid], number), started_round))
            del self.in_flight[future]

    def _recover_in_flight(self, parameters: np.ndarray, number: int, clients: list[Any], losses: int) -> int:
        """Async: drop the lost clients' tasks, place their rows again, and (retry) dispatch them from now."""
        self._attempt = [future for future, (cid, _) in self.in_flight.items() if cid in clients]
        for future in self._attempt:
            del self.in_flight[future]
        losses, affected = self._recover(number, clients, losses)
        if self.options.on_lost_worker == "retry":
            for cid in affected:
                self.in_flight[self._dispatch(parameters, cid, number)] = (cid, number)
        self._attempt = []
        return losses

    def _record(self, number, results: list[ClientSummary], norm, relative, state, extra, seconds) -> dict[str, Any]:
        weights = np.array([r.weight for r in results])
        losses = np.array([r.loss for r in results])
        private = self.accountant is not None
        # Under DP only the noisy update is released: who took part and their
        # losses are not, so those columns are NaN (the audit log keeps them).
        return {
            "round": number,
            "participants": np.nan if private else len(results),
            "loss": float(np.average(losses, weights=weights)) if results and not private else np.nan,
            "update_norm": norm,
            "relative_norm": relative,
            "state": state,
            "dropped": extra.get("dropped", 0),
            "mean_staleness": extra.get("mean_staleness", 0.0 if results else np.nan),
            "moran_i": np.nan if private else _residual_morans_i({r.client: r.residual for r in results}),
            "epsilon": self.accountant.epsilon if private else np.nan,
            "seconds": seconds,
        }


def _residual_morans_i(residuals: dict[Any, float]) -> float:
    """Moran's I of the participants' residuals when clients are geohash tiles of one precision; else NaN."""
    names = [str(name) for name in residuals]
    if len(names) < 3 or len({len(name) for name in names}) != 1 or not all(set(n) <= set(geohash.ALPHABET) for n in names):
        return float("nan")
    return tile_morans_i(dict(zip(names, residuals.values())))


def _aggregate_at_root(aggregate: Aggregator, *results: ClientUpdate) -> tuple[np.ndarray, list[ClientSummary]]:
    deltas = np.stack([result.delta for result in results])
    delta = aggregate.aggregate_round(deltas, np.array([result.weight for result in results]))
    return delta, [result.summary for result in results]



def _as_partial(item: ClientUpdate | Partial, clip: float | None = None) -> Partial:
    """A client's update as a FedAvg partial (weighted sum, weight, summaries); partials pass through.

    With ``clip`` (differential privacy) the update is clipped here, on the
    server's side of the reduction, and counts once whatever its rows.
    """
    if isinstance(item, tuple):
        return item
    if clip is not None:
        clipped, _ = clip_update(item.delta, clip)
        return clipped, 1.0, [item.summary]
    total, weight = weighted_partial(item.delta, item.weight)
    return total, weight, [item.summary]


def combine_results(*items: ClientUpdate | Partial, clip: float | None = None) -> Partial:
    """Add FedAvg partials (or client updates) for the tree reduction; associative.

    Examples
    --------
    >>> root = combine_results(*updates)  # doctest: +SKIP
    """
    parts = [_as_partial(item, clip) for item in items]
    total, weight = combine_partials(*((t, w) for t, w, _ in parts))
    return total, weight, [row for _, _, rows in parts for row in rows]


def _round_seed(seed: int, number: int, cid: Any) -> int:
    # crc32, not hash(): str hashes differ between processes, seeds must not
    return int(np.random.SeedSequence([seed, number, zlib.crc32(str(cid).encode())]).generate_state(1)[0])
