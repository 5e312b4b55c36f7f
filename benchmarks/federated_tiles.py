"""What tile models informed by all tiles gain over each tile's own model, by length of record.

``geoanom.fit(..., federated=True)`` adapts every tile's gmm and kmeans
towards its region's federated model (``geoanom.model.personalise``). On
``geoanom.testing.synthetic_cube`` (24 x 36 cells, 8 years, 1% of the second
half shifted by 6 K), the model is trained on the last ``months`` before the
second half, with precision-3 tiles of 1 to 4 cells, so a tile has from
about ``months`` to 4 x ``months`` training observations; it scores the whole
second half. Baseline in the same run: the same fit without federation.
Printed per record length, as mean and standard deviation over seeds: the
fused ROC AUC and, per family, the false-alarm rate on normal observations
(the thresholds aim at 1%) and the recall of the shifts. Also the cost: the
seconds to fit the embedded SST (1,465 tiles) alone and federated.

    python benchmarks/federated_tiles.py      # also benchmarks/results/federated_tiles.json (about 3 minutes)
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import geoanom as ga
from geoanom.testing import synthetic_cube

RESULTS = Path(__file__).parent / "results" / "federated_tiles.json"
OPTIONS = dict(precision=3, detectors=["gmm", "kmeans"], min_observations=20)
FAMILIES = ("gmm", "kmeans")


def run(months: int, seed: int, relevance: float) -> dict[str, dict[str, float]]:
    cube, labels = synthetic_cube(n_years=8, n_lat=24, n_lon=36, seed=seed)
    half = cube.sizes["time"] // 2
    training, test = cube.isel(time=slice(half - months, half)), cube.isel(time=slice(half, None))
    truth = labels.isel(time=slice(half, None)).values
    out = {}
    for name, extra in (("local", {}), ("federated", {"federated": True, "federated_relevance": relevance})):
        scores = ga.fit(training, seed=seed, **OPTIONS, **extra).score(test).compute()
        flags = {family: scores["anomalous"].sel(detector=family).values for family in FAMILIES}
        out[name] = {"roc_auc": float(roc_auc_score(truth.ravel(), scores["fused_irregularity"].values.ravel())),
                     **{f"{family}_false_alarms": float(flags[family][~truth].mean()) for family in FAMILIES},
                     **{f"{family}_recall": float(flags[family][truth].mean()) for family in FAMILIES}}
    return out


def cost(repeat: int = 2) -> dict[str, float]:
    """Seconds to fit the embedded SST (precision 3, gmm + kmeans) alone and federated: best of ``repeat``."""
    cube = ga.sample_cube("sst").load()
    out = {}
    for name, extra in (("local", {}), ("federated", {"federated": True})):
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            model = ga.fit(cube, precision=3, detectors=list(FAMILIES), **extra)
            times.append(time.perf_counter() - started)
        out[f"{name}_seconds"], out["tiles"] = min(times), len(model.ensembles)
    out["ratio"] = out["federated_seconds"] / out["local_seconds"]
    return out


def summarise(runs: list[dict]) -> dict[str, dict[str, list[float]]]:
    return {name: {key: [float(np.mean([r[name][key] for r in runs])), float(np.std([r[name][key] for r in runs]))]
                   for key in runs[0][name]} for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--relevance", type=float, default=16.0)
    args = parser.parse_args()
    started, results = time.perf_counter(), {}
    keys = ["roc_auc"] + [f"{f}_{k}" for f in FAMILIES for k in ("false_alarms", "recall")]
    print(f"mean (sd) over {args.seeds} seeds; relevance {args.relevance}")
    print(f"{'months':>7s} {'model':10s}" + "".join(f" {key:>18s}" for key in keys))
    for months in (24, 36, 48):
        summary = summarise([run(months, seed, args.relevance) for seed in range(args.seeds)])
        results[str(months)] = summary
        for name, row in summary.items():
            print(f"{months:7d} {name:10s}" + "".join(f" {row[k][0]:11.4f} ({row[k][1]:.3f})" for k in keys),
                  flush=True)
    fit_cost = cost()
    print(f"\nfit of the embedded SST, {fit_cost['tiles']} tiles of precision 3 (best of 2): alone "
          f"{fit_cost['local_seconds']:.1f} s, federated {fit_cost['federated_seconds']:.1f} s "
          f"({fit_cost['ratio']:.1f}x: pyramid, 5 EM / Lloyd rounds, thresholds, tile adaptation)")
    RESULTS.write_text(json.dumps({"config": vars(args), "seconds": time.perf_counter() - started,
                                   "results": results, "fit_cost": fit_cost}, indent=1))
    print(f"total {time.perf_counter() - started:.0f} s; wrote {RESULTS}")


if __name__ == "__main__":
    main()
