"""Fit and scoring throughput of geoanom against a naive per-tile scikit-learn loop.

Builds a synthetic air-temperature cube (float32 ``tas``, K, over time x lat x
lon; annual steps, a smooth spatial field, an 11-year cycle, a trend, noise
and a few injected anomalies, from a fixed seed), writes it to a real Zarr
store in a temporary directory and, in the same run, times on that store:

* ``naive``: what a scientist would write without geoanom: load the cube into
  memory with xarray, loop over the geohash tiles, select each tile's cells
  with xarray (stack + isel), fit ``sklearn.mixture.GaussianMixture(
  n_components=2, random_state=0)`` on the tile's training values (one
  feature: the raw value), score every observation of the tile with
  ``score_samples``, write the scores to Zarr;
* ``geoanom`` variants: ``geoanom.open_cube`` then ``geoanom.fit(train,
  precision=P, detectors=...)`` and ``model.score(cube)`` written with
  ``geoanom.io.write_dataset``; the density family alone (``gmm``) and the
  default ensemble (``gmm`` + ``iforest``), on dask's default threaded
  scheduler and on geoanom's local cluster (``make_client(workers=2)``: a ``distributed.LocalCluster(n_workers=2,
  threads_per_worker=1, processes=True)``.

With ``--extras`` it also runs sensitivity rows: BLAS/OpenMP thread pools of
one thread (``OMP_NUM_THREADS=1`` etc., as distributed gives its workers) and
``open_cube(path, chunks={"time": 130})`` instead of the default chunks.

Training is the first half of the time steps; the whole cube is scored, so
every observation is scored. Each variant runs in its own subprocess (this
script with ``--variant NAME``) so that its peak resident memory
(``getrusage(RUSAGE_SELF).ru_maxrss``) is its own; for the LocalCluster
variants the client process's peak is reported and the workers' separately.
All times are wall-clock ``time.perf_counter``; one run per variant.

Prints a table and writes the figures, machine information and sanity checks
of the outputs (every observation scored, flag rates, recall of the injected
anomalies, threads vs LocalCluster agreement) to
``benchmarks/results/throughput.json``.

Run from the repository root::

    python benchmarks/throughput.py [--size small|full|large] [--out PATH] [--extras]
    python benchmarks/throughput.py --size small --profile geoanom-gmm+iforest-threads
    python benchmarks/throughput.py --families   # naive, each family alone, all four (threads)

``--families`` runs naive, ``geoanom-{gmm,kmeans,dpmm,iforest}-threads`` (one
family each) and ``geoanom-all-threads`` (the default four-family ensemble),
prints each one's ratio to naive and writes
``benchmarks/results/throughput_families.json``. Any of these variants can
also be picked with ``--only``.

On a 2-core machine the full run takes about 6 minutes (about 10 with
``--extras``), most of it in the two gmm+iforest variants; small, about 4.

``--profile VARIANT`` runs one variant in-process with dask's synchronous
scheduler under cProfile (so work in dask tasks is seen) and prints the top
functions by cumulative and by own time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# --- the synthetic cube ---------------------------------------------------------
# A 100 x 100 grid at 0.375 degrees, aligned on the precision-3 geohash grid
# (1.40625 degrees): 27 x 27 = 729 tiles of 9 to 16 cells each.
N_LAT = N_LON = 100
SPACING = 0.375
LAT0, LON0 = 28.125, -120.9375  # 20 * 1.40625 and -86 * 1.40625
PRECISION = 3
SIZES = {"small": 104, "full": 1040, "large": 4160}  # annual time steps: 1.04 M, 10.4 M, 41.6 M observations
START_YEAR = 1000
SEED = 0
INJECTED_FRACTION = 0.001  # of the scoring-only half
INJECTED_SIGMAS = 6.0

ONE_THREAD = {name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
# name: detectors (None: the naive loop), scheduler, extra environment, open_cube chunks
VARIANTS = {
    "naive": (None, None, {}, None),
    "geoanom-gmm-threads": (("gmm",), "threads", {}, None),
    "geoanom-gmm+iforest-threads": (("gmm", "iforest"), "threads", {}, None),
    "geoanom-gmm-localcluster": (("gmm",), "localcluster", {}, None),
    "geoanom-gmm+iforest-localcluster": (("gmm", "iforest"), "localcluster", {}, None),
}
# Per-family rows on the threaded scheduler, run with --families (with naive,
# geoanom-gmm-threads and the default four-family ensemble).
FAMILY_VARIANTS = {
    "geoanom-kmeans-threads": (("kmeans",), "threads", {}, None),
    "geoanom-dpmm-threads": (("dpmm",), "threads", {}, None),
    "geoanom-iforest-threads": (("iforest",), "threads", {}, None),
    "geoanom-all-threads": (("gmm", "kmeans", "dpmm", "iforest"), "threads", {}, None),
}
FAMILIES_RUN = ["naive", "geoanom-gmm-threads", *FAMILY_VARIANTS]
# Sensitivity rows, run with --extras: BLAS/OpenMP pools of one thread (as
# distributed gives its workers), and the cube split into time chunks.
EXTRAS = {
    "naive-1blas": (None, None, ONE_THREAD, None),
    "geoanom-gmm-threads-1blas": (("gmm",), "threads", ONE_THREAD, None),
    "geoanom-gmm-threads-time130": (("gmm",), "threads", {}, {"time": 130}),
    "geoanom-gmm+iforest-threads-time130": (("gmm", "iforest"), "threads", {}, {"time": 130}),
}
ALL_VARIANTS = {**VARIANTS, **EXTRAS, **FAMILY_VARIANTS}
RESULT_MARK = "@@THROUGHPUT@@ "


def maxrss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MB (ru_maxrss is in KiB on Linux)."""
    return resource.getrusage(who).ru_maxrss / 1024.0


def make_cube(n_time: int, seed: int = SEED):
    """The synthetic cube (xarray.Dataset) and the boolean mask of injected anomalies."""
    import xarray as xr

    rng = np.random.default_rng(seed)
    lat = LAT0 + SPACING * (np.arange(N_LAT) + 0.5)
    lon = LON0 + SPACING * (np.arange(N_LON) + 0.5)
    glat, glon = np.meshgrid(lat, lon, indexing="ij")
    base = (288.0 - 0.7 * (glat - 45.0)
            + 3.0 * np.sin(np.radians(glon) * 4.0) * np.cos(np.radians(glat) * 3.0))
    spread = 0.6 + 0.8 * (glat - lat.min()) / np.ptp(lat)  # noisier to the north
    years = np.arange(n_time)
    signal = 0.001 * years + 0.8 * np.sin(2 * np.pi * years / 11.0)  # trend + 11-year cycle
    noise = rng.standard_normal((n_time, N_LAT, N_LON), dtype=np.float32)
    tas = (base[None] + signal[:, None, None] + spread[None] * noise).astype(np.float32)
    # Injected anomalies, only in the scoring-only second half.
    injected = np.zeros(tas.shape, dtype=bool)
    n_train = n_time // 2
    second = injected[n_train:].reshape(-1)
    picks = rng.choice(second.size, size=max(1, int(INJECTED_FRACTION * second.size)), replace=False)
    second[picks] = True
    signs = rng.choice(np.array([-1.0, 1.0]), size=picks.size)
    t, y, x = np.unravel_index(picks, (n_time - n_train, N_LAT, N_LON))
    tas[n_train + t, y, x] += (signs * INJECTED_SIGMAS * spread[y, x]).astype(np.float32)
    time_index = xr.date_range(f"{START_YEAR:04d}-01-01", periods=n_time, freq="YS", unit="s", use_cftime=False)
    ds = xr.Dataset(
        {"tas": (("time", "lat", "lon"), tas,
                 {"units": "K", "standard_name": "air_temperature", "long_name": "near-surface air temperature"})},
        coords={
            "time": ("time", time_index, {"standard_name": "time"}),
            "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
            "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"}),
        },
        attrs={"title": "geoanom throughput benchmark cube", "seed": seed},
    )
    return ds, injected


def write_cube(path: Path, n_time: int) -> np.ndarray:
    """Write the cube to a Zarr store at ``path``; return the injected-anomaly mask."""
    ds, injected = make_cube(n_time)
    encoding = {"tas": {"chunks": (min(n_time, 104), N_LAT, N_LON)},
                "time": {"units": f"days since {START_YEAR:04d}-01-01", "calendar": "proleptic_gregorian"}}
    ds.to_zarr(path, mode="w", zarr_format=2, consolidated=True, encoding=encoding)
    return injected


# --- variants (each run in its own process) -------------------------------------


def run_naive(store: Path, out: Path, precision: int) -> dict:
    """Load into memory, loop over tiles, sklearn GaussianMixture per tile, write Zarr."""
    import xarray as xr
    from sklearn.mixture import GaussianMixture

    from geoanom.tiling import tile_labels  # the same geohash tiles as geoanom's

    t0 = time.perf_counter()
    ds = xr.open_zarr(store, consolidated=True).load()
    tas = ds["tas"]
    load_s = time.perf_counter() - t0

    n_train = tas.sizes["time"] // 2
    labels = tile_labels(ds, precision)
    stacked = tas.stack(cell=("lat", "lon"))  # (time, cell)
    cell_labels = labels.stack(cell=("lat", "lon")).values
    out_values = np.full(stacked.shape, np.nan, dtype=np.float32)
    fit_s = score_s = 0.0
    tiles = np.unique(cell_labels)
    for tile in tiles:
        start = time.perf_counter()
        cells = np.flatnonzero(cell_labels == tile)
        sub = stacked.isel(cell=cells)
        train = sub.isel(time=slice(0, n_train)).values.reshape(-1, 1)
        mixture = GaussianMixture(n_components=2, random_state=0).fit(train)
        middle = time.perf_counter()
        out_values[:, cells] = mixture.score_samples(sub.values.reshape(-1, 1)).reshape(sub.shape)
        end = time.perf_counter()
        fit_s += middle - start
        score_s += end - middle
    start = time.perf_counter()
    scores = xr.DataArray(out_values, coords=stacked.coords, dims=stacked.dims, name="log_likelihood")
    result = scores.unstack("cell").transpose("time", "lat", "lon").to_dataset()
    result.to_zarr(out, mode="w", zarr_format=2, consolidated=True)
    write_s = time.perf_counter() - start
    return {
        "observations": int(tas.size),
        "tiles": int(len(tiles)),
        "load_seconds": load_s,
        "fit_seconds": load_s + fit_s,
        "score_write_seconds": score_s + write_s,
        "parts": {"load (open_zarr + load)": load_s, "fit loop": fit_s, "score loop": score_s, "write": write_s},
    }


def run_geoanom(store: Path, out: Path, precision: int, detectors: tuple, scheduler: str,
                chunks: dict | None = None) -> dict:
    """geoanom.open_cube, fit on the first half, score the whole cube, write_dataset."""
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
        n_train = cube.sizes["time"] // 2
        train = cube.isel(time=slice(0, n_train))
        info["chunks"] = {dim: list(sizes) for dim, sizes in cube["tas"].chunksizes.items()}

        t1 = time.perf_counter()
        model = geoanom.fit(train, precision=precision, detectors=detectors, client=client)
        fit_s = time.perf_counter() - t1

        t2 = time.perf_counter()
        result = model.score(cube)
        graph_s = time.perf_counter() - t2
        geoanom.io.write_dataset(result, out)
        score_write_s = time.perf_counter() - t2

        info.update(
            observations=int(cube["tas"].size),
            tiles=int(len(model.ensembles) + len(model.skipped)),
            tiles_fitted=int(len(model.ensembles)),
            tiles_skipped=int(len(model.skipped)),
            load_seconds=open_s,
            fit_seconds=open_s + fit_s,
            score_write_seconds=score_write_s,
            parts={"open_cube": open_s, "geoanom.fit": fit_s, "model.score (graph)": graph_s,
                   "write_dataset (compute + write)": score_write_s - graph_s},
        )
        if client is not None:
            workers = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)
            info["worker_peak_rss_mb"] = {str(k): float(v) for k, v in workers.items()}
            info["worker_env"] = client.run(lambda: {k: os.environ.get(k) for k in ONE_THREAD})
        import pickle

        info["model_pickle_mb"] = len(pickle.dumps(model.ensembles, protocol=pickle.HIGHEST_PROTOCOL)) / 2**20
    finally:
        if client is not None:
            client.close()
            cluster.close()
    if cluster is not None:  # worker processes are children of this one, waited for on close
        info["children_peak_rss_mb_after_close"] = maxrss_mb(resource.RUSAGE_CHILDREN)
    return info


def run_variant(name: str, store: Path, out: Path, precision: int) -> dict:
    detectors, scheduler, _, chunks = ALL_VARIANTS[name]
    if detectors is None:
        return run_naive(store, out, precision)
    return run_geoanom(store, out, precision, detectors, scheduler, chunks)


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

    record["rss_after_imports_mb"] = maxrss_mb()
    record["geoanom_source_sha256"] = source_fingerprint()
    record["geoanom_path"] = str(Path(geoanom.__file__).resolve().parent)
    try:
        record.update(run_variant(args.variant, Path(args.store), Path(args.output), args.precision))
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
    """Every observation scored? flag rates, recall of the injected anomalies, agreement."""
    import xarray as xr

    checks: dict = {}
    k = int(injected.sum())
    normal = ~injected
    for name, path in outputs.items():
        if not path.exists():
            continue
        ds = xr.open_zarr(path, consolidated=True, decode_times=False)
        entry: dict = {}
        if name.startswith("naive"):
            score = ds["log_likelihood"].values
            entry["nan_scores"] = int(np.isnan(score).sum())
            # Lowest log-likelihoods, as many as there are injected anomalies.
            top = np.argpartition(np.nan_to_num(score, nan=np.inf).ravel(), k)[:k]
            entry["recall_at_k_injected"] = float(injected.ravel()[top].mean())
        else:
            irr = ds["irregularity"].values
            entry["nan_scores"] = int(np.isnan(irr).sum())
            for i, det in enumerate(str(name) for name in ds["detector"].values):
                flags = irr[i] > 1.0
                entry[f"{det}_flag_rate_normal_train"] = float(flags[:n_train][normal[:n_train]].mean())
                entry[f"{det}_flag_rate_normal_test"] = float(flags[n_train:][normal[n_train:]].mean())
                entry[f"{det}_recall_injected"] = float(flags[injected].mean())
            ensemble = ds["ensemble"].values.astype(bool)
            entry["ensemble_flag_rate_normal"] = float(ensemble[normal].mean())
            entry["ensemble_recall_injected"] = float(ensemble[injected].mean())
            fused = ds["fused_irregularity"].values
            top = np.argpartition(-np.nan_to_num(fused, nan=-np.inf).ravel(), k)[:k]
            entry["recall_at_k_injected"] = float(injected.ravel()[top].mean())
        checks[name] = entry
    for family in ("gmm", "gmm+iforest"):
        a, b = outputs.get(f"geoanom-{family}-threads"), outputs.get(f"geoanom-{family}-localcluster")
        if a and b and a.exists() and b.exists():
            x = xr.open_zarr(a, decode_times=False)["irregularity"].values
            y = xr.open_zarr(b, decode_times=False)["irregularity"].values
            both = np.isfinite(x) & np.isfinite(y)
            checks[f"threads_vs_localcluster_{family}"] = {
                "max_abs_diff_irregularity": float(np.abs(x[both] - y[both]).max()) if both.any() else None,
                "nan_pattern_equal": bool(np.array_equal(np.isnan(x), np.isnan(y))),
            }
    return checks


# --- the parent: build the store, run the variants, report ------------------------


def versions() -> dict:
    out = {"python": platform.python_version(), "machine": platform.machine(), "platform": platform.platform(),
           "cpu_count": os.cpu_count()}
    for package in ("numpy", "dask", "distributed", "xarray", "zarr", "scikit-learn", "scipy", "geoanom"):
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


def run_child(name: str, store: Path, output: Path, precision: int, timeout: float) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--variant", name, "--store", str(store),
               "--output", str(output), "--precision", str(precision)]
    start = time.perf_counter()
    try:
        env = {**os.environ, **ALL_VARIANTS[name][2]}
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        return {"variant": name, "ok": False, "error": f"timed out after {timeout:.0f} s",
                "stderr_tail": (exc.stderr or "")[-4000:] if isinstance(exc.stderr, str) else ""}
    wall = time.perf_counter() - start
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        return {"variant": name, "ok": False, "error": f"exit code {proc.returncode}, no result",
                "stderr_tail": proc.stderr[-4000:]}
    record = json.loads(lines[-1][len(RESULT_MARK):])
    record["process_wall_seconds"] = wall
    record["extra_env"] = ALL_VARIANTS[name][2]
    record["open_cube_chunks_arg"] = ALL_VARIANTS[name][3]
    warnings = [line for line in proc.stderr.splitlines() if "Warning" in line or "Error" in line]
    if warnings:
        record["stderr_warnings"] = sorted(set(warnings))[:20]
    return record


def table(rows: list[dict]) -> str:
    header = ("variant", "observations", "fit s", "score+write s", "total s", "obs/s", "vs naive", "peak RSS MB")
    lines = []
    for row in rows:
        if not row.get("ok"):
            lines.append((row["variant"], "-", "-", "-", "-", "-", "-", "FAILED: " + row.get("error", "")[:60]))
            continue
        rss = f"{row['peak_rss_mb']:.0f}"
        if "worker_peak_rss_mb" in row:
            rss += " (+workers " + "/".join(f"{v:.0f}" for v in row["worker_peak_rss_mb"].values()) + ")"
        lines.append((row["variant"], f"{row['observations']:,}", f"{row['fit_seconds']:.2f}",
                      f"{row['score_write_seconds']:.2f}", f"{row['total_seconds']:.2f}",
                      f"{row['observations_per_second']:,.0f}",
                      f"{row['ratio_to_naive']:.2f}" if row.get("ratio_to_naive") is not None else "-", rss))
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


def parent_main(args: argparse.Namespace) -> int:
    n_time = SIZES[args.size]
    if args.only:
        names = list(args.only)
    elif args.families:
        names = list(FAMILIES_RUN)
    else:
        names = list(VARIANTS) + (list(EXTRAS) if args.extras else [])
    started = dt.datetime.now(dt.timezone.utc)
    with tempfile.TemporaryDirectory(prefix="geoanom-throughput-") as tmp:
        tmp = Path(tmp)
        store = tmp / "cube.zarr"
        start = time.perf_counter()
        injected = write_cube(store, n_time)
        build_s = time.perf_counter() - start
        import geoanom

        cube = geoanom.open_cube(str(store))
        n_obs = int(cube["tas"].size)
        n_tiles = int(np.unique(geoanom.tiling.tile_labels(cube, args.precision).values).size)
        print(f"cube: {dict(cube.sizes)} = {n_obs:,} observations, {n_tiles} tiles at precision "
              f"{args.precision}, time {cube['time'].values[0]} .. {cube['time'].values[-1]} "
              f"({type(cube['time'].values[0]).__name__}), geoanom chunks {cube['tas'].data.chunksize}; "
              f"built and written in {build_s:.1f} s", flush=True)
        del cube
        outputs = {name: tmp / f"{name}.zarr" for name in names}
        rows = []
        for name in names:
            print(f"running {name} ...", flush=True)
            row = run_child(name, store, outputs[name], args.precision, args.timeout)
            if row.get("ok"):
                row["total_seconds"] = row["fit_seconds"] + row["score_write_seconds"]
                row["observations_per_second"] = row["observations"] / row["total_seconds"]
                row["fit_observations_per_second"] = (row["observations"] // 2) / row["fit_seconds"]
                print(f"  {row['total_seconds']:.1f} s, peak RSS {row['peak_rss_mb']:.0f} MB, parts "
                      + ", ".join(f"{k} {v:.2f}" for k, v in row["parts"].items()), flush=True)
            else:
                print(f"  FAILED: {row.get('error')}\n{row.get('traceback', row.get('stderr_tail', ''))}", flush=True)
            rows.append(row)
        naive = next((r for r in rows if r["variant"] == "naive" and r.get("ok")), None)
        for row in rows:
            if row.get("ok") and naive is not None:
                row["ratio_to_naive"] = row["observations_per_second"] / naive["observations_per_second"]
        checks = check_outputs(outputs, injected, n_time // 2)
    fingerprints = sorted({r["geoanom_source_sha256"] for r in rows if "geoanom_source_sha256" in r})
    if len(fingerprints) > 1:
        print(f"WARNING: geoanom's sources changed during the run (fingerprints {fingerprints}); "
              "the variants did not all run the same code.", flush=True)
    text = table(rows)
    print()
    print(text)
    print()
    for name, entry in checks.items():
        print(f"check {name}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in entry.items()))
    report = {
        "benchmark": "throughput",
        "date": started.isoformat(timespec="seconds"),
        "size": args.size,
        "cube": {"time_steps": n_time, "lat": N_LAT, "lon": N_LON, "observations": n_obs,
                 "training_time_steps": n_time // 2, "spacing_degrees": SPACING, "lat0": LAT0, "lon0": LON0,
                 "precision": args.precision, "tiles": n_tiles, "seed": SEED, "dtype": "float32",
                 "time_step": f"annual from {START_YEAR}", "injected_anomalies": int(injected.sum()),
                 "build_and_write_seconds": build_s},
        "timer": "time.perf_counter, one run per variant, each variant in its own subprocess",
        "notes": [
            "fit seconds include opening/loading the cube (naive: open_zarr().load() of the whole cube; "
            "geoanom: open_cube, lazy); score+write seconds include computing and writing the output Zarr.",
            "observations/s = all observations / (fit + score+write); ratio = geoanom obs/s / naive obs/s.",
            "naive: one sklearn GaussianMixture(2) per tile on all the tile's raw training values (1 feature); "
            "geoanom gmm: per tile, 1-3 component full-covariance mixtures chosen by BIC (batched EM on a "
            "2048-observation subsample of the tile's 4096-observation sketch) on 2 features (value, "
            "standardised anomaly), threshold from all 4096; the workloads are not identical.",
            "naive writes one float32 variable; geoanom writes irregularity, anomalous, votes, ensemble, "
            "fused_irregularity and tile.",
            "peak RSS: getrusage(RUSAGE_SELF).ru_maxrss of the variant's process (client process for "
            "LocalCluster; worker processes reported separately via client.run).",
            *args.note,
        ],
        "machine": versions(),
        "geoanom_source_fingerprints": fingerprints,
        "results": rows,
        "checks": checks,
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

    name = args.profile
    detectors, scheduler, _, _ = ALL_VARIANTS[name]
    if scheduler == "localcluster":
        print("profiling runs the threaded code path synchronously; use a -threads variant", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="geoanom-profile-") as tmp:
        store = Path(tmp) / "cube.zarr"
        write_cube(store, SIZES[args.size])
        profiler = cProfile.Profile()
        with dask.config.set(scheduler="synchronous"):
            profiler.enable()
            record = run_variant(name, store, Path(tmp) / "out.zarr", args.precision)
            profiler.disable()
    print(json.dumps({k: v for k, v in record.items()}, indent=1, default=str))
    stats = pstats.Stats(profiler)
    if args.profile_out:
        stats.dump_stats(args.profile_out)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="full",
                        help="small: 104 x 100 x 100 = 1.04 M observations; full: 1040 x 100 x 100 = 10.4 M; "
                             "large: 4160 x 100 x 100 = 41.6 M (peak memory should not grow with the cube)")
    parser.add_argument("--out", type=Path, default=None,
                        help="JSON report (default benchmarks/results/throughput.json, or "
                             "throughput_families.json with --families)")
    parser.add_argument("--precision", type=int, default=PRECISION)
    parser.add_argument("--only", nargs="+", choices=list(ALL_VARIANTS), metavar="VARIANT",
                        help="run only these variants: " + ", ".join(ALL_VARIANTS))
    parser.add_argument("--extras", action="store_true",
                        help="also run the sensitivity variants: " + ", ".join(EXTRAS))
    parser.add_argument("--families", action="store_true",
                        help="run naive, each family alone and all four on the threaded scheduler ("
                             + ", ".join(FAMILIES_RUN) + "); writes benchmarks/results/throughput_families.json "
                             "unless --out is given")
    parser.add_argument("--note", action="append", default=[], help="free text added to the JSON notes")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per variant")
    parser.add_argument("--profile", choices=list(ALL_VARIANTS), metavar="VARIANT",
                        help="profile one variant in-process (cProfile, synchronous scheduler)")
    parser.add_argument("--profile-out", help="also dump the cProfile stats to this file")
    # internal: run one variant in this process (used by the parent)
    parser.add_argument("--variant", choices=list(ALL_VARIANTS), help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out is None:
        name = "throughput_families.json" if args.families and not args.only else "throughput.json"
        args.out = ROOT / "benchmarks" / "results" / name
    if args.variant:
        return child_main(args)
    if args.profile:
        return profile_main(args)
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
