"""Fit and scoring throughput of geoanom against naive per-tile scikit-learn loops.

Builds synthetic cubes (see ``throughput_cubes.py``: ``annual``, 100 x 100
cells at precision 3, and ``monthly``, 120 x 240 cells at precision 2, each
10.4 M float32 observations at ``--size full``), writes each to a real Zarr
store in a temporary directory and, in the same run, times on that store:

* ``naive``: a loop over the geohash tiles fitting scikit-learn's
  ``GaussianMixture(2)`` on each tile's raw training values and scoring all
  its observations (``throughput_naive.py``);
* ``naive-four``: the same loop with geoanom's four families in
  scikit-learn (GaussianMixture, KMeans, BayesianGaussianMixture,
  IsolationForest), timed on 24 tiles and **extrapolated** to all;
* ``geoanom-<family>-threads``: ``geoanom.open_cube``, ``geoanom.fit(train,
  detectors=<family>)``, ``model.score(cube)`` written with
  ``geoanom.io.write_dataset``, for each family alone, for the default
  ensemble (``all``: the five families) and for the four Galileo families
  (``four``, the like of ``naive-four``), on dask's threaded scheduler;
* ``geoanom-all-saved``: the default ensemble's model, saved by the ``all``
  variant, loaded with ``geoanom.load_model`` and scoring + writing the
  whole cube (the operational path);
* with ``--extras``: LocalCluster rows (``make_client(workers=2)``), BLAS
  pools of one thread, and time-chunked input.

Training is the first half of the time steps; the whole cube is scored.
Each variant runs in its own subprocess (this script with ``--variant``) so
that its peak resident memory (``VmHWM``) is its own. All times are
wall-clock ``time.perf_counter``; each variant runs ``--repeat`` times
(default 3, in alternating order) and its row is its median run, with its
peak memory the highest of the runs (the machines are shared: one run
varies by up to 30%). Ratios are to the naive GMM loop of the same cube
in the same run. The ``all`` variant also
reports model bytes per tile for each family (the arrays of ``to_dict``).

Prints a table and writes the figures, machine information and sanity
checks (every observation scored, flag rates, recall of the injected
anomalies) to ``benchmarks/results/throughput.json``.

Run from the repository root::

    python benchmarks/throughput.py                    # both cubes, full size, 3 rounds (about 35 minutes on 2 cores)
    python benchmarks/throughput.py --repeat 1         # one round (about 12 minutes)
    python benchmarks/throughput.py --cube monthly --size large --only naive geoanom-all-threads
    python benchmarks/throughput.py --size small --profile geoanom-all-threads

``--size large`` (4x longer) shows whether peak memory grows with the
cube's length. ``--profile VARIANT`` runs one variant in-process with dask's
synchronous scheduler under cProfile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput_cubes import CUBES, write_cube  # noqa: E402  (benchmarks/ is on sys.path when run)
from throughput_naive import run_naive_four, run_naive_gmm  # noqa: E402

ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
# the default ensemble, written out so that a child imports geoanom only inside its timed run (run_cube checks it)
ALL = ("gmm", "kmeans", "dpmm", "iforest", "event")
FOUR = ("gmm", "kmeans", "dpmm", "iforest")  # the Galileo families, as in naive-four
# name: detectors (a naive loop's name for the naive rows), scheduler, extra environment, open_cube chunks
VARIANTS = {
    "naive": ("naive-gmm", None, {}, None),
    "naive-four": ("naive-four", None, {}, None),
    "geoanom-gmm-threads": (("gmm",), "threads", {}, None),
    "geoanom-kmeans-threads": (("kmeans",), "threads", {}, None),
    "geoanom-dpmm-threads": (("dpmm",), "threads", {}, None),
    "geoanom-iforest-threads": (("iforest",), "threads", {}, None),
    "geoanom-all-threads": (ALL, "threads", {}, None),
    "geoanom-four-threads": (FOUR, "threads", {}, None),
    "geoanom-all-saved": (ALL, "saved", {}, None),
}
# Sensitivity rows, run with --extras: a local cluster of two processes, BLAS/OpenMP
# pools of one thread (as distributed gives its workers), the cube split into time chunks.
EXTRAS = {
    "geoanom-gmm-localcluster": (("gmm",), "localcluster", {}, None),
    "geoanom-all-localcluster": (ALL, "localcluster", {}, None),
    "naive-1blas": ("naive-gmm", None, ONE_THREAD, None),
    "geoanom-gmm-threads-1blas": (("gmm",), "threads", ONE_THREAD, None),
    "geoanom-all-threads-time64": (ALL, "threads", {}, {"time": 64}),
}
ALL_VARIANTS = {**VARIANTS, **EXTRAS}
RESULT_MARK = "@@THROUGHPUT@@ "


def maxrss_mb() -> float:
    """This process's peak resident set size in MB.

    ``VmHWM`` of ``/proc/self/status``: ``ru_maxrss`` survives ``exec``, so a
    variant's child would report the parent's peak (which holds the cube it
    wrote) when that is higher than its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --- variants (each run in its own process) -------------------------------------


def model_bytes_per_tile(model) -> dict[str, float]:
    """Mean bytes per tile of each family's arrays (what ``to_dict`` stores), and of the whole ensemble."""
    totals: dict[str, float] = {}
    for ensemble in model.ensembles.values():
        for name, detector in ensemble.detectors_.items():
            state = detector.to_dict()["state"]
            size = sum(np.asarray(value).nbytes for value in state.values() if not isinstance(value, str))
            totals[name] = totals.get(name, 0.0) + size
    n_tiles = max(len(model.ensembles), 1)
    out = {name: total / n_tiles for name, total in totals.items()}
    out["ensemble"] = sum(out.values())
    return out


def run_geoanom(store: Path, out: Path, precision: int, detectors: tuple, scheduler: str,
                chunks: dict | None = None, model_path: Path | None = None) -> dict:
    """geoanom.open_cube, fit on the first half (or load a saved model), score the whole cube, write_dataset."""
    import geoanom
    import geoanom.io

    info: dict = {}
    client = cluster = None
    if scheduler == "localcluster":
        from geoanom.cluster import make_client

        start = time.perf_counter()
        client = make_client(workers=2)  # what `geoanom detect --workers 2` starts
        cluster = client.cluster
        info["cluster_startup_seconds"] = time.perf_counter() - start
    try:
        t0 = time.perf_counter()
        cube = geoanom.open_cube(str(store), chunks=chunks)
        open_s = time.perf_counter() - t0
        info["chunks"] = {dim: list(sizes) for dim, sizes in cube["tas"].chunksizes.items()}
        t1 = time.perf_counter()
        if scheduler == "saved":
            model = geoanom.load_model(model_path)
        else:
            train = cube.isel(time=slice(0, cube.sizes["time"] // 2))
            model = geoanom.fit(train, precision=precision, detectors=detectors, client=client)
        fit_s = time.perf_counter() - t1
        t2 = time.perf_counter()
        result = model.score(cube, client=client)
        graph_s = time.perf_counter() - t2
        geoanom.io.write_dataset(result, out)
        score_write_s = time.perf_counter() - t2
        parts = {"open_cube": open_s, "geoanom.fit" if scheduler != "saved" else "load_model": fit_s,
                 "model.score (graph)": graph_s, "write_dataset (compute + write)": score_write_s - graph_s}
        if scheduler == "saved":  # scoring and writing count: the model exists already (its loading is a part)
            fit_s, open_s = 0.0, 0.0
        elif model_path is not None:
            model.save(model_path)
        info.update(
            observations=int(cube["tas"].size),
            tiles=int(len(model.ensembles) + len(model.skipped)),
            tiles_fitted=int(len(model.ensembles)),
            load_seconds=open_s,
            fit_seconds=open_s + fit_s,
            score_write_seconds=score_write_s,
            model_bytes_per_tile=model_bytes_per_tile(model),
            parts=parts,
        )
        if client is not None:
            workers = client.run(maxrss_mb)  # each worker's own VmHWM: ru_maxrss carries its parent's peak
            info["worker_peak_rss_mb"] = {str(k): float(v) for k, v in workers.items()}
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return info


def run_variant(name: str, store: Path, out: Path, precision: int, model_path: Path | None = None) -> dict:
    detectors, scheduler, _, chunks = ALL_VARIANTS[name]
    if detectors == "naive-gmm":
        return run_naive_gmm(store, out, precision)
    if detectors == "naive-four":
        return run_naive_four(store, out, precision)
    return run_geoanom(store, out, precision, detectors, scheduler, chunks, model_path)


def source_fingerprint() -> str:
    """sha256 of geoanom's Python sources, to tell whether variants ran the same code."""
    import hashlib

    import geoanom

    digest = hashlib.sha256()
    package = Path(geoanom.__file__).resolve().parent
    for path in sorted(package.rglob("*.py")):
        digest.update(str(path.relative_to(package)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def child_main(args: argparse.Namespace) -> int:
    """Run one variant in this process and print its figures as one JSON line."""
    record: dict = {"variant": args.variant}
    import dask  # noqa: F401  (imported before the baseline is read)
    import sklearn  # noqa: F401
    import xarray  # noqa: F401

    import geoanom  # noqa: F401
    import geoanom.model  # noqa: F401  (what geoanom.fit and load_model import: scikit-learn's base, scipy.stats,
    # numba; about 1.3 s, before the clock as the naive loops import scikit-learn's estimators before theirs)

    record["rss_after_imports_mb"] = maxrss_mb()
    record["geoanom_source_sha256"] = source_fingerprint()
    try:
        model_path = Path(args.model) if args.model else None
        record.update(run_variant(args.variant, Path(args.store), Path(args.output), args.precision, model_path))
        record["ok"] = True
    except BaseException as exc:  # reported, not hidden: the parent records it
        record["ok"] = False
        record["error"] = f"{type(exc).__name__}: {exc}"
        record["traceback"] = traceback.format_exc()
    record["peak_rss_mb"] = maxrss_mb()
    print(RESULT_MARK + json.dumps(record), flush=True)
    return 0 if record["ok"] else 1


# --- sanity checks of the outputs (not timed) -----------------------------------


def check_outputs(outputs: dict[str, Path], injected: np.ndarray, n_train: int) -> dict:
    """Every observation scored? flag rates and recall of the injected anomalies."""
    import xarray as xr

    checks: dict = {}
    k = int(injected.sum())
    normal = ~injected
    for name, path in outputs.items():
        if not path.exists() or name.startswith("naive"):
            continue
        ds = xr.open_zarr(path, consolidated=True, decode_times=False)
        entry: dict = {"nan_scores": int(ds["irregularity"].isnull().sum())}
        irr = ds["irregularity"]
        for i, det in enumerate(str(name) for name in ds["detector"].values):
            flags = (irr[i] > 1.0).values
            entry[f"{det}_flag_rate_normal_test"] = float(flags[n_train:][normal[n_train:]].mean())
            entry[f"{det}_recall_injected"] = float(flags[injected].mean())
        entry["ensemble_flag_rate_normal"] = float(ds["ensemble"].values[normal].mean())
        entry["ensemble_recall_injected"] = float(ds["ensemble"].values[injected].mean())
        fused = ds["fused_irregularity"].values
        top = np.argpartition(-np.nan_to_num(fused, nan=-np.inf).ravel(), k)[:k]
        entry["recall_at_k_injected"] = float(injected.ravel()[top].mean())
        checks[name] = entry
    saved, fresh = outputs.get("geoanom-all-saved"), outputs.get("geoanom-all-threads")
    if saved and fresh and saved.exists() and fresh.exists():
        a = xr.open_zarr(saved, decode_times=False)["irregularity"].values
        b = xr.open_zarr(fresh, decode_times=False)["irregularity"].values
        checks["saved_model_equals_fresh"] = bool(np.array_equal(a, b, equal_nan=True))
    return checks


# --- the parent: build the stores, run the variants, report ----------------------


def versions() -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine(), "platform": platform.platform(),
           "cpu_count": os.cpu_count()}
    for package in ("numpy", "numba", "dask", "distributed", "xarray", "zarr", "scikit-learn", "scipy", "geoanom"):
        try:
            out[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            out[package] = None
    try:
        with open("/proc/meminfo") as handle:
            out["memory_gb"] = round(int(handle.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:  # read-only git queries
        out["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                                           text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "geoanom"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.splitlines()
        out["git_uncommitted_geoanom_files"] = [line[3:] for line in dirty]
    except (OSError, subprocess.CalledProcessError):
        pass
    return out


def run_child(name: str, store: Path, output: Path, precision: int, model: Path, timeout: float) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", name, "--store", str(store),
               "--output", str(output), "--precision", str(precision)]
    if ALL_VARIANTS[name][0] == ALL and ALL_VARIANTS[name][1] in ("threads", "saved"):
        command += ["--model", str(model)]  # the all variant saves it, the saved variant loads it
    try:
        env = {**os.environ, **ALL_VARIANTS[name][2]}
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"variant": name, "ok": False, "error": f"timed out after {timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        return {"variant": name, "ok": False, "error": f"exit code {proc.returncode}, no result",
                "stderr_tail": proc.stderr[-4000:]}
    record = json.loads(lines[-1][len(RESULT_MARK):])
    record["extra_env"] = ALL_VARIANTS[name][2]
    record["open_cube_chunks_arg"] = ALL_VARIANTS[name][3]
    return record


def table(rows: list[dict]) -> str:
    header = ("cube", "variant", "fit s", "score+write s", "total s", "obs/s", "vs naive", "peak RSS MB")
    lines = []
    for row in rows:
        if not row.get("ok"):
            lines.append((row["cube"], row["variant"], "-", "-", "-", "-", "-", "FAILED: " + row.get("error", "")[:60]))
            continue
        rss = f"{row.get('peak_rss_mb_max', row['peak_rss_mb']):.0f}"
        if "worker_peak_rss_mb" in row:
            rss += " (+workers " + "/".join(f"{v:.0f}" for v in row["worker_peak_rss_mb"].values()) + ")"
        label = row["variant"] + (" (extrapolated)" if row.get("extrapolated") else "")
        lines.append((row["cube"], label, f"{row['fit_seconds']:.2f}", f"{row['score_write_seconds']:.2f}",
                      f"{row['total_seconds']:.2f}", f"{row['observations_per_second']:,.0f}",
                      f"{row['ratio_to_naive']:.2f}" if row.get("ratio_to_naive") is not None else "-", rss))
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


def run_cube(cube_name: str, names: list[str], args: argparse.Namespace, tmp: Path) -> tuple[list[dict], dict, dict]:
    """Build one cube's store, run the variants on it; return rows, checks and the cube's description."""
    import geoanom

    if ALL != geoanom.detectors.DEFAULT_DETECTORS:
        raise SystemExit(f"throughput.py's ALL {ALL} is not geoanom's default ensemble {geoanom.detectors.DEFAULT_DETECTORS}")
    shape = CUBES[cube_name]
    n_time = shape.sizes[args.size]
    precision = args.precision or shape.precision
    store = tmp / f"{cube_name}.zarr"
    start = time.perf_counter()
    injected = write_cube(store, shape, n_time)
    build_s = time.perf_counter() - start
    cube = geoanom.open_cube(str(store))
    n_tiles = int(np.unique(geoanom.tiling.tile_labels(cube, precision).values).size)
    described = {"name": cube_name, "time_steps": n_time, "lat": shape.n_lat, "lon": shape.n_lon,
                 "observations": int(cube["tas"].size), "precision": precision, "tiles": n_tiles,
                 "time_step": shape.freq, "geoanom_chunks": list(cube["tas"].data.chunksize),
                 "injected_anomalies": int(injected.sum()), "build_and_write_seconds": build_s}
    print(f"cube {cube_name}: {dict(cube.sizes)} = {described['observations']:,} observations, {n_tiles} tiles "
          f"at precision {precision}, geoanom chunks {cube['tas'].data.chunksize}", flush=True)
    del cube
    outputs = {name: tmp / f"{cube_name}-{name}.zarr" for name in names}
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for round_ in range(args.repeat):
        # alternate the order between rounds, so that a slow spell of the shared machine falls on different
        # variants; the saved model's variant always follows the one that saves it
        order = names if round_ % 2 == 0 else _reversed_keeping_saved_last(names)
        for name in order:
            print(f"running {cube_name} {name} (round {round_ + 1} of {args.repeat}) ...", flush=True)
            output = outputs[name] if round_ == 0 else tmp / f"{cube_name}-{name}-round{round_}.zarr"
            row = run_child(name, store, output, precision, tmp / f"{cube_name}-model.npz", args.timeout)
            if round_:  # the checks read the first round's outputs
                shutil.rmtree(output, ignore_errors=True)
            row["cube"] = cube_name
            if row.get("ok"):
                row["total_seconds"] = row["fit_seconds"] + row["score_write_seconds"]
                row["observations_per_second"] = row["observations"] / row["total_seconds"]
                print(f"  {row['total_seconds']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB, parts "
                      + ", ".join(f"{k} {v:.2f}" for k, v in row["parts"].items()), flush=True)
            else:
                print(f"  FAILED: {row.get('error')}\n{row.get('traceback', row.get('stderr_tail', ''))}", flush=True)
            runs[name].append(row)
    rows = [median_run(runs[name]) for name in names]
    naive = next((r for r in rows if r["variant"] == "naive" and r.get("ok")), None)
    for row in rows:
        if row.get("ok") and naive is not None:
            row["ratio_to_naive"] = row["observations_per_second"] / naive["observations_per_second"]
    return rows, check_outputs(outputs, injected, n_time // 2), described


def _reversed_keeping_saved_last(names: list[str]) -> list[str]:
    order = names[::-1]
    if "geoanom-all-saved" in order:
        order.remove("geoanom-all-saved")
        order.insert(order.index("geoanom-all-threads") + 1, "geoanom-all-saved")
    return order


def median_run(runs: list[dict]) -> dict:
    """The run with the median total time (a real run, its parts and memory its own), with every run's figures.

    A failed run makes the variant failed. ``peak_rss_mb_max`` is the highest peak of all runs: the memory goals
    are about the worst case, the time goals about the typical one.
    """
    failed = [run for run in runs if not run.get("ok")]
    if failed:
        return failed[0]
    ranked = sorted(runs, key=lambda run: run["total_seconds"])
    row = dict(ranked[(len(ranked) - 1) // 2])  # the lower median of an even count
    row["runs"] = len(runs)
    row["runs_total_seconds"] = [run["total_seconds"] for run in runs]
    row["peak_rss_mb_max"] = max(run["peak_rss_mb"] for run in runs)
    return row


def parent_main(args: argparse.Namespace) -> int:
    names = ([name for name in ALL_VARIANTS if name in args.only] if args.only  # the saved row after the one that saves
             else list(VARIANTS) + (list(EXTRAS) if args.extras else []))
    if "geoanom-all-saved" in names and "geoanom-all-threads" not in names:
        names.insert(names.index("geoanom-all-saved"), "geoanom-all-threads")  # it saves the model
    started = dt.datetime.now(dt.timezone.utc)
    rows, checks, cubes = [], {}, []
    with tempfile.TemporaryDirectory(prefix="geoanom-throughput-") as tmp:
        for cube_name in args.cube:
            cube_rows, cube_checks, described = run_cube(cube_name, names, args, Path(tmp))
            rows += cube_rows
            checks[cube_name] = cube_checks
            cubes.append(described)
    fingerprints = sorted({r["geoanom_source_sha256"] for r in rows if "geoanom_source_sha256" in r})
    if len(fingerprints) > 1:
        print(f"WARNING: geoanom's sources changed during the run ({fingerprints}).", flush=True)
    print("\n" + table(rows) + "\n")
    for row in rows:
        if row.get("model_bytes_per_tile") and row["variant"] == "geoanom-all-threads":
            print(f"model bytes per tile ({row['cube']}): " + ", ".join(
                f"{k} {v / 1024:.1f} KiB" for k, v in row["model_bytes_per_tile"].items()))
    for cube_name, entries in checks.items():
        for name, entry in entries.items():
            text = entry if not isinstance(entry, dict) else ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in entry.items())
            print(f"check {cube_name} {name}: {text}")
    report = {
        "benchmark": "throughput", "date": started.isoformat(timespec="seconds"), "size": args.size,
        "cubes": cubes,
        "timer": f"time.perf_counter, each variant in its own subprocess, {args.repeat} run(s) per variant in "
                 "alternating order; a row is its median run (runs_total_seconds lists them all)",
        "notes": [
            "fit seconds include opening/loading the cube; score+write seconds include computing and writing "
            "the output Zarr; observations/s = all observations / (fit + score+write); ratio = obs/s / naive obs/s.",
            "naive-four is timed on a subset of tiles and extrapolated to all (see throughput_naive.py).",
            "geoanom-all-saved: load_model + score + write only (fit seconds 0).",
            "peak RSS: VmHWM of the variant's process (/proc/self/status).",
            "imports are not timed: each variant's process imports its library (geoanom.model, or scikit-learn's "
            "estimators for the naive loops) before its clock starts.",
            *args.note,
        ],
        "machine": versions(), "geoanom_source_fingerprints": fingerprints, "results": rows, "checks": checks,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"\nwrote {out}")
    return 0 if all(r.get("ok") for r in rows) else 1


def profile_main(args: argparse.Namespace) -> int:
    """One variant in-process, dask synchronous scheduler, under cProfile."""
    import cProfile
    import pstats

    import dask

    name, cube_name = args.profile, args.cube[0]
    if ALL_VARIANTS[name][1] not in ("threads",):
        print("profiling runs a -threads variant synchronously", file=sys.stderr)
        return 2
    shape = CUBES[cube_name]
    with tempfile.TemporaryDirectory(prefix="geoanom-profile-") as tmp:
        store = Path(tmp) / "cube.zarr"
        write_cube(store, shape, shape.sizes[args.size])
        profiler = cProfile.Profile()
        with dask.config.set(scheduler="synchronous"):
            profiler.enable()
            record = run_variant(name, store, Path(tmp) / "out.zarr", args.precision or shape.precision)
            profiler.disable()
    print(json.dumps(record, indent=1, default=str))
    stats = pstats.Stats(profiler)
    if args.profile_out:
        stats.dump_stats(args.profile_out)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", nargs="+", choices=sorted(CUBES), default=["annual", "monthly"])
    parser.add_argument("--size", choices=("small", "full", "large"), default="full",
                        help="small: 1/10 of full; full: 10.4 M observations; large: 4x full "
                             "(peak memory should not grow with the cube)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default benchmarks/results/throughput.json; throughput_<size>.json "
                             "for other sizes)")
    parser.add_argument("--precision", type=int, default=None, help="geohash precision (default: the cube's)")
    parser.add_argument("--only", nargs="+", choices=list(ALL_VARIANTS), metavar="VARIANT",
                        help="run only these variants: " + ", ".join(ALL_VARIANTS))
    parser.add_argument("--extras", action="store_true", help="also run: " + ", ".join(EXTRAS))
    parser.add_argument("--note", action="append", default=[], help="free text added to the JSON notes")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs per variant, in alternating order; each row is the median run (default 3)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds allowed per variant")
    parser.add_argument("--profile", choices=list(ALL_VARIANTS), metavar="VARIANT",
                        help="profile one variant in-process (cProfile, synchronous scheduler)")
    parser.add_argument("--profile-out", help="also dump the cProfile stats to this file")
    # internal: run one variant in this process (used by the parent)
    parser.add_argument("--variant", choices=list(ALL_VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.out is None:
        args.out = ROOT / "benchmarks" / "results" / (
            "throughput.json" if args.size == "full" else f"throughput_{args.size}.json")
    if args.variant:
        return child_main(args)
    if args.profile:
        return profile_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
