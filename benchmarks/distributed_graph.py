"""What `score(client=...)` and `fit(client=...)` send through the scheduler, old (models in the graph) against new.

On a 2-worker LocalCluster (processes, 1 thread and ``--memory`` each), a
daily cube of 3 years is fitted on its first 2 years and its last year is
scored and written to Zarr, at each ``--precision``. For each it reports
the tiles, the bytes of the score's graph (``len(pickle.dumps(graph))`` of
what ``compute`` sends), the large-graph warnings distributed gave for the
score and for the fit (whose graphs carry no model: models are its output), and
the wall time of score + write, old against new in the same run (alternating,
best of ``--repeat``):

- ``old``: each block's tile models copied into the graph, as before (the
  new code with :func:`geoanom.resident.resident_values` made the identity);
- ``new``: each tile's models submitted to the cluster once, the graph
  holding their keys.

Both results are checked equal to the threaded run.

    python benchmarks/distributed_graph.py                  # results/distributed_graph.json
    python benchmarks/distributed_graph.py --cube daily.nc  # a file of yours (its first variable)
"""

from __future__ import annotations

import argparse
import json
import pickle
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

import geoanom as ga
import geoanom.model.score as score_module
from geoanom.testing import synthetic_cube


def graph_bytes(result: xr.Dataset) -> int:
    """Bytes of the pickled graph that computing every variable of ``result`` sends."""
    graphs = {}
    for name in result.data_vars:
        if result[name].chunks is not None:
            graphs.update(dict(result[name].data.__dask_graph__()))
    return len(pickle.dumps(graphs))


def score_and_write(model: Any, cube: xr.Dataset, client: Any, old: bool, path: Path) -> tuple[float, int, list, Any]:
    """Wall time of score + write to Zarr, the graph's bytes, distributed's large-graph warnings, the result."""
    original = score_module.resident_values
    if old:
        score_module.resident_values = lambda values, copy: [copy(value) for value in values]
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            start = time.perf_counter()
            result = model.score(cube, client=client)
            size = graph_bytes(result)
            result.to_zarr(path, mode="w")
            elapsed = time.perf_counter() - start
    finally:
        score_module.resident_values = original
    messages = [str(w.message).splitlines()[0] for w in caught if "large graph" in str(w.message)]
    return elapsed, size, messages, xr.open_zarr(path).load()


def fit_warnings_of(cube: xr.Dataset, precision: int, client: Any) -> tuple[int, list]:
    """The fit's warnings of large graphs (its graphs are built and sent inside fit, so are not measured here)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ga.fit(cube, precision=precision, client=client)
    return [str(w.message).splitlines()[0] for w in caught if "large graph" in str(w.message)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cube", help="a NetCDF file (default: a synthetic daily cube, 3 years, 19 x 25 cells)")
    parser.add_argument("--precision", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory", default="1GB", help="memory limit of each of the 2 workers")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "distributed_graph.json"))
    args = parser.parse_args()
    from dask.distributed import Client, LocalCluster

    if args.cube:
        cube = ga.open_cube(args.cube)
    else:
        cube = synthetic_cube(n_years=3, n_lat=19, n_lon=25, frequency="day")[0]
        cube = ga.open_cube(cube)
    times = cube["time"].values
    training, scored = cube.isel(time=slice(None, 2 * len(times) // 3)), cube.isel(time=slice(2 * len(times) // 3, None))
    rows = []
    scratch = Path(tempfile.mkdtemp(prefix="distributed_graph-"))
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.memory,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            for precision in args.precision:
                fit_warnings = fit_warnings_of(training, precision, client)
                model = ga.fit(training, precision=precision, client=client)
                threaded = model.score(scored).compute(scheduler="threads")
                row: dict[str, Any] = {"precision": precision, "tiles": len(model.ensembles),
                                       "fit_large_graph_warnings": fit_warnings}
                for _attempt in range(args.repeat):
                    for variant in ("old", "new"):
                        elapsed, size, messages, result = score_and_write(
                            model, scored, client, variant == "old", scratch / f"{variant}.zarr")
                        row[f"{variant}_seconds"] = min(elapsed, row.get(f"{variant}_seconds", np.inf))
                        row[f"{variant}_graph_bytes"], row[f"{variant}_warnings"] = size, messages
                        for name in ("irregularity", "fused_irregularity"):
                            np.testing.assert_array_equal(result[name].values, threaded[name].values)
                row["graph_ratio"] = row["old_graph_bytes"] / row["new_graph_bytes"]
                row["time_ratio_new_over_old"] = row["new_seconds"] / row["old_seconds"]
                rows.append(row)
                print(f"precision {precision}: {row['tiles']} tiles; score graph {row['old_graph_bytes'] / 2**20:.2f} "
                      f"MiB old -> {row['new_graph_bytes'] / 2**20:.3f} MiB new ({row['graph_ratio']:.0f}x smaller); "
                      f"score+write {row['old_seconds']:.2f} s old, {row['new_seconds']:.2f} s new "
                      f"({row['time_ratio_new_over_old']:.2f}x); warnings old {row['old_warnings']}, new "
                      f"{row['new_warnings']}; fit warnings {fit_warnings}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    Path(args.out).write_text(json.dumps({"cube": args.cube or "synthetic daily 3 years 19 x 25",
                                          "workers": 2, "memory_limit": args.memory, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
