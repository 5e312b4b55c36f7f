"""Do region features help the ensemble tell coherent events from noise?

On :func:`geoanom.testing.blob_cube` (monthly, 32 x 48 cells: warm blobs
lasting two to four months are the events; single-cell jumps of 5 K are
noise, not events), fits on the clean first half and scores the second,
with each observation's feature vector holding

* ``values``: the value and its standardised anomaly (the baseline);
* ``values + regions``: those and the region features of its neighbourhood;
* ``values + tuned regions``: the same, with sigma, median size and
  threshold chosen by :func:`geoanom.features.tune_region_params` on the
  *training* half without labels (temporal agreement), as a client would.

Prints the ROC AUC of every detector family and of the fused score, and the
ensemble's recall and false alarms, averaged over seeds.

    python benchmarks/region_detection.py [--seeds 5]   # also benchmarks/results/region_detection.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score

import geoanom as ga
from geoanom.testing import blob_cube

RESULTS = Path(__file__).parent / "results" / "region_detection.json"


def evaluate(seed: int) -> dict[str, dict[str, float]]:
    cube, events = blob_cube(seed=seed)
    half = cube.sizes["time"] // 2
    train, test = cube.isel(time=slice(None, half)), cube.isel(time=slice(half, None))
    truth = events.isel(time=slice(half, None)).values.ravel()
    tuned = ga.features.tune_region_params(train["tas"], n_trials=20, seed=seed).params
    setups = {
        "values": dict(features=["values"]),
        "values + regions": dict(features=["values", "regions"]),
        "values + tuned regions": dict(features=["values", "regions"], regions=tuned),
    }
    rows = {}
    for name, options in setups.items():
        started = time.perf_counter()
        result = ga.fit(train, precision=2, seed=seed, **options).score(test).compute()
        row = {str(d): roc_auc_score(truth, result["irregularity"].sel(detector=d).values.ravel())
               for d in result["detector"].values}
        row["fused"] = roc_auc_score(truth, result["fused_irregularity"].values.ravel())
        flags = result["ensemble"].values.ravel()
        row["recall"] = float(flags[truth].mean())
        row["false_alarms"] = float(flags[~truth].mean())
        row["seconds"] = time.perf_counter() - started
        rows[name] = row
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    runs = [evaluate(seed) for seed in range(args.seeds)]
    columns = list(runs[0]["values"])
    print(f"blob_cube, {args.seeds} seeds; mean (std) over seeds")
    print(f"{'features':24s}" + "".join(f"{c:>16s}" for c in columns))
    summary = {}
    for name in runs[0]:
        values = np.array([[run[name][c] for c in columns] for run in runs])
        summary[name] = {c: {"mean": float(m), "std": float(s)}
                         for c, m, s in zip(columns, values.mean(0), values.std(0))}
        print(f"{name:24s}" + "".join(f"{m:9.4f} ({s:.3f})" for m, s in zip(values.mean(0), values.std(0))))
    gain = summary["values + regions"]["fused"]["mean"] - summary["values"]["fused"]["mean"]
    print(f"fused ROC AUC gain from region features: {gain:+.4f}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"seeds": args.seeds, "summary": summary, "fused_auc_gain": gain}, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
