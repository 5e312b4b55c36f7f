"""Benchmark KMeansDetector fitting (batched compiled Lloyd vs scikit-learn per tile) and scoring.

Fits 729 seeded samples of 2 features shaped like standardised climate
anomalies (one to three heavy-tailed blobs of unequal spread, 2048 to 4096
rows, sizes ragged) two ways in the same run:

* old: the detector as it was before the batched fit, copied below as the
  baseline: canopy centres, then ``sklearn.cluster.KMeans(init=canopies,
  n_init=1)`` one tile at a time, scored with numpy broadcasting;
  also with scikit-learn's thread pools limited to one thread (its OpenMP
  region per Lloyd iteration costs most when other processes share the cores);
* new: ``KMeansDetector.fit_many`` (canopies per tile, one compiled Lloyd
  loop over all tiles, compiled scoring).

Also times the canopy step alone, old and new (the part still run per tile),
scores 1,000,000 rows with one fitted detector both ways (ns per
observation, both metrics), and checks that the two fits agree (centres,
counts, thresholds). Each time is the best of 3 runs, the old and new runs
interleaved (the machine is shared), timed with ``time.perf_counter``.
Prints a table and writes ``benchmarks/results/kmeans_fit.json``.

Run from the repository root::

    python benchmarks/kmeans_fit.py [--tiles N] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import sklearn
from sklearn.cluster import KMeans
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geoanom.detectors import KMeansDetector  # noqa: E402
from geoanom.detectors.base import Detector  # noqa: E402
from geoanom.detectors.inputs import standardised_sample  # noqa: E402
from geoanom.detectors.kmeans import (  # noqa: E402
    CANOPY_T1_OVER_T2,
    CANOPY_T2_PER_SQRT_DIM,
    MAX_CANOPIES,
    MIN_CANOPY_SHARE,
    canopy_centres,
)

REPEATS = 3


class OldKMeansDetector(KMeansDetector):
    """The detector before the batched fit (geoanom commit 13449d1): scikit-learn per tile, numpy scoring."""

    fit_many = classmethod(Detector.fit_many.__func__)  # one tile after another

    def _fit(self, X: np.ndarray) -> None:
        rng = np.random.default_rng(self.random_state)
        Z = standardised_sample(self, X, self.max_samples, rng)
        t2 = CANOPY_T2_PER_SQRT_DIM * np.sqrt(Z.shape[1])
        init = old_canopy_centres(Z, CANOPY_T1_OVER_T2 * t2, t2, rng)
        kmeans = KMeans(len(init), init=init, n_init=1, random_state=self.random_state).fit(Z)
        labels = kmeans.labels_
        counts = np.bincount(labels, minlength=len(init)).astype(np.float64)
        means = kmeans.cluster_centers_
        scatter = np.stack([_scatter(Z[labels == k], means[k]) for k in range(len(init))])
        self._set_clusters(means, counts, scatter)

    def _native_score(self, X: np.ndarray) -> np.ndarray:
        Z = (X - self.center_) / self.scale_
        offsets = Z[None] - self.means_[:, None, :]  # (k, n, d)
        nearest = np.argmin(np.einsum("knd,knd->kn", offsets, offsets), axis=0)
        own = offsets[nearest, np.arange(len(Z))]
        if self.metric == "euclidean":
            return np.linalg.norm(own, axis=1)
        whitened = np.einsum("nde,ne->nd", self._whitening[nearest], own)
        return np.linalg.norm(whitened, axis=1)


def old_canopy_centres(Z: np.ndarray, t1: float, t2: float, rng: np.random.Generator) -> np.ndarray:
    """The canopy step before it was compiled (numpy calls per canopy)."""
    remaining = np.ones(len(Z), dtype=bool)
    centres, sizes = [], []
    while remaining.any() and len(centres) < MAX_CANOPIES:
        seed = rng.choice(np.flatnonzero(remaining))
        distance = np.linalg.norm(Z - Z[seed], axis=1)
        members = distance < t1
        centres.append(Z[members].mean(axis=0))
        sizes.append(members.sum())
        remaining &= distance >= t2
    keep = np.asarray(sizes) >= max(2, MIN_CANOPY_SHARE * len(Z))
    return np.asarray(centres)[keep] if keep.any() else Z.mean(axis=0, keepdims=True)


def _scatter(members: np.ndarray, mean: np.ndarray) -> np.ndarray:
    deviations = members - mean
    return deviations.T @ deviations


def anomaly_samples(n_tiles: int, seed: int) -> list[np.ndarray]:
    """Seeded tiles of 2 features: 1-3 Student-t (4 dof) blobs of unequal spread, 2048-4096 rows."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_tiles):
        n = int(rng.integers(2048, 4097))
        k = int(rng.integers(1, 4))
        centres = rng.normal(scale=2.0, size=(k, 2))
        spread = rng.uniform(0.4, 1.2, size=(k, 2))
        member = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 2.0)))
        samples.append(centres[member] + spread[member] * rng.standard_t(4, size=(n, 2)))
    return samples


def best_of(function: Callable[[], Any], repeats: int = REPEATS) -> float:
    """Shortest wall time of ``repeats`` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def interleaved(functions: dict[str, Callable[[], Any]], repeats: int = REPEATS) -> dict[str, float]:
    """Best time of each function, the functions run in turn (a load spike hits all alike)."""
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(repeats):
        for name, function in functions.items():
            best[name] = min(best[name], best_of(function, 1))
    return best


def agreement(old: list[KMeansDetector], new: list[KMeansDetector]) -> dict[str, Any]:
    """How far the new fits are from the old: centres, counts, thresholds."""
    same_k = [len(a.means_) == len(b.means_) for a, b in zip(old, new)]
    pairs = [(a, b) for a, b, same in zip(old, new, same_k) if same]
    return {
        "tiles_with_same_cluster_count": int(sum(same_k)),
        "max_abs_centre_difference": max(float(np.abs(a.means_ - b.means_).max()) for a, b in pairs),
        "tiles_with_identical_counts": int(sum(np.array_equal(a.counts_, b.counts_) for a, b in pairs)),
        "max_relative_threshold_difference": max(
            abs(a.native_threshold_ - b.native_threshold_) / abs(a.native_threshold_) for a, b in pairs),
    }


def canopy_step(family: type[KMeansDetector], samples: list[np.ndarray], seeds: list[int]) -> None:
    """Standardise, subsample and place the canopies of every tile (the fit's per-tile Python part)."""
    canopies = old_canopy_centres if family is OldKMeansDetector else canopy_centres
    for seed, X in zip(seeds, samples):
        rng = np.random.default_rng(seed)
        Z = standardised_sample(family(random_state=seed), X, 2048, rng)
        t2 = CANOPY_T2_PER_SQRT_DIM * np.sqrt(Z.shape[1])
        canopies(Z, CANOPY_T1_OVER_T2 * t2, t2, rng)


def time_fits(samples: list[np.ndarray], seeds: list[int]) -> tuple[dict[str, float], list, list]:
    """Seconds to fit all tiles, old and new (and the canopy step alone); the fitted detectors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scikit-learn's "fewer distinct clusters" on duplicate rows
        old = OldKMeansDetector.fit_many(samples, seeds)
        new = KMeansDetector.fit_many(samples, seeds)  # also loads the compiled loop

        def old_one_thread() -> None:
            with threadpool_limits(1):  # no OpenMP region to synchronise per iteration
                OldKMeansDetector.fit_many(samples, seeds)

        seconds = interleaved({
            "old": lambda: OldKMeansDetector.fit_many(samples, seeds),
            "old_one_thread": old_one_thread,
            "new": lambda: KMeansDetector.fit_many(samples, seeds),
            "old_canopies": lambda: canopy_step(OldKMeansDetector, samples, seeds),
            "new_canopies": lambda: canopy_step(KMeansDetector, samples, seeds),
        })
    return seconds, old, new


def time_scoring(sample: np.ndarray, n_rows: int, seed: int) -> list[dict[str, Any]]:
    """ns per observation of native_score on ``n_rows`` rows, old and new, both metrics."""
    rows = np.random.default_rng(seed).normal(size=(n_rows, 2)) * sample.std(axis=0) * 1.5 + sample.mean(axis=0)
    out = []
    for metric in ("mahalanobis", "euclidean"):
        old = OldKMeansDetector(metric=metric, random_state=seed).fit(sample)
        new = KMeansDetector(metric=metric, random_state=seed).fit(sample)
        difference = float(np.abs(old.native_score(rows) - new.native_score(rows)).max())
        seconds = interleaved({"old": lambda: old.native_score(rows), "new": lambda: new.native_score(rows)})
        out.append({"metric": metric, "clusters": len(new.means_), "rows": n_rows,
                    "old_ns_per_observation": seconds["old"] / n_rows * 1e9,
                    "new_ns_per_observation": seconds["new"] / n_rows * 1e9,
                    "ratio": seconds["old"] / seconds["new"], "max_abs_score_difference": difference})
    return out


def print_table(n_tiles: int, fits: dict[str, float], scoring: list[dict[str, Any]], agree: dict[str, Any]) -> None:
    print(f"KMeansDetector on {n_tiles} tiles, best of {REPEATS} (old and new interleaved)")
    print(f"  fit   old (scikit-learn per tile) {fits['old']:8.3f} s   new (batched) {fits['new']:8.3f} s   "
          f"ratio {fits['old'] / fits['new']:6.1f}x")
    print(f"        old with scikit-learn on one thread {fits['old_one_thread']:8.3f} s   "
          f"ratio {fits['old_one_thread'] / fits['new']:6.1f}x")
    print(f"        of which standardising and canopies: old {fits['old_canopies']:.3f} s   "
          f"new {fits['new_canopies']:.3f} s   ratio {fits['old_canopies'] / fits['new_canopies']:.1f}x")
    for row in scoring:
        print(f"  score {row['metric']:<11} k={row['clusters']}  old {row['old_ns_per_observation']:7.1f} ns/obs   "
              f"new {row['new_ns_per_observation']:7.1f} ns/obs   ratio {row['ratio']:5.1f}x   "
              f"max |difference| {row['max_abs_score_difference']:.1e}")
    print(f"  agreement: {agree['tiles_with_same_cluster_count']}/{n_tiles} tiles with the same clusters, "
          f"centres within {agree['max_abs_centre_difference']:.1e}, "
          f"{agree['tiles_with_identical_counts']} with identical counts, "
          f"thresholds within {agree['max_relative_threshold_difference']:.1e} (relative)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=729)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows scored")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "kmeans_fit.json")
    args = parser.parse_args(argv)

    samples = anomaly_samples(args.tiles, args.seed)
    seeds = list(range(args.seed, args.seed + args.tiles))
    fits, old, new = time_fits(samples, seeds)
    agree = agreement(old, new)
    scoring = time_scoring(samples[0], args.rows, args.seed)
    print_table(args.tiles, fits, scoring, agree)

    result = {
        "benchmark": "kmeans_fit",
        "repeats": REPEATS,
        "timer": "time.perf_counter, best of repeats, old and new interleaved",
        "seed": args.seed,
        "tiles": args.tiles,
        "rows_per_tile": [int(min(len(X) for X in samples)), int(max(len(X) for X in samples))],
        "fit_seconds": {"old_sklearn_per_tile": fits["old"], "new_batched": fits["new"],
                        "ratio": fits["old"] / fits["new"],
                        "old_sklearn_one_thread": fits["old_one_thread"],
                        "ratio_one_thread": fits["old_one_thread"] / fits["new"],
                        "standardise_and_canopies_old": fits["old_canopies"],
                        "standardise_and_canopies_new": fits["new_canopies"]},
        "scoring": scoring,
        "agreement": agree,
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
