"""Where each client's rows live on the cluster, and how they are placed again when their worker is lost.

Each client's rows are scattered to one worker (its *pin*) and stay there
across rounds. They are derived from their source, the caller's arrays, by
the same steps every time: the client's rows selected by a mask (the arrays
are kept by reference, so the driver holds no second copy), scattered,
pseudo-labelled with the run's seed when there are no labels, and
standardised by the global scaler. A client whose worker died is therefore
placed again, on a live worker, with rows equal bit for bit to those lost.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import CancelledError
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from distributed import KilledWorker, wait
from distributed.comm import CommClosedError

from ..errors import GeoanomError
from .local import ClientData, standardise
from .signing import ClientKeys

# How long placing rows again waits for an eligible worker: a nanny restarts
# a killed worker in seconds, an adaptive or jobqueue cluster takes longer.
WAIT_FOR_WORKERS = 60.0
# Future states whose data are gone (a task that raised is "error", not a loss).
GONE = ("lost", "cancelled")


class Residency:
    """Every client's rows on its worker, derived from their source, and placed again when lost.

    Parameters
    ----------
    dask_client : distributed.Client
    features, labels, client_ids : ndarray
        The source: all rows, their labels (None: pseudo-labels) and clients.
        Kept by reference.
    seed : int
        Seeds the pseudo-labels.
    keys : dict of client to ClientKeys
        Private keys travel with their client's rows (signed rounds).
    placement : mapping of client to a worker resource, optional
        See :class:`~geoanom.federated.options.Security`.

    Examples
    --------
    >>> residency = Residency(client, X, y, owners, seed=0, keys={})  # doctest: +SKIP
    >>> residency.lost(["a", "b"])  # doctest: +SKIP
    []
    """

    def __init__(self, dask_client, features: np.ndarray, labels: np.ndarray | None, client_ids: np.ndarray, *,
                 seed: int, keys: Mapping[Any, ClientKeys], placement: Mapping[Any, str] | None = None):
        self.dask_client, self.seed, self.keys, self.placement = dask_client, seed, keys, placement
        self._features, self._labels, self._client_ids = features, labels, client_ids
        self.clients = list(pd.unique(client_ids))
        self.scaler: tuple[np.ndarray, np.ndarray] | None = None
        workers = self._workers(self.clients, patience=0.0)  # at the start, a missing worker is a mistake
        self.pins = {cid: self._pin(cid, workers) for cid in self.clients}
        # The FedAvg tree groups clients by their first worker. The group
        # stays when a client moves, so updates are summed in the same order
        # and a retried round gives the model an undisturbed one gives.
        self.groups = {cid: pin["workers"][0] for cid, pin in self.pins.items()}
        self.placed: dict[Any, Any] = {}  # client -> future of its rows on its worker, once placed

    def standardise(self, mean: np.ndarray, scale: np.ndarray) -> None:
        """Scale every client's rows by the global scaler, where they are; rows placed later are scaled too.

        Examples
        --------
        >>> residency.standardise(mean, scale)  # doctest: +SKIP
        """
        self.scaler = (mean, scale)
        self.placed = {cid: self.dask_client.submit(standardise, data, mean, scale, pure=False, **self.pins[cid])
                       for cid, data in self.placed.items()}
        collect(self, list(self.placed.values()), self.clients, 0)

    def lost(self, clients: Sequence[Any]) -> list[Any]:
        """The clients among ``clients`` whose rows are gone: their future lost or no worker of theirs alive.

        Examples
        --------
        >>> residency.lost(residency.clients)  # doctest: +SKIP
        []
        """
        alive = set(self.dask_client.scheduler_info()["workers"])
        return [cid for cid in clients if cid not in self.placed or self.placed[cid].status in GONE
                or not alive.intersection(self.pins[cid]["workers"])]

    def workers_of(self, clients: Sequence[Any]) -> dict[str, list[str]]:
        """The workers each client is pinned to, by client name (for the audit log)."""
        return {str(cid): list(self.pins[cid]["workers"]) for cid in clients}

    def place(self, clients: Sequence[Any], number: int) -> None:
        """Pin ``clients`` to live workers and derive their rows there from the source (again, after a loss).

        Parameters
        ----------
        clients : sequence
        number : int
            The round, for messages (0 before the first).

        Raises
        ------
        LostClients
            When workers are lost while the rows are placed: the clients
            whose rows are gone.
        GeoanomError
            When no eligible worker appears within ``WAIT_FOR_WORKERS`` seconds.

        Examples
        --------
        >>> residency.place(["a"], number=3)  # doctest: +SKIP
        """
        workers = self._workers(clients)
        gone: list[Any] = []
        for cid in clients:
            self.pins[cid] = self._pin(cid, workers)
            try:
                self.placed[cid] = self._derive(cid)
            except LostClients:  # its worker died under the scatter
                self.placed.pop(cid, None)
                gone.append(cid)
        placed = [cid for cid in clients if cid not in gone]
        try:
            collect(self, [self.placed[cid] for cid in placed], placed, number)
        except LostClients as lost:
            gone.extend(lost.clients)
        if gone:
            raise LostClients([cid for cid in clients if cid in gone])

    def _derive(self, cid: Any) -> Any:
        """The client's rows on its pinned worker, by the same steps as the first time (a future)."""
        rows = self._client_ids == cid
        key = self.keys[cid].private_bytes() if cid in self.keys else None
        labels = self._labels[rows] if self._labels is not None else None
        try:
            [data] = self.dask_client.scatter([ClientData(cid, self._features[rows], labels, key)],
                                              workers=self.pins[cid]["workers"][:1], hash=False)
        except (*DASK_LOSSES, OSError, TimeoutError, asyncio.TimeoutError):
            # the worker died under the scatter, or was gone (the scheduler's KeyError)
            raise LostClients([cid]) from None
        if self._labels is None:
            data = self.dask_client.submit(_pseudo_labelled, data, self.seed, pure=False, **self.pins[cid])
        if self.scaler is not None:
            data = self.dask_client.submit(standardise, data, *self.scaler, pure=False, **self.pins[cid])
        return data

    def _pin(self, cid: Any, workers: Mapping[str, Any]) -> dict[str, Any]:
        """The ``submit`` options that keep the client's tasks on one of its live workers."""
        if self.placement is None:
            addresses = sorted(workers)
            return {"workers": [addresses[self.clients.index(cid) % len(addresses)]]}
        return {"workers": _holders(workers, self.placement[cid]), "allow_other_workers": False}

    def _workers(self, clients: Sequence[Any], patience: float = WAIT_FOR_WORKERS) -> dict[str, Any]:
        """The live workers, once every one of ``clients`` has one it may use (waits ``patience`` s for them)."""
        if self.placement is not None:
            missing = [cid for cid in clients if cid not in self.placement]
            if missing:
                name = missing[0].item() if isinstance(missing[0], np.generic) else missing[0]  # 'b', not np.str_('b')
                raise GeoanomError(f"client {name!r} has no entry in placement; give every client a worker "
                                   "resource.")
        deadline = time.monotonic() + patience
        while True:
            workers = self.dask_client.scheduler_info()["workers"]
            homeless = [cid for cid in clients if not self._eligible(cid, workers)]
            if not homeless:
                return workers
            if time.monotonic() > deadline:
                raise GeoanomError(_no_worker_message(homeless, self.placement, patience))
            time.sleep(0.2)

    def _eligible(self, cid: Any, workers: Mapping[str, Any]) -> bool:
        return bool(workers) if self.placement is None else bool(_holders(workers, self.placement[cid]))


def _holders(workers: Mapping[str, Any], resource: str) -> list[str]:
    return sorted(address for address, info in workers.items() if resource in info.get("resources", {}))


def name_clients(clients: Sequence[Any], limit: int = 5) -> str:
    """Clients as text for a message: the first ``limit`` by name, then how many more.

    Examples
    --------
    >>> name_clients(["a", "b", "c"], limit=2)
    'a, b and 1 more'
    """
    names = [str(cid) for cid in clients]
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _no_worker_message(clients: Sequence[Any], placement: Mapping[Any, str] | None, patience: float) -> str:
    waited = f" (waited {patience:g} s)" if patience else ""
    if placement is None:
        return f"no dask worker is running to hold the clients' rows{waited}."
    resource = placement[clients[0]]
    return (f"no worker carries the resource {resource!r} of client {clients[0]!r}{waited}; start one with "
            f"dask-worker --resources \"{resource}=1\".")


def _pseudo_labelled(data: ClientData, seed: int) -> ClientData:
    """The client's rows labelled by its own detector ensemble's majority flag."""
    from ..detectors import Ensemble

    flags = Ensemble(("gmm", "kmeans"), random_state=seed).fit(data.features).majority_vote(data.features)
    return ClientData(data.client, data.features, flags.astype(np.float64), data.key)


class LostClients(Exception):
    """Raised inside a round when clients' rows are gone with their worker; the round loop handles it."""

    def __init__(self, clients: Sequence[Any]):
        super().__init__(f"rows of clients {', '.join(map(str, clients))} were lost")
        self.clients = list(clients)


# What dask raises when data or tasks went with a worker: a cancelled future
# (its dependencies lost), a task that killed its workers, a closed comm, data
# missing where they should be. Each counts as a loss only when a client's
# rows are found gone; otherwise it is reported as the round's failure.
DASK_LOSSES = (CancelledError, KilledWorker, CommClosedError, KeyError)
POLL = 0.5  # seconds between checks that the rows a round waits on still exist


def collect(residency: Residency, futures: Any, clients: Sequence[Any], number: int,
            return_when: str = "ALL_COMPLETED") -> Any:
    """Wait for ``futures`` (a round's tasks on ``clients``' rows), watching that those rows still exist.

    Returns the gathered results (ALL_COMPLETED) or the set of done futures
    (FIRST_COMPLETED). A task pinned to a dead worker would wait for it
    forever, so every ``POLL`` seconds the rows are checked.

    Raises
    ------
    LostClients
        When some of ``clients`` lost their rows.
    GeoanomError
        When dask reports a loss but no client's rows are gone.

    Examples
    --------
    >>> total = collect(residency, root, ["a", "b"], number=3)  # doctest: +SKIP
    """
    single = not isinstance(futures, (list, tuple, set))
    waiting = [futures] if single else list(futures)
    try:
        while single and return_when == "ALL_COMPLETED":  # one round trip a poll: a round's root
            try:
                return futures.result(timeout=POLL)
            except (TimeoutError, asyncio.TimeoutError):
                if lost := residency.lost(clients):
                    raise LostClients(lost) from None
        while True:
            try:
                done, _ = wait(waiting, timeout=POLL, return_when=return_when)
                break
            except (TimeoutError, asyncio.TimeoutError):  # distinct before Python 3.11
                if lost := residency.lost(clients):
                    raise LostClients(lost) from None
        if return_when != "ALL_COMPLETED":
            return done
        return residency.dask_client.gather(waiting)
    except DASK_LOSSES as error:
        raise _loss(residency, clients, number, error) from None


def result_of(residency: Residency, future: Any, clients: Sequence[Any], number: int) -> Any:
    """A done future's result; a loss of rows is :class:`LostClients`, as in :func:`collect`."""
    try:
        return future.result()
    except DASK_LOSSES as error:
        raise _loss(residency, clients, number, error) from None


def _loss(residency: Residency, clients: Sequence[Any], number: int, error: BaseException) -> Exception:
    """What a dask error during round ``number`` means: clients' rows lost, or a failure said in one sentence."""
    lost = residency.lost(clients)
    if lost:
        return LostClients(lost)
    if isinstance(error, KeyError):  # not dask's: a bug to see as it is
        return error
    reason = str(error).strip().rstrip(".") or "no reason given"
    return GeoanomError(f"round {number} failed on the cluster ({type(error).__name__}: {reason}).")
