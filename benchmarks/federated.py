"""Federated region-feature detection of events injected into real SST, against centralised and raw baselines.

Into the OSTIA sea-surface temperature sample (``geoanom.sample_cube("sst")``:
54 months x 18 x 432 cells, land NaN) are injected ``--events`` warm Gaussian
blobs (peak 2.5 times the cell's anomaly spread, radius 3-4 cells, lasting
2-4 months; label 1 where a blob adds over a quarter of its peak) and
single-cell spikes of +-5 spreads at 1% of ocean observations (noise, label 0).
Each ocean observation is a row; rows are split 70/15/15 into train,
validation and test (stratified, seeded); the 10 "institutions" are 10
contiguous longitude bands. Region features are z (standardised anomaly), its
smoothed value and log10(1 + km^2 of the containing region, threshold 1.0).
Measured on the test rows, at the threshold maximising F1 on validation:

1. precision, recall, F1, ROC AUC of (a) a FedAvg MLP over the 10 bands on
   region features; (b) a centralised unsupervised k-NN detector (distance
   to the 10th training neighbour) on [value] and on [value, z]; (c) the FedAvg
   MLP on [value, z]; (d) the same MLP trained centrally on region features;
   and (a) from 5 initial networks, each also scored untrained: the floor
   that training starts from depends on the random initialisation;
2. AUC and median seconds per round for 2, 10, 100, 1000 clients (a random
   equal partition of the training rows) next to the depth of the FedAvg tree
   reduction; also a round without local training, and the reduction alone
   as a tree (fan-in 8) against one flat task;
3. AUC of FedAvg, median, trimmed mean, Krum, Multi-Krum over the bands, clean
   and with 2 Byzantine bands (sign flip, scale, noise);
4. ShapleyFusion of the bands' local models (each trained on its rows alone)
   against their plain mean.

All training shares one ``geoanom.cluster.make_client(workers=2)`` cluster.

    python benchmarks/federated.py [--rounds 30] [--seed 0]   # also benchmarks/results/federated.json
    python benchmarks/federated.py --quick                     # smoke run: federated_quick.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from pathlib import Path

import dask
import numpy as np
from scipy import ndimage
from sklearn.metrics import f1_score, precision_recall_curve, precision_score, recall_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.neighbors import NearestNeighbors

import geoanom as ga
from geoanom.cluster import make_client
from geoanom.features.regions import RegionParams, as_field, denoise, standardised_anomaly
from geoanom.federated import Convergence, LocalTraining, RoundOptions, Simulation
from geoanom.federated.aggregators import combine_partials, finish_partial
from geoanom.grid import cell_areas
from geoanom.reduction import tree_reduce_futures  # the engine's own tree reduction, timed alone

RESULTS = Path(__file__).parent / "results"
VARIABLE = "surface_temperature"
INSTITUTIONS = 10
REGIONS = RegionParams(sigma=1.0, median_size=3, threshold=1.0)
REGION, RAW = ["z", "smoothed", "log_area"], ["value", "z"]
AGGREGATORS = ("fedavg", "median", "trimmed_mean(0.2)", "krum(2)", "multi_krum(2)")


def inject(values: np.ndarray, months: np.ndarray, n_events: int, rng: np.random.Generator):
    """The field with blobs and spikes added (in units of each cell's anomaly spread), events, spikes."""
    departures = np.empty_like(values)
    with warnings.catch_warnings(action="ignore", category=RuntimeWarning):  # land cells are all NaN
        for month in np.unique(months):
            departures[months == month] = values[months == month] - np.nanmean(values[months == month], axis=0)
        spread = np.nanstd(departures, axis=0)
    ocean, (n_times, n_lat, n_lon) = np.isfinite(values), values.shape
    rows, cols = np.mgrid[0:n_lat, 0:n_lon]
    out, events = values.copy(), np.zeros(values.shape, dtype=bool)
    for _ in range(n_events):
        start = int(rng.integers(0, n_times - 4))
        centre = np.argwhere(ocean[start])[rng.integers(ocean[start].sum())]
        across = (cols - centre[1] + n_lon / 2) % n_lon - n_lon / 2  # the globe wraps in longitude
        shape = np.exp(-((rows - centre[0]) ** 2 + across**2) / (2 * rng.uniform(3.0, 4.0) ** 2))
        for step in range(start, start + int(rng.integers(2, 5))):
            out[step] += 2.5 * spread * shape
            events[step] |= shape > 0.25
    spikes = ocean & (rng.random(values.shape) < 0.01)
    out[spikes] += 5.0 * spread[np.nonzero(spikes)[1:]] * rng.choice([-1.0, 1.0], size=int(spikes.sum()))
    return out, events & ocean, spikes


def region_features(cube) -> dict[str, np.ndarray]:
    """z, smoothed z and log10(1 + km^2 of the containing region, 0 outside) of every observation."""
    field = as_field(cube, VARIABLE)
    z = standardised_anomaly(field)
    smoothed = denoise(z.data, REGIONS, wrap=True)
    labels = ga.region_labels(field, **REGIONS.to_dict(), wrap=True)
    z, smoothed, labels = dask.compute(z.data, smoothed, labels.data)
    areas, log_area = cell_areas(field), np.zeros(labels.shape)
    for step, plane in enumerate(labels):
        if plane.max():
            region_area = ndimage.sum(areas, plane, index=np.arange(1, plane.max() + 1))
            log_area[step][plane > 0] = np.log10(1.0 + region_area[plane[plane > 0] - 1])
    return {"z": z, "smoothed": smoothed, "log_area": log_area}


def make_rows(n_events: int, seed: int) -> dict[str, np.ndarray]:
    """Every ocean observation as a row: features, label, band and split (0 train, 1 validation, 2 test)."""
    cube = ga.sample_cube("sst").load()
    values, events, spikes = inject(cube[VARIABLE].values.astype(np.float64), cube["time"].dt.month.values,
                                    n_events, np.random.default_rng(seed))
    cube[VARIABLE].values = values
    features = region_features(cube)
    keep = np.isfinite(values) & np.isfinite(features["z"]) & np.isfinite(features["smoothed"])
    rows = {"value": values[keep], **{name: array[keep] for name, array in features.items()},
            "y": events[keep].astype(int), "spike": spikes[keep],
            "band": np.nonzero(keep)[2] * INSTITUTIONS // values.shape[2],
            "cell": np.nonzero(keep)[1] * values.shape[2] + np.nonzero(keep)[2]}
    index = np.arange(keep.sum())
    train, rest = train_test_split(index, test_size=0.3, stratify=rows["y"], random_state=seed)
    validation, _ = train_test_split(rest, test_size=0.5, stratify=rows["y"][rest], random_state=seed)
    rows["split"] = np.full(index.size, 2)
    rows["split"][train], rows["split"][validation] = 0, 1
    return rows


def figures(y_val, s_val, y_test, s_test) -> dict[str, float]:
    """Precision, recall, F1 on test at the validation F1-best threshold; test ROC AUC."""
    precision, recall, thresholds = precision_recall_curve(y_val, s_val)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    flags = s_test >= thresholds[int(np.argmax(f1[:-1]))]
    return {"precision": float(precision_score(y_test, flags, zero_division=0)),
            "recall": float(recall_score(y_test, flags)), "f1": float(f1_score(y_test, flags)),
            "roc_auc": float(roc_auc_score(y_test, s_test))}


class Bench:
    """The rows, the cluster and the training settings shared by all experiments."""

    def __init__(self, rows, dask_client, args):
        self.rows, self.dask_client, self.args = rows, dask_client, args
        self.y = [rows["y"][rows["split"] == split] for split in (0, 1, 2)]
        self.bands = rows["band"][rows["split"] == 0]

    def columns(self, names, split) -> np.ndarray:
        return np.column_stack([self.rows[name][self.rows["split"] == split] for name in names])

    def train(self, names, clients, *, rows=slice(None), aggregator="fedavg", privacy=None, attacks=None,
              local_epochs=None, lr=None, **schedule):
        """A federated MLP on the training rows (or those selected by ``rows``); ``schedule`` sets RoundOptions."""
        schedule = {"rounds": self.args.rounds, "seed": self.args.seed, **schedule}
        local = LocalTraining(epochs=self.args.local_epochs if local_epochs is None else local_epochs,
                              lr=self.args.lr if lr is None else lr)
        return ga.federated.train(self.columns(names, 0)[rows], self.y[0][rows], clients=clients[rows],
                                  aggregator=aggregator, schedule=RoundOptions(**schedule), local=local,
                                  privacy=privacy, simulation=Simulation(attacks=attacks or {}),
                                  client=self.dask_client)

    def scores(self, model, names) -> list[np.ndarray]:
        """The model's logits (monotone in predict_proba, without its ties at 1.0) on validation and test."""
        return [model.decision_function(self.columns(names, split)) for split in (1, 2)]

    def evaluate(self, model, names) -> dict:
        (s_val, s_test), history = self.scores(model, names), model.history
        return {**figures(self.y[1], s_val, self.y[2], s_test), "rounds": len(history), "state": model.state,
                "median_round_seconds": float(history["seconds"].median()),
                "seconds": float(history.attrs["seconds"])}

    def knn(self, names, k: int = 10) -> dict[str, float]:
        """Unsupervised: distance to the k-th nearest training row, features scaled by the training spread."""
        train = self.columns(names, 0)
        mean, scale = train.mean(0), train.std(0)
        neighbours = NearestNeighbors(n_neighbors=k).fit((train - mean) / scale)
        s_val, s_test = (neighbours.kneighbors((self.columns(names, split) - mean) / scale)[0][:, -1]
                         for split in (1, 2))
        return figures(self.y[1], s_val, self.y[2], s_test)


def compare(bench: Bench) -> dict[str, dict]:
    """Experiment 1: (a) federated region MLP against (b) k-NN, (c) federated raw MLP, (d) central region MLP."""
    return {"(a) FedAvg MLP, 10 bands, region features": bench.evaluate(bench.train(REGION, bench.bands), REGION),
            "(b) central k-NN (k=10), [value]": bench.knn(["value"]),
            "(b) central k-NN (k=10), [value, z]": bench.knn(RAW),
            "(c) FedAvg MLP, 10 bands, [value, z]": bench.evaluate(bench.train(RAW, bench.bands), RAW),
            "(d) central MLP, region features": bench.evaluate(bench.train(REGION, 0 * bench.bands), REGION)}


def initialisations(bench: Bench, seeds: int) -> list[dict]:
    """Experiment 1b: (a) from several initial networks, each also scored untrained (lr 0): what training adds."""
    out = []
    for seed in range(seeds):
        untrained = bench.evaluate(bench.train(REGION, bench.bands, rounds=1, lr=0.0, seed=seed), REGION)
        trained = bench.evaluate(bench.train(REGION, bench.bands, seed=seed), REGION)
        out.append({"seed": seed, "untrained_roc_auc": untrained["roc_auc"], "roc_auc": trained["roc_auc"]})
    return out


def reduction_levels(n_clients: int, split_every: int = 8) -> int:
    levels = 0
    while n_clients > 1:
        n_clients, levels = math.ceil(n_clients / split_every), levels + 1
    return levels


def reduction_seconds(dask_client, n_clients: int, size: int, split_every: int, repeat: int = 3) -> float:
    """Best time to reduce n FedAvg partial sums, already on the workers, to the root and fetch it."""
    partials = dask_client.scatter([(np.full(size, float(i)), 1.0) for i in range(n_clients)], hash=False)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        finish_partial(dask_client.gather(tree_reduce_futures(dask_client, partials, combine_partials, split_every)))
        times.append(time.perf_counter() - started)
    return min(times)


def scaling(bench: Bench, counts) -> list[dict]:
    """Experiment 2: AUC and time per round against the number of (random, equal) clients."""
    out, idle = [], Convergence(tol=0.0, divergence_sigmas=None)  # never stops early
    for n in counts:
        clients = np.random.default_rng(bench.args.seed).permutation(len(bench.y[0])) % n
        model = bench.train(REGION, clients, rounds=bench.args.rounds if n <= 100 else bench.args.rounds_1000)
        overhead = bench.train(REGION, clients, rounds=bench.args.idle_rounds, local_epochs=0, convergence=idle)
        out.append({"clients": n, "levels": reduction_levels(n), **bench.evaluate(model, REGION),
                    "setup_seconds": float(model.history.attrs["seconds"] - model.history["seconds"].sum()),
                    "idle_round_seconds": float(overhead.history["seconds"].median()),
                    **{f"reduce_{name}_seconds": reduction_seconds(bench.dask_client, n, model.parameters.size, fan_in)
                       for name, fan_in in (("tree", 8), ("flat", max(2, n)))}})
    return out


def attacks(bench: Bench, kinds, aggregators) -> dict:
    """Experiment 3: test AUC per aggregator, clean and with 2 of the 10 bands Byzantine."""
    byzantine = [int(b) for b in np.random.default_rng(bench.args.seed).choice(INSTITUTIONS, 2, replace=False)]
    runs = {aggregator: {} for aggregator in aggregators}
    for aggregator in aggregators:
        for kind in ("clean",) + tuple(kinds):
            poisoned = None if kind == "clean" else dict.fromkeys(byzantine, kind)
            row = bench.evaluate(bench.train(REGION, bench.bands, aggregator=aggregator, attacks=poisoned), REGION)
            runs[aggregator][kind] = {key: row[key] for key in ("roc_auc", "f1", "rounds", "state")}
    return {"byzantine_bands": byzantine, "runs": runs}


def shapley(bench: Bench) -> dict:
    """Experiment 4: Shapley-weighted against plain-mean fusion of the bands' local models."""
    scores = {f"band{band}": bench.scores(bench.train(REGION, 0 * bench.bands, rows=bench.bands == band), REGION)
              for band in range(INSTITUTIONS)}
    fusion = ga.federated.ShapleyFusion().fit({p: s[0] for p, s in scores.items()}, bench.y[1])
    return {**fusion.compare({p: s[1] for p, s in scores.items()}, bench.y[2]),
            "weights": {p: float(w) for p, w in fusion.weights_.items()},
            "local_auc": {p: float(roc_auc_score(bench.y[2], s[1])) for p, s in scores.items()},
            "local_positives": {f"band{b}": int(bench.y[0][bench.bands == b].sum()) for b in range(INSTITUTIONS)}}


def goals(results: dict) -> dict[str, bool]:
    auc = {name[:3]: max(r["roc_auc"] for n, r in results["compare"].items() if n[:3] == name[:3])
           for name in results["compare"]}
    out = {"(a) beats (b) and (c) in AUC": auc["(a)"] > max(auc["(b)"], auc["(c)"]),
           "(a) within 0.01 AUC of (d)": auc["(a)"] >= auc["(d)"] - 0.01}
    runs = results.get("attacks", {}).get("runs", {})
    for kind in [k for k in runs.get("fedavg", {}) if k != "clean"]:
        change = {name: row[kind]["roc_auc"] - row["clean"]["roc_auc"] for name, row in runs.items()}
        robust = [name for name in runs if name != "fedavg" and abs(change[name]) <= 0.03]
        out[f"{kind}: robust ones within 0.03 of clean ({', '.join(robust) or 'none'})"] = len(robust) == len(runs) - 1
        out[f"{kind}: FedAvg degrades by over 0.03"] = change["fedavg"] < -0.03
    return out


def print_goals(results: dict, prefix: str) -> None:
    for goal, met in goals(results).items():
        if goal.startswith(prefix):
            print(f"goal: {goal}: {'MET' if met else 'NOT MET'}")


def print_compare(results: dict) -> None:
    print(f"{'detector (test split)':46s} {'precision':>9s} {'recall':>7s} {'F1':>7s} {'ROC AUC':>8s} {'s/round':>8s}")
    for name, row in results["compare"].items():
        seconds = f"{row['median_round_seconds']:8.3f}" if "rounds" in row else f"{'-':>8s}"
        print(f"{name:46s} {row['precision']:9.3f} {row['recall']:7.3f} {row['f1']:7.3f} {row['roc_auc']:8.4f} {seconds}")
    print_goals(results, "(a)")


def print_initialisations(results: dict) -> None:
    rows = results["initialisations"]
    print("\n(a) from different initial networks: test ROC AUC untrained (lr 0) -> after training")
    for row in rows:
        print(f"  seed {row['seed']}: {row['untrained_roc_auc']:.4f} -> {row['roc_auc']:.4f}")
    untrained, trained = (np.array([row[key] for row in rows]) for key in ("untrained_roc_auc", "roc_auc"))
    print(f"  mean (sd): {untrained.mean():.4f} ({untrained.std():.4f}) -> {trained.mean():.4f} ({trained.std():.4f})")


def print_scaling(results: dict) -> None:
    print("\nclients: random equal partition of the training rows; s/round: median training round; idle: a round "
          "without local training;\nreduce: the FedAvg sum alone, as a tree of fan-in 8 (levels deep) or one flat task")
    print(f"{'clients':>8s} {'levels':>7s} {'rounds':>7s} {'ROC AUC':>8s} {'setup s':>8s} {'s/round':>8s} "
          f"{'idle s/round':>13s} {'idle/client':>12s} {'reduce tree':>12s} {'reduce flat':>12s}")
    for row in results["scaling"]:
        print(f"{row['clients']:8d} {row['levels']:7d} {row['rounds']:7d} {row['roc_auc']:8.4f} "
              f"{row['setup_seconds']:8.1f} {row['median_round_seconds']:8.3f} {row['idle_round_seconds']:13.3f} "
              f"{row['idle_round_seconds'] / row['clients']:12.5f} {row['reduce_tree_seconds']:12.4f} "
              f"{row['reduce_flat_seconds']:12.4f}")


def print_attacks(results: dict) -> None:
    runs = results["attacks"]["runs"]
    kinds = list(runs["fedavg"])
    print(f"\nByzantine bands {results['attacks']['byzantine_bands']} of 10; test ROC AUC (change from clean); "
          "* training stopped early (diverged or converged)")
    print(f"{'aggregator':20s}" + "".join(f"{kind:>20s}" for kind in kinds))
    for aggregator, row in runs.items():
        cells = [f"{row[kind]['roc_auc']:.4f}" + ("*" if row[kind]["state"] != "max_rounds" else " ")
                 + (f" ({row[kind]['roc_auc'] - row['clean']['roc_auc']:+.3f})" if kind != "clean" else "")
                 for kind in kinds]
        print(f"{aggregator:20s}" + "".join(f"{cell:>20s}" for cell in cells))
    for kind in kinds[1:]:
        print_goals(results, kind)


def print_shapley(results: dict) -> None:
    fused = results["shapley"]
    print(f"\nlocal models of the bands, fused on test: Shapley-weighted AUC {fused['shapley_auc']:.4f}, "
          f"plain mean AUC {fused['mean_auc']:.4f}")
    for player, weight in fused["weights"].items():
        print(f"  {player:7s} weight {weight:.3f}  own test AUC {fused['local_auc'][player]:.4f}  "
              f"training positives {fused['local_positives'][player]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=25)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--rounds-1000", type=int, default=10, help="rounds of the 1000-client run")
    parser.add_argument("--idle-rounds", type=int, default=3, help="rounds without local training, for timing")
    parser.add_argument("--local-epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: 5 rounds, up to 100 clients, 1 attack")
    args = parser.parse_args()
    if args.quick:
        args.rounds = 5
    started = time.perf_counter()
    rows = make_rows(args.events, args.seed)
    print(f"{rows['y'].size:,} ocean observations, {rows['y'].sum():,} in {args.events} events "
          f"({rows['y'].mean():.2%}), {rows['spike'].sum():,} spikes; features {time.perf_counter() - started:.1f} s; "
          f"{args.rounds} rounds x {args.local_epochs} local epochs, lr {args.lr}\n", flush=True)
    warnings.filterwarnings("ignore", message="Port .* is already in use")  # another dask dashboard
    dask_client = make_client(workers=2)
    bench, results = Bench(rows, dask_client, args), {}
    experiments = [("compare", lambda: compare(bench), print_compare),
                   ("initialisations", lambda: initialisations(bench, 2 if args.quick else 5), print_initialisations),
                   ("scaling", lambda: scaling(bench, (2, 10, 100) if args.quick else (2, 10, 100, 1000)),
                    print_scaling),
                   ("attacks", lambda: attacks(bench, ["sign_flip"] if args.quick else ["sign_flip", "scale", "noise"],
                                               AGGREGATORS[:2] if args.quick else AGGREGATORS), print_attacks),
                   ("shapley", lambda: shapley(bench), print_shapley)]
    try:
        for name, experiment, show in experiments:
            results[name] = experiment()
            show(results)
            print(flush=True)
    finally:
        dask_client.close()
        dask_client.cluster.close()
    seconds = time.perf_counter() - started
    print(f"total {seconds:.0f} s")
    out = RESULTS / ("federated_quick.json" if args.quick else "federated.json")
    out.write_text(json.dumps({"config": vars(args), "observations": int(rows["y"].size),
                               "event_cells": int(rows["y"].sum()), "spikes": int(rows["spike"].sum()),
                               "seconds": seconds, "goals": goals(results), **results}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
