"""What the federated reduction costs as the number of clients grows, on a real LocalCluster.

A round of n clients on ``geoanom.cluster.make_client(workers=2)``: client i's
task, pinned to worker i mod 2 as the engine pins clients, builds an update of
``--size`` float64 (default 131,072: a 1 MiB model) in the form the engine's
clients return, and the updates are merged by the engine's own
``combine_results``. Three ways to merge:

- ``tree``: ``geoanom.reduction.TreeReducer`` as the engine uses it: fan-in
  8, each client's task added to the tree as it is submitted, the first
  level per worker, merges prioritised over queued clients;
- ``tree, unprioritised``: the tree as the engine built it before, after
  every client's task and in dask's default order (merges wait behind every
  queued client task);
- ``flat``: one task receives all n updates, like a server that gathers
  every update (and like the non-associative aggregators, which must).

For each n it prints the round's wall time, the *tail* (from the end of the
last client task to the end of the root task, read off dask's task stream:
what the reduction adds to a round), the engine tree's depth (a dry run of
its TreeReducer: about log8(n), one more where the first level is split
between the 2 workers) and the most update bytes any one task receives. The
tree's tail should grow like its depth; the flat task's like n. Every
client's work is O(n) in total and on 2 cores it runs mostly in sequence, so
the wall time grows like n for all three: the reduction cannot change that,
only what it adds after the last client.

    python benchmarks/reduction.py          # also benchmarks/results/reduction.json
    python benchmarks/reduction.py --quick  # clients up to 512: reduction_quick.json
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
from distributed import get_task_stream

from geoanom.cluster import make_client
from geoanom.federated.rounds import combine_results
from geoanom.reduction import TreeReducer, tree_reduce_futures

RESULTS = Path(__file__).parent / "results"
FAN_IN = 8
METHODS = ("tree", "tree, unprioritised", "flat")


def client_update(index: int, size: int) -> dict:
    """A client's round result as ``train_round`` returns it, with a random update of ``size`` parameters."""
    delta = np.random.default_rng(index).standard_normal(size)
    return {"delta": delta, "weight": 1.0 + index % 7, "client": index, "loss": 0.0, "residual": 0.0,
            "digest": "", "worker": None}


class _DepthOnly:
    """A stand-in client whose "futures" are the depths of the merges that made them."""

    def submit(self, combine, *parts, **options) -> int:
        return 1 + max(parts)


def levels(n_clients: int, n_workers: int = 2) -> int:
    """Depth of the engine's tree for clients pinned round-robin to ``n_workers`` (a dry run of TreeReducer)."""
    tree = TreeReducer(_DepthOnly(), None, FAN_IN)
    for index in range(n_clients):
        tree.add(0, group=index % n_workers)
    return tree.result() or 0


def one_round(dask_client, n_clients: int, size: int, method: str) -> dict[str, float]:
    """Run one round; its wall seconds, tail seconds and the check that the root holds every client."""
    workers = sorted(dask_client.scheduler_info()["workers"])
    pinned = [workers[index % len(workers)] for index in range(n_clients)]
    with get_task_stream(client=dask_client) as stream:
        started = time.perf_counter()
        if method == "tree":
            tree = TreeReducer(dask_client, combine_results, FAN_IN)
            for index in range(n_clients):
                tree.add(dask_client.submit(client_update, index, size, workers=[pinned[index]], pure=False),
                         group=pinned[index])
            root = tree.result()
        else:
            futures = [dask_client.submit(client_update, index, size, workers=[pinned[index]], pure=False)
                       for index in range(n_clients)]
            root = (dask_client.submit(combine_results, *futures, pure=False) if method == "flat" else
                    tree_reduce_futures(dask_client, futures, combine_results, FAN_IN, prioritise=False))
        total, weight, rows = dask_client.gather(root)
        wall = time.perf_counter() - started
    del root
    ends = {"client_update": [], "combine_results": []}
    for task in stream.data:
        name = task["key"].split("-")[0] if isinstance(task["key"], str) else str(task["key"][0]).split("-")[0]
        stops = [part["stop"] for part in task["startstops"] if part["action"] == "compute"]
        if name in ends and stops:
            ends[name].append(max(stops))
    expected = sum(1.0 + index % 7 for index in range(n_clients))
    if len(rows) != n_clients or not math.isclose(weight, expected) or total.shape != (size,):
        raise RuntimeError(f"{method} with {n_clients} clients lost updates")
    return {"wall_seconds": wall, "tail_seconds": max(ends["combine_results"]) - max(ends["client_update"])}


def measure(dask_client, counts, size: int, repeat: int) -> list[dict]:
    """For each client count and method, the median wall time and tail over ``repeat`` rounds."""
    out = []
    for n_clients in counts:
        one_round(dask_client, n_clients, size, "tree")  # warm the workers for this size
        row = {"clients": n_clients, "levels": levels(n_clients)}
        for method in METHODS:
            runs = [one_round(dask_client, n_clients, size, method) for _ in range(repeat)]
            fan_in = n_clients if method == "flat" else min(n_clients, FAN_IN)
            row[method] = {"wall_seconds": statistics.median(r["wall_seconds"] for r in runs),
                           "tail_seconds": statistics.median(r["tail_seconds"] for r in runs),
                           "max_bytes_into_a_task": fan_in * size * 8}
        out.append(row)
        print_row(row, flush=True)
    return out


def growth(rows: list[dict], method: str) -> dict[str, float]:
    """How well the tail follows the tree's depth and the number of clients: R^2 of each line through 0."""
    tails = np.array([row[method]["tail_seconds"] for row in rows])
    fits = {}
    for name, x in (("levels", [row["levels"] for row in rows]), ("clients", [row["clients"] for row in rows])):
        x = np.asarray(x, dtype=float)
        slope = float(x @ tails / (x @ x))
        residual = tails - slope * x
        fits[f"r2_vs_{name}"] = float(1 - residual @ residual / ((tails - tails.mean()) @ (tails - tails.mean())))
        fits[f"seconds_per_{name[:-1]}"] = slope
    return fits


def print_header() -> None:
    print(f"{'clients':>8s} {'levels':>7s}" + "".join(f" {m + ' wall':>26s} {m + ' tail':>26s}" for m in METHODS)
          + f" {'flat MB in':>11s}")


def print_row(row: dict, flush: bool = False) -> None:
    cells = "".join(f" {row[m]['wall_seconds']:26.3f} {row[m]['tail_seconds']:26.4f}" for m in METHODS)
    print(f"{row['clients']:8d} {row['levels']:7d}{cells} {row['flat']['max_bytes_into_a_task'] / 2**20:11.0f}",
          flush=flush)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=131_072, help="parameters per update (float64)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="clients up to 512, one repeat")
    args = parser.parse_args()
    counts = (2, 8, 64, 512) if args.quick else (2, 8, 64, 512, 1000, 4096)
    repeat = 1 if args.quick else args.repeat
    warnings.filterwarnings("ignore", message="Port .* is already in use")
    dask_client = make_client(workers=2)
    started = time.perf_counter()
    print(f"updates of {args.size:,} float64 ({args.size * 8 / 2**20:.1f} MiB), fan-in {FAN_IN}, "
          f"median of {repeat}; seconds\n")
    print_header()
    try:
        rows = measure(dask_client, counts, args.size, repeat)
    finally:
        dask_client.close()
        dask_client.cluster.close()
    fits = {method: growth(rows, method) for method in METHODS}
    print("\ntail against depth and against clients (least squares through 0):")
    for method, fit in fits.items():
        print(f"  {method:22s} {fit['seconds_per_level']:.4f} s per level (R^2 {fit['r2_vs_levels']:.2f}), "
              f"{fit['seconds_per_client'] * 1e3:.3f} ms per client (R^2 {fit['r2_vs_clients']:.2f})")
    largest = rows[-1]
    print(f"\nat {largest['clients']} clients the tail is {largest['flat']['tail_seconds']:.3f} s flat, "
          f"{largest['tree, unprioritised']['tail_seconds']:.3f} s unprioritised, "
          f"{largest['tree']['tail_seconds']:.3f} s as the engine runs it "
          f"({largest['flat']['tail_seconds'] / largest['tree']['tail_seconds']:.0f}x less than flat)")
    out = RESULTS / ("reduction_quick.json" if args.quick else "reduction.json")
    out.write_text(json.dumps({"config": vars(args), "fan_in": FAN_IN, "seconds": time.perf_counter() - started,
                               "rows": rows, "fits": fits}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
