"""Accuracy of geoanom on a synthetic cube with injected anomalies.

Fits on the clean first half of :func:`geoanom.testing.synthetic_cube`
(monthly, 16 x 24 cells, 1% of the second half shifted by 6 K against 1 K
noise), scores the second half and prints, per detector family and for the
fused score: ROC AUC, the recall of the flags and their false-alarm rate.
As a baseline in the same run: a single global scikit-learn
``GaussianMixture`` on the raw values (no tiles, no climatology).

    python benchmarks/accuracy.py            # figures also in benchmarks/results/accuracy.json
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_auc_score
from sklearn.mixture import GaussianMixture

import geoanom as ga
from geoanom.testing import synthetic_cube

RESULTS = Path(__file__).parent / "results" / "accuracy.json"


def main() -> None:
    cube, labels = synthetic_cube(n_years=12)
    half = cube.sizes["time"] // 2
    train, test = cube.isel(time=slice(None, half)), cube.isel(time=slice(half, None))
    truth = labels.isel(time=slice(half, None)).values.ravel()
    started = time.perf_counter()
    model = ga.fit(train, precision=2)
    result = model.score(test).compute()
    seconds = time.perf_counter() - started
    rows = {}
    for detector in model.detectors:
        rows[detector] = _figures(truth, result["irregularity"].sel(detector=detector).values.ravel(),
                                  result["anomalous"].sel(detector=detector).values.ravel())
    rows["ensemble (fused score, majority flag)"] = _figures(
        truth, result["fused_irregularity"].values.ravel(), result["ensemble"].values.ravel())
    global_gmm = GaussianMixture(3, random_state=0).fit(train["tas"].values.reshape(-1, 1))
    baseline = -global_gmm.score_samples(test["tas"].values.reshape(-1, 1))
    rows["baseline: one global GaussianMixture on raw values"] = {"roc_auc": roc_auc_score(truth, baseline)}
    print(f"{truth.size:,} scored observations, {truth.sum()} injected anomalies; "
          f"geoanom fit + score {seconds:.1f} s")
    print(f"{'scores':55s} {'ROC AUC':>8s} {'recall':>8s} {'false alarms':>13s}")
    for name, row in rows.items():
        recall = f"{row['recall']:.3f}" if "recall" in row else "-"
        false_alarms = f"{row['false_alarm_rate']:.4f}" if "false_alarm_rate" in row else "-"
        print(f"{name:55s} {row['roc_auc']:8.4f} {recall:>8s} {false_alarms:>13s}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({"observations": int(truth.size), "anomalies": int(truth.sum()),
                                   "seconds": seconds, "rows": rows}, indent=1))
    print(f"wrote {RESULTS}")


def _figures(truth: np.ndarray, score: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    return {
        "roc_auc": float(roc_auc_score(truth, score)),
        "recall": float(flags[truth].mean()),
        "false_alarm_rate": float(flags[~truth].mean()),
    }


if __name__ == "__main__":
    main()
