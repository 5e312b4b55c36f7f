"""Fit + score + write of one family (default ``gmm``), old code against new in the same run (issue 14).

What ``throughput.py``'s ``geoanom-<family>-threads`` row times: ``geoanom.open_cube``,
``geoanom.fit(first half, detectors=<family>)``, ``model.score(cube)`` written
with ``geoanom.io.write_dataset``, dask's threaded scheduler, on the
throughput cubes (``throughput_cubes.py``). Two source trees in alternating
subprocesses, as in ``score_path.py``:

* *old*: the package at ``--baseline`` (a git revision);
* *new*: the package at ``--new`` (default ``HEAD``) with the working tree's
  copies of the fit and score path's files (``PATH_FILES``) laid over it, so
  other engineers' uncommitted edits elsewhere stay out of the comparison.

For each cube, each tree runs ``--repeat`` times, alternating; the table
gives fit, score + write and total (best and median) and the new/old ratio
of the best totals and of the median totals. The written outputs of the two
trees are compared variable by variable, bit for bit.

Run from the repository root::

    python benchmarks/gmm_path.py --baseline HEAD~1 [--cube annual monthly] [--repeat 5] [--detectors gmm]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from score_path import compare_outputs, export_tree, run_marked  # noqa: E402  (benchmarks/ is on sys.path)

PATH_FILES = tuple(
    [f"geoanom/features/{name}.py" for name in (
        "anomaly", "calendar", "climatology", "irls", "neighbourhood", "pipeline", "robust", "spread_pooling", "tile_rows",
        "vectors", "filters", "regions", "region_stats", "stitching", "detrend", "persistence", "scale_kernels",
        "season_spread", "point_mass", "press")]
    + ["geoanom/detectors/sketch.py", "geoanom/detectors/gmm.py", "geoanom/detectors/mixture.py",
       "geoanom/detectors/mixture_scoring.py", "geoanom/model/fit.py", "geoanom/model/score.py", "geoanom/io/write.py",
       "geoanom/io/overwrite.py", "geoanom/io/temporaries.py", "geoanom/io/opening.py"])
RESULT_MARK = "@@GMMPATH@@ "


def child(args: argparse.Namespace) -> int:
    """Fit, score and write one cube in this process; print the figures as one JSON line."""
    sys.path.insert(0, args.tree)
    import dask  # noqa: F401  (imported before the clock, as throughput.py's children do)
    import sklearn  # noqa: F401
    import xarray  # noqa: F401

    import geoanom
    import geoanom.io
    import geoanom.model  # noqa: F401

    assert geoanom.__file__.startswith(args.tree), geoanom.__file__
    start = time.perf_counter()
    cpu_start = time.process_time()
    cube = geoanom.open_cube(args.store)
    train = cube.isel(time=slice(0, cube.sizes["time"] // 2))
    model = geoanom.fit(train, precision=args.precision, detectors=tuple(args.detectors.split(",")))
    fitted = time.perf_counter()
    result = model.score(cube)
    geoanom.io.write_dataset(result, args.output)
    done = time.perf_counter()
    record = {"fit_s": fitted - start, "score_write_s": done - fitted, "total_s": done - start,
              "cpu_s": time.process_time() - cpu_start}
    print(RESULT_MARK + json.dumps(record), flush=True)
    return 0


def run_child(tree: Path, store: Path, output: Path, precision: int, detectors: str) -> dict:
    return run_marked([sys.executable, str(Path(__file__).resolve()), "--child", "--tree", str(tree), "--store",
                       str(store), "--output", str(output), "--precision", str(precision), "--detectors", detectors],
                      RESULT_MARK)


def summary(records: list[dict]) -> dict:
    out = {}
    for key in ("fit_s", "score_write_s", "total_s", "cpu_s"):
        values = [r[key] for r in records]
        out[key] = {"best": min(values), "median": statistics.median(values), "all": values}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git revision of the old code (required)")
    parser.add_argument("--new", default="HEAD", help="git revision under the working tree's path files")
    parser.add_argument("--cube", nargs="+", default=["annual", "monthly"], choices=("annual", "monthly"))
    parser.add_argument("--size", default="full", choices=("small", "full", "large"))
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--detectors", default="gmm", help="comma-separated families")
    parser.add_argument("--workdir", default="/tmp/geoanom-gmm-path")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gmm_path.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    parser.add_argument("--precision", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    if not args.baseline:
        parser.error("--baseline is required")
    from throughput_cubes import CUBES, write_cube

    work = Path(args.workdir)
    trees = {"old": export_tree(args.baseline, work / "old-tree", overlay=False),
             "new": export_tree(args.new, work / "new-tree", overlay=True, files=PATH_FILES)}
    report: dict = {"benchmark": "gmm_path", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                    "baseline": args.baseline, "new": f"{args.new} + working tree's path files",
                    "detectors": args.detectors, "size": args.size, "cubes": {}}
    ok = True
    for name in args.cube:
        shape = CUBES[name]
        store = work / f"{name}-{args.size}.zarr"
        if not store.exists():
            write_cube(store, shape, shape.sizes[args.size])
        outputs = {tree: work / f"{name}-{tree}-out.zarr" for tree in trees}
        for tree, path in trees.items():  # numba compiles into each tree's cache: not timed
            run_child(path, store, outputs[tree], shape.precision, args.detectors)
        records: dict[str, list[dict]] = {"old": [], "new": []}
        for repeat in range(args.repeat):
            for tree in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
                records[tree].append(run_child(trees[tree], store, outputs[tree], shape.precision, args.detectors))
                r = records[tree][-1]
                print(f"{name} {tree}: fit {r['fit_s']:.2f} score+write {r['score_write_s']:.2f} "
                      f"total {r['total_s']:.2f} cpu {r['cpu_s']:.2f}", flush=True)
        same = compare_outputs(outputs["old"], outputs["new"])
        part = {"old": summary(records["old"]), "new": summary(records["new"]), "identical": same}
        for stat in ("best", "median"):
            part[f"ratio_{stat}_total_new_over_old"] = part["new"]["total_s"][stat] / part["old"]["total_s"][stat]
        report["cubes"][name] = part
        ok &= all(same.values())
        for key in ("fit_s", "score_write_s", "total_s"):
            o, n = part["old"][key], part["new"][key]
            print(f"{name} {key}: old best {o['best']:.2f} median {o['median']:.2f}; new best {n['best']:.2f} "
                  f"median {n['median']:.2f}; new/old best {n['best'] / o['best']:.3f} "
                  f"median {n['median'] / o['median']:.3f}")
        print(f"{name} identical: " + ", ".join(f"{k}={v}" for k, v in same.items()), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
