"""Labelled progress of dask computations, on a terminal or in a log file.

On a terminal a bar is redrawn in place; anywhere else (a log file, a batch
job's output) a plain line is written at every tenth of the work and at least
every ``every`` seconds, so a log never fills with run-together carriage
returns. One label may span several computations (a fit computes its
climatology, then its sketches, then its models): each is a numbered step.

Local runs (dask's threaded scheduler) are followed by a dask
:class:`~dask.callbacks.Callback`; distributed runs by asking the scheduler
from a thread how many tasks have finished and how many wait, since a fit's
tasks are submitted inside :func:`geoanom.fit`, which hands out no futures.
There the lines also say how many workers the scheduler has: on a batch
cluster (``--cluster slurm``) jobs come and go, and ``0 workers`` says the
work waits in the queue rather than stalls.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from typing import Any, Iterator, TextIO

from dask.callbacks import Callback


class ProgressLine:
    """Where progress is written: a bar on a terminal, plain periodic lines elsewhere.

    Parameters
    ----------
    label : str
        What is being done, e.g. ``"fitting 48 tiles"``.
    stream : file, optional
        Where to write; standard error by default.
    every : float, default 30
        When not on a terminal, the longest time between two lines, in seconds.
    quiet : float, default 2
        When not on a terminal, the shortest time between two lines, in seconds:
        a short computation writes only its closing line.

    Examples
    --------
    >>> import io
    >>> line = ProgressLine("fitting 2 tiles", stream=io.StringIO())
    >>> line.step(10); line.update(10); line.close()
    >>> print(line.stream.getvalue().splitlines()[-1])  # doctest: +ELLIPSIS
    fitting 2 tiles: done, 10 tasks in ... s
    """

    def __init__(self, label: str, stream: TextIO | None = None, every: float = 30.0, quiet: float = 2.0) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every, self.quiet = every, quiet
        self.start = self.last_line = time.monotonic()
        self.steps = self.total = self.done = self.tasks = 0
        self.workers: int | None = None  # how many workers a distributed scheduler has; None locally
        self.workers_written: int | None = None
        self.last_tenth = -1
        self.drawn = False
        self.width = 0  # the widest bar drawn, which the closing line covers
        self.lock = threading.Lock()

    def step(self, total: int) -> None:
        """A new computation of ``total`` tasks starts under this label."""
        with self.lock:
            self.tasks += self.done
            self.steps, self.total, self.done, self.last_tenth = self.steps + 1, total, 0, -1

    def update(self, done: int, total: int | None = None, workers: int | None = None) -> None:
        """``done`` tasks of the current step are finished (of ``total``, when it changed), on ``workers``."""
        with self.lock:
            self.done, self.total = done, total if total is not None else self.total
            self.workers = workers if workers is not None else self.workers
            self._draw()

    def close(self, failed: bool = False) -> None:
        """End the label with one line saying how long it took (nothing more when it failed)."""
        with self.lock:
            if failed:  # the error says what happened; only end a bar drawn on the terminal
                if self.tty and self.drawn:
                    self.stream.write("\n")
                return
            tasks = self.tasks + self.done
            counted = f", {tasks:,} tasks" if tasks else ""  # work outside dask (a federated round) has none
            text = f"{self.label}: done{counted} in {self._elapsed()}"
            self.stream.write(f"\r{text:<{self.width}}\n" if self.tty else f"{text}\n")  # pad over the bar
            self.stream.flush()

    def _draw(self) -> None:
        fraction = self.done / self.total if self.total else 0.0
        step = f" (step {self.steps})" if self.steps > 1 else ""
        now = time.monotonic()
        if self.tty:
            if now - self.last_line < 0.1 and fraction < 1:  # a redraw per task would flood the terminal
                return
            self.last_line, self.drawn = now, True
            bar = "#" * int(30 * fraction)
            drawn = f"{self.label}{step} [{bar:<30}] {fraction:4.0%}{self._on()} {self._elapsed()}"
            self.width = max(self.width, len(drawn))
            self.stream.write(f"\r{drawn}")
            self.stream.flush()
            return
        tenth, since = int(10 * fraction), now - self.last_line
        news = tenth > self.last_tenth or self.workers != self.workers_written  # a job came or went
        if (news and since >= self.quiet) or since >= self.every:
            self.last_tenth, self.last_line, self.workers_written = tenth, now, self.workers
            self.stream.write(f"{self.label}{step}: {fraction:.0%} of {self.total:,} tasks{self._on()}, "
                              f"{self._elapsed()}\n")
            self.stream.flush()

    def _on(self) -> str:
        if self.workers is None:
            return ""
        return f" on {self.workers} worker{'' if self.workers == 1 else 's'}"

    def _elapsed(self) -> str:
        seconds = time.monotonic() - self.start
        return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


@contextlib.contextmanager
def progress(label: str, client: Any = None, *, enabled: bool = True, stream: TextIO | None = None,
             every: float = 30.0) -> Iterator[ProgressLine | None]:
    """Report the progress of every dask computation inside the block under one label.

    Parameters
    ----------
    label : str
        What is being done, e.g. ``"scoring and writing out.zarr"``.
    client : distributed.Client, optional
        The client the work runs on; None for dask's local schedulers.
    enabled : bool, default True
        False reports nothing (``geoanom -q``).
    stream : file, optional
        Where to write; standard error by default.
    every : float, default 30
        In a log (not a terminal), the longest time between two lines, in seconds.

    Examples
    --------
    >>> import io, dask.array as da
    >>> log = io.StringIO()
    >>> with progress("summing", stream=log):
    ...     total = da.ones(100, chunks=10).sum().compute()
    >>> log.getvalue().splitlines()[-1].startswith("summing: done")
    True
    """
    if not enabled:
        yield None
        return
    line = ProgressLine(label, stream, every)
    follower = _SchedulerPoller(client, line) if client is not None else _LocalCallback(line)
    failed = True
    try:
        with follower:
            yield line
        failed = False
    finally:
        line.close(failed)


class _LocalCallback(Callback):
    """Follows computations on dask's local (threaded or synchronous) schedulers."""

    def __init__(self, line: ProgressLine) -> None:
        super().__init__()
        self.line = line

    def _start_state(self, dsk: Any, state: dict) -> None:
        self.line.step(sum(len(state[k]) for k in ("ready", "waiting", "running", "finished")))

    def _posttask(self, key: Any, result: Any, dsk: Any, state: dict, worker_id: Any) -> None:
        self.line.update(len(state["finished"]))


def _scheduler_counter():
    """A function run on the scheduler: (tasks finished so far, tasks waiting or running, workers).

    Made inside this factory so that cloudpickle sends it by value: a remote
    scheduler need not have geoanom installed. The finished count is that of
    distributed's own task-stream plugin, which records every task that
    finishes, however briefly it lives on the scheduler.
    """

    def count(dask_scheduler):  # (finished, waiting or running, workers)
        from distributed.diagnostics.task_stream import TaskStreamPlugin

        if TaskStreamPlugin.name not in dask_scheduler.plugins:
            dask_scheduler.add_plugin(TaskStreamPlugin(dask_scheduler))
        pending = sum(task.state in ("waiting", "processing", "queued", "no-worker")
                      for task in dask_scheduler.tasks.values())
        return dask_scheduler.plugins[TaskStreamPlugin.name].index, pending, len(dask_scheduler.workers)

    return count


class _SchedulerPoller:
    """Follows a distributed scheduler by asking it every ``interval`` seconds how much is done and to do.

    The fits run inside :func:`geoanom.fit`, which hands out no futures, so
    the scheduler is asked instead: the tasks finished since the block began,
    and those still waiting or running.
    """

    def __init__(self, client: Any, line: ProgressLine, interval: float = 0.5) -> None:
        self.client, self.line, self.interval = client, line, interval
        self.stop = threading.Event()
        self.count = _scheduler_counter()

    def __enter__(self) -> "_SchedulerPoller":
        counts = self._counts()
        self.finished_before = counts[0] if counts else 0
        self.line.step(0)
        self.thread = threading.Thread(target=self._run, daemon=True, name="geoanom-progress")
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop.set()
        self.thread.join()
        self._poll()

    def _run(self) -> None:
        while not self.stop.wait(self.interval):
            self._poll()

    def _poll(self) -> None:
        counts = self._counts()
        if counts is not None:
            done = counts[0] - self.finished_before
            self.line.update(done, done + counts[1], counts[2])

    def _counts(self) -> tuple[int, int, int] | None:
        try:
            finished, pending, workers = self.client.run_on_scheduler(self.count)
            return int(finished), int(pending), int(workers)
        except Exception:  # a closing or unreachable scheduler: the label and the time still show
            return None
