"""The memory a worker needs for a fit or a score, checked before any work is submitted.

A worker whose tasks do not fit its memory limit does not fail: dask's nanny
pauses it at 80% of the limit and restarts it at 95%, and a run on 1 GB
Slurm workers stalled that way until walltime without a word. So before
submitting, :func:`check_workers` compares an estimate of one worker's peak
with its limit and refuses in one sentence, naming the size needed.

The estimate is the measured one of the README's *Memory* section
(``python benchmarks/throughput.py``, peak RSS of a worker against chunk
size): a worker's imports, plus, for each thread running a task, the
task's chunk of observations and its tiles' models.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from .errors import WorkerMemoryError

# A worker's resident memory once geoanom, dask and numba are imported (measured: 150-170 MB).
BASE_BYTES = 160 * 2**20
# Peak bytes per observation of a chunk in flight: the input, the climatology's planes for it, the
# features, each family's scores and the output variables. benchmarks/throughput.py, gmm on the annual
# cube, (peak RSS - 160 MB) / (2 threads x chunk observations): 123 B at 16 MiB chunks, 146 B at 8 MiB.
BYTES_PER_OBSERVATION = 140
# A tile's fitted arrays per family (README, *Model size*): the forest's 100 trees dominate.
MODEL_BYTES_PER_TILE = {"gmm": 200, "kmeans": 512, "dpmm": 410, "iforest": 190_000}


def task_bytes(chunk_observations: int, tiles: int, detectors: Iterable[str]) -> int:
    """Peak bytes of one task: a chunk of ``chunk_observations`` and the models of ``tiles`` tiles.

    Examples
    --------
    >>> round(task_bytes(4_200_000, 64, ["gmm", "iforest"]) / 2**20)
    572
    """
    per_tile = sum(MODEL_BYTES_PER_TILE.get(name, 0) for name in detectors)
    return int(chunk_observations * BYTES_PER_OBSERVATION + tiles * per_tile)


def worker_bytes(threads: int, task: int) -> int:
    """Peak bytes of a worker running ``threads`` tasks of ``task`` bytes at once.

    Examples
    --------
    >>> worker_bytes(2, 100 * 2**20) // 2**20
    360
    """
    return BASE_BYTES + threads * task


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
        if limit and needed > pause * limit:
            raise WorkerMemoryError(
                f"{what} needs about {gigabytes(needed)} per worker ({threads} threads, each holding "
                f"{gigabytes(task)} of chunk and models) but its workers have {gigabytes(limit)}; give workers at "
                f"least {gigabytes(needed / pause)} (dask pauses a worker at {pause:.0%} of its memory), fewer "
                "threads each, or smaller chunks (open_cube(..., chunks=...)).")


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
