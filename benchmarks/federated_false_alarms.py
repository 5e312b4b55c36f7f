"""False alarms of tile models informed by their region, against each tile's own model, by tile size.

On clean ``geoanom.testing.synthetic_cube`` data (no anomaly injected, so
every flag is false), ``geoanom.fit`` is trained on the first ``months`` and
scores the 48 months after, alone and with ``federated=True`` in the same
run. Tile sizes from 1-4 cells (precision 3 on 24 x 36 cells) to 5-15 cells
(precision 2 on 12 x 16 cells) times the months: from about 24 to over 1,000
training rows a tile. Printed per case, summed over seeds: the share of
normal observations flagged by the majority (``ensemble``) and by gmm and
kmeans (the families federation changes) on fitted tiles, and by the
majority on the cells of skipped tiles, which only the federated model
scores (by their region). The thresholds aim at 1%.

    python benchmarks/federated_false_alarms.py      # also benchmarks/results/federated_false_alarms.json
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import geoanom as ga
from geoanom.testing import synthetic_cube

RESULTS = Path(__file__).parent / "results" / "federated_false_alarms.json"
CASES = {  # name: (precision, n_lat, n_lon, training months, min_observations: fewer rows skip a tile)
    "p3 24x36, 24 months (24-96 rows)": (3, 24, 36, 24, 20),
    "p2 12x16, 24 months (120-360 rows)": (2, 12, 16, 24, 100),
    "p2 12x16, 48 months (240-720 rows)": (2, 12, 16, 48, 100),
    "p2 12x16, 84 months (420-1260 rows)": (2, 12, 16, 84, 100),
}
TEST_MONTHS = 48


def run(precision: int, n_lat: int, n_lon: int, months: int, least: int, seed: int) -> dict[str, list[int]]:
    """Flag and observation counts (ensemble, gmm, kmeans on fitted tiles; ensemble on skipped tiles)."""
    cube, _ = synthetic_cube(n_years=(months + TEST_MONTHS) // 12, n_lat=n_lat, n_lon=n_lon, anomaly_rate=0.0,
                             seed=seed)
    training, test = cube.isel(time=slice(0, months)), cube.isel(time=slice(months, None))
    out = {}
    fitted = None
    for name, extra in (("own", {}), ("federated", {"federated": True})):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = ga.fit(training, precision=precision, seed=seed, min_observations=least, **extra).score(test).compute()
        scored = np.isfinite(result["fused_irregularity"].values)
        if fitted is None:
            fitted = scored  # the own model scores the fitted tiles only
        skipped = scored & ~fitted
        flags = {"ensemble": result["ensemble"].values,
                 **{f: result["anomalous"].sel(detector=f).values for f in ("gmm", "kmeans")}}
        out[name] = {**{key: [int(flag[fitted].sum()), int(fitted.sum())] for key, flag in flags.items()},
                     "skipped_ensemble": [int(flags["ensemble"][skipped].sum()), int(skipped.sum())]}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    started, results = time.perf_counter(), {}
    keys = ("ensemble", "gmm", "kmeans", "skipped_ensemble")
    print(f"false alarms on clean data, summed over {args.seeds} seeds (flags / observations)")
    print(f"{'case':38s} {'model':10s}" + "".join(f" {key:>17s}" for key in keys))
    for case, parameters in CASES.items():
        runs = [run(*parameters, seed) for seed in range(args.seeds)]
        totals = {name: {key: np.sum([r[name][key] for r in runs], axis=0).tolist() for key in keys}
                  for name in runs[0]}
        results[case] = totals
        for name, row in totals.items():
            cells = "".join(f" {row[k][0] / row[k][1]:9.2%} ({row[k][1]:5d})" if row[k][1] else f" {'-':>17s}"
                            for k in keys)
            print(f"{case:38s} {name:10s}{cells}", flush=True)
    RESULTS.write_text(json.dumps({"config": vars(args), "seconds": time.perf_counter() - started,
                                   "results": results}, indent=1))
    print(f"total {time.perf_counter() - started:.0f} s; wrote {RESULTS}")


if __name__ == "__main__":
    main()
