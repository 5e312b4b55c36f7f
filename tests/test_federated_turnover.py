"""Federated rounds survive a worker killed mid-round, on a real multi-process dask cluster.

A thread watches the audit log and kills (SIGKILL) the worker process holding
half the clients while round 2 runs; the clients train slowly on purpose
(``Simulation.client_delays``) so that the kill lands inside the round. The
nanny restarts the worker under a new address, as a batch system would.
"""

import contextlib
import json
import os
import signal
import threading
import time

import numpy as np
import pytest

from geoanom.errors import GeoanomError
from geoanom.federated import RoundOptions, Security, Simulation, check_audit, load, train, verify_audit

distributed = pytest.importorskip("distributed")

CLIENTS = list("abcdef")
KILLED_ROUND = 2
# 0.5 s a round, each worker training its three clients at once, so that a kill lands inside the round
SLOW = Simulation(client_delays={c: 0.5 for c in CLIENTS})


class Cluster:
    """A two-worker LocalCluster of processes, started again if a killed worker never comes back."""

    def __init__(self):
        self.local = self.client = None

    def start(self):
        self.close()
        self.local = distributed.LocalCluster(n_workers=2, threads_per_worker=3, processes=True,
                                              dashboard_address=":0")
        self.client = distributed.Client(self.local, set_as_default=False)

    def close(self):
        for part in (self.client, self.local):
            if part is not None:
                with contextlib.suppress(Exception):  # a cluster whose worker was killed may complain closing
                    part.close()

    def ready(self, timeout=20):
        """Both workers up, and known to the cluster object too: killing a worker it has not yet
        heard of trips a KeyError in distributed's SpecCluster status watcher."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = set(self.client.scheduler_info()["workers"])
            if len(workers) == 2 and workers == set(self.local.scheduler_info["workers"]):
                return True
            time.sleep(0.05)
        return False


@contextlib.contextmanager
def fresh_cluster():
    """A new two-worker cluster with both workers up. Each test kills a worker, and a cluster shared
    between tests could still be restarting it when the next test starts (seen in CI as a loss in the
    next test's set-up), so no test inherits another's cluster."""
    holder = Cluster()
    holder.start()
    try:
        assert holder.ready(60), "a new LocalCluster did not start two workers"
        yield holder.client
    finally:
        holder.close()


@pytest.fixture
def dask_client():
    with fresh_cluster() as client:
        yield client


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(3)
    n = 1200
    owner = np.array(CLIENTS)[rng.integers(0, len(CLIENTS), n)]
    features = rng.normal(size=(n, 4))
    labels = (features[:, 0] + features[:, 1] ** 2 > 2.5).astype(float)
    return features, labels, owner


PSEUDO = RoundOptions(rounds=2, seed=5)  # without labels, as `geoanom federate` trains


@pytest.fixture(scope="module")
def undisturbed(rows):
    """The model trained without labels by an undisturbed run, on a cluster of the same shape."""
    features, _, owner = rows
    with fresh_cluster() as client:
        return train(features, None, clients=owner, schedule=PSEUDO, client=client)


def audit_lines(path):
    try:
        with open(path) as lines:
            return [json.loads(line) for line in lines if line.endswith("\n")]
    except FileNotFoundError:
        return []


def kill_worker_in_round(dask_client, log, number=KILLED_ROUND):
    """Start a thread that SIGKILLs the first worker's process just after round ``number`` starts; its address."""
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    pid = dask_client.run(os.getpid, workers=[victim])[victim]

    def kill():
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if any(line["event"] == "round_start" and line["round"] == number for line in audit_lines(log)):
                time.sleep(0.15)  # inside the round: its clients train for 0.5 s
                os.kill(pid, signal.SIGKILL)
                return
            time.sleep(0.01)

    threading.Thread(target=kill, daemon=True).start()
    return victim


def clients_on(log, worker, number=1):
    """The clients that trained on ``worker`` in round ``number`` (from the audit log)."""
    return sorted(line["client"] for line in audit_lines(log)
                  if line["event"] == "update_accepted" and line["round"] == number and line["worker"] == worker)


def test_a_retried_round_gives_the_undisturbed_model_and_is_audited(undisturbed, dask_client, rows, tmp_path):
    # rows derived again are also pseudo-labelled again
    features, _, owner = rows
    log = tmp_path / "audit.jsonl"
    victim = kill_worker_in_round(dask_client, log)
    result = train(features, None, clients=owner, schedule=PSEUDO, security=Security(audit_log=log),
                   simulation=SLOW, client=dask_client)
    lost = clients_on(log, victim)
    assert len(lost) == 3
    # the same rows, clients, parameters, seeds and tree: the same model, bit for bit
    np.testing.assert_array_equal(result.parameters, undisturbed.parameters)
    np.testing.assert_array_equal(result.history["loss"], undisturbed.history["loss"])
    assert (result.history["participants"] == len(CLIENTS)).all()
    events = [line for line in audit_lines(log) if line["event"] == "worker_lost"]
    assert [(e["round"], sorted(e["clients"]), e["action"]) for e in events] == [(KILLED_ROUND, lost, "retry")]
    assert events[0]["workers"] == {cid: [victim] for cid in lost}
    assert result.lost_workers == [{"round": KILLED_ROUND, "clients": events[0]["clients"], "action": "retry"}]
    result.save(tmp_path / "model.npz")
    assert load(tmp_path / "model.npz").lost_workers == result.lost_workers
    assert verify_audit(log, result.audit_head)
    # the lost clients trained elsewhere after the loss
    assert all(line["worker"] != victim for line in audit_lines(log)
               if line["event"] == "update_accepted" and line["round"] >= KILLED_ROUND)


@pytest.mark.slow  # a fresh multi-process cluster each: about 10 s; ci/run-slow runs it
def test_a_worker_lost_while_rows_are_prepared_is_survived(undisturbed, dask_client, rows, tmp_path):
    features, _, owner = rows
    victim = sorted(dask_client.scheduler_info()["workers"])[0]
    pid = dask_client.run(os.getpid, workers=[victim])[victim]
    done, killed = threading.Event(), threading.Event()

    def kill_while_pseudo_labelling():
        while not done.is_set():
            if any("_pseudo_labelled" in str(key) for key in dask_client.processing([victim]).get(victim, ())):
                os.kill(pid, signal.SIGKILL)
                killed.set()
                return

    threading.Thread(target=kill_while_pseudo_labelling, daemon=True).start()
    log = tmp_path / "audit.jsonl"
    try:
        result = train(features, None, clients=owner, schedule=PSEUDO, security=Security(audit_log=log),
                       client=dask_client)
    finally:
        done.set()
    assert killed.is_set()
    [event] = [line for line in audit_lines(log) if line["event"] == "worker_lost"]
    assert (event["round"], event["action"]) == (0, "retry")  # round 0: before the first round
    assert all(workers == [victim] for workers in event["workers"].values())
    np.testing.assert_array_equal(result.parameters, undisturbed.parameters)
    assert verify_audit(log, result.audit_head)


@pytest.mark.slow  # a fresh multi-process cluster each: about 10 s; ci/run-slow runs it
def test_skip_leaves_the_lost_clients_out_of_that_round_only(dask_client, rows, tmp_path):
    features, labels, owner = rows
    schedule = RoundOptions(rounds=3, seed=5, on_lost_worker="skip")
    log = tmp_path / "audit.jsonl"
    victim = kill_worker_in_round(dask_client, log)
    result = train(features, labels, clients=owner, schedule=schedule, security=Security(audit_log=log),
                   simulation=SLOW, client=dask_client)
    lost = clients_on(log, victim)
    participants = result.history["participants"]
    assert participants[KILLED_ROUND] == len(CLIENTS) - len(lost)
    assert (participants.drop(KILLED_ROUND) == len(CLIENTS)).all()  # back from the next round on
    accepted = {line["client"] for line in audit_lines(log)
                if line["event"] == "update_accepted" and line["round"] == KILLED_ROUND}
    assert accepted == set(CLIENTS) - set(lost)
    [event] = [line for line in audit_lines(log) if line["event"] == "worker_lost"]
    assert (event["round"], sorted(event["clients"]), event["action"]) == (KILLED_ROUND, lost, "skip")
    assert verify_audit(log, result.audit_head)


@pytest.mark.slow  # a fresh multi-process cluster each: about 10 s; ci/run-slow runs it
def test_a_round_out_of_retries_is_one_sentence_and_the_log_says_so(dask_client, rows, tmp_path):
    features, labels, owner = rows
    log = tmp_path / "audit.jsonl"
    victim = kill_worker_in_round(dask_client, log)
    with pytest.raises(GeoanomError) as raised:
        train(features, labels, clients=owner, schedule=RoundOptions(rounds=3, seed=5, max_retries=0),
              security=Security(audit_log=log), simulation=SLOW, client=dask_client)
    lost = clients_on(log, victim)
    message = str(raised.value)
    assert message.startswith(f"round {KILLED_ROUND} could not complete for clients ")
    assert all(cid in message for cid in lost) and message.count(".") == 1 and "\n" not in message
    lines = audit_lines(log)
    assert [line["event"] for line in lines[-2:]] == ["worker_lost", "round_failed"]
    assert lines[-2]["action"] == "abort" and sorted(lines[-1]["clients"]) == lost
    check = check_audit(log, lines[-1]["hash"])
    assert check.ok and check.records == len(lines)


@pytest.mark.slow  # a fresh multi-process cluster each: about 10 s; ci/run-slow runs it
def test_async_rounds_dispatch_lost_clients_again(dask_client, rows, tmp_path):
    features, labels, owner = rows
    log = tmp_path / "audit.jsonl"
    victim = kill_worker_in_round(dask_client, log)
    result = train(features, labels, clients=owner, schedule=RoundOptions(rounds=3, seed=5, mode="async"),
                   security=Security(audit_log=log), simulation=SLOW, client=dask_client)
    assert len(result.history) == 3
    # the victim's clients in flight may be found lost together or one answer at a time
    events = [line for line in audit_lines(log) if line["event"] == "worker_lost"]
    assert events and all(e["action"] == "retry" and e["round"] >= KILLED_ROUND for e in events)
    assert all(workers == [victim] for e in events for workers in e["workers"].values())
    assert verify_audit(log, result.audit_head)


def test_lost_worker_settings_are_checked():
    with pytest.raises(GeoanomError, match="on_lost_worker must be 'retry' or 'skip'"):
        RoundOptions(on_lost_worker="wait")
    with pytest.raises(GeoanomError, match="max_retries must be"):
        RoundOptions(max_retries=-1)
