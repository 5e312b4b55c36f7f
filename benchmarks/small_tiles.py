"""Thresholds on short records and small tiles: what the pooled spreads and out-of-fold thresholds buy and cost.

In the same run, each against the same code with the step switched off:

- ``tails``: the climatology's standardised anomalies of held-back data
  against the training (leave-one-out) ones, with and without the spread
  pooling (:mod:`geoanom.features.spread_pooling`): standard deviation
  and share beyond 2.576 (1% is due). White noise (16 x 24 cells, 12
  months of training, then 24) and the SST sample (24 months);
- ``flags``: the default ensemble's majority flag on held-back normal
  data after 12 months of training, on the 8 x 8 and 16 x 24 grids of
  ``tests/test_false_alarms.py``: no out-of-fold thresholds, three folds,
  five folds, and three folds without the pooling;
- ``cost``: ``ga.fit`` with and without the out-of-fold thresholds (best
  of ``--repeat``, in one process): SST 24 months at its own precision and
  at precision 3 (nearly every tile small), North America 100 years.

    python benchmarks/small_tiles.py [--repeat 2]   # benchmarks/results/small_tiles.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
import warnings
from pathlib import Path

import numpy as np

import geoanom as ga
from geoanom.detectors import crossfit
from geoanom.features import climatology
from geoanom.features.pipeline import stack_variables
from geoanom.testing import synthetic_cube

RESULTS = Path(__file__).parent / "results" / "small_tiles.json"


@contextlib.contextmanager
def switched(*, pooling: bool = True, below: int | None = None, n_folds: int | None = None):
    """The pooling and the out-of-fold rule as given, restored afterwards."""
    saved = climatology.pool_spread, crossfit.CROSSFIT_BELOW, crossfit.N_FOLDS
    if not pooling:
        climatology.pool_spread = lambda spread, worth: (spread, worth)
    crossfit.CROSSFIT_BELOW = saved[1] if below is None else below
    crossfit.N_FOLDS = saved[2] if n_folds is None else n_folds
    try:
        yield
    finally:
        climatology.pool_spread, crossfit.CROSSFIT_BELOW, crossfit.N_FOLDS = saved


def tails(values, steps: int) -> dict:
    clim = climatology.Climatology.fit(values.isel(time=slice(0, steps)))
    train = clim.standardise(values.isel(time=slice(0, steps)), True).values
    held = clim.standardise(values.isel(time=slice(steps, None))).values
    return {"train_sd": float(np.nanstd(train)), "held_sd": float(np.nanstd(held)),
            "train_beyond_2.576": float(np.nanmean(np.abs(train) > 2.576)),
            "held_beyond_2.576": float(np.nanmean(np.abs(held) > 2.576))}


def flagged(n_lat: int, n_lon: int) -> float:
    cube, _ = synthetic_cube(n_years=3, n_lat=n_lat, n_lon=n_lon, anomaly_rate=0.0, seed=12, frequency="month")
    result = ga.fit(cube.isel(time=slice(0, 12))).score(cube.isel(time=slice(12, None))).compute()
    return float(result["ensemble"].where(result["fused_irregularity"].notnull()).mean())


def fit_seconds(cube, repeat: int, **kwargs) -> float:
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        ga.fit(cube, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    noise, _ = synthetic_cube(n_years=3, n_lat=16, n_lon=24, anomaly_rate=0.0, seed=12, frequency="month")
    sst = ga.sample_cube("sst")
    report: dict = {"tails": {}, "flags": {}, "cost": {}}
    for name, values, steps in (("white noise 16x24, 12 months", stack_variables(noise), 12),
                                ("sst, 24 months", stack_variables(sst), 24)):
        for pooling in (False, True):
            with switched(pooling=pooling):
                report["tails"][f"{name}, {'pooled' if pooling else 'not pooled'}"] = tails(values, steps)
    for grid in ((8, 8), (16, 24)):
        for label, switches in (("no out-of-fold", {"below": 0}), ("3 folds", {"n_folds": 3}),
                                ("5 folds", {"n_folds": 5}), ("3 folds, not pooled", {"pooling": False})):
            with switched(**switches):
                report["flags"][f"{grid[0]}x{grid[1]}, {label}"] = flagged(*grid)
    north_america = ga.sample_cube("north_america")
    for name, cube, kwargs in (("sst 24 months", sst.isel(time=slice(0, 24)), {}),
                               ("sst 24 months, precision 3", sst.isel(time=slice(0, 24)), {"precision": 3}),
                               ("north america 100 years", north_america.isel(time=slice(0, 100)), {})):
        with switched(below=0):
            without = fit_seconds(cube, args.repeat, **kwargs)
        with switched():
            with_folds = fit_seconds(cube, args.repeat, **kwargs)
        report["cost"][name] = {"without_s": without, "with_s": with_folds, "ratio": with_folds / without}
    for section, rows in report.items():
        print(section)
        for name, row in rows.items():
            text = ", ".join(f"{k} {v:.4f}" for k, v in row.items()) if isinstance(row, dict) else f"{100 * row:.2f}%"
            print(f"  {name:40s} {text}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
