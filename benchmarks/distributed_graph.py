"""What `score(client=...)` and `fit(client=...)` send through the scheduler, old (models in the graph) against new.

On a 2-worker LocalCluster (processes, 1 thread and ``--memory`` each), a
daily cube of 3 years is fitted on its first 2 years and its last year is
scored and written to Zarr, at each ``--precision``. For each it reports
the tiles, the bytes of the score's graph (``len(pickle.dumps(graph))`` of
what ``compute`` sends) and distributed's large-graph warnings, the graphs
the fit sent (their count, largest and total, read off that warning with
its threshold at 1 byte; they carry no model: models are its output), and
the wall time of score + write, old against new in the same run (alternating,
best of ``--repeat``):

- ``old``: each block's tile models copied into the graph, as before (the
  new code with :func:`geoanom.resident.resident_values` made the identity);
- ``new``: each tile's models submitted to the cluster once, the graph
  holding their keys.

Both results are checked equal to the threaded run.

    python benchmarks/distributed_graph.py                  # results/distributed_graph.json
    python benchmarks/distributed_graph.py --cube daily.nc  # a file of yours
    python benchmarks/distributed_graph.py --grid 38 50 --precision 4 --out results/distributed_graph_1900.json
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import shutil
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import dask
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


def sent_graphs(action: Callable[[], Any]) -> tuple[Any, list[float]]:
    """``action()``'s value and the size in MiB of every graph it sent to the scheduler, read off distributed's
    large-graph warning with its threshold at 1 byte."""
    with dask.config.set({"distributed.admin.large-graph-warning-threshold": "1B"}), \
            warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = action()
    sizes = [re.search(r"Sending large graph of size ([0-9.]+) ([kMG]i?B)", str(w.message)) for w in caught]
    scale = {"kiB": 2**-10, "MiB": 1, "GiB": 2**10, "B": 2**-20}
    return value, [float(m.group(1)) * scale.get(m.group(2), 1) for m in sizes if m]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cube", help="a NetCDF file (default: a synthetic daily cube, 3 years, 19 x 25 cells)")
    parser.add_argument("--precision", type=int, nargs="+", default=[2, 3])
    parser.add_argument("--grid", type=int, nargs=2, default=[19, 25], help="the synthetic cube's lat and lon sizes")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--memory", default="1GB", help="memory limit of each of the 2 workers")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "distributed_graph.json"))
    args = parser.parse_args()
    from dask.distributed import Client, LocalCluster

    scratch = Path(tempfile.mkdtemp(prefix="distributed_graph-"))
    if args.cube:
        cube = ga.open_cube(args.cube)
    else:  # read from a file, as a user's cube is: the graph then holds no data either
        synthetic_cube(n_years=3, n_lat=args.grid[0], n_lon=args.grid[1], frequency="day")[0].to_netcdf(scratch / "cube.nc")
        cube = ga.open_cube(scratch / "cube.nc")
    times = cube["time"].values
    training, scored = cube.isel(time=slice(None, 2 * len(times) // 3)), cube.isel(time=slice(2 * len(times) // 3, None))
    rows = []
    try:
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, memory_limit=args.memory,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            for precision in args.precision:
                model, fit_graphs = sent_graphs(lambda: ga.fit(training, precision=precision, client=client))
                threaded = model.score(scored).compute(scheduler="threads")
                row: dict[str, Any] = {"precision": precision, "tiles": len(model.ensembles),
                                       "fit_graphs": len(fit_graphs), "fit_largest_graph_mib": max(fit_graphs),
                                       "fit_total_graph_mib": sum(fit_graphs)}
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
                      f"{row['new_warnings']}; fit: {len(fit_graphs)} graphs, largest {max(fit_graphs):.2f} MiB, "
                      f"{sum(fit_graphs):.2f} MiB in all")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    Path(args.out).write_text(json.dumps({"cube": args.cube or f"synthetic daily 3 years {args.grid[0]} x {args.grid[1]}",
                                          "workers": 2, "memory_limit": args.memory, "rows": rows}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
