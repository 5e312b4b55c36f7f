"""The memory a worker needs for a fit or a score, checked before any work is submitted.

A worker whose tasks do not fit its memory limit does not fail: dask's nanny
pauses it at 80% of the limit and restarts it at 95%, and a run on 1 GB
Slurm workers stalled that way until walltime without a word. So before
submitting, :func:`check_workers` compares an estimate of one worker's peak
with its limit and refuses in one sentence, naming the size needed.

The estimate is fitted to the peaks measured by ``benchmarks/worker_memory.py``
(each worker's ``VmHWM``, a fresh ``LocalCluster`` of 2 worker processes for
each phase, the throughput cubes at three chunk sizes, 1 and 2 threads per
worker, the default ensemble and ``gmm`` alone; README, *Model size and
memory per worker*)::

    peak = BASE_BYTES + held once per worker + threads x (chunk observations x bytes per observation)

A worker holds once, whatever its threads: for a fit, the climatology's fit
blocks (at most 2 M values, whatever the chunks) and every tile's sample
(sketch) of its blocks; for a score, every tile's models of its blocks
(resident, shared by its tasks). Each family beyond the first adds to both
terms. Each thread holds the chunk it works on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import WorkerMemoryError

MB = 2**20
# A worker's resident memory once distributed, geoanom's model code and numba are imported: 246 MiB on each
# worker of every run of benchmarks/worker_memory.py (client.run(import geoanom.model), VmRSS).
BASE_BYTES = 250 * MB
# The constants below are fitted to the worker peaks of `python benchmarks/worker_memory.py` (two full runs
# merged, each case's highest peak: results/worker_memory.json): the annual (100 x 100, 729 tiles a block) and
# monthly (120 x 240, 176 tiles) cubes, time chunks of 0.5, 1 and 2 times open_cube's 8 MiB (1.0-4.2 M
# observations), 1 and 2 threads per worker, the five families and gmm alone. Fitted so that the largest
# predicted / measured is smallest with every prediction above its measurement: fit 1.01-1.15x (median 1.06),
# score 1.01-1.41x (median 1.20; two workers of one run differ by up to 240 MiB, so no formula is closer),
# fit then score on the same workers (`geoanom detect`) within the larger of the two, 1.06-1.21x.
# Held once per worker, with one family: fit: the climatology's IRLS blocks (at most 2 M values, whatever the
# chunks): gmm's fit peaks 410-510 MiB from 1.0 to 4.2 M observations a chunk; score: the climatology's planes,
# the compiled scoring code and the result blocks waiting to be written: gmm's score peaks 430-860 MiB.
PHASE_BYTES = {"fit": 155 * MB, "score": 306 * MB}
# Held once per worker for each family beyond the first (their compiled code and buffers): the five families'
# fit peaks are 40-130 MiB above gmm's; their score peaks 120-340 MiB, explained by the forests' models (below)
# and the per-observation terms.
FAMILY_BYTES = {"fit": 17 * MB, "score": 0}
# Peak bytes per observation of the chunk each thread works on, with one family and for each more: the input,
# the features, the scores and the output variables (fit: a block's features are sketched in one pass and
# dropped; score: a block's features, its parts' scores and the result block).
BYTES_PER_OBSERVATION = {"fit": 18, "score": 39}
FAMILY_BYTES_PER_OBSERVATION = {"fit": 2, "score": 12}
# A fit's sample of each tile of a block (4096 observations of 2-3 features, float64: 64-96 KiB) and its merges.
SKETCH_BYTES_PER_TILE = 96 * 2**10
# A tile's fitted arrays per family (README, *Model size*): the forest's 100 trees dominate. A scoring worker
# holds the models of the tiles of the blocks it scores, once (sent as tasks of their own, geoanom.resident).
MODEL_BYTES_PER_TILE = {"gmm": 200, "kmeans": 512, "dpmm": 410, "iforest": 190_000}
PHASES = ("fit", "score")


class TaskBytes(int):
    """The bytes a worker needs above its imports to run one task: ``shared`` of them it holds once, however many.

    An int (the need of a one-thread worker), so code that treats a task as
    its size keeps working; :func:`worker_bytes` counts the rest once per
    thread.

    Examples
    --------
    >>> task = TaskBytes(100, shared=30)
    >>> int(task), task.shared, task.per_thread
    (100, 30, 70)
    """

    shared: int

    def __new__(cls, total: int, shared: int = 0) -> "TaskBytes":
        task = super().__new__(cls, int(total))
        task.shared = int(min(max(shared, 0), total))
        return task

    @property
    def per_thread(self) -> int:
        """The bytes each thread running a task holds."""
        return int(self) - self.shared


def task_bytes(chunk_observations: int, tiles: int, detectors: Iterable[str], phase: str | None = None) -> TaskBytes:
    """Peak bytes of a worker's task (above its imports): a chunk of ``chunk_observations`` and ``tiles`` tiles.

    Parameters
    ----------
    chunk_observations : int
        Observations in the largest block of the stacked variables (:func:`largest_chunk`).
    tiles : int
        The most tiles in one spatial block (:func:`most_tiles_in_a_block`).
    detectors : iterable of str
        The families fitted or scored.
    phase : {"fit", "score"}, optional
        None: the larger of the two, term by term (what a worker needs for both).

    Examples
    --------
    The annual throughput cube's default chunks (209 x 100 x 100) and 729
    tiles, the five families: measured 742 and 904 MiB (score, 1 and 2
    threads), 588 and 624 (fit).

    >>> families = ["gmm", "kmeans", "dpmm", "iforest", "event"]
    >>> task = task_bytes(2_090_000, 729, families, phase="score")
    >>> round(task / 2**20), round(task.shared / 2**20)
    (612, 439)
    >>> round(worker_bytes(1, task) / 2**20), round(worker_bytes(2, task) / 2**20)
    (862, 1036)
    >>> fit = task_bytes(2_090_000, 729, families, phase="fit")
    >>> round(worker_bytes(1, fit) / 2**20), round(worker_bytes(2, fit) / 2**20)
    (593, 645)
    >>> task_bytes(2_090_000, 729, families) == task  # no phase: the larger, term by term
    True
    """
    names = list(detectors)
    if phase is None:
        fit, score = (task_bytes(chunk_observations, tiles, names, name) for name in PHASES)
        shared, per_thread = max(fit.shared, score.shared), max(fit.per_thread, score.per_thread)
        return TaskBytes(shared + per_thread, shared)
    if phase not in PHASES:
        raise ValueError(f"phase must be 'fit', 'score' or None, not {phase!r}")
    more = max(len(names) - 1, 0)
    shared = PHASE_BYTES[phase] + more * FAMILY_BYTES[phase]
    if phase == "fit":
        shared += tiles * SKETCH_BYTES_PER_TILE
    else:
        shared += tiles * sum(MODEL_BYTES_PER_TILE.get(name, 0) for name in names)
    per_thread = chunk_observations * (BYTES_PER_OBSERVATION[phase] + more * FAMILY_BYTES_PER_OBSERVATION[phase])
    return TaskBytes(shared + per_thread, shared)


def worker_bytes(threads: int, task: int) -> int:
    """Peak bytes of a worker running ``threads`` tasks of ``task`` bytes at once (its ``shared`` part held once).

    Examples
    --------
    >>> worker_bytes(2, 100 * 2**20) // 2**20  # a plain int: all of it per thread
    450
    >>> worker_bytes(2, TaskBytes(100 * 2**20, shared=40 * 2**20)) // 2**20
    410
    """
    shared = getattr(task, "shared", 0)
    return BASE_BYTES + shared + threads * (int(task) - shared)


def largest_chunk(chunks: tuple[tuple[int, ...], ...], variables: int = 1) -> int:
    """Observations in the largest block of a chunked cube (each dimension's largest chunk), times ``variables``.

    Examples
    --------
    >>> largest_chunk(((120, 120, 40), (90,), (180, 180)), variables=2)
    3888000
    """
    return variables * math.prod(max(sizes) for sizes in chunks if sizes)


def most_tiles_in_a_block(codes: np.ndarray, chunks: tuple[tuple[int, ...], tuple[int, ...]]) -> int:
    """The largest number of distinct tiles (codes of the cells, -1 = none) in one spatial block.

    Examples
    --------
    >>> most_tiles_in_a_block(np.array([[0, 0, 1, 2], [4, 3, 1, -1]]), ((2,), (2, 2)))
    3
    """
    rows = np.cumsum((0,) + tuple(chunks[0]))
    columns = np.cumsum((0,) + tuple(chunks[1]))
    counts = [np.unique(block[block >= 0]).size
              for r0, r1 in zip(rows[:-1], rows[1:]) for c0, c1 in zip(columns[:-1], columns[1:])
              for block in [codes[r0:r1, c0:c1]]]
    return max(counts, default=0)


def check_workers(client: Any, task: int, what: str) -> None:
    """Refuse, in one sentence, when ``client``'s workers cannot hold their tasks of ``task`` bytes.

    Workers without a memory limit, and a cluster that has no worker yet
    (adaptive, scaled to 0), are not checked.

    Raises
    ------
    WorkerMemoryError
        A worker's estimated peak exceeds the fraction of its limit at which
        dask pauses it (``distributed.worker.memory.pause``, 80% by default).

    Examples
    --------
    >>> check_workers(None, 10**9, "this fit")  # no client: nothing to check
    """
    if client is None:
        return
    import dask

    pause = dask.config.get("distributed.worker.memory.pause", 0.8) or 1.0
    for worker in client.scheduler_info().get("workers", {}).values():
        limit, threads = int(worker.get("memory_limit") or 0), int(worker.get("nthreads") or 1)
        needed = worker_bytes(threads, task)
        per_thread = int(task) - getattr(task, "shared", 0)
        if limit and needed > pause * limit:
            # a worker of one thread cannot have fewer: memory or smaller chunks are what is left
            held = (f"{threads} threads, each holding" if threads > 1 else "1 thread, holding")
            fewer = "fewer threads each, " if threads > 1 else ""
            raise WorkerMemoryError(
                f"{what} needs about {gigabytes(needed)} per worker ({held} "
                f"{gigabytes(per_thread)} of chunk, and {gigabytes(needed - threads * per_thread)} of code, models "
                f"and samples) but its workers have {gigabytes(limit)}; give workers at least "
                f"{gigabytes(needed / pause)} (dask pauses a worker at {pause:.0%} of its memory), {fewer}or "
                "smaller chunks (open_cube(..., chunks=...)).")


def gigabytes(n_bytes: float) -> str:
    """Bytes as text in GB or MB.

    Examples
    --------
    >>> gigabytes(1.5e9), gigabytes(2.4e8)
    ('1.5 GB', '240 MB')
    """
    return f"{n_bytes / 1e9:.1f} GB" if n_bytes >= 1e9 else f"{n_bytes / 1e6:.0f} MB"


def _libc_malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none (macOS, Windows, musl)."""
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def release_free_memory() -> None:
    """Give the C heap's free pages back to the operating system (glibc's ``malloc_trim``; elsewhere nothing).

    Examples
    --------
    >>> release_free_memory()
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
