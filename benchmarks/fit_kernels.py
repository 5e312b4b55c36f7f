"""The fit path's kernels, previous numpy code against the compiled code, in the same run (best of 3).

* ``em``: :func:`geoanom.detectors.mixture.fit_mixtures` (1, 2 and 3
  components, BIC) on 736 tiles of 2048 rows of 2 correlated features with
  a few outliers, in batches of 46 tiles as ``geoanom.fit`` makes them for
  the annual throughput cube; ``mixture.COMPILED`` False (the batched numpy
  passes) against True (compiled EM).
* ``climatology``: the robust climatology's two passes on one block of the
  monthly throughput cube's training half (180 months x 11,040 cells, the
  block ``Climatology.fit`` makes): ``press_block`` on the cells sampled in
  tiles of 165 cells, then ``final_block`` on every cell; the previous code
  (numpy passes, sums over every time step: ``robust.COMPILED`` False and
  one design row per step) against the compiled IRLS summed over the 12
  distinct design rows.

Each pair also reports the largest difference between the two results.

Run from the repository root::

    python benchmarks/fit_kernels.py   # writes benchmarks/results/fit_kernels.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput_cubes import CUBES, make_cube  # noqa: E402

from geoanom.detectors import mixture  # noqa: E402
from geoanom.features import robust  # noqa: E402
from geoanom.features.climatology import _fit_layout, choose_design  # noqa: E402
from geoanom.features.pipeline import stack_variables  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "fit_kernels.json"
N_TILES, N_ROWS, BATCH, REPEAT = 736, 2048, 46, 3


def best_of(work) -> float:
    """Shortest wall time of ``REPEAT`` runs of ``work()``."""
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


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
    return out


def fit_all(tiles: list[np.ndarray]) -> list:
    fits = []
    for start in range(0, len(tiles), BATCH):
        fits += mixture.fit_mixtures(tiles[start:start + BATCH])
    return fits


def measure_em() -> dict:
    tiles = em_tiles()
    results, seconds = {}, {}
    for compiled in (False, True):
        mixture.COMPILED = compiled
        fit_all(tiles[:BATCH])  # compile / warm up
        seconds[compiled] = best_of(lambda: results.__setitem__(compiled, fit_all(tiles)))
    old, new = results[False], results[True]
    same_k = all(len(a.weights) == len(b.weights) for a, b in zip(old, new))
    difference = max(max(np.abs(a.means - b.means).max(), np.abs(a.covariances - b.covariances).max(),
                         abs(a.mean_llk - b.mean_llk)) for a, b in zip(old, new))
    return {"tiles": N_TILES, "rows": N_ROWS, "numpy_s": seconds[False], "compiled_s": seconds[True],
            "speedup": seconds[False] / seconds[True], "same_components": same_k, "max_difference": float(difference)}


def monthly_block() -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The first block of the monthly throughput cube's training half, its design columns and candidates."""
    cube, _ = make_cube(CUBES["monthly"], 360)
    values = stack_variables(cube.isel(time=slice(0, 180)), None)
    columns = choose_design(values["time"], None, "the benchmark cube").columns(values["time"])
    block = _fit_layout(values).blocks[0, 0, 0, 0].compute()
    return block, columns, [q for q in range(1, columns.shape[1] + 1) if 2 * q + 4 <= 180]


def measure_climatology() -> dict:
    block, columns, prefixes = monthly_block()
    n_rows, n_cols = block.shape[2:]
    tiles = (np.arange(n_rows)[:, None] // 11) * 100 + np.arange(n_cols)[None, :] // 15
    sampled = robust.press_sample(tiles, block.shape[2:])
    prefix = np.full((1, 1) + block.shape[2:], columns.shape[1])
    seasons = np.arange(block.shape[1]) % 12
    design_of = robust._Design.of
    results, seconds = {}, {}
    for compiled in (False, True):
        robust.COMPILED = compiled
        robust._Design.of = design_of if compiled else classmethod(lambda cls, columns: cls(columns))
        for name, work in (("press", lambda: robust.press_block(block, sampled, columns, prefixes)),
                           ("final", lambda: robust.final_block(block, prefix, columns, seasons, 12))):
            work()  # compile / warm up
            seconds[name, compiled] = best_of(lambda: results.__setitem__((name, compiled), work()))  # noqa: B023
    robust._Design.of = design_of
    out = {"times": block.shape[1], "cells": int(block[0, 0].size), "press_cells": int(sampled.sum())}
    for name in ("press", "final"):
        old, new = results[name, False], results[name, True]
        scale = np.nanmax(np.abs(old.reshape(old.shape[0], -1)), axis=1)[:, None]
        error = np.abs(new - old).reshape(old.shape[0], -1) / scale
        out[name] = {"numpy_s": seconds[name, False], "compiled_s": seconds[name, True],
                     "speedup": seconds[name, False] / seconds[name, True],
                     "max_difference_of_plane_scale": float(np.nanmax(error))}
    return out


def main() -> int:
    report = {"climatology": measure_climatology(), "em": measure_em()}
    print(json.dumps(report, indent=1))
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
