"""The fit-phase changes of issue 14 leave the scores as they were: old and new paths in one process.

On the SST sample (land NaN, monthly) and the North America sample, fits
and scores the default ensemble twice: with the reference paths (the numpy
test oracle ``anomaly_reference`` of ``tests/reference_kernels.py`` in the
place of ``Climatology.anomaly``, the per-tile numpy sketches of
``pipeline_memory.py`` in the place of ``fit``'s ``_sketch_block``,
open_cube chunks of 16 MiB) and with the package's own (compiled anomaly
and sketches, 8 MiB chunks), then compares every output variable; and the
package's own on time chunks of 7 steps, which must give the same results
(both samples fit one default chunk either way).

Run from the repository root::

    python benchmarks/fit_equivalence.py

Writes ``benchmarks/results/fit_equivalence.json``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

from pipeline_memory import numpy_sketch_block  # noqa: E402
from reference_kernels import anomaly_reference  # noqa: E402

ORACLE_BLOCKS: list[int] = []  # one entry per block the numpy oracle standardised


def counted_anomaly_reference(clim, values, terms):
    """The numpy oracle, counting the blocks it is given (proof that the reference run used it)."""
    ORACLE_BLOCKS.append(1)
    return anomaly_reference(clim, values, terms)


def run(name: str, reference: bool, chunks: dict | None) -> dict:
    import geoanom
    from geoanom.features import Climatology

    fit_module = importlib.import_module("geoanom.model.fit")
    current_sketch, current_anomaly = fit_module._sketch_block, Climatology.anomaly
    if reference:
        fit_module._sketch_block = numpy_sketch_block
        Climatology.anomaly = counted_anomaly_reference  # called as a method: the climatology is its first argument
    try:
        cube = geoanom.sample_cube(name)
        if chunks:
            cube = cube.chunk(chunks)
        half = cube.sizes["time"] // 2
        model = geoanom.fit(cube.isel(time=slice(0, half)))
        return {k: v.values for k, v in model.score(cube).compute().data_vars.items()}
    finally:
        fit_module._sketch_block, Climatology.anomaly = current_sketch, current_anomaly


def main() -> int:
    import geoanom

    report = {}
    for name in ("sst", "north_america"):
        cube = geoanom.sample_cube(name)
        slab = int(np.prod([cube.sizes[d] for d in cube[list(cube.data_vars)[0]].dims if d != "time"])) * 4
        old_chunks = {"time": max(1, 16 * 2**20 // slab)}  # what open_cube chose before
        old = run(name, True, old_chunks)
        new = run(name, False, None)
        split = run(name, False, {"time": 7})  # many chunks: the results must not depend on them
        entry = {}
        for var in old:
            if not np.array_equal(np.asarray(new[var]), np.asarray(split[var]), equal_nan=True):
                entry[f"{var} (time chunks of 7 differ)"] = True
            a, b = np.asarray(old[var], dtype=np.float64), np.asarray(new[var], dtype=np.float64)
            both = np.isfinite(a) & np.isfinite(b)
            scale = np.maximum(np.abs(a[both]), 1e-300)
            entry[var] = {"same_nan": bool(np.array_equal(np.isnan(a), np.isnan(b))),
                          "identical": bool(np.array_equal(a, b, equal_nan=True)),
                          "max_relative_difference": float(np.max(np.abs(a[both] - b[both]) / scale)) if both.any()
                          else 0.0}
        report[name] = {"chunks": {"reference": old_chunks, "current": dict(geoanom.sample_cube(name).chunksizes)},
                        "reference_anomaly_blocks": len(ORACLE_BLOCKS), "variables": entry}
        ORACLE_BLOCKS.clear()
        print(name, {k: v if isinstance(v, bool) else (v["identical"], v["max_relative_difference"])
                     for k, v in entry.items()})
    out = ROOT / "benchmarks" / "results" / "fit_equivalence.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
