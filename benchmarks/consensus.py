"""Does asking other tiles (consensus) make the ensemble's flags more precise, and what does it cost?

    python benchmarks/consensus.py           # a few minutes on 2 cores; benchmarks/results/consensus.json
    python benchmarks/consensus.py --quick   # the synthetic cube, two kinds of event (about a minute)

On the accuracy benchmark's injected events (``geoanom.testing.inject_events``,
as in ``benchmarks/accuracy.py``: the model is fitted on the clean first
steps, events are injected only after them and that period is scored), the
majority flag ``ensemble`` is compared with ``ensemble & (consensus >= 0.5)``
for each consensus mode: precision (share of flags that are injected events)
and recall (share of injected observations flagged). A flag whose tile has no
partner (consensus NaN) is dropped by the filter. For ``region:PREFIX`` the
region is the prefix one character shorter than the tiles that holds the most
fitted tiles, and both flags are judged on its cells only. The cost is the
wall time of computing the whole result with and without the consensus.
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import xarray as xr
from accuracy import provenance  # the same record of the commit measured

import geoanom as ga
from geoanom.grid import spatial_dims
from geoanom.testing import EVENT_KINDS, inject_events, synthetic_cube

RESULTS = Path(__file__).parent / "results"
MODES = ("neighbours", "similar", "region")


def cases(quick: bool) -> list[tuple[str, xr.Dataset, str, int, tuple[str, ...]]]:
    """(name, cube, variable, training steps, kinds of event) of each case."""
    synthetic, _ = synthetic_cube(n_years=10, n_lat=24, n_lon=32, anomaly_rate=0.0, seed=0, frequency="month")
    if quick:
        return [("synthetic", synthetic, "tas", 60, ("warm_blob", "spike"))]
    sst = ga.sample_cube("sst")
    return [("synthetic", synthetic, "tas", 60, EVENT_KINDS),
            ("sst", sst, "surface_temperature", 36, ("warm_blob", "spike"))]


def region_spec(model: ga.AnomalyModel) -> str:
    """``region:PREFIX`` for the prefix one character shorter than the tiles holding the most fitted tiles."""
    counts = Counter(tile[:-1] for tile in model.tiles)
    return f"region:{counts.most_common(1)[0][0]}"


def timed_compute(result: xr.Dataset) -> tuple[xr.Dataset, float]:
    started = time.perf_counter()
    computed = result.compute()
    return computed, time.perf_counter() - started


def flag_metrics(truth: np.ndarray, flags: np.ndarray, keep: np.ndarray) -> dict[str, float]:
    """Precision, recall and the number of flags, on the observations ``keep``."""
    truth, flags = truth[keep], flags[keep]
    n_flags = int(flags.sum())
    return {"precision": float(truth[flags].mean()) if n_flags else float("nan"),
            "recall": float(flags[truth].mean()) if truth.any() else float("nan"), "flags": n_flags}


def run_case(name: str, cube: xr.Dataset, variable: str, n_train: int, kinds: tuple[str, ...]) -> list[dict]:
    """Fit once on the clean first ``n_train`` steps, then score each kind of event with and without consensus."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ga.fit(cube[[variable]].isel(time=slice(None, n_train)))
    specs = {"neighbours": "neighbours", "similar": "similar", "region": region_spec(model)}
    rows = []
    for kind in kinds:
        seed = zlib.crc32(f"{name}/{kind}/{n_train}".encode())  # the accuracy benchmark's events
        injected, events = inject_events(cube[[variable]], variable, kind, start=n_train, seed=seed)
        test = injected.isel(time=slice(n_train, None))
        order = ("time", *spatial_dims(test))
        truth = events.isel(time=slice(n_train, None)).transpose(*order).values.astype(bool)
        plain, plain_seconds = timed_compute(model.score(test))
        ensemble = plain["ensemble"].transpose(*order).values
        scored = np.isfinite(plain["fused_irregularity"].transpose(*order).values)
        row = {"cube": name, "kind": kind, "train_steps": n_train, "precision_level": model.precision,
               "tiles": len(model.ensembles), "events": int(truth[scored].sum()), "observations": int(scored.sum()),
               "seconds_score": plain_seconds, "modes": {}}
        for mode, spec in specs.items():
            result, seconds = timed_compute(model.score(test, consensus=spec))
            consensus = result["consensus"].transpose(*order).values
            keep = scored & (np.isfinite(consensus) if mode == "region" else True)
            partners = model.consensus_partners(spec)
            row["modes"][mode] = {
                "spec": spec, "seconds_score": seconds, "cost_ratio": seconds / plain_seconds,
                "mean_partners": float(np.mean([len(p) for p in partners.values()])),
                "flags_without_partner": int((ensemble & scored & ~np.isfinite(consensus)).sum()),
                "ensemble": flag_metrics(truth, ensemble, keep),
                "filtered": flag_metrics(truth, ensemble & (consensus >= 0.5), keep),
            }
        rows.append(row)
        report(row)
    return rows


def report(row: dict) -> None:
    print(f"{row['cube']:10s} {row['kind']:10s} events {row['events']:6d} / {row['observations']:7d}  "
          f"score {row['seconds_score']:.1f} s")
    for m in row["modes"].values():
        e, f = m["ensemble"], m["filtered"]
        print(f"    {m['spec']:12s} precision {e['precision']:.3f} -> {f['precision']:.3f}  "
              f"recall {e['recall']:.3f} -> {f['recall']:.3f}  flags {e['flags']:6d} -> {f['flags']:6d}  "
              f"partners {m['mean_partners']:.1f}  x{m['cost_ratio']:.1f} time", flush=True)


def summary(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Mean change of precision and recall (filtered minus ensemble) and mean cost per mode, over the cases."""
    out = {}
    for mode in MODES:
        modes = [r["modes"][mode] for r in rows]
        out[mode] = {
            "mean_precision_change": float(np.nanmean([m["filtered"]["precision"] - m["ensemble"]["precision"]
                                                       for m in modes])),
            "mean_recall_change": float(np.nanmean([m["filtered"]["recall"] - m["ensemble"]["recall"] for m in modes])),
            "mean_cost_ratio": float(np.mean([m["cost_ratio"] for m in modes])),
        }
        print(f"{mode:12s} precision {out[mode]['mean_precision_change']:+.3f}  "
              f"recall {out[mode]['mean_recall_change']:+.3f}  time x{out[mode]['mean_cost_ratio']:.1f}")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the synthetic cube and two kinds of event only")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = [row for case in cases(args.quick) for row in run_case(*case)]
    print("\nmean change, consensus-filtered minus ensemble flags, over the cases:")
    means = summary(rows)
    seconds = time.perf_counter() - started
    out = RESULTS / ("consensus_quick.json" if args.quick else "consensus.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds": seconds, "quick": args.quick, "provenance": provenance(), "cases": rows,
                               "summary": means}, indent=1))
    print(f"total {seconds:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
