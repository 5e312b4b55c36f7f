"""What the robust harmonic climatology costs: alone, against a plain groupby, and as a share of a fit.

For each cube, in the same run (best of ``--repeat`` runs each):

- ``groupby``: the per-cell, per-month mean and standard deviation a user
  would compute with xarray (``groupby("time.month")``), the simple thing;
- ``climatology``: :meth:`geoanom.Climatology.fit` (robust harmonic fit,
  order chosen by cross-validation, two passes over the data);
- ``fit``: the whole :func:`geoanom.fit` with the default ensemble (five families),
  of which the climatology is a part.

    python benchmarks/climatology.py [--repeat 2]   # figures also in benchmarks/results/climatology.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import geoanom as ga
from geoanom.features.pipeline import stack_variables
from geoanom.testing import synthetic_cube

RESULTS = Path(__file__).parent / "results" / "climatology.json"


def cubes() -> dict:
    """Name -> (training cube, variable)."""
    sst = ga.sample_cube("sst")
    daily, _ = synthetic_cube(n_years=3, n_lat=24, n_lon=32, anomaly_rate=0.0, frequency="day")
    america = ga.sample_cube("north_america")
    return {
        "OSTIA SST, monthly, 42 x 18 x 432": (sst.isel(time=slice(0, 42)), "surface_temperature"),
        "synthetic daily, 3 years x 24 x 32": (daily, "tas"),
        "HadCM3 A1B, annual, 100 x 37 x 49": (america.isel(time=slice(0, 100)), "air_temperature"),
    }


def best_of(repeat: int, work) -> float:
    """Shortest wall time of ``repeat`` runs of ``work()``."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def measure(cube, variable: str, repeat: int) -> dict:
    values = stack_variables(cube, [variable]).persist()
    field = cube[variable].load()
    groupby = best_of(repeat, lambda: (field.groupby("time.month").mean("time").values,
                                       field.groupby("time.month").std("time").values))
    climatology = best_of(repeat, lambda: ga.Climatology.fit(values))
    whole = best_of(repeat, lambda: ga.fit(cube, variables=[variable]))
    return {"observations": int(field.size), "groupby_s": groupby, "climatology_s": climatology, "fit_s": whole,
            "climatology_vs_groupby": climatology / groupby, "climatology_share_of_fit": climatology / whole}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    rows = {name: measure(cube, variable, args.repeat) for name, (cube, variable) in cubes().items()}
    print(f"{'cube':38s} {'obs':>9s} {'groupby s':>10s} {'clim s':>8s} {'x groupby':>10s} {'fit s':>7s} {'share':>6s}")
    for name, row in rows.items():
        print(f"{name:38s} {row['observations']:9,d} {row['groupby_s']:10.3f} {row['climatology_s']:8.3f} "
              f"{row['climatology_vs_groupby']:10.1f} {row['fit_s']:7.2f} {row['climatology_share_of_fit']:6.1%}")
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(rows, indent=1))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
