"""The default ensemble's four families, fit and scoring, old code against new in the same run (CPU time).

Data: ``--tiles`` (729, the annual throughput cube's tiles) tiles, each a
training sample of 4096 rows x 2 features (the size of the sketches
``geoanom.fit`` hands to the families) drawn from a seeded normal with its
own correlation (rho uniform in [-0.9, 0.9]) and 1 % outliers, and 2900
rows to score (about a time block of one tile of the annual cube).

For each family (``gmm``, ``kmeans``, ``dpmm``, ``iforest``) it times, in
batches of 46 tiles as ``geoanom.fit`` makes them:

* ``fit``: ``<Family>.fit_many(samples, seeds)`` (the family's batched fit,
  its threshold from the training scores included);
* ``score``: ``detector.irregularity(rows)`` of every tile.

Two source trees run in alternating subprocesses, or with ``--in-process``
alternating in this process, imported under two names (``--rounds`` each,
best CPU time of this thread kept): *old*, the package at ``--baseline`` (``git
archive``), and *new*, the package at ``--new`` (default ``HEAD``) with the
working tree's copies of the detector files of issue 14 (``score_path.DETECTOR_FILES``) laid
over it, so other engineers' uncommitted edits elsewhere do not enter the
comparison. The irregularities of both trees (fit thresholds and scores)
are compared bit for bit. Writes ``benchmarks/results/ensemble_kernels.json``.

Run from the repository root::

    python benchmarks/ensemble_kernels.py --baseline HEAD~1 [--rounds 3] [--families iforest] [--in-process]
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import score_path  # noqa: E402  (its export_tree: git archive of a revision's package)

RESULTS = ROOT / "benchmarks" / "results"
FAMILIES = ("gmm", "kmeans", "dpmm", "iforest")
CLASSES = {"gmm": "GMMDetector", "kmeans": "KMeansDetector", "dpmm": "DPMMDetector", "iforest": "IForestDetector"}
TRAIN_ROWS, SCORED_ROWS, BATCH, SEED = 4096, 2900, 46, 14
RESULT_MARK = "@@ENSEMBLEKERNELS@@ "


def make_tiles(n_tiles: int, seed: int = SEED) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per tile: a training sample and rows to score (1 % outliers at 3 to 5 standard deviations)."""
    rng = np.random.default_rng(seed)
    train, test = [], []
    for _ in range(n_tiles):
        rho = rng.uniform(-0.9, 0.9)
        chol = np.linalg.cholesky(np.array([[1.0, rho], [rho, 1.0]]))
        rows = []
        for n in (TRAIN_ROWS, SCORED_ROWS):
            n_out = n // 100
            angle, radius = rng.uniform(0, 2 * np.pi, n_out), rng.uniform(3.0, 5.0, n_out)
            outliers = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
            rows.append(np.concatenate([rng.normal(size=(n - n_out, 2)), outliers]) @ chol.T)
        train.append(rows[0])
        test.append(rows[1])
    return train, test


def time_families(detectors: Any, train: list[np.ndarray], test: list[np.ndarray],
                  families: list[str]) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """CPU seconds of each family's batched fit and scoring with the package ``detectors``; the outputs."""
    seeds = list(range(len(train)))
    record, saved = {}, {}
    for family in families:
        cls = getattr(detectors, CLASSES[family])
        cls.fit_many(train[:2], seeds[:2])  # compile (or load the compiled kernels) before the clock
        fitted = []
        start = time.thread_time()
        for lo in range(0, len(train), BATCH):
            fitted += cls.fit_many(train[lo:lo + BATCH], seeds[lo:lo + BATCH])
        record[f"{family}_fit_s"] = time.thread_time() - start
        start = time.thread_time()
        scores = [detector.irregularity(rows) for detector, rows in zip(fitted, test)]
        record[f"{family}_score_s"] = time.thread_time() - start
        saved[f"{family}_threshold"] = np.array([d.native_threshold_ for d in fitted])
        saved[f"{family}_score"] = np.concatenate(scores)
    return record, saved


def child(args: argparse.Namespace) -> int:
    """Fit and score each family with the package of ``args.tree``; save the outputs; print CPU seconds."""
    sys.path.insert(0, args.tree)
    import geoanom.detectors as detectors

    assert detectors.__file__.startswith(args.tree), detectors.__file__
    record, saved = time_families(detectors, *make_tiles(args.tiles), args.families)
    np.savez(args.save, **saved)
    print(RESULT_MARK + json.dumps(record), flush=True)
    return 0


def in_process(trees: dict[str, Path], args: argparse.Namespace) -> tuple[dict, dict]:
    """Both trees imported into this process (as ``geoanom_old`` and ``geoanom_new``), rounds alternating.

    Less noisy on a shared machine than subprocesses (same heap, same
    process, interleaved in time). The package's modules import each other
    relatively, so a renamed copy is a package of its own.
    """
    packages = {}
    for name, tree in trees.items():
        renamed = tree / f"geoanom_{name}"
        if not renamed.exists():
            (tree / "geoanom").rename(renamed)
        sys.path.insert(0, str(tree))
        packages[name] = importlib.import_module(f"geoanom_{name}.detectors")
    data = make_tiles(args.tiles)
    records: dict[str, list[dict]] = {"old": [], "new": []}
    saved = {}
    for repeat in range(args.rounds):
        for name in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
            record, saved[name] = time_families(packages[name], *data, args.families)
            records[name].append(record)
            print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in record.items()), flush=True)
    return records, saved


def run_child(tree: Path, save: Path, args: argparse.Namespace) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--tree", str(tree), "--save", str(save),
               "--tiles", str(args.tiles), "--families", *args.families]
    return score_path.run_marked(command, RESULT_MARK)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", required=False, default="HEAD", help="git revision of the old code")
    parser.add_argument("--new", default="HEAD", help="git revision under the working tree's detector files")
    parser.add_argument("--rounds", type=int, default=3, help="subprocesses per tree, alternating")
    parser.add_argument("--tiles", type=int, default=729)
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--in-process", action="store_true",
                        help="import both trees into this process and alternate there (less noise than subprocesses)")
    parser.add_argument("--out", type=Path, default=RESULTS / "ensemble_kernels.json")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child(args)
    work = Path(tempfile.mkdtemp(prefix="ensemble-kernels-"))
    try:
        trees = {"old": score_path.export_tree(args.baseline, work / "old-tree", overlay=False),
                 "new": score_path.export_tree(args.new, work / "new-tree", overlay=True,
                                               files=score_path.DETECTOR_FILES)}
        if args.in_process:
            records, saved = in_process(trees, args)
            old, new = saved["old"], saved["new"]
        else:
            records = {"old": [], "new": []}
            for repeat in range(args.rounds):
                for name in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
                    records[name].append(run_child(trees[name], work / f"{name}.npz", args))
                    print(f"{name}: " + ", ".join(f"{k} {v:.3f}" for k, v in records[name][-1].items()), flush=True)
            old, new = (dict(np.load(work / f"{name}.npz")) for name in ("old", "new"))
        rows = {}
        for key in records["old"][0]:
            best = {name: min(r[key] for r in records[name]) for name in records}
            rows[key] = {"old_s": best["old"], "new_s": best["new"], "new_over_old": best["new"] / best["old"]}
        identical = {key: bool(np.array_equal(old[key], new[key], equal_nan=True)) for key in old}
        # where they differ: the largest difference relative to the old value's size (1 where either is NaN alone)
        largest = {key: float(np.nanmax(np.abs(new[key] - old[key]) / np.maximum(np.abs(old[key]), 1e-300)))
                   for key in old if not identical[key]}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    total = {name: sum(rows[key][f"{name}_s"] for key in rows) for name in ("old", "new")}
    report = {"benchmark": "ensemble_kernels", "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "baseline": args.baseline, "new": f"{args.new} + working tree's detector files",
              "mode": "in one process, alternating" if args.in_process else "alternating subprocesses",
              "tiles": args.tiles, "train_rows": TRAIN_ROWS, "scored_rows": SCORED_ROWS, "rounds": args.rounds,
              "timer": "time.thread_time (CPU of the one thread), best of the rounds", "cpu_s": rows,
              "total": {**total, "new_over_old": total["new"] / total["old"]}, "identical": identical,
              "largest_relative_difference": largest}
    print(f"{'':18} {'old s':>8} {'new s':>8} {'new/old':>8}")
    for key, row in {**rows, "total": {"old_s": total["old"], "new_s": total["new"],
                                       "new_over_old": total["new"] / total["old"]}}.items():
        print(f"{key:18} {row['old_s']:8.3f} {row['new_s']:8.3f} {row['new_over_old']:8.3f}")
    print("identical:", all(identical.values()), "largest relative differences:", largest)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
