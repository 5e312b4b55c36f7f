"""The fit path's compiled kernels, timed against the numpy test oracles or against a baseline revision (best of 3).

* ``em``: :func:`geoanom.detectors.mixture.fit_mixtures` (1, 2 and 3
  components, BIC) on 736 tiles of 2048 rows of 2 correlated features with
  a few outliers, in batches of 46 tiles as ``geoanom.fit`` makes them for
  the annual throughput cube.
* ``climatology``: the robust climatology's two passes on one block of the
  monthly throughput cube's training half (180 months x 11,040 cells, the
  block ``Climatology.fit`` makes): ``press_block`` on the cells sampled in
  tiles of 165 cells, then ``final_block`` on every cell; and ``fit``:
  the whole ``Climatology.fit`` of that training half (every block, tile
  codes as groups, dask's synchronous scheduler).

Two comparisons:

* default: the package's compiled kernels against the numpy passes they
  replaced, which live on as test oracles (``tests/reference_kernels.py``):
  ``em_reference`` in the place of ``mixture._em_compiled``, and
  ``irls_reference`` and ``seasonal_spread_reference`` in the place of the
  robust fit's kernels with one design row per time step, as the previous
  code summed (against the compiled IRLS summed over the 12 distinct design
  rows). Writes ``benchmarks/results/fit_kernels.json``: ``numpy_s``,
  ``compiled_s``, ``speedup`` and the largest difference between the results.
* ``--baseline REV``: the package at ``REV`` (``git archive``) against the
  package at ``--new`` (default ``HEAD``) with the working tree's copies of
  the kernels' files (``KERNEL_FILES``) laid over it, so that other
  engineers' uncommitted edits elsewhere do not enter the comparison. Each
  tree runs in its own subprocess, its tree first on ``sys.path``,
  alternating old and new ``--rounds`` times. Writes
  ``benchmarks/results/fit_kernels_baseline.json``: the best ``old_s`` and
  ``new_s``, ``new_over_old`` ratios and the largest difference between the
  two trees' results.

``--cpu`` times the process's CPU time instead of the wall clock (the
machine is shared: other jobs slow the wall clock, less the CPU time).
``--quick`` fits 92 tiles, once (a smoke test: its times are not the
benchmark's figures), and adds ``_quick`` to the report's name.

Run from the repository root::

    python benchmarks/fit_kernels.py                    # compiled against the numpy oracles
    python benchmarks/fit_kernels.py --baseline HEAD~1  # this tree's kernels against HEAD~1's
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

import score_path  # noqa: E402  (its export_tree: git archive of a revision's package)
from throughput_cubes import CUBES, make_cube  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
N_TILES, N_ROWS, BATCH = 736, 2048, 46
KERNEL_FILES = (
    "geoanom/linalg.py", "geoanom/detectors/mixture.py", "geoanom/features/robust.py", "geoanom/features/irls.py",
    "geoanom/features/press.py", "geoanom/features/persistence.py", "geoanom/features/point_mass.py",
    "geoanom/features/scale_kernels.py", "geoanom/features/season_spread.py",
)
RESULT_MARK = "@@FITKERNELS@@ "
SETTINGS = {"tiles": N_TILES, "repeat": 3, "clock": time.perf_counter}


def best_of(work) -> tuple[float, object]:
    """Shortest time (``SETTINGS["clock"]``) of ``SETTINGS["repeat"]`` runs of ``work()``, and the last result."""
    clock = SETTINGS["clock"]
    times, result = [], None
    for _ in range(SETTINGS["repeat"]):
        started = clock()
        result = work()
        times.append(clock() - started)
    return min(times), result


def em_tiles(seed: int = 0) -> list[np.ndarray]:
    """Standardised (anomaly, neighbour mean)-like samples: correlated, heavy-tailed in places."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(N_TILES):
        rho = 0.3 + 0.6 * rng.random()
        z = rng.normal(size=(N_ROWS, 2))
        X = np.column_stack([z[:, 0], rho * z[:, 0] + np.sqrt(1 - rho**2) * z[:, 1]])
        X[: N_ROWS // 100] *= 4.0  # 1% outliers
        out.append((X - X.mean(axis=0)) / X.std(axis=0))
    return out[:SETTINGS["tiles"]]


def fit_all(tiles: list[np.ndarray]) -> list:
    from geoanom.detectors import mixture

    fits = []
    for start in range(0, len(tiles), BATCH):
        fits += mixture.fit_mixtures(tiles[start:start + BATCH])
    return fits


def em_arrays(fits: list) -> dict[str, np.ndarray]:
    """The fitted mixtures as flat arrays, to compare two runs."""
    return {"components": np.array([len(f.weights) for f in fits]),
            "means": np.concatenate([f.means.ravel() for f in fits]),
            "covariances": np.concatenate([f.covariances.ravel() for f in fits]),
            "mean_llk": np.array([f.mean_llk for f in fits])}


def time_em(tiles: list[np.ndarray]) -> tuple[float, dict[str, np.ndarray]]:
    fit_all(tiles[:BATCH])  # compile / warm up
    seconds, fits = best_of(lambda: fit_all(tiles))
    return seconds, em_arrays(fits)


def em_difference(old: dict[str, np.ndarray], new: dict[str, np.ndarray]) -> dict:
    same_k = bool(np.array_equal(old["components"], new["components"]))
    difference = max(float(np.abs(old[name] - new[name]).max()) for name in ("means", "covariances", "mean_llk")) \
        if same_k else float("nan")
    return {"same_components": same_k, "max_difference": difference}


def monthly_training():
    """The monthly throughput cube's training half (180 months) and the values ``geoanom.fit`` stacks from it."""
    from geoanom.features.pipeline import stack_variables

    cube, _ = make_cube(CUBES["monthly"], 360)
    train = cube.isel(time=slice(0, 180))
    return train, stack_variables(train, None)


def monthly_block(values) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[int]]:
    """The first block of the monthly training values, its design columns, their frequencies and candidates."""
    from geoanom.features.climatology import _fit_layout
    from geoanom.features.climatology_design import choose_design

    design = choose_design(values["time"], None, "the benchmark cube")
    block = _fit_layout(values).blocks[0, 0, 0, 0].compute()
    prefixes = [q for q in range(1, design.columns(values["time"]).shape[1] + 1) if 2 * q + 4 <= 180]
    return block, design.columns(values["time"]), design.frequencies(values["time"]), prefixes


def time_climatology() -> tuple[dict[str, float], dict[str, np.ndarray], dict]:
    """Seconds and planes of ``press_block``, ``final_block`` (the monthly block) and ``Climatology.fit``; sizes."""
    from geoanom.features import Climatology, press, robust
    from geoanom.tiling import tile_codes, tile_labels

    train, values = monthly_training()
    values = values.persist()
    codes, _ = tile_codes(tile_labels(train, None))
    block, columns, omega, prefixes = monthly_block(values)
    n_rows, n_cols = block.shape[2:]
    tiles = (np.arange(n_rows)[:, None] // 11) * 100 + np.arange(n_cols)[None, :] // 15
    sampled = press.press_sample(tiles, block.shape[2:])
    prefix = np.full((1, 1) + block.shape[2:], columns.shape[1])
    seasons = np.arange(block.shape[1]) % 12
    seconds, planes = {}, {}
    for name, work in (("press", lambda: press.press_block(block, sampled, columns, omega, prefixes)),
                       ("final", lambda: robust.final_block(block, prefix, columns, omega, seasons, 12, 3.0)),
                       ("fit", lambda: Climatology.fit(values, groups=codes, scheduler="sync").planes())):
        work()  # compile / warm up
        seconds[name], planes[name] = best_of(work)
    sizes = {"times": block.shape[1], "cells": int(block[0, 0].size), "press_cells": int(sampled.sum())}
    return seconds, planes, sizes


def plane_difference(old: np.ndarray, new: np.ndarray) -> float:
    """Largest difference of two (plane, ...) arrays, in units of each plane's largest magnitude."""
    scale = np.nanmax(np.abs(old.reshape(old.shape[0], -1)), axis=1)[:, None]
    return float(np.nanmax(np.abs(new - old).reshape(old.shape[0], -1) / scale))


@contextlib.contextmanager
def numpy_oracles():
    """The numpy test oracles in the compiled kernels' place, one design row per time step; restored on exit."""
    sys.path.insert(0, str(ROOT / "tests"))
    from reference_kernels import (
        em_reference,
        irls_reference,
        loo_scale_reference,
        press_reference,
        seasonal_spread_reference,
    )

    from geoanom.detectors import mixture
    from geoanom.features import press, robust

    kernels = ((robust, "irls_cells", irls_reference), (robust, "seasonal_spread_cells", seasonal_spread_reference),
               (press, "press_cells", press_reference), (press, "loo_scale_cells", loo_scale_reference))
    saved = (mixture._em_compiled, [getattr(module, name) for module, name, _ in kernels], robust.DesignRows.of)
    mixture._em_compiled = em_reference
    for module, name, oracle in kernels:
        setattr(module, name, oracle)
    robust.DesignRows.of = classmethod(lambda cls, columns: cls(columns))
    try:
        yield
    finally:
        mixture._em_compiled = saved[0]
        for (module, name, _), kernel in zip(kernels, saved[1]):
            setattr(module, name, kernel)
        robust.DesignRows.of = saved[2]


def against_oracles() -> dict:
    """The compiled kernels against the numpy oracles, in this process."""
    sys.path.insert(0, str(ROOT))
    tiles = em_tiles()
    with numpy_oracles():
        em_numpy, em_numpy_result = time_em(tiles)
        clim_numpy, planes_numpy, sizes = time_climatology()
    em_compiled, em_compiled_result = time_em(tiles)
    clim_compiled, planes_compiled, _ = time_climatology()
    climatology = dict(sizes)
    for name in ("press", "final", "fit"):
        climatology[name] = {"numpy_s": clim_numpy[name], "compiled_s": clim_compiled[name],
                             "speedup": clim_numpy[name] / clim_compiled[name],
                             "max_difference_of_plane_scale": plane_difference(planes_numpy[name],
                                                                               planes_compiled[name])}
    em = {"tiles": len(tiles), "rows": N_ROWS, "numpy_s": em_numpy, "compiled_s": em_compiled,
          "speedup": em_numpy / em_compiled, **em_difference(em_numpy_result, em_compiled_result)}
    return {"reference": "numpy test oracles (tests/reference_kernels.py)", "climatology": climatology, "em": em}


# -- a baseline revision against this tree, in subprocesses -----------------------------------------------------------
def export_tree(revision: str, target: Path, overlay: bool) -> Path:
    """The package at ``revision`` in ``target`` (with the working tree's kernel files over it if ``overlay``)."""
    score_path.export_tree(revision, target, overlay=False)
    if overlay:
        for name in KERNEL_FILES:
            if (ROOT / name).exists():
                shutil.copy2(ROOT / name, target / name)
    return target


def child(args: argparse.Namespace) -> int:
    """Time both kernels with the package of ``args.tree``; save the results; print the seconds as one JSON line."""
    sys.path.insert(0, args.tree)
    import geoanom

    assert geoanom.__file__.startswith(args.tree), geoanom.__file__
    em_s, em = time_em(em_tiles())
    seconds, planes, _ = time_climatology()
    np.savez(args.save, **{f"em_{k}": v for k, v in em.items()}, **planes)
    print(RESULT_MARK + json.dumps({"em": em_s, **seconds}), flush=True)
    return 0


def run_child(tree: Path, save: Path, quick: bool) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--tree", str(tree), "--save", str(save)]
    command += ["--quick"] if quick else []
    command += ["--cpu"] if SETTINGS["clock"] is time.process_time else []
    proc = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if not lines:
        raise RuntimeError(f"child failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(RESULT_MARK):])


def against_baseline(args: argparse.Namespace) -> dict:
    """Each kernel at ``args.baseline`` against this tree's, in alternating subprocesses."""
    work = Path(tempfile.mkdtemp(prefix="fit-kernels-"))
    try:
        trees = {"old": export_tree(args.baseline, work / "old-tree", overlay=False),
                 "new": export_tree(args.new, work / "new-tree", overlay=True)}
        records: dict[str, list[dict]] = {"old": [], "new": []}
        for repeat in range(args.rounds):
            for name in (("old", "new") if repeat % 2 == 0 else ("new", "old")):
                records[name].append(run_child(trees[name], work / f"{name}.npz", args.quick))
                print(f"{name}: {records[name][-1]}", flush=True)
        old, new = np.load(work / "old.npz"), np.load(work / "new.npz")
        kernels = {}
        for kernel in ("em", "press", "final", "fit"):
            best = {name: min(r[kernel] for r in records[name]) for name in records}
            kernels[kernel] = {"old_s": best["old"], "new_s": best["new"], "new_over_old": best["new"] / best["old"],
                               "times_s": {name: [r[kernel] for r in records[name]] for name in records}}
        kernels["em"].update(em_difference({k[3:]: old[k] for k in old.files if k.startswith("em_")},
                                           {k[3:]: new[k] for k in new.files if k.startswith("em_")}))
        for kernel in ("press", "final", "fit"):
            kernels[kernel]["identical"] = bool(np.array_equal(old[kernel], new[kernel], equal_nan=True))
            kernels[kernel]["max_difference_of_plane_scale"] = plane_difference(old[kernel], new[kernel])
        return {"baseline": args.baseline, "new": f"{args.new} + working tree's {', '.join(KERNEL_FILES)}",
                "tiles": SETTINGS["tiles"], "rows": N_ROWS, "rounds": args.rounds, **kernels}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="git revision of the old code (default: compare with the numpy oracles)")
    parser.add_argument("--new", default="HEAD", help="git revision under the working tree's kernel files")
    parser.add_argument("--rounds", type=int, default=2, help="subprocesses per tree, alternating (with --baseline)")
    parser.add_argument("--quick", action="store_true", help="92 tiles, one repeat: a smoke test")
    parser.add_argument("--cpu", action="store_true", help="time the process's CPU, not the wall clock")
    parser.add_argument("--out", type=Path, help="the JSON report (default: results/fit_kernels[_baseline][_quick].json)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tree", help=argparse.SUPPRESS)
    parser.add_argument("--save", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        SETTINGS.update(tiles=2 * BATCH, repeat=1)
    if args.cpu:
        SETTINGS.update(clock=time.process_time)
    if args.child:
        return child(args)
    report = against_baseline(args) if args.baseline else against_oracles()
    print(json.dumps(report, indent=1))
    name = "fit_kernels" + ("_baseline" if args.baseline else "") + ("_cpu" if args.cpu else "") + \
        ("_quick" if args.quick else "")
    out = args.out or RESULTS / f"{name}.json"
    out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
