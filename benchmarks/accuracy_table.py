"""The README's accuracy table, from ``benchmarks/results/accuracy.json`` (written by ``benchmarks/accuracy.py``).

One row per cube and kind of event: the mean ROC AUC over the training
lengths of each baseline, the fused score, the adaptive one and the
``event`` family alone, the ensemble flag's mean recall and false-alarm
share, and in how many training lengths each score beats every baseline.
The best of the baselines and the fused score is in bold.

Usage::

    python benchmarks/accuracy_table.py [benchmarks/results/accuracy.json]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

BASELINES = ["cell |z|", "season |z|", "clim |z|", "tile GMM"]
CUBES = {"synthetic": "synthetic", "sst": "SST", "north_america": "North America"}
KINDS = ["warm_blob", "cold_blob", "spike", "step", "drift"]
HEADER = ("| cube | event | cell \\|z\\| | month \\|z\\| | climatology \\|z\\| | tile GMM | **fused** | adaptive | "
          "`event` alone | ensemble recall / false alarms | fused beats every baseline | adaptive beats it | "
          "`event` beats it |")


def auc(case: dict, score: str) -> float:
    """ROC AUC of one score in one case."""
    return case["scores"][score]["roc_auc"]


def beats_baselines(case: dict, score: str) -> bool:
    """Whether ``score`` has a higher ROC AUC than every baseline in ``case``."""
    return auc(case, score) > max(auc(case, b) for b in BASELINES)


def row(cube: str, kind: str, cases: list[dict]) -> str:
    """One markdown row: the mean over the cases (training lengths) of one cube and kind."""
    means = {s: float(np.mean([auc(c, s) for c in cases])) for s in [*BASELINES, "fused", "adaptive", "event"]}
    best = max([*BASELINES, "fused"], key=means.get)
    cells = [f"**{means[s]:.3f}**" if s == best else f"{means[s]:.3f}" for s in [*BASELINES, "fused"]]
    recall = np.mean([c["scores"]["ensemble"]["recall"] for c in cases])
    false_alarms = np.mean([c["scores"]["ensemble"]["false_alarm_share"] for c in cases])
    wins = [f"{sum(beats_baselines(c, s) for c in cases)} of {len(cases)}" for s in ("fused", "adaptive", "event")]
    return " | ".join(["", CUBES[cube], kind.replace("_", " "), *cells, f"{means['adaptive']:.3f}",
                       f"{means['event']:.3f}", f"{recall:.2f} / {100 * false_alarms:.0f}%", *wins, ""]).strip()


def table(results: dict) -> list[str]:
    """The header, its rule and a row per cube and kind, in the README's order."""
    lines = [HEADER, "| --- | --- |" + " ---: |" * 11]
    for cube in CUBES:
        for kind in KINDS:
            cases = [c for c in results["cases"] if c["cube"] == cube and c["kind"] == kind]
            if cases:
                lines.append(row(cube, kind, cases))
    return lines


def summary(results: dict) -> str:
    """Cases won by the fused score (per cube), mean and worst margin, mean ROC AUC and average precision."""
    cases = results["cases"]
    margins = [auc(c, "fused") - max(auc(c, b) for b in BASELINES) for c in cases]
    per_cube = ", ".join(f"{CUBES[k]} {sum(beats_baselines(c, 'fused') for c in cases if c['cube'] == k)}/"
                         f"{sum(c['cube'] == k for c in cases)}" for k in CUBES)
    return (f"fused beats the best baseline in {sum(m > 0 for m in margins)} of {len(cases)} cases ({per_cube}); "
            f"margin mean {np.mean(margins):+.3f}, worst {min(margins):+.3f}; mean ROC AUC "
            f"{np.mean([auc(c, 'fused') for c in cases]):.3f}, mean average precision "
            f"{np.mean([c['scores']['fused']['average_precision'] for c in cases]):.3f}")


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "results" / "accuracy.json"
    results = json.loads(path.read_text())
    print("\n".join(table(results)))
    print()
    print(summary(results))


if __name__ == "__main__":
    main()
