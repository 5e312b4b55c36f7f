"""Federated training on a real multi-process dask cluster: rounds, modes, attacks, persistence."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.federated import (
    Convergence,
    FederatedResult,
    LocalTraining,
    RoundOptions,
    Security,
    Simulation,
    make_aggregator,
    train,
)
from geoanom.federated.mlp import LayerShapes, init_parameters, local_sgd

distributed = pytest.importorskip("distributed")

CLIENTS = list("abcdefghij")


@pytest.fixture(scope="module")
def cluster_client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        yield client


@pytest.fixture(scope="module")
def rows():
    """A non-linear rare class spread over ten clients, each with its own shift (non-IID)."""
    rng = np.random.default_rng(0)
    n = 5000
    owner = np.array(CLIENTS)[rng.integers(0, 10, n)]
    shift = {c: rng.normal(0, 0.3, 4) for c in CLIENTS}
    features = rng.normal(size=(n, 4)) + np.array([shift[c] for c in owner])
    labels = ((features[:, 0] + features[:, 1] ** 2) > 3).astype(float)
    return features, labels, owner


def auc(result, features, labels):
    return roc_auc_score(labels, result.predict_proba(features)[:, 1])


def test_sync_training_learns_on_a_cluster_and_matches_one_process(cluster_client, rows):
    features, labels, owner = rows
    on_cluster = train(features, labels, clients=owner, schedule=RoundOptions(rounds=15, seed=1), client=cluster_client)
    in_process = train(features, labels, clients=owner, schedule=RoundOptions(rounds=15, seed=1))
    assert auc(on_cluster, features, labels) > 0.9
    np.testing.assert_allclose(on_cluster.parameters, in_process.parameters, rtol=1e-10, atol=1e-12)
    history = on_cluster.history
    assert list(history.index) == list(range(1, 16)) and (history["participants"] == 10).all()
    assert history["loss"].iloc[-1] < history["loss"].iloc[0]
    assert {"update_norm", "relative_norm", "state", "moran_i", "seconds"} <= set(history.columns)


def test_client_data_stays_on_one_worker_and_training_runs_there(cluster_client, rows):
    features, labels, owner = rows
    with distributed.get_task_stream(client=cluster_client) as stream:
        train(features, labels, clients=owner, schedule=RoundOptions(rounds=3, seed=2), client=cluster_client)
    ran_on: dict[str, set] = {}
    for record in stream.data:
        name = record["key"] if isinstance(record["key"], str) else record["key"][0]
        ran_on.setdefault(name.split("-")[0], set()).add(record["worker"])
    # two workers, ten clients: both workers trained, and each task ran where its client's data is
    assert ran_on["train_round"] == set(cluster_client.scheduler_info()["workers"])
    transfers = [t for r in stream.data if "train_round" in str(r["key"]) for t in r.get("startstops", ())
                 if t["action"] == "transfer"]
    assert not transfers  # no client's data moved to another worker for training


@pytest.mark.slow  # over 8 s; run by ci/run-slow
def test_async_mode_lets_stragglers_be_stale_and_drops_the_stalest(cluster_client, rows):
    features, labels, owner = rows
    slow = {"a": 1.0}
    sync = train(features, labels, clients=owner, schedule=RoundOptions(rounds=4),
                 simulation=Simulation(client_delays=slow), client=cluster_client)
    fast = train(features, labels, clients=owner, schedule=RoundOptions(rounds=4, mode="async", max_staleness=1),
                 simulation=Simulation(client_delays=slow), client=cluster_client)
    assert sync.history["seconds"].median() >= 1.0  # every sync round waits for the straggler
    assert fast.history["seconds"].median() < 1.0  # async rounds close without it
    assert (fast.history["mean_staleness"].fillna(0) >= 0).all()
    relaxed = train(features, labels, clients=owner, schedule=RoundOptions(rounds=8, mode="async"),
                    simulation=Simulation(client_delays={"a": 0.3, "b": 0.3}), client=cluster_client)
    assert relaxed.history["mean_staleness"].max() > 0
    strict = train(features, labels, clients=owner, schedule=RoundOptions(rounds=8, mode="async", max_staleness=0),
                   simulation=Simulation(client_delays={"a": 0.3, "b": 0.3}), client=cluster_client)
    assert strict.history["dropped"].sum() > 0
    assert auc(relaxed, features, labels) > 0.9


def _attacked_auc(features, labels, owner, client, aggregator="fedavg", attacks=None) -> float:
    """Test AUC after 12 rounds of 3 local epochs, with these clients poisoning their updates."""
    result = train(features, labels, clients=owner, aggregator=aggregator,
                   schedule=RoundOptions(rounds=12, seed=3, convergence=Convergence(divergence_sigmas=None)),
                   local=LocalTraining(epochs=3), simulation=Simulation(attacks=attacks or {}), client=client)
    return auc(result, features, labels)


@pytest.mark.slow  # about 10 s per attack on 2 cores; ci/run-slow runs it
@pytest.mark.parametrize("attack", ["sign_flip", "scale"])
def test_robust_aggregators_resist_two_byzantine_clients(cluster_client, rows, attack):
    features, labels, owner = rows
    attacks = {"a": attack, "b": attack}
    clean = _attacked_auc(features, labels, owner, cluster_client)
    for robust in ("median", "trimmed_mean", "krum(2)", "multi_krum(2)"):
        attacked = _attacked_auc(features, labels, owner, cluster_client, robust, attacks)
        assert attacked > clean - 0.03, (robust, attacked, clean)
    fedavg = _attacked_auc(features, labels, owner, cluster_client, attacks=attacks)
    assert fedavg < clean - (0.2 if attack == "sign_flip" else 0.01), (fedavg, clean)


def test_default_trimmed_mean_resists_two_sign_flippers_of_ten_as_the_median_does(cluster_client, rows):
    # Its default beta is 0.2, as Flower's FedTrimmedAvg: 0.1 trims one update a side of ten, and the
    # second sign-flipper, ten times its honest change, then leads the mean astray.
    features, labels, owner = rows
    assert make_aggregator("trimmed_mean").beta == 0.2 and len(set(owner)) == 10
    attacks = {"c": "sign_flip", "d": "sign_flip"}
    median = _attacked_auc(features, labels, owner, cluster_client, "median", attacks)
    trimmed = _attacked_auc(features, labels, owner, cluster_client, "trimmed_mean", attacks)
    assert median > 0.9 and trimmed > median - 0.02, (trimmed, median)


def test_client_sampling_and_the_tree_reduction(rows):
    features, labels, owner = rows
    sampled = train(features, labels, clients=owner,
                    schedule=RoundOptions(rounds=6, client_fraction=0.3, split_every=2, seed=4))
    participants = sampled.history["participants"]
    assert participants.max() < 10 and participants.mean() == pytest.approx(3, abs=2)
    # the tree's fan-in changes only the order of additions
    wide = train(features, labels, clients=owner, schedule=RoundOptions(rounds=3, split_every=16, seed=5))
    narrow = train(features, labels, clients=owner, schedule=RoundOptions(rounds=3, split_every=2, seed=5))
    np.testing.assert_allclose(wide.parameters, narrow.parameters, rtol=1e-9, atol=1e-12)


def test_convergence_stops_early_and_divergence_is_caught():
    rule = Convergence(tol=0.1, patience=2)
    states = [rule.update(norm)[0] for norm in (1.0, 0.5, 0.05, 0.04)]
    assert states == ["running", "running", "running", "converged"]
    spiky = Convergence(min_history=3)
    assert [spiky.update(n)[0] for n in (1.0, 1.1, 0.9, 1.0)] == ["running"] * 4
    assert spiky.update(50.0)[0] == "diverged"
    assert Convergence().update(float("nan"))[0] == "diverged"


def test_training_stops_when_converged(rows):
    features, labels, owner = rows
    result = train(features, labels, clients=owner,
                   schedule=RoundOptions(rounds=200, convergence=Convergence(tol=0.5, patience=2)),
                   local=LocalTraining(lr=0.01))
    assert result.state == "converged" and len(result.history) < 200


def test_fedprox_keeps_local_models_near_the_global_one():
    rng = np.random.default_rng(6)
    features, labels = rng.normal(size=(400, 3)), (rng.random(400) < 0.3).astype(float)
    shapes = LayerShapes((3, 8, 4, 1))
    start = init_parameters(shapes, 0)
    options = dict(epochs=5, lr=0.1, batch_size=32, positive_weight=1.0, seed=0)
    free, _ = local_sgd(shapes, start, features, labels, mu=0.0, **options)
    proximal, _ = local_sgd(shapes, start, features, labels, mu=5.0, **options)
    assert np.linalg.norm(proximal - start) < 0.7 * np.linalg.norm(free - start)


def test_without_labels_clients_use_their_ensembles_pseudo_labels(rows):
    features, _, owner = rows
    rng = np.random.default_rng(7)
    outlying = np.arange(len(features)) % 100 == 0  # 1%, scattered far out in every direction
    directions = rng.normal(size=(outlying.sum(), 4))
    features = features.copy()
    features[outlying] = 7 * directions / np.linalg.norm(directions, axis=1, keepdims=True)
    result = train(features, None, clients=owner, schedule=RoundOptions(rounds=20, seed=7),
                   local=LocalTraining(epochs=2))
    assert result.config["labels"] == "pseudo"
    assert roc_auc_score(outlying, result.predict_proba(features)[:, 1]) > 0.9


def test_geohash_clients_get_morans_i_each_round():
    rng = np.random.default_rng(8)
    tiles = np.array(["9q", "9r", "9w", "9x", "9m", "9t"])[rng.integers(0, 6, 3000)]
    features = rng.normal(size=(3000, 3))
    labels = (features[:, 0] > 1.5).astype(float)
    result = train(features, labels, clients=tiles, schedule=RoundOptions(rounds=3))
    assert np.isfinite(result.history["moran_i"]).all()


def test_save_and_load_without_pickle(rows, tmp_path):
    features, labels, owner = rows
    result = train(features, labels, clients=owner, schedule=RoundOptions(rounds=3))
    result.save(tmp_path / "federated.npz")
    with np.load(tmp_path / "federated.npz", allow_pickle=False) as arrays:
        assert set(arrays.files) == {"parameters", "mean", "scale", "meta"}
    loaded = ga.federated.load(tmp_path / "federated.npz")
    np.testing.assert_array_equal(loaded.predict_proba(features), result.predict_proba(features))
    pd.testing.assert_frame_equal(loaded.history, result.history, check_dtype=False)
    assert loaded.config == result.config
    assert [w.shape for w in loaded.model["weights"]] == [(4, 32), (32, 16), (16, 1)]


def test_bad_input_is_one_sentence_errors(rows, tmp_path):
    features, labels, owner = rows
    with pytest.raises(GeoanomError, match="mode"):
        train(features, labels, clients=owner, schedule=RoundOptions(mode="sometimes"))
    with pytest.raises(GeoanomError, match="attack"):
        train(features, labels, clients=owner, simulation=Simulation(attacks={"a": "bribe"}))
    with pytest.raises(GeoanomError, match="one client per row"):
        train(features, labels, clients=owner[:-1])
    with pytest.raises(GeoanomError, match="0 or 1"):
        train(features, labels * 2, clients=owner)
    (tmp_path / "junk.npz").write_bytes(b"not a model")
    with pytest.raises(GeoanomError, match="junk.npz"):
        FederatedResult.load(tmp_path / "junk.npz")


@pytest.mark.slow  # over 8 s on 2 cores; ci/run-slow runs it
def test_private_training_accounts_epsilon_with_dp_accounting(rows):
    from geoanom.federated import GaussianDP, epsilons

    features, labels, owner = rows
    privacy = GaussianDP(noise_multiplier=1.1, clip=1.0, delta=1e-5)
    result = train(features, labels, clients=owner,
                   schedule=RoundOptions(rounds=6, client_fraction=0.5, seed=9,
                                         convergence=Convergence(divergence_sigmas=None)),
                   privacy=privacy)
    expected = epsilons(1.1, 0.5, 6, 1e-5)
    assert result.epsilon == pytest.approx(expected["rdp"], rel=1e-9)
    assert list(result.history["epsilon"]) == pytest.approx([epsilons(1.1, 0.5, r, 1e-5)["rdp"] for r in range(1, 7)])
    assert result.history["participants"].isna().all()  # who took part is not released
    assert result.config["privacy"]["clip"] == 1.0


def test_private_training_stops_before_the_budget_is_exceeded(rows):
    from geoanom.federated import GaussianDP, epsilons

    features, labels, owner = rows
    privacy = GaussianDP(noise_multiplier=1.0, clip=1.0, delta=1e-5, max_epsilon=5.0)
    result = train(features, labels, clients=owner,
                   schedule=RoundOptions(rounds=50, client_fraction=0.2,
                                         convergence=Convergence(divergence_sigmas=None, tol=0.0)),
                   privacy=privacy)
    assert result.state == "budget_spent" and result.epsilon <= 5.0
    assert epsilons(1.0, 0.2, len(result.history) + 1, 1e-5)["rdp"] > 5.0  # one more round would overspend


def test_privacy_needs_sync_fedavg(rows):
    from geoanom.federated import GaussianDP

    features, labels, owner = rows
    with pytest.raises(GeoanomError, match="differential privacy"):
        train(features, labels, clients=owner, aggregator="median", privacy=GaussianDP(1.0, 1.0))


def test_a_budget_too_small_for_one_round_is_refused(rows):
    from geoanom.federated import GaussianDP

    features, labels, owner = rows
    with pytest.raises(GeoanomError, match="one round .* already spends more than max_epsilon 0.01"):
        train(features, labels, clients=owner, schedule=RoundOptions(rounds=3),
              privacy=GaussianDP(0.5, 1.0, max_epsilon=0.01))


def test_the_audit_log_records_every_round_and_detects_edits(rows, tmp_path):
    from geoanom.federated import check_audit, verify_audit

    features, labels, owner = rows
    log = tmp_path / "audit.jsonl"
    result = train(features, labels, clients=owner, schedule=RoundOptions(rounds=3), security=Security(audit_log=log))
    lines = log.read_text().splitlines()
    events = [line.split('"event":')[1].split(",")[0].strip(' "') for line in lines]
    assert events.count("round_start") == 3 and events.count("update_accepted") == 30
    assert events[-1] == "training_end" and verify_audit(log, result.audit_head)
    assert check_audit(log).head == result.audit_head == result.config["audit_head"]
    log.write_text("\n".join(lines[:-2]) + "\n")  # the last lines cut off: only the kept head shows it
    assert check_audit(log) and not verify_audit(log, result.audit_head)
    lines[5] = lines[5].replace('"weight":', '"weight": 1e9, "was":', 1)
    log.write_text("\n".join(lines) + "\n")
    check = check_audit(log)
    assert not verify_audit(log, result.audit_head) and check.first_bad_line == 6


def test_signed_rounds_refuse_tampered_replayed_and_wrong_key_updates(cluster_client, rows, tmp_path):
    features, labels, owner = rows
    attacks = {"a": "tamper", "b": "replay", "c": "wrong_key"}
    result = train(features, labels, clients=owner, schedule=RoundOptions(rounds=4),
                   security=Security(signed=True, audit_log=tmp_path / "audit.jsonl"),
                   simulation=Simulation(attacks=attacks), client=cluster_client)
    reasons: dict[str, set] = {}
    for refusal in result.rejected:
        reasons.setdefault(refusal["client"], set()).add(refusal["reason"])
    assert reasons["a"] <= {"bad signature", "digest mismatch"} and reasons["a"]
    assert reasons["b"] == {"replayed nonce"}  # its first update was new; every later one reuses the nonce
    assert reasons["c"] == {"bad signature"}
    assert {r["round"] for r in result.rejected if r["client"] == "b"} == {2, 3, 4}
    assert set(reasons) == {"a", "b", "c"}  # honest clients are never refused
    assert (result.history["participants"] <= 8).all() and auc(result, features, labels) > 0.85
    assert '"update_refused"' in (tmp_path / "audit.jsonl").read_text()


def test_signing_attacks_need_signed_rounds(rows):
    features, labels, owner = rows
    with pytest.raises(GeoanomError, match="signed=True"):
        train(features, labels, clients=owner, simulation=Simulation(attacks={"a": "tamper"}))


def test_async_signed_rounds(rows):
    features, labels, owner = rows
    result = train(features, labels, clients=owner, schedule=RoundOptions(rounds=6, mode="async"),
                   security=Security(signed=True),
                   simulation=Simulation(attacks={"a": "wrong_key"}, client_delays={"b": 0.2}))
    assert result.rejected and {r["client"] for r in result.rejected} == {"a"}
    assert result.config["signed"] is True


def test_institutions_train_only_on_their_own_workers(rows, tmp_path):
    import json

    features, labels, owner = rows
    workers = {name: {"cls": distributed.Nanny, "options": {"nthreads": 1, "resources": {name: 1}}}
               for name in ("inst-a", "inst-b")}
    placement = {c: ("inst-a" if c < "f" else "inst-b") for c in CLIENTS}
    with distributed.SpecCluster(workers=workers, scheduler={"cls": distributed.Scheduler,
                                                             "options": {"dashboard_address": ":0"}}) as cluster, \
            distributed.Client(cluster, set_as_default=False) as client, \
            distributed.get_task_stream(client=client) as stream:
        address = {info["resources"].popitem()[0]: addr for addr, info in client.scheduler_info()["workers"].items()}
        result = train(features, labels, clients=owner, schedule=RoundOptions(rounds=3),
                       security=Security(placement=placement, audit_log=tmp_path / "audit.jsonl"), client=client)
    updates = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()
               if '"update_accepted"' in line]
    assert len(updates) == 30
    assert all(u["worker"] == address[placement[u["client"]]] for u in updates)
    # the tasks that read a client's rows found them where they ran: nothing was copied between workers
    readers = [r for r in stream.data if str(r["key"]).split("-")[0] in ("train_round", "moments", "standardise")]
    assert len(readers) >= 50
    assert not [t for r in readers for t in r.get("startstops", ()) if t["action"] == "transfer"]
    assert auc(result, features, labels) > 0.8
    with pytest.raises(GeoanomError, match="inst-c"):
        train(features, labels, clients=owner, security=Security(placement={c: "inst-c" for c in CLIENTS}))


def test_rounds_over_tls_between_workers_and_scheduler(rows):
    from distributed.security import Security as TLS

    features, labels, owner = rows
    security = TLS.temporary()  # a fresh CA and certificates, made with cryptography
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  security=security, protocol="tls") as cluster, \
            distributed.Client(cluster, security=security, set_as_default=False) as client:
        assert cluster.scheduler_address.startswith("tls://")
        assert all(address.startswith("tls://") for address in client.scheduler_info()["workers"])
        result = train(features, labels, clients=owner, schedule=RoundOptions(rounds=3), security=Security(signed=True),
                       client=client)
    assert len(result.history) == 3 and not result.rejected


def test_the_pld_accountant_gives_result_epsilon_too(rows):
    from geoanom.federated import GaussianDP, epsilons

    features, labels, owner = rows
    privacy = GaussianDP(noise_multiplier=1.5, clip=1.0, accountant="pld")
    result = train(features, labels, clients=owner,
                   schedule=RoundOptions(rounds=3, client_fraction=0.3,
                                         convergence=Convergence(divergence_sigmas=None)),
                   privacy=privacy)
    figures = epsilons(1.5, 0.3, 3, privacy.delta)
    assert result.epsilon == pytest.approx(figures["pld"], rel=1e-9)
    assert result.epsilon < figures["rdp"]  # the tighter accountant
