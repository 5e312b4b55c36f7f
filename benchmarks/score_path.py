"""Scoring a saved model, old code against new in the same run: time and peak memory of score + write.

The operational path of issue 14 (``geoanom-all-saved`` in ``throughput.py``):
``geoanom.load_model``, ``model.score(cube)`` and ``geoanom.io.write_dataset``
on one of the throughput cubes (``throughput_cubes.py``), dask's threaded
scheduler. Two source trees are compared in alternating subprocesses:

* *old*: the package at ``--baseline`` (a git revision, ``git archive``);
* *new*: the package at ``--new`` (default ``HEAD``) with the working tree's
  copies of the score path's files (``SCORE_FILES``) laid over it, so that
  other engineers' uncommitted edits elsewhere do not enter the comparison.

Each subprocess puts its tree first on ``sys.path``. The cube and the model
(fitted by the *old* tree on the first half, default four families) are
made once per ``--workdir``. Each variant runs ``--repeat`` times,
alternating old and new; the table gives the best and median wall time of
score + write, peak RSS (``VmHWM``) and observations per second, and the
new/old ratios. The outputs of both trees are compared variable by variable
(bit for bit, NaN equal to NaN).

``--fit`` times fit + score + write instead (each run fits the default
ensemble on the first half, as ``throughput.py``'s ``geoanom-all-threads``),
and ``--overlay detectors`` lays the working tree's detector kernels
(``DETECTOR_FILES``) over ``--new`` instead of the score path's files
(``--overlay features``: the feature pipeline's, ``FEATURE_FILES``).
``--detectors gmm`` fits the model of that family alone (its own model file);
``--scheduler sync`` runs dask's single-threaded scheduler (steadier CPU
times on a loaded machine).

``--child-profile py-spy`` runs one more *new* subprocess under ``py-spy
record`` and writes its flame graph beside the JSON report.

``--outputs`` instead times, in this process, the fused score and the votes
of one 8 MiB block of irregularities (4 x 209 x 100 x 100 float32) as they
were made before (``apply_ufunc`` over a transposed view, then ``where``;
an int64 sum cast to int8) and as now (:func:`geoanom.model.result.fused_block`;
an int8 sum): CPU time, best of 7, and whether the bits are equal.

Run from the repository root::

    python benchmarks/score_path.py --baseline HEAD~1 [--cube annual] [--repeat 3]
    python benchmarks/score_path.py --outputs
    python benchmarks/score_path.py --baseline ac8752c --fit --overlay detectors   # fit + score + write
    python benchmarks/score_path.py --baseline HEAD --cube monthly --detectors gmm --overlay features --scheduler sync
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCORE_FILES = (
    "geoanom/model/score.py", "geoanom/model/result.py", "geoanom/detectors/isolation_walk.py",
    "geoanom/detectors/isolation_walk_avx512.py", "geoanom/detectors/isolation_padding.py", "geoanom/detectors/iforest.py",
    "geoanom/features/neighbourhood.py", "geoanom/features/pipeline.py", "geoanom/features/vectors.py",
    "geoanom/io/write.py", "geoanom/io/overwrite.py", "geoanom/io/temporaries.py", "geoanom/io/opening.py",
    "geoanom/tiling.py", "geoanom/grid.py", "geoanom/memory.py",
)
# The files of the default ensemble's fit and scoring kernels (issue 14), laid over with --overlay detectors.
DETECTOR_FILES = tuple(f"geoanom/detectors/{name}.py" for name in (
    "isolation_trees", "isolation_walk", "iforest", "dpmm", "variational", "kmeans", "kmeans_init", "lloyd", "gmm",
    "mixture", "mixture_scoring")) + ("geoanom/memory.py",)
# The feature pipeline alone (issue 14: each block's vectors made in one task), laid over with --overlay features.
FEATURE_FILES = tuple(f"geoanom/features/{name}.py" for name in ("pipeline", "vectors", "neighbourhood"))
OVERLAYS = {"score": SCORE_FILES, "detectors": DETECTOR_FILES, "features": FEATURE_FILES}
RESULT_MARK = "@@SCOREPATH@@ "


def peak_rss_mb() -> float:
    """This process's peak resident set size (VmHWM) in MB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def export_tree(revision: str, target: Path, overlay: bool, files: tuple[str, ...] = SCORE_FILES) -> Path:
    """The package at ``revision`` in ``target`` (with the working tree's ``files`` over it if ``overlay``)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", revision, "geoanom"], cwd=ROOT, capture_output=True, check=True)
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    if overlay:
        for name in files:
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, target / name)
    return target


def child(args: argparse.Namespace) -> int:
    """Load the model, score the cube, write it; print the figures as one JSON line."""
    sys.path.insert(0, args.tree)
    import dask  # before the clock

    import geoanom
    import geoanom.io

    assert geoanom.__file__.startswith(args.tree), geoanom.__file__
    dask.config.set(scheduler=args.scheduler)
    cube = geoanom.open_cube(args.store)
    start = time.perf_counter()
    cpu_start = time.process_time()
    if args.fit:  # the default ensemble fitted on the first half, as throughput.py's geoanom-all-threads
        model = geoanom.fit(cube.isel(time=slice(0, cube.sizes["time"] // 2)), precision=args.precision)
    else:
        model = geoanom.load_model(args.model)
    loaded = time.perf_counter()
    cpu_loaded = time.process_time()
    result = model.score(cube)
    graph = time.perf_counter()
    geoanom.io.write_dataset(result, args.output)
    done = time.perf_counter()
    cpu_done = time.process_time()
    record = {"cpu_s": cpu_done - cpu_start, "score_write_cpu_s": cpu_done - cpu_loaded, "load_s": loaded - start,
              "graph_s": graph - loaded, "write_s": done - graph, "score_write_s": done - loaded,
              "fit_score_write_s": done - start, "observations": int(cube["tas"].size), "peak_rss_mb": peak_rss_mb()}
    print(RESULT_MARK + json.dumps(record), flush=True)
    return 0


def prepare(args: argparse.Namespace, old_tree: Path) -> tuple[Path, Path]:
    """The cube's store and the saved model in the work directory, made once (the model by the old tree)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput_cubes import CUBES, write_cube

    work = Path(args.workdir) / f"{args.cube}-{args.size}"
    work.mkdir(parents=True, exist_ok=True)
    store = work / "cube.zarr"
    model = work / ("model.npz" if args.detectors is None else f"model-{args.detectors.replace(',', '-')}.npz")
    shape = CUBES[args.cube]
    if not store.exists():
        write_cube(store, shape, shape.sizes[args.size])
    if not model.exists():
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import geoanom; cube = geoanom.open_cube(sys.argv[2]); "
                "train = cube.isel(time=slice(0, cube.sizes['time'] // 2)); "
                "kw = {'detectors': sys.argv[5].split(',')} if sys.argv[5] else {}; "
                "geoanom.fit(train, precision=int(sys.argv[4]), **kw).save(sys.argv[3])")
        subprocess.run([sys.executable, "-c", code, str(old_tree), str(store), str(model), str(shape.precision),
                        args.detectors or ""], check=True)
    return store, model


def run_child(tree: Path, store: Path, model: Path, output: Path, profile: Path | None = None,
              fit_precision: int | None = None, scheduler: str = "threads") -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--tree", str(tree), "--store", str(store),
               "--model", str(model), "--output", str(output), "--scheduler", scheduler]
    if fit_precision is not None:
        command += ["--fit", "--precision", str(fit_precision)]
    if profile is not None:
        command = ["py-spy", "record", "-o", str(profile), "--format", "speedscope", "--threads", "--", *command]
    return run_marked(command, RESULT_MARK)


def run_marked(command: list[str], mark: str) -> dict:
    """Run a child process; its record: the JSON after ``mark`` on its last such line of output."""
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(mark)]
    if not lines:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(mark):])


def compare_outputs(old: Path, new: Path) -> dict[str, bool]:
    """Each variable of the two outputs equal bit for bit (NaN equal to NaN)?"""
    import numpy as np
    import xarray as xr

    a, b = xr.open_zarr(old, decode_times=False), xr.open_zarr(new, decode_times=False)
    out = {}
    for name in sorted(set(a.variables) | set(b.variables)):
        if name not in a.variables or name not in b.variables:
            out[name] = False
            continue
        x, y = a[name].values, b[name].values
        same_dtype = x.dtype == y.dtype
        if x.dtype.kind == "f":
            out[name] = same_dtype and np.array_equal(x.view(f"u{x.itemsize}"), y.view(f"u{y.itemsize}"))
        else:
            out[name] = same_dtype and np.array_equal(x, y)
    out["attrs"] = a.attrs == b.attrs
    return out


def summary(records: list[dict], timed: str = "score_write_s") -> dict:
    times = [r[timed] for r in records]
    return {"best_s": min(times), "median_s": statistics.median(times), "times_s": times,
            "best_cpu_s": min(r["cpu_s"] for r in records),
            "score_write_cpu_s": [r["score_write_cpu_s"] for r in records],
            "median_score_write_cpu_s": statistics.median(r["score_write_cpu_s"] for r in records),
            "peak_rss_mb": [r["peak_rss_mb"] for r in records], "best_rss_mb": min(r["peak_rss_mb"] for r in records),
            "obs_per_s_best": records[0]["observations"] / min(times)}


def output_kernels() -> int:
    """CPU time of the fused score and the votes of one block, the old way against the new."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from geoanom.detectors.fusion import fuse
    from geoanom.model.result import fused_block

    irr = np.random.default_rng(0).lognormal(0.0, 1.5, size=(4, 209, 100, 100)).astype(np.float32)
    irr[:, :3] = np.nan
    families = ("gmm", "kmeans", "dpmm", "iforest")

    def old_fused():
        fused = fuse(np.moveaxis(irr, 0, -1), families, axis=-1).astype(np.float32)
        return np.where((~np.isnan(irr)).all(axis=0), fused, np.nan).astype(np.float32)

    kernels = {"fused, before": old_fused, "fused, now": lambda: fused_block(irr, families),
               "votes, before": lambda: (irr > 1.0).sum(axis=0).astype(np.int8),
               "votes, now": lambda: (irr > 1.0).sum(axis=0, dtype=np.int8)}
    for name, kernel in kernels.items():
        best = min(_cpu(kernel) for _ in range(7))
        print(f"{name}: {best * 1e3:.1f} ms CPU per block")
    same = np.array_equal(old_fused().view(np.uint32), fused_block(irr, families).view(np.uint32))
    print(f"fused bits equal: {same}")
    return 0 if same else 1


def _cpu(kernel) -> float:
    start = time.process_time()
    kernel()
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git revision of the old code")
    parser.add_argument("--new", default="HEAD", help="git revision under the working tree's score files")
    parser.add_argument("--cube", default="annual", choices=("annual", "monthly"))
    parser.add_argument("--size", default="full", choices=("small", "full", "large"))
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workdir", default="/tmp/geoanom-score-path")
    parser.add_argument("--child-profile", choices=("py-spy",), help="also profile one new run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "score_path.json")
    parser.add_argument("--outputs", action="store_true", help="time the fused score and votes of one block")
    parser.add_argument("--fit", action="store_true",
                        help="fit the default ensemble on the first half in each run (timed) instead of loading the model")
    parser.add_argument("--overlay", choices=tuple(OVERLAYS), default="score",
                        help="which of the working tree's files to lay over --new: the score path's (default) or "
                             "the ensemble's detector kernels")
    parser.add_argument("--detectors", help="fit the model of these families (comma-separated) instead of the default "
                                            "ensemble")
    parser.add_argument("--scheduler", default="threads", choices=("threads", "sync"), help="dask's scheduler")
    parser.add_argument("--precision", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if args.outputs:
        return output_kernels()
    if not args.baseline:
        parser.error("--baseline is required")
    work = Path(args.workdir)
    old_tree = export_tree(args.baseline, work / "old-tree", overlay=False)
    new_tree = export_tree(args.new, work / "new-tree", overlay=True, files=OVERLAYS[args.overlay])
    store, model = prepare(args, old_tree)
    outputs = {"old": work / "old-out.zarr", "new": work / "new-out.zarr"}
    trees = {"old": old_tree, "new": new_tree}
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from throughput_cubes import CUBES

    fit_precision = CUBES[args.cube].precision if args.fit else None
    for name, tree in trees.items():  # numba compiles into each tree's cache: not timed
        run_child(tree, store, model, outputs[name], fit_precision=fit_precision, scheduler=args.scheduler)
    records: dict[str, list[dict]] = {"old": [], "new": []}
    for repeat in range(args.repeat):
        for name in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
            records[name].append(run_child(trees[name], store, model, outputs[name], fit_precision=fit_precision,
                                           scheduler=args.scheduler))
            print(f"{name}: {records[name][-1]}", flush=True)
    same = compare_outputs(outputs["old"], outputs["new"])
    timed = "fit_score_write_s" if args.fit else "score_write_s"
    report = {"benchmark": "score_path", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "cube": args.cube, "size": args.size, "baseline": args.baseline, "fit": args.fit,
              "detectors": args.detectors or "default", "scheduler": args.scheduler,
              "new": f"{args.new} + working tree's {args.overlay} files",
              "timed": timed, "old": summary(records["old"], timed), "new_": summary(records["new"], timed),
              "identical": same}
    report["ratio_best_time_new_over_old"] = report["new_"]["best_s"] / report["old"]["best_s"]
    report["ratio_best_cpu_new_over_old"] = report["new_"]["best_cpu_s"] / report["old"]["best_cpu_s"]
    report["ratio_median_score_write_cpu_new_over_old"] = (report["new_"]["median_score_write_cpu_s"]
                                                           / report["old"]["median_score_write_cpu_s"])
    report["ratio_best_rss_new_over_old"] = report["new_"]["best_rss_mb"] / report["old"]["best_rss_mb"]
    if args.child_profile:
        profile = args.out.with_suffix(".speedscope.json")
        run_child(new_tree, store, model, outputs["new"], profile)
        report["profile"] = str(profile)
    for name, key in (("old", "old"), ("new", "new_")):
        part = report[key]
        print(f"{name}: best {part['best_s']:.2f} s (median {part['median_s']:.2f}, CPU {part['best_cpu_s']:.1f} s "
              "including loading), "
              f"{part['obs_per_s_best'] / 1e6:.2f} M obs/s, peak RSS {part['best_rss_mb']:.0f} MB")
    print(f"new/old: time {report['ratio_best_time_new_over_old']:.3f}, "
          f"CPU {report['ratio_best_cpu_new_over_old']:.3f} (score + write alone, median: "
          f"{report['ratio_median_score_write_cpu_new_over_old']:.3f}), peak RSS {report['ratio_best_rss_new_over_old']:.3f}")
    print("identical: " + ", ".join(f"{k}={v}" for k, v in same.items()))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if all(same.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
