"""The fit path's kernels, previous numpy code against the compiled code, in the same run (best of 3).

* ``em``: :func:`geoanom.detectors.mixture.fit_mixtures` (1, 2 and 3
  components, BIC) on 736 tiles of 2048 rows of 2 correlated features with
  a few outliers, in batches of 46 tiles as ``geoanom.fit`` makes them for
  the annual throughput cube; ``mixture.COMPILED`` False (the batched numpy
  passes) against True (compiled EM).

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

from geoanom.detectors import mixture  # noqa: E402

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


def main() -> int:
    report = {"em": measure_em()}
    print(json.dumps(report, indent=1))
    RESULTS.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
