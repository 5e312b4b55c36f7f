"""Peak memory of each dask worker, for a fit and for a score + write, against ``geoanom.memory``'s prediction.

On the throughput benchmark's cubes (``throughput_cubes.py``: ``annual``,
100 x 100 cells, 729 tiles at precision 3; ``monthly``, 120 x 240 cells, 190
tiles at precision 2), written to a real Zarr store in a temporary
directory, each case runs on a real ``distributed.LocalCluster`` of worker
processes (``--workers``, 2 by default) with geoanom's worker environment
(``geoanom.cluster.WORKER_ENVIRONMENT``, as ``--workers`` and the batch
clusters have it) and no memory limit (nothing is spilled or paused: the
peak is the work's own):

* ``fit``: ``geoanom.fit(train, client=...)`` on the first half of the time
  steps, then the model is saved (``.npz``);
* ``score``: a fresh cluster; the saved model is loaded,
  ``model.score(cube, client=...)`` is written with
  ``geoanom.io.write_dataset`` (the whole cube).

Each phase runs in its own process with its own fresh cluster, so a worker's
``VmHWM`` (peak resident set, ``/proc/self/status``, read on every worker with
``client.run`` once the phase is done) is that phase's alone: it includes the
worker's start and imports, as a real worker's does. The cases: the default
ensemble and ``gmm`` alone, ``threads_per_worker`` 1 and 2, and ``open_cube``
time chunks of ``--chunk-factors`` times the default one (8 MiB slabs: 209
annual steps, 72 monthly ones).

``--phases detect detect-trim`` measures what ``geoanom detect`` does instead:
the fit and then the score on the same workers (their peak over both), and
the same with the workers' free C heap given back in between
(``geoanom.memory.release_free_memory`` run on each worker).

One run's worker peaks vary from run to run (which worker holds which blocks
when), so ``--merge`` combines several reports into one whose rows are each
case's highest-peak run: ``results/worker_memory.json`` is two full runs, the
detect phases and one small run, merged.

The prediction is ``geoanom.memory``'s, from the chunks and tiles the run
actually had, computed as ``geoanom/model/fit.py`` and ``score.py`` compute it
for ``check_workers``: the largest block of the stacked variables
(``largest_chunk``) and the most tiles in one spatial block
(``most_tiles_in_a_block``). The inputs are stored with each row, so
``--recompute FILE`` prints the table again against the current
``geoanom/memory.py`` without running anything.

Prints a table (measured = the highest worker peak of the phase) and writes
``benchmarks/results/worker_memory.json``. Run from the repository root::

    python benchmarks/worker_memory.py --out a.json          # both cubes, full size, fit and score (about 22 minutes)
    python benchmarks/worker_memory.py --out b.json
    python benchmarks/worker_memory.py --phases detect detect-trim --chunk-factors 1 --out c.json
    python benchmarks/worker_memory.py --size small --cube annual --chunk-factors 1 --out d.json
    python benchmarks/worker_memory.py --merge a.json b.json c.json d.json   # -> results/worker_memory.json
    python benchmarks/worker_memory.py --recompute benchmarks/results/worker_memory.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import inspect
import json
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

from throughput import versions  # noqa: E402  (benchmarks/ is on sys.path when run)
from throughput_cubes import CUBES, write_cube  # noqa: E402

FAMILY_SETS = {"all": None, "gmm": "gmm"}  # None: geoanom's default ensemble
PHASES = ("fit", "score", "detect", "detect-trim")
RESULT_MARK = "@@WORKER_MEMORY@@ "
MB = 2**20


def process_memory() -> dict[str, float]:
    """This process's peak (``VmHWM``) and current (``VmRSS``) resident set, in MiB; run on each worker."""
    out = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmHWM:", "VmRSS:")):
                out[line.split(":")[0]] = int(line.split()[1]) / 1024.0
    return out


def release_free_memory() -> None:
    """geoanom.memory.release_free_memory on a worker (glibc's malloc_trim)."""
    from geoanom.memory import release_free_memory as release

    release()


def imported_memory() -> dict[str, float]:
    """A worker's resident set once geoanom's model code is imported (what every task of a fit or score imports)."""
    import geoanom.model  # noqa: F401

    return process_memory()


# --- one phase, in its own process -------------------------------------------


def predicted_inputs(phase: str, cube, model, precision: int, detectors) -> dict:
    """The chunk observations, tiles per block and families that fit.py / score.py give ``task_bytes``."""
    from geoanom.detectors.families import check_detector_names
    from geoanom.features.pipeline import stack_variables
    from geoanom.memory import largest_chunk, most_tiles_in_a_block
    from geoanom.tiling import tile_codes, tile_labels

    if phase == "fit":
        values = stack_variables(cube)
        codes = tile_codes(tile_labels(cube, precision))[0]
        names = list(check_detector_names(detectors))
    else:
        values = stack_variables(cube, model.variables)
        codes, names = model.tile_codes, list(model.detectors)
    chunks = values.chunks or tuple((size,) for size in values.shape)
    return {"chunk_observations": largest_chunk(chunks), "tiles_in_a_block": most_tiles_in_a_block(codes, chunks[-2:]),
            "detectors": names, "block": [max(sizes) for sizes in chunks]}


def run_phase(args: argparse.Namespace) -> dict:
    """Start a cluster, run the fit or the score + write, read every worker's peak."""
    import dask
    from distributed import Client, LocalCluster

    import geoanom
    import geoanom.io
    from geoanom.cluster import WORKER_ENVIRONMENT

    record: dict = {}
    detectors = args.detectors or geoanom.detectors.DEFAULT_DETECTORS
    start = time.perf_counter()
    with dask.config.set(WORKER_ENVIRONMENT):
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=args.threads, processes=True,
                               memory_limit=0, dashboard_address=":0")
    client = Client(cluster)
    try:
        record["startup_seconds"] = time.perf_counter() - start
        record["workers_after_imports_mb"] = {str(k): v["VmRSS"] for k, v in client.run(imported_memory).items()}
        chunks = {"time": args.time_chunk} if args.time_chunk else None
        cube = geoanom.open_cube(args.store, chunks=chunks)
        start = time.perf_counter()
        train = cube.isel(time=slice(0, cube.sizes["time"] // 2))
        if args.phase != "score":  # fit, detect, detect-trim: a fit on this cluster
            record["predicted_inputs"] = predicted_inputs("fit", train, None, args.precision, detectors)
            model = geoanom.fit(train, precision=args.precision, detectors=detectors, client=client)
            record["seconds"] = time.perf_counter() - start
            record["tiles_fitted"] = len(model.ensembles)
        if args.phase == "fit":
            model.save(args.model)
            record["observations"] = int(train["tas"].size)
        else:  # score, detect, detect-trim: a score of the whole cube, written
            if args.phase == "score":
                model = geoanom.load_model(args.model)
            else:  # as `geoanom detect`: the same workers, after the fit
                record["predicted_inputs_fit"] = record["predicted_inputs"]
                record["workers_after_fit_mb"] = {str(k): v["VmRSS"] for k, v in client.run(process_memory).items()}
                if args.phase == "detect-trim":  # what the workers hold once their free heap is given back
                    client.run(release_free_memory)
                    record["workers_after_trim_mb"] = {
                        str(k): v["VmRSS"] for k, v in client.run(process_memory).items()}
            record["predicted_inputs"] = predicted_inputs("score", cube, model, args.precision, None)
            geoanom.io.write_dataset(model.score(cube, client=client), args.output, warn_flags=False)
            record["seconds"] = time.perf_counter() - start
            record["observations"] = int(cube["tas"].size)
        peaks = client.run(process_memory)
        record["worker_peak_mb"] = {str(k): v["VmHWM"] for k, v in peaks.items()}
        record["worker_end_mb"] = {str(k): v["VmRSS"] for k, v in peaks.items()}
    finally:
        client.close()
        cluster.close()
    return record


def child_main(args: argparse.Namespace) -> int:
    record: dict = {"phase": args.phase}
    try:
        record.update(run_phase(args))
        record["ok"] = True
    except BaseException as exc:  # reported to the parent, not hidden
        record.update(ok=False, error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    print(RESULT_MARK + json.dumps(record), flush=True)
    return 0 if record["ok"] else 1


# --- the prediction -----------------------------------------------------------


def predict(row: dict) -> dict:
    """geoanom.memory's prediction of one worker's peak for a measured row, in MiB (and its task's bytes)."""
    from geoanom import memory

    phases = {"fit": ["fit"], "score": ["score"]}.get(row["phase"], ["fit", "score"])  # detect: the larger
    out = {"task_mb": 0.0, "worker_mb": 0.0}
    for phase in phases:
        given = row["predicted_inputs_fit" if phase == "fit" and row["phase"] != "fit" else "predicted_inputs"]
        keywords = {"phase": phase} if "phase" in inspect.signature(memory.task_bytes).parameters else {}
        task = memory.task_bytes(given["chunk_observations"], given["tiles_in_a_block"], given["detectors"],
                                 **keywords)
        worker = memory.worker_bytes(row["threads"], task) / MB
        if worker > out["worker_mb"]:
            out = {"task_mb": task / MB, "worker_mb": worker}
    return out


def table(rows: list[dict]) -> str:
    header = ("cube", "families", "thr", "chunk", "phase", "chunk obs", "tiles", "worker peaks MiB", "predicted",
              "pred/meas")
    lines = []
    for row in rows:
        if not row.get("ok"):
            lines.append((row["cube"], row["families"], row["threads"], row["time_chunk"], row["phase"], "-", "-",
                          "FAILED", "-", "-"))
            continue
        peaks = sorted(row["worker_peak_mb"].values(), reverse=True)
        predicted = predict(row)["worker_mb"]
        lines.append((row["cube"], row["families"], row["threads"], row["time_chunk"], row["phase"],
                      f"{row['predicted_inputs']['chunk_observations'] / 1e6:.2f} M",
                      row["predicted_inputs"]["tiles_in_a_block"], "/".join(f"{p:.0f}" for p in peaks),
                      f"{predicted:.0f}", f"{predicted / peaks[0]:.2f}"))
    widths = [max(len(str(r[i])) for r in [header, *lines]) for i in range(len(header))]
    fmt = lambda r: "  ".join(str(c).rjust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), fmt(tuple("-" * w for w in widths)), *map(fmt, lines)])


def summary(rows: list[dict]) -> dict:
    """The lowest, median and highest predicted / measured ratio for each cube size and phase."""
    ratios: dict[str, list[float]] = {}
    for row in rows:
        if row.get("ok"):
            key = f"{row['size']} {row['phase']}"
            ratios.setdefault(key, []).append(predict(row)["worker_mb"] / max(row["worker_peak_mb"].values()))
    return {key: {"min_ratio": min(values), "median_ratio": float(np.median(values)), "max_ratio": max(values),
                  "rows": len(values)} for key, values in ratios.items()}


# --- the parent ---------------------------------------------------------------


def run_child(phase: str, case: dict, store: Path, model: Path, output: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--store", str(store),
               "--model", str(model), "--output", str(output), "--precision", str(case["precision"]),
               "--threads", str(case["threads"]), "--workers", str(args.workers),
               "--time-chunk", str(case["time_chunk"])]
    if FAMILY_SETS[case["families"]]:
        command += ["--detectors", FAMILY_SETS[case["families"]]]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        return {"phase": phase, "ok": False, "error": f"timed out after {args.timeout:.0f} s"}
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        return {"phase": phase, "ok": False, "error": f"exit {proc.returncode}", "stderr_tail": proc.stderr[-3000:]}
    return json.loads(lines[-1][len(RESULT_MARK):])


def parent_main(args: argparse.Namespace) -> int:
    import geoanom

    started = dt.datetime.now(dt.timezone.utc)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="geoanom-worker-memory-") as tmp_name:
        tmp = Path(tmp_name)
        for cube_name in args.cube:
            shape = CUBES[cube_name]
            store = tmp / f"{cube_name}.zarr"
            write_cube(store, shape, shape.sizes[args.size])
            default_steps = geoanom.open_cube(str(store))["tas"].data.chunksize[0]
            for factor in args.chunk_factors:
                for families in args.families:
                    for threads in args.threads:
                        case = {"cube": cube_name, "size": args.size, "families": families, "threads": threads,
                                "time_chunk": max(1, round(default_steps * factor)), "chunk_factor": factor,
                                "precision": shape.precision, "workers": args.workers}
                        model, output = tmp / "model.npz", tmp / "scored.zarr"
                        for phase in args.phases:
                            print(f"{cube_name} {families} threads={threads} time chunk {case['time_chunk']} "
                                  f"{phase} ...", flush=True)
                            row = {**case, **run_child(phase, case, store, model, output, args)}
                            rows.append(row)
                            if row.get("ok"):
                                print(f"  {row['seconds']:.1f} s, worker peaks "
                                      + ", ".join(f"{v:.0f}" for v in row["worker_peak_mb"].values())
                                      + f" MiB, predicted {predict(row)['worker_mb']:.0f} MiB", flush=True)
                            else:
                                print(f"  FAILED: {row.get('error')}\n{row.get('traceback', row.get('stderr_tail', ''))}",
                                      flush=True)
                                if phase == "fit":
                                    break  # no model to score
                        model.unlink(missing_ok=True)
                        shutil.rmtree(output, ignore_errors=True)
    print("\n" + table(rows))
    print(json.dumps(summary(rows)))
    report = {
        "benchmark": "worker_memory", "date": started.isoformat(timespec="seconds"),
        "command": "python benchmarks/worker_memory.py " + " ".join(sys.argv[1:]),
        "notes": [
            "worker_peak_mb: VmHWM of each worker process (MiB) after the phase, each phase on a fresh LocalCluster "
            "(processes, geoanom's worker environment, no memory limit); it includes the worker's start and imports.",
            "fit: geoanom.fit(client=) on the first half of the time steps; score: load_model, model.score(client=) "
            "of the whole cube written with write_dataset.",
            "predicted: geoanom.memory.worker_bytes(threads, task_bytes(...)) from predicted_inputs, which are computed "
            "as geoanom/model/fit.py and score.py compute them (MiB).",
            *args.note,
        ],
        "machine": versions(), "results": rows, "summary": summary(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0 if all(r.get("ok") for r in rows) else 1


CASE = ("cube", "size", "families", "threads", "time_chunk", "workers", "phase")


def merge_main(args: argparse.Namespace) -> int:
    """Several runs of the same cases as one report: each case's row is its highest-peak run, with every run's peaks.

    One run's worker peaks vary by up to 60% (which worker holds which blocks when): the goal is the worst case.
    """
    reports = [json.loads(path.read_text()) for path in args.merge]
    cases: dict[tuple, list[dict]] = {}
    for report in reports:
        for row in report["results"]:
            cases.setdefault(tuple(row[key] for key in CASE), []).append(row)
    rows = []
    for runs in cases.values():
        ok = [run for run in runs if run.get("ok")]
        row = dict(max(ok, key=lambda run: max(run["worker_peak_mb"].values())) if ok else runs[0])
        row["runs_worker_peak_mb"] = [sorted(run["worker_peak_mb"].values()) for run in ok]
        rows.append(row)
    print(table(rows))
    print(json.dumps(summary(rows)))
    report = {**reports[0], "results": rows, "summary": summary(rows),
              "command": " && ".join(report["command"] for report in reports)
              + " && python benchmarks/worker_memory.py --merge " + " ".join(map(str, args.merge)),
              "dates": [report["date"] for report in reports], "machines": [report["machine"] for report in reports]}
    report["notes"] = [*reports[0]["notes"], "merged: each case's row is its run with the highest worker peak of "
                       f"{len(reports)} runs (runs_worker_peak_mb lists every run's)."]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", nargs="+", choices=sorted(CUBES), default=["annual", "monthly"])
    parser.add_argument("--size", choices=("small", "full", "large"), default="full")
    parser.add_argument("--families", nargs="+", choices=list(FAMILY_SETS), default=list(FAMILY_SETS))
    parser.add_argument("--threads", nargs="+", type=int, default=[1, 2], help="threads per worker")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--chunk-factors", nargs="+", type=float, default=[0.5, 1.0, 2.0],
                        help="time chunks as multiples of open_cube's default")
    parser.add_argument("--phases", nargs="+", choices=PHASES, default=["fit", "score"],
                        help="fit, score (the saved model, a fresh cluster), detect (fit then score on the same "
                             "workers, as `geoanom detect`), detect-trim (the same, the workers' free heap given "
                             "back between)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "worker_memory.json")
    parser.add_argument("--note", action="append", default=[], help="free text added to the JSON notes")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds allowed per phase")
    parser.add_argument("--merge", nargs="+", type=Path,
                        help="combine these reports into --out: each case's row is its run with the highest peak")
    parser.add_argument("--recompute", type=Path, help="print the table of this JSON report against geoanom.memory")
    # internal: one phase in this process
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--precision", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--time-chunk", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--detectors", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        args.threads = args.threads[0]
        return child_main(args)
    if args.merge:
        return merge_main(args)
    if args.recompute:
        rows = json.loads(args.recompute.read_text())["results"]
        print(table(rows))
        print(json.dumps(summary(rows)))
        return 0
    return parent_main(args)


if __name__ == "__main__":
    sys.exit(main())
