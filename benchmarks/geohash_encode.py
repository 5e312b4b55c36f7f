"""Benchmark geoanom.geohash.encode against pygeohash.encode in a Python loop.

Times the vectorised ``encode`` on 10 million random points at precisions
2, 5, 8 and 12 and, in the same run, pygeohash's per-point ``encode`` called
in a Python loop on 100,000 points (scaled to points per second). Each figure
is the best of 3 runs, timed with ``time.perf_counter``. Prints a table and
writes the figures to ``benchmarks/results/geohash_encode.json``.

Run from the repository root::

    python benchmarks/geohash_encode.py [--points N] [--baseline-points N]

pygeohash is a test-only dependency (``pip install -e .[test]``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pygeohash  # noqa: E402

from geoanom import geohash  # noqa: E402

PRECISIONS = (2, 5, 8, 12)
REPEATS = 3


def best_of(function: Callable[[], object], repeats: int = REPEATS) -> float:
    """Return the shortest wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--baseline-points", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks" / "results" / "geohash_encode.json"
    )
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    lat = rng.uniform(-90.0, 90.0, args.points)
    lon = rng.uniform(-180.0, 180.0, args.points)
    base_lat = lat[: args.baseline_points].tolist()
    base_lon = lon[: args.baseline_points].tolist()

    rows = []
    for precision in PRECISIONS:
        hashes = geohash.encode(lat, lon, precision)  # warm-up, and checked below
        seconds = best_of(lambda: geohash.encode(lat, lon, precision))

        def loop() -> list[str]:
            encode = pygeohash.encode
            return [encode(a, o, precision) for a, o in zip(base_lat, base_lon)]

        reference = loop()
        if hashes[: args.baseline_points].tolist() != reference:
            raise SystemExit(f"geoanom and pygeohash disagree at precision {precision}")
        base_seconds = best_of(loop)
        rate = args.points / seconds
        base_rate = args.baseline_points / base_seconds
        rows.append(
            {
                "precision": precision,
                "geoanom_points": args.points,
                "geoanom_seconds": seconds,
                "geoanom_points_per_second": rate,
                "pygeohash_loop_points": args.baseline_points,
                "pygeohash_loop_seconds": base_seconds,
                "pygeohash_loop_points_per_second": base_rate,
                "speedup": rate / base_rate,
            }
        )

    print(f"geohash encode, best of {REPEATS}; geoanom on {args.points:,} points, "
          f"pygeohash loop on {args.baseline_points:,} points")
    print(f"{'precision':>9}  {'geoanom pts/s':>15}  {'pygeohash pts/s':>15}  {'ratio':>7}")
    for row in rows:
        print(
            f"{row['precision']:>9}  {row['geoanom_points_per_second']:>15,.0f}  "
            f"{row['pygeohash_loop_points_per_second']:>15,.0f}  {row['speedup']:>6.1f}x"
        )

    result = {
        "benchmark": "geohash_encode",
        "repeats": REPEATS,
        "timer": "time.perf_counter, best of repeats",
        "seed": args.seed,
        "numpy": np.__version__,
        "pygeohash": importlib.metadata.version("pygeohash"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
