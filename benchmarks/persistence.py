"""Clean held-back days flagged when daily anomalies persist: the climatology's persistence correction at work.

For each lag-1 correlation and training length, a daily cube of AR(1)
weather (``geoanom.testing.persistent_daily_cube``, 12 x 16 cells) is fitted
on its first years and scored on the next ones, which hold no events. With
``contamination=0.01`` the ensemble should flag about 1% of them; the share
of held-back anomalies beyond 2.576 spreads should be about 1% too. Run it
on an older tree (``PYTHONPATH=<old checkout> python benchmarks/persistence.py``)
for the figures before a change.

Usage::

    python benchmarks/persistence.py [--out benchmarks/results/persistence.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np

import geoanom as ga
from geoanom.testing import persistent_daily_cube

CASES = [  # (lag-1 correlation, training years, held-back years, seed)
    (0.0, 3, 2, 0),
    (0.7, 3, 2, 0),
    (0.9, 3, 3, 0),
    (0.95, 2, 4, 0),
    (0.95, 3, 4, 0),
    (0.95, 3, 4, 1),
    (0.95, 6, 2, 0),
    (0.98, 3, 2, 0),
]


def run_case(rho: float, years: int, held: int, seed: int) -> dict:
    """Fit on ``years``, score ``held`` clean years; the shares flagged and beyond 2.576 spreads."""
    cube = persistent_daily_cube(rho, years + held, n_lat=12, n_lon=16, seed=seed)
    train, test = cube.isel(time=slice(0, 365 * years)), cube.isel(time=slice(365 * years, None))
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ga.fit(train)
    result = model.score(test).compute()
    anomaly = model.anomalies(test).values
    scored = result["fused_irregularity"].notnull()
    return {"rho": rho, "train_years": years, "held_back_years": held, "seed": seed,
            "ensemble_flagged": float(result["ensemble"].where(scored).mean()),
            "families_flagged": {str(d): float(result["anomalous"].sel(detector=d).where(scored).mean())
                                 for d in model.detectors},
            "beyond_2576": float(np.mean(np.abs(anomaly[np.isfinite(anomaly)]) > 2.576)),
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "persistence.json"))
    args = parser.parse_args()
    rows = []
    print(f"{'rho':>5} {'train':>5} {'held':>4} {'seed':>4} {'flagged':>8} {'|z|>2.576':>9}")
    for case in CASES:
        row = run_case(*case)
        rows.append(row)
        print(f"{row['rho']:5.2f} {row['train_years']:5d} {row['held_back_years']:4d} {row['seed']:4d} "
              f"{100 * row['ensemble_flagged']:7.2f}% {100 * row['beyond_2576']:8.2f}%")
    Path(args.out).write_text(json.dumps({"contamination": 0.01, "cases": rows}, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
