"""The background ring's mean: the compiled kernel against scipy's uniform_filter box sums, in the same run.

    python benchmarks/ring_mean.py            # benchmarks/results/ring_mean.json

A block shaped like the annual throughput cube's training half (520 x 100 x
100, float64 anomalies, a patch of land), ring 3-7 cells as the ``event``
family's background feature. Alternating rounds, CPU time of each; the
values compared (the kernel's sums run in another order, so they agree to
rounding, not bit for bit).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from scipy import ndimage

from geoanom.features.neighbourhood import BACKGROUND_INNER, BACKGROUND_OUTER
from geoanom.features.ring import ring_mean

RESULTS = Path(__file__).parent / "results"


def uniform_filter_ring(block: np.ndarray) -> np.ndarray:
    """The earlier ring mean: box sums by uniform_filter, outer box less inner box (the baseline)."""
    valid = np.isfinite(block)
    values, weights = np.where(valid, block, 0.0), valid.astype(np.float64)

    def box(part, half):
        side = 2 * half + 1
        return ndimage.uniform_filter(part, size=(1, 1, side, side), mode="constant") * side * side

    total, count = (box(part, BACKGROUND_OUTER) - box(part, BACKGROUND_INNER) for part in (values, weights))
    np.rint(count, out=count)
    lonely = count < 0.5
    np.divide(total, count, out=total, where=~lonely)
    total[lonely] = 0.0
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", default=str(RESULTS / "ring_mean.json"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    block = rng.normal(size=(1, 520, 100, 100))
    block[0, :, 10:30, 40:60] = np.nan
    compiled = ring_mean(block, BACKGROUND_INNER, BACKGROUND_OUTER)  # compiles (cached) before the clock
    difference = float(np.max(np.abs(compiled - uniform_filter_ring(block))))
    seconds = {"uniform_filter": [], "compiled": []}
    for round_ in range(args.rounds):
        order = ("uniform_filter", "compiled") if round_ % 2 == 0 else ("compiled", "uniform_filter")
        for name in order:
            started = time.process_time()
            if name == "compiled":
                ring_mean(block, BACKGROUND_INNER, BACKGROUND_OUTER)
            else:
                uniform_filter_ring(block)
            seconds[name].append(time.process_time() - started)
    medians = {name: statistics.median(runs) for name, runs in seconds.items()}
    report = {"block": list(block.shape), "cpu_seconds": seconds, "median_cpu_seconds": medians,
              "compiled_vs_uniform_filter": medians["compiled"] / medians["uniform_filter"],
              "largest_difference": difference}
    print(f"ring mean of a {' x '.join(map(str, block.shape[1:]))} block, CPU median of {args.rounds}: "
          f"uniform_filter {medians['uniform_filter']:.3f} s, compiled {medians['compiled']:.3f} s "
          f"({report['compiled_vs_uniform_filter']:.2f}x); largest difference {difference:.1e}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
