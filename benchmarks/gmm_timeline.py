"""How many dask tasks run at once through the gmm fit + score + write: where the run is serial, and for how long.

On the throughput benchmark's cube (``throughput_cubes.py``, written once to
``--store``), after a warm-up run, times ``geoanom.fit``, ``model.score``
and ``write_dataset`` with dask's threaded scheduler and records every
task's start and end (a local-scheduler callback). Per phase it prints the
wall time, the tasks' summed seconds, and how long 0, 1 or 2+ tasks ran:
time with no task is the main thread's own work (graph building, the
climatology between its passes, the scheduler), which no thread shares.
Run it on a quiet machine: with other jobs on the cores, tasks that run
"at once" still share one core (see the process CPU printed beside the wall).

Run from the repository root::

    python benchmarks/gmm_timeline.py --rounds 3
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", default="monthly", choices=("monthly", "annual"))
    parser.add_argument("--store", type=Path, default=None, help="Zarr store of the cube (written if missing)")
    parser.add_argument("--detectors", default="gmm")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from dask.callbacks import Callback
    from throughput_cubes import CUBES, write_cube

    import geoanom
    import geoanom.model  # noqa: F401
    from geoanom.io import write_dataset

    shape = CUBES[args.cube]
    store = args.store or Path(tempfile.gettempdir()) / f"gmm_phases_{args.cube}.zarr"
    if not store.exists():
        write_cube(store, shape, shape.sizes["full"])
    events: list[tuple[float, float, str]] = []

    class Timeline(Callback):
        def __init__(self):
            super().__init__()
            self.started: dict = {}

        def _pretask(self, key, dsk, state):
            self.started[key] = (time.perf_counter(), threading.get_ident())

        def _posttask(self, key, result, dsk, state, id):
            start, _ = self.started.pop(key)
            name = str(key[0] if isinstance(key, tuple) else key)
            events.append((start, time.perf_counter(), name.split("-")[0]))

    def run(out: Path, mark) -> None:
        cube = geoanom.open_cube(str(store))
        train = cube.isel(time=slice(0, cube.sizes["time"] // 2))
        mark("fit")
        model = geoanom.fit(train, precision=shape.precision, detectors=args.detectors)
        mark("score (graph)")
        result = model.score(cube)
        mark("write (compute + write)")
        write_dataset(result, out)
        mark("end")

    with tempfile.TemporaryDirectory(prefix="gmm-timeline-") as tmp:
        run(Path(tmp) / "warm.zarr", lambda name: None)
        for round_ in range(args.rounds):
            events.clear()
            marks: list[tuple[str, float]] = []
            wall, cpu = time.perf_counter(), time.process_time()
            with Timeline():
                run(Path(tmp) / f"r{round_}.zarr", lambda name: marks.append((name, time.perf_counter())))
            print(f"round {round_}: wall {time.perf_counter() - wall:.2f} s, process CPU {time.process_time() - cpu:.2f} s")
            for (name, start), (_, stop) in zip(marks, marks[1:]):
                grid = np.linspace(start, stop, 4000)
                running = np.zeros(grid.size)
                busy = 0.0
                for begin, end, _ in events:
                    if end >= start and begin <= stop:
                        running += (grid >= begin) & (grid < end)
                        busy += min(end, stop) - max(begin, start)
                step = (stop - start) / grid.size
                print(f"  {name}: wall {stop - start:.2f} s, task seconds {busy:.2f}, "
                      f"no task {np.sum(running == 0) * step:.2f} s, 1 task {np.sum(running == 1) * step:.2f} s, "
                      f"2+ {np.sum(running >= 2) * step:.2f} s")
            by_name: dict[str, float] = collections.defaultdict(float)
            for begin, end, name in events:
                by_name[name] += end - begin
            print("  task seconds by name: " + ", ".join(
                f"{name} {seconds:.2f}" for name, seconds in sorted(by_name.items(), key=lambda kv: -kv[1])[:12]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
