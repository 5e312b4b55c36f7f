"""Where the time and the peak memory of fit and score go, phase by phase and task by task.

Builds one throughput cube (``throughput_cubes.py``) in a temporary Zarr
store, then in this process, on dask's threaded scheduler: ``open_cube``,
``geoanom.fit`` on the first half, ``model.score`` of the whole cube written
with ``write_dataset``. A thread samples the resident set (``VmRSS``) every
20 ms and a dask callback records which tasks run, so the report names the
phase and the tasks running when memory peaked, and the busiest task kinds.

Run from the repository root::

    python benchmarks/fit_memory.py --cube annual --size full --detectors gmm
    python benchmarks/fit_memory.py --size large --detectors gmm kmeans dpmm iforest --label large

Writes ``benchmarks/results/fit_memory_<label>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from throughput_cubes import CUBES, write_cube  # noqa: E402


def rss_mb(field: str = "VmRSS") -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def key_name(key) -> str:
    """The kind of a dask key: its name without the token."""
    name = key[0] if isinstance(key, tuple) else key
    name = str(name)
    head, _, tail = name.rpartition("-")
    return head if head and len(tail) >= 8 else name


class Monitor:
    """RSS samples with the phase and the running task kinds; task seconds per kind."""

    def __init__(self, interval: float = 0.02):
        self.interval, self.phase, self.samples = interval, "start", []
        self.running: dict = {}
        self.task_seconds: dict[str, float] = defaultdict(float)
        self.held_peak_mb: dict[str, float] = defaultdict(float)  # results held by the scheduler, by phase
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            with self.lock:
                tasks = sorted(key_name(k) for k in self.running)
            self.samples.append((time.perf_counter(), rss_mb(), self.phase, tasks))
            time.sleep(self.interval)

    def callback(self):
        from dask.callbacks import Callback
        from dask.sizeof import sizeof

        monitor = self

        class _Tasks(Callback):
            def _pretask(self, key, dsk, state):
                with monitor.lock:
                    monitor.running[key] = time.perf_counter()

            def _posttask(self, key, result, dsk, state, worker_id):
                with monitor.lock:
                    start = monitor.running.pop(key, None)
                if start is not None:
                    monitor.task_seconds[key_name(key)] += time.perf_counter() - start
                # what the scheduler holds now: results waiting for their dependents (not the tasks' temporaries)
                held = sum(sizeof(value) for value in list(state["cache"].values())) / 2**20
                phase = monitor.phase
                monitor.held_peak_mb[phase] = max(monitor.held_peak_mb[phase], held)

        return _Tasks()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self.thread.join()

    def report(self) -> dict:
        by_phase: dict[str, float] = {}
        for _, rss, phase, _ in self.samples:
            by_phase[phase] = max(by_phase.get(phase, 0.0), rss)
        peak = max(self.samples, key=lambda s: s[1])
        return {
            "peak_rss_mb": peak[1], "peak_phase": peak[2], "tasks_at_peak": dict(Counter(peak[3])),
            "peak_rss_mb_by_phase": by_phase, "peak_held_results_mb_by_phase": dict(self.held_peak_mb),
            "task_seconds_by_kind": dict(sorted(self.task_seconds.items(), key=lambda kv: -kv[1])[:25]),
        }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cube", choices=sorted(CUBES), default="annual")
    parser.add_argument("--size", choices=("small", "full", "large"), default="full")
    parser.add_argument("--detectors", nargs="+", default=["gmm"])
    parser.add_argument("--label", default=None)
    parser.add_argument("--no-score", action="store_true", help="fit only")
    parser.add_argument("--time-chunk", type=int, default=None,
                        help="time steps per chunk given to open_cube (default: open_cube's own choice)")
    args = parser.parse_args(argv)

    import dask

    import geoanom
    import geoanom.io

    shape = CUBES[args.cube]
    record: dict = {"cube": args.cube, "size": args.size, "detectors": args.detectors,
                    "time_chunk": args.time_chunk,
                    "rss_after_imports_mb": rss_mb()}
    with tempfile.TemporaryDirectory(prefix="geoanom-fitmem-") as tmp:
        store = Path(tmp) / "cube.zarr"
        write_cube(store, shape, shape.sizes[args.size])
        with Monitor() as monitor, dask.config.set(scheduler="threads"), monitor.callback():
            record["rss_before_mb"] = rss_mb()
            monitor.phase = "fit"
            t0 = time.perf_counter()
            cube = geoanom.open_cube(str(store), chunks=None if args.time_chunk is None else {"time": args.time_chunk})
            train = cube.isel(time=slice(0, cube.sizes["time"] // 2))
            model = geoanom.fit(train, precision=shape.precision, detectors=tuple(args.detectors))
            record["fit_seconds"] = time.perf_counter() - t0
            if not args.no_score:
                monitor.phase = "score+write"
                t1 = time.perf_counter()
                geoanom.io.write_dataset(model.score(cube), Path(tmp) / "out.zarr")
                record["score_write_seconds"] = time.perf_counter() - t1
        record.update(monitor.report())
        record["chunks"] = list(cube["tas"].data.chunksize)
    record["vmhwm_mb"] = rss_mb("VmHWM")
    print(json.dumps(record, indent=1))
    label = args.label or f"{args.cube}_{args.size}_{'-'.join(args.detectors)}"
    out = ROOT / "benchmarks" / "results" / f"fit_memory_{label}.json"
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
