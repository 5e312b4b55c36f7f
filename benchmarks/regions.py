"""Time per field of geoanom.features.region_features against a plain scipy loop.

Builds a synthetic cube of ``--steps`` 1000 x 1000 float64 fields (smooth
spatial noise, a few warm blobs per step, a NaN "land" disc; lat -60..60,
lon -170..170, annual steps, ``wrap=False``) and, in the same run, times:

* ``scipy``: the baseline a scientist would write, in memory: standardise
  each cell over the record (NaN, then filled with 0), then per time step
  ``ndimage.gaussian_filter``, ``median_filter``, ``|z| > threshold``,
  ``binary_opening``, ``binary_closing``, ``label`` and ``ndimage.sum`` of
  the cell areas per region;
* ``geoanom``: ``region_features(cube, wrap=False)`` (same sigma, median
  size, threshold, connectivity and cleaning) on the in-memory cube (which
  geoanom makes one dask chunk of all steps, so one core works), and on
  the cube chunked into 1, 4, 16 and 64 spatial chunks per field (one time
  step per chunk) on dask's threaded scheduler;
* workers: 16 chunks per field on a ``distributed.LocalCluster`` of 1, 2,
  ... single-threaded worker processes (``geoanom.cluster.make_client``),
  the input persisted on the workers first.

Steps are annual because the climatology is per cell and per month for
monthly data: with fewer than two years every month has one sample, no
spread, and the anomaly is NaN everywhere. With n steps no |z| exceeds
(n - 1) / sqrt(n), so at least 5 steps are needed to reach 1.5. Each configuration is warmed up
once (all steps, the top-left quarter of each field), then timed as the best of ``--repeat`` runs of the
whole cube (``time.perf_counter``), divided by the number of steps. Ratios
to the baseline of the same run matter more than absolute times on shared
machines. Peak memory is the resident high-water mark (``VmHWM``) of this
process (a running maximum over the configurations) and of each worker.

Run from the repository root::

    python benchmarks/regions.py [--steps 8] [--size 1000] [--repeat 2] [--workers 1 2]
    python benchmarks/regions.py --quick   # smoke run: 6 steps of 300 x 300

Writes ``benchmarks/results/regions.json`` (``regions_quick.json`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from scipy import ndimage

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import dask  # noqa: E402

from geoanom.cluster import make_client  # noqa: E402
from geoanom.features import region_features  # noqa: E402
from geoanom.grid import cell_areas  # noqa: E402

PARAMS = dict(sigma=1.0, median_size=3, threshold=1.5, structure=1, cleaning=1)


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM (ru_maxrss survives exec, so workers would inherit ours)."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0]) / 1024.0
    except (OSError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def git_state() -> dict:
    """The commit and the files modified in the working tree (geoanom is edited concurrently)."""
    run = lambda *cmd: subprocess.run(["git", *cmd], cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: E731
    return {"git_commit": run("rev-parse", "HEAD"), "git_modified": run("status", "--porcelain").splitlines()}


def make_cube(steps: int, size: int, seed: int = 0) -> xr.DataArray:
    """Smooth noise + warm blobs + a NaN disc, (time, lat, lon) float64."""
    rng = np.random.default_rng(seed)
    smooth = ndimage.gaussian_filter(rng.standard_normal((steps, size, size)), (0, size / 125, size / 125))
    values = 15.0 + smooth / smooth.std() + 0.3 * rng.standard_normal((steps, size, size))
    y, x = np.mgrid[0:size, 0:size] / size
    for t in range(steps):
        for cy, cx, r in rng.uniform([0, 0, 0.02], [1, 1, 0.08], size=(4, 3)):
            values[t] += 3.0 * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r**2))
    values[:, ((y - 0.5) ** 2 + (x - 0.3) ** 2) < 0.15**2] = np.nan  # land
    lat = np.linspace(-60, 60, size + 1)[:-1] + 60 / size
    lon = np.linspace(-170, 170, size + 1)[:-1] + 170 / size
    time_index = pd.date_range("2000-01-01", periods=steps, freq="YS")
    return xr.DataArray(values, dims=("time", "lat", "lon"), name="sst",
                        coords={"time": time_index, "lat": lat, "lon": lon})


def scipy_regions(cube: xr.DataArray) -> list[int]:
    """The in-memory baseline; returns the number of regions per step."""
    values, areas = cube.values, cell_areas(cube)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # land cells are all NaN
        z = (values - np.nanmean(values, axis=0)) / np.nanstd(values, axis=0, ddof=1)
    z = np.nan_to_num(z, nan=0.0)
    element = ndimage.generate_binary_structure(2, PARAMS["structure"])
    counts = []
    for field in z:
        smooth = ndimage.median_filter(ndimage.gaussian_filter(field, PARAMS["sigma"]), PARAMS["median_size"])
        mask = np.abs(smooth) > PARAMS["threshold"]
        mask = ndimage.binary_closing(ndimage.binary_opening(mask, element), element)
        labels, n = ndimage.label(mask, element)
        ndimage.sum(areas, labels, index=np.arange(1, n + 1))  # area of each region, km^2
        counts.append(int(n))
    return counts


def geoanom_regions(cube: xr.DataArray, client=None) -> list[int]:
    table = region_features(cube, wrap=False, client=client, **PARAMS)
    return table["n_regions"].tolist()


def best_of(function, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--size", type=int, default=1000, help="cells per side of each field")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 steps of 300 x 300, one repeat")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.size, args.repeat = 6, 300, 1
    out = args.out or ROOT / "benchmarks" / "results" / ("regions_quick.json" if args.quick else "regions.json")

    cube = make_cube(args.steps, args.size)
    warm = lambda data: data.isel(lat=slice(0, args.size // 2), lon=slice(0, args.size // 2))  # noqa: E731
    per_field = lambda seconds: seconds / args.steps  # noqa: E731
    rows: list[dict] = []

    def record(name: str, seconds: float, counts: list[int], chunks: int | None = None, workers: int | None = None,
               **extra) -> None:
        rows.append({"config": name, "chunks_per_field": chunks, "workers": workers,
                     "seconds_per_field": per_field(seconds), "n_regions": counts,
                     "peak_rss_mb": peak_rss_mb(), **extra})

    scipy_regions(warm(cube))
    seconds, counts = best_of(lambda: scipy_regions(cube), args.repeat)
    record("scipy (in memory)", seconds, counts)
    baseline = rows[0]["seconds_per_field"]

    with dask.config.set(scheduler="threads"):
        geoanom_regions(warm(cube))
        seconds, counts = best_of(lambda: geoanom_regions(cube), args.repeat)
        record("geoanom (in memory)", seconds, counts, 1)
        reference = counts
        for split in (1, 2, 4, 8):
            side = math.ceil(args.size / split)
            chunked = cube.chunk({"time": 1, "lat": side, "lon": side})
            geoanom_regions(warm(chunked))
            seconds, counts = best_of(lambda: geoanom_regions(chunked), args.repeat)
            record(f"geoanom threads {side}x{side}", seconds, counts, split * split)

    side = math.ceil(args.size / 4)
    for n_workers in args.workers:
        client = make_client(workers=n_workers)
        cluster = client.cluster
        try:
            chunked = client.persist(cube.chunk({"time": 1, "lat": side, "lon": side}))
            geoanom_regions(warm(chunked), client)
            seconds, counts = best_of(lambda: geoanom_regions(chunked, client), args.repeat)
            worker_rss = client.run(peak_rss_mb)
            record(f"geoanom {n_workers} worker{'s' * (n_workers > 1)} {side}x{side}", seconds, counts, 16,
                   n_workers, worker_peak_rss_mb=sorted(worker_rss.values()))
        finally:
            client.close()
            cluster.close()

    one_worker = next((r["seconds_per_field"] for r in rows if r["workers"] == 1), None)
    for row in rows:
        row["ratio_to_scipy"] = row["seconds_per_field"] / baseline
        row["same_regions_as_in_memory"] = row["n_regions"] == reference if row["chunks_per_field"] else None
        if row["workers"] and one_worker:
            row["speedup_vs_1_worker"] = one_worker / row["seconds_per_field"]

    print(f"region features, {args.steps} steps of {args.size} x {args.size} float64, best of {args.repeat}; "
          f"{os.cpu_count()} cores")
    print(f"{'configuration':<30} {'chunks':>6} {'s/field':>9} {'x scipy':>8} {'vs 1 wkr':>8} {'peak MB':>8}  regions")
    for row in rows:
        speedup = f"{row['speedup_vs_1_worker']:.2f}x" if "speedup_vs_1_worker" in row else ""
        same = {True: "", False: "  (differs from in-memory)", None: ""}[row["same_regions_as_in_memory"]]
        print(f"{row['config']:<30} {row['chunks_per_field'] or '':>6} {row['seconds_per_field']:>9.3f} "
              f"{row['ratio_to_scipy']:>7.2f}x {speedup:>8} {row['peak_rss_mb']:>8.0f}  "
              f"{sum(row['n_regions'])}{same}")
    for row in rows:
        if "worker_peak_rss_mb" in row:
            print(f"  {row['config']}: worker peak RSS MB {', '.join(f'{m:.0f}' for m in row['worker_peak_rss_mb'])}")

    versions = {name: importlib.metadata.version(name) for name in ("numpy", "scipy", "dask", "distributed", "xarray")}
    result = {
        "benchmark": "regions", "steps": args.steps, "size": args.size, "repeat": args.repeat,
        "timer": "time.perf_counter, best of repeats, divided by steps", "params": PARAMS,
        "python": platform.python_version(), "machine": platform.machine(), "cpu_count": os.cpu_count(),
        **versions, **git_state(), "results": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
