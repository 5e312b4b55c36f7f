"""How well the event catalogue (``ga.events``) recovers the accuracy benchmark's injected events.

    python benchmarks/events.py            # a few minutes on 2 cores; benchmarks/results/events.json
    python benchmarks/events.py --quick    # the synthetic cube, two kinds; results/events_quick.json

The cases are those of ``benchmarks/accuracy.py`` at its longest training
length: each cube (the clean synthetic monthly cube, the embedded OSTIA SST,
the embedded HadCM3 North America air temperature), each kind of event of
:func:`geoanom.testing.inject_events` (warm and cold blobs, single-cell
spikes, a step and a drift in a rectangle), injected after the training
period with the same seeds. The model is ``ga.fit`` on the clean training
steps (default detectors) and scores the injected remainder.

An **injected event** is a connected component of the truth mask in
(time, lat, lon), labelled with the same rules as the detected ones
(``event_labels`` on the truth, connectivity 1): blobs that overlap in space
and time count as one. A **detected event** is a row of
``ga.events(result)`` (majority flag ``ensemble``, connectivity 1, no gap
bridging), and the variants of ``VARIANTS`` (``min_cells`` 3; gaps of one
step bridged). Per case and variant it reports:

- ``recovered_as_one``: injected events that exactly one detected event
  overlaps, that event overlapping no other injected event (one to one);
  ``inside_merged``: exactly one detected event overlaps it, but that
  event overlaps other injected events too; ``split``: more than one
  detected event overlaps it; ``missed``: none;
- ``merged``: detected events overlapping more than one injected event;
- ``purity``: the median, over detected events overlapping an injected
  one, of the share of their cells that are injected (1: the event is the
  injection; small: it also holds many flags the truth does not count);
- ``largest_event_share``: the share of all flagged cell-steps in the
  largest detected event (near 1 when flags percolate into one event);
- ``unmatched``: detected events overlapping no injected cell (false events,
  including real anomalies of the data that the truth does not count);
- ``start_right``: of the injected events that any detected event overlaps,
  how many have the earliest such detected event start on their first
  step; ``start_offset_steps``: the distribution (detected minus injected;
  negative: the detected event began earlier, joined to flags before the
  injection).

Scale: ``events`` on lazy handmade results of 10 and 20 million cells
(100 or 200 steps of 250 x 400, chunks of 10 x 125 x 200; flags where a
standard normal exceeds 1.9, about 3% of cells in mostly one-cell events,
or 3.2, about 0.07%), each in its own process: seconds and the peak
resident memory (``VmHWM``) above the process's before the call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import warnings
import zlib
from collections import Counter
from pathlib import Path

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

import geoanom as ga
from geoanom.grid import spatial_dims
from geoanom.queries.events import event_labels, events
from geoanom.testing import EVENT_KINDS, inject_events, synthetic_cube

RESULTS = Path(__file__).parent / "results"
VARIANTS = ((1, False), (3, False), (1, True))
"""(min_cells, bridge_gaps) of each catalogue compared; the first is the default."""


def setups(quick: bool) -> list[tuple[str, xr.Dataset, str, int]]:
    """(name, cube, variable, training steps): accuracy.py's cubes at their longest ('all') training length."""
    synthetic, _ = synthetic_cube(n_years=10, n_lat=24, n_lon=32, anomaly_rate=0.0, seed=0, frequency="month")
    cases = [("synthetic", synthetic, "tas", synthetic.sizes["time"] - 24)]
    if not quick:
        sst, north_america = ga.sample_cube("sst"), ga.sample_cube("north_america")
        cases += [("sst", sst, "surface_temperature", sst.sizes["time"] - 12),
                  ("north_america", north_america, "air_temperature", north_america.sizes["time"] - 40)]
    return cases


def overlaps(injected: np.ndarray, detected: np.ndarray) -> set[tuple[int, int]]:
    """(injected id, detected id) pairs sharing at least one cell-step."""
    both = (injected > 0) & (detected > 0)
    return set(zip(injected[both].tolist(), detected[both].tolist()))


def match(injected: np.ndarray, detected: np.ndarray, table) -> dict:
    """The recovery figures of one case (see the module docstring)."""
    pairs = overlaps(injected, detected)
    n_injected, n_detected = int(injected.max()), len(table)
    by_injection = Counter(i for i, _ in pairs)
    by_detection = Counter(d for _, d in pairs)
    injected_start = {i: int(np.flatnonzero((injected == i).any(axis=(1, 2)))[0]) for i in range(1, n_injected + 1)}
    detected_start = dict(zip(table["event"], table["start_step"]))
    sizes = dict(zip(table["event"], table["cells"]))
    shared = Counter(zip(injected[(injected > 0) & (detected > 0)].tolist(),
                         detected[(injected > 0) & (detected > 0)].tolist()))
    injected_cells = Counter()
    for (_, d), count in shared.items():
        injected_cells[d] += count
    purity = [injected_cells[d] / sizes[d] for d in by_detection]
    offsets = []
    for i in by_injection:
        first = min(detected_start[d] for j, d in pairs if j == i)
        offsets.append(first - injected_start[i])
    return {
        "injected": n_injected, "detected": n_detected,
        "recovered_as_one": sum(1 for i, d in pairs if by_injection[i] == 1 and by_detection[d] == 1),
        "inside_merged": sum(1 for i, d in pairs if by_injection[i] == 1 and by_detection[d] > 1),
        "split": sum(1 for i in range(1, n_injected + 1) if by_injection[i] > 1),
        "missed": sum(1 for i in range(1, n_injected + 1) if by_injection[i] == 0),
        "merged": sum(1 for d in by_detection.values() if d > 1),
        "unmatched": n_detected - len(by_detection),
        "purity": float(np.median(purity)) if purity else float("nan"),
        "largest_event_share": float(table["cells"].max() / table["cells"].sum()) if n_detected else 0.0,
        "start_right": sum(1 for offset in offsets if offset == 0),
        "start_overlapped": len(offsets),
        "start_offset_steps": dict(sorted(Counter(offsets).items())),
    }


def run_case(name: str, model: ga.AnomalyModel, cube: xr.Dataset, variable: str, n_train: int, kind: str) -> list[dict]:
    seed = zlib.crc32(f"{name}/{kind}/{n_train}".encode())  # accuracy.py's seed for the same case
    injected_cube, truth = inject_events(cube[[variable]], variable, kind, start=n_train, seed=seed)
    test = injected_cube.isel(time=slice(n_train, None))
    truth = truth.isel(time=slice(n_train, None)).transpose("time", *spatial_dims(cube))
    started = time.perf_counter()
    result = model.score(test).persist()
    score_seconds = time.perf_counter() - started
    injected = event_labels(xr.Dataset({"ensemble": truth})).values
    rows = []
    for min_cells, bridge in VARIANTS:
        started = time.perf_counter()
        labels = event_labels(result, min_cells=min_cells, bridge_gaps=bridge).compute()
        table = events(result, labels=labels)
        seconds = time.perf_counter() - started
        table["start_step"] = np.searchsorted(result["time"].values, table["start"].values)
        figures = match(injected, labels.values, table)
        rows.append({"cube": name, "kind": kind, "train_steps": n_train, "min_cells": min_cells, "bridge_gaps": bridge,
                     "flagged": int(result["ensemble"].sum()), "truth_cells": int(truth.sum()),
                     "seconds_score": score_seconds, "seconds_events": seconds, **figures})
        shown = ("injected", "recovered_as_one", "inside_merged", "split", "missed", "merged", "detected", "unmatched")
        print(f"  {name:13s} {kind:9s} {variant_name(min_cells, bridge)} " + " ".join(f"{k} {figures[k]}" for k in shown)
              + f" start {figures['start_right']}/{figures['start_overlapped']} purity {figures['purity']:.2f}"
              f" largest {100 * figures['largest_event_share']:.0f}% ({seconds:.1f} s)", flush=True)
    return rows


SCALE = ((100, 1.9), (200, 1.9), (100, 3.2), (200, 3.2))
"""(time steps of 250 x 400 cells, flag threshold on a standard normal) of each scale case."""


def peak_mib() -> float:
    """This process's peak resident memory (VmHWM), MiB."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM"))


def scale_case(steps: int, threshold: float) -> dict:
    """Time and peak memory of ``events`` on a lazy handmade result (run in a fresh process)."""
    shape, chunks = (steps, 250, 400), (10, 125, 200)
    noise = da.random.default_rng(0).standard_normal(shape, chunks=chunks, dtype=np.float32)
    dims = ("time", "lat", "lon")
    result = xr.Dataset(
        {"ensemble": (dims, noise > threshold), "fused_irregularity": (dims, abs(noise)), "tas_anomaly": (dims, noise),
         "tile": (dims[1:], np.zeros(shape[1:], dtype=np.int32), {"flag_values": [0], "flag_meanings": "s"})},
        coords={"time": pd.date_range("2000-01-01", periods=steps, freq="MS"), "lat": np.linspace(-60, 60, shape[1]),
                "lon": np.linspace(-180, 180, shape[2], endpoint=False)})
    before = peak_mib()
    started = time.perf_counter()
    table = events(result)
    return {"cells": int(np.prod(shape)), "threshold": threshold, "events": len(table),
            "flagged_cells": int(table["cells"].sum()), "seconds": time.perf_counter() - started,
            "peak_mib_above_start": peak_mib() - before}


def scale_rows() -> list[dict]:
    rows = []
    for steps, threshold in SCALE:
        done = subprocess.run([sys.executable, __file__, "--scale-case", str(steps), str(threshold)],
                              capture_output=True, text=True, check=True)
        rows.append(json.loads(done.stdout.splitlines()[-1]))
        row = rows[-1]
        print(f"  scale: {row['cells'] / 1e6:.0f} M cells, {row['events']} events ({row['flagged_cells']} flagged cells): "
              f"{row['seconds']:.1f} s, peak memory +{row['peak_mib_above_start']:.0f} MiB", flush=True)
    return rows


def variant_name(min_cells: int, bridge: bool) -> str:
    return f"min {min_cells}" + (" bridge" if bridge else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the synthetic cube, warm blobs and spikes; no scale")
    parser.add_argument("--scale-case", nargs=2, type=float, metavar=("STEPS", "THRESHOLD"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.scale_case:
        print(json.dumps(scale_case(int(args.scale_case[0]), args.scale_case[1])))
        return
    kinds = ("warm_blob", "spike") if args.quick else EVENT_KINDS
    started = time.perf_counter()
    scale = [] if args.quick else scale_rows()
    rows = []
    for name, cube, variable, n_train in setups(args.quick):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ga.fit(cube.isel(time=slice(None, n_train))[[variable]])
        for kind in kinds:
            rows += run_case(name, model, cube, variable, n_train, kind)
    seconds = time.perf_counter() - started
    print_totals(rows)
    print(f"total {seconds:.0f} s")
    out = RESULTS / ("events_quick.json" if args.quick else "events.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds": seconds, "quick": args.quick, "cases": rows, "scale": scale}, indent=1))
    print(f"wrote {out}")


def print_totals(rows: list[dict]) -> None:
    """Sums over the cases, by variant, and by kind of event for the default catalogue."""
    keys = ("injected", "recovered_as_one", "inside_merged", "split", "missed", "merged", "detected", "unmatched", "start_right",
            "start_overlapped")
    print(f"\n{'totals':10s}" + " ".join(f"{k:>16s}" for k in keys))
    for min_cells, bridge in VARIANTS:
        chosen = [r for r in rows if (r["min_cells"], r["bridge_gaps"]) == (min_cells, bridge)]
        print(f"{variant_name(min_cells, bridge):10s}" + " ".join(f"{sum(r[k] for r in chosen):16d}" for k in keys))
    for kind in dict.fromkeys(r["kind"] for r in rows):
        chosen = [r for r in rows if (r["min_cells"], r["bridge_gaps"]) == VARIANTS[0] and r["kind"] == kind]
        print(f"{kind:10s}" + " ".join(f"{sum(r[k] for r in chosen):16d}" for k in keys))


if __name__ == "__main__":
    main()
