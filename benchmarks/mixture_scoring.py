"""The density family's scoring: numpy passes (the previous code) against the compiled pass, same run.

Fits ``GMMDetector`` and ``DPMMDetector`` on 729 seeded tiles (2 features,
4096 rows each) and scores 1428 rows per tile (about 1.04 M observations, as
the annual throughput cube at its small size), timing the previous numpy
implementation (kept here as the baseline) and
:func:`geoanom.detectors.mixture_scoring.fitness_scores`, and checking they agree.

Run from the repository root::

    python benchmarks/mixture_scoring.py   # writes benchmarks/results/mixture_scoring.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geoanom.detectors import DPMMDetector, GMMDetector  # noqa: E402

N_TILES, N_TRAIN, N_SCORE = 729, 4096, 1428


def numpy_fitness(detector, X: np.ndarray) -> np.ndarray:
    """The previous implementation: a dozen numpy passes with (k, n, d) temporaries."""
    Z = (X - detector.center_) / detector.scale_
    projected = Z[None] @ detector._precision_chol - (detector.means_[:, None, :] @ detector._precision_chol)
    log_det = np.log(np.einsum("kii->ki", detector._precision_chol)).sum(axis=1)
    constant = np.log(detector.weights_) + log_det - 0.5 * Z.shape[1] * np.log(2 * np.pi)
    mahalanobis = np.einsum("knd,knd->kn", projected, projected)
    weighted = constant[:, None] - 0.5 * mahalanobis
    peak = weighted.max(axis=0)
    llk = peak + np.log(np.exp(weighted - peak).sum(axis=0))
    assigned = detector._assign(weighted, mahalanobis, Z.shape[1])
    fitness = (llk - detector.model_llk_) / max(abs(detector.model_llk_), 1.0)
    std = detector._component_std
    return fitness * np.sqrt(np.square((Z - detector.means_[assigned]) / std[assigned]).sum(axis=1))


def tiles(seed: int = 0) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    train, score = [], []
    for i in range(N_TILES):
        shift = rng.normal(size=2) * (i % 3)
        data = np.concatenate([rng.normal(size=(N_TRAIN + N_SCORE, 2)),
                               rng.normal(size=(N_TRAIN + N_SCORE, 2)) * 0.5 + shift])[rng.permutation(2 * (N_TRAIN + N_SCORE))]
        train.append(data[:N_TRAIN])
        score.append(data[N_TRAIN:N_TRAIN + N_SCORE])
    return train, score


def main() -> int:
    train, score = tiles()
    report = {"benchmark": "mixture_scoring", "tiles": N_TILES, "rows_scored": N_TILES * N_SCORE, "families": {}}
    for family in (GMMDetector, DPMMDetector):
        detectors = family.fit_many(train, list(range(N_TILES)))
        detectors[0].native_score(score[0])  # compile (or load the cached machine code) before timing
        start = time.perf_counter()
        old = [numpy_fitness(d, X) for d, X in zip(detectors, score)]
        old_s = time.perf_counter() - start
        start = time.perf_counter()
        new = [d._native_score(X) for d, X in zip(detectors, score)]
        new_s = time.perf_counter() - start
        worst = max(float(np.max(np.abs(a - b) / np.maximum(np.abs(a), 1.0))) for a, b in zip(old, new))
        n = N_TILES * N_SCORE
        entry = {"numpy_seconds": old_s, "compiled_seconds": new_s, "numpy_ns_per_observation": old_s / n * 1e9,
                 "compiled_ns_per_observation": new_s / n * 1e9, "speedup": old_s / new_s,
                 "max_relative_difference": worst}
        report["families"][family.family] = entry
        print(f"{family.family}: numpy {entry['numpy_ns_per_observation']:.0f} ns/obs, compiled "
              f"{entry['compiled_ns_per_observation']:.0f} ns/obs ({entry['speedup']:.1f}x), "
              f"max relative difference {worst:.1e}")
    out = ROOT / "benchmarks" / "results" / "mixture_scoring.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
