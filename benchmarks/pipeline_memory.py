"""Bytes allocated per observation, and seconds, of the per-block steps of the feature pipeline.

A dask task holds its block's temporaries while it runs, so on two threads
the peak memory of fit and score is about ``2 x chunk observations x bytes
per observation`` plus what waits between tasks. This measures that figure
for each step geoanom runs per block, on one chunk of the annual throughput
cube (``throughput_cubes.py``, 419 time steps x 100 x 100 cells, the chunk
``open_cube`` chose with chunks of 16 MiB; 8 MiB now halves it): numpy's allocations are traced with ``tracemalloc``,
whose peak counts every temporary.

Steps: the standardised anomaly of a training block and of a new block
(``Climatology.anomaly``, what ``standardise`` runs per block), the block's
feature vectors (``block_features``) and the tiles' sketches of a block
(what ``fit`` runs per block). Each is measured beside the numpy code it
replaced: for the anomaly, the numpy test oracle ``anomaly_reference`` of
``tests/reference_kernels.py``; for the others, the reference functions
below. Whether each pair's results are identical is reported too.

Run from the repository root::

    python benchmarks/pipeline_memory.py [--label NAME]

Writes ``benchmarks/results/pipeline_memory[_NAME].json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from reference_kernels import anomaly_reference  # noqa: E402
from throughput_cubes import CUBES, make_cube  # noqa: E402

CHUNK = 419  # time steps of open_cube's default chunk of the annual cube at 16 MiB


def measure(function, *args, repeat: int = 3):
    """(result, peak bytes allocated above the start, best seconds of `repeat` runs)."""
    best = np.inf
    for _ in range(repeat):
        start = time.perf_counter()
        function(*args)
        best = min(best, time.perf_counter() - start)
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    result = function(*args)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return result, peak, best


def numpy_block_features(values, anomalies, context, feature_sets):
    """vectors.block_features before it wrote into one output (the reference)."""
    parts = []
    if "values" in feature_sets:
        parts.append(values)
    if "values" in feature_sets or "anomalies" in feature_sets:
        parts.append(anomalies)
    if context is not None:
        parts.append(np.where(np.isfinite(values).all(axis=0), context, np.nan))
    return np.concatenate(parts, axis=0, dtype=np.float64)


def numpy_sketch_block(features, codes, time_index, cell_index, batch_of_tile, seed, sample_size):
    """fit's _sketch_block before it was compiled (the reference): a Python step per tile."""
    from geoanom.detectors.sketch import TileSketch, observation_keys
    from geoanom.tiling import group_cells

    n_features, n_times = features.shape[:2]
    flat = features.reshape(n_features, n_times, -1)
    keys = observation_keys(time_index, cell_index.ravel(), seed)
    out: dict = {}
    for code, cells in group_cells(codes):
        rows = flat[:, :, cells].reshape(n_features, -1).T
        row_keys = keys[:, cells].ravel()
        valid = np.isfinite(rows).all(axis=1)
        sketches = out.setdefault(int(batch_of_tile[code]), {})
        if valid.any():
            sketches[code] = TileSketch.from_rows(rows[valid], row_keys[valid], sample_size)
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)

    import importlib

    from geoanom.features import Climatology
    from geoanom.features.pipeline import stack_variables
    from geoanom.features.vectors import block_features
    from geoanom.tiling import tile_codes, tile_labels

    fit_module = importlib.import_module("geoanom.model.fit")
    shape = CUBES["annual"]
    ds, _ = make_cube(shape, shape.sizes["full"])
    cube = ds.chunk({"time": CHUNK})
    n_train = cube.sizes["time"] // 2
    values = stack_variables(cube.isel(time=slice(0, n_train)))
    codes, names = tile_codes(tile_labels(cube, shape.precision))
    clim = Climatology.fit(values, groups=codes)
    block = values.data[:, :CHUNK].compute()
    n_obs = block[0].size
    terms_train = clim.time_terms(values["time"][:CHUNK], True)
    terms_new = clim.time_terms(values["time"][:CHUNK], False)
    rows: dict[str, dict] = {}

    results = {}
    # the numpy oracle (the code before), then the compiled kernel (the package's)
    for how, anomaly_of in (("numpy", lambda b, t: anomaly_reference(clim, b, t)), ("compiled", clim.anomaly)):
        for kind, terms in (("training", terms_train), ("new", terms_new)):
            results[how, kind], peak, seconds = measure(anomaly_of, block, terms)
            rows[f"anomaly ({kind} block, {how})"] = {"bytes_per_obs": peak / n_obs, "seconds": seconds}
    anomaly = results["compiled", "training"]
    identical = {kind: bool(np.array_equal(results["numpy", kind], results["compiled", kind], equal_nan=True))
                 for kind in ("training", "new")}
    print("compiled anomaly identical to the numpy oracle's:", identical)
    context = np.nan_to_num(anomaly)  # stands for the neighbours' feature (same shape and dtype)
    reference, peak, seconds = measure(numpy_block_features, block, anomaly, context, ("anomalies", "neighbours"))
    rows["block_features (concatenate)"] = {"bytes_per_obs": peak / n_obs, "seconds": seconds}
    features, peak, seconds = measure(block_features, block, anomaly, context, ("anomalies", "neighbours"))
    rows["block_features (one output)"] = {"bytes_per_obs": peak / n_obs, "seconds": seconds}
    identical["block_features"] = bool(np.array_equal(reference, features, equal_nan=True))
    batch_of_tile = np.zeros(len(names), dtype=np.int64)
    cell_index = np.arange(codes.size).reshape(codes.shape)
    sketch_args = (features, codes, np.arange(CHUNK), cell_index, batch_of_tile, 0, 4096)
    before, peak, seconds = measure(numpy_sketch_block, *sketch_args)
    rows["sketch_block (numpy)"] = {"bytes_per_obs": peak / n_obs, "seconds": seconds}
    after, peak, seconds = measure(fit_module._sketch_block, *sketch_args)
    rows["sketch_block (compiled)"] = {"bytes_per_obs": peak / n_obs, "seconds": seconds}
    identical["sketch samples and counts"] = all(
        a.count == b.count and np.array_equal(a.keys, b.keys) and np.array_equal(a.rows, b.rows)
        for code, a in before[0].items() for b in [after[0][code]]) and before[0].keys() == after[0].keys()
    identical["sketch moments, largest relative difference"] = max(
        float(np.max(np.abs(a.scatter - b.scatter) / np.abs(a.scatter).max())) for code, a in before[0].items()
        for b in [after[0][code]])
    print("sketches:", identical)

    for name, row in rows.items():
        print(f"{name:36s} {row['bytes_per_obs']:7.1f} B/obs  {row['seconds']:.3f} s")
    record = {"chunk": list(block.shape), "observations": n_obs, "steps": rows, "anomaly_identical": identical,
              "checksum": {"anomaly": float(np.nansum(anomaly)), "features": float(np.nansum(features))}}
    out = ROOT / "benchmarks" / "results" / f"pipeline_memory{'_' + args.label if args.label else ''}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
