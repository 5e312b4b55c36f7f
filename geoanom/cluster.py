"""Where dask runs: the local scheduler, a local cluster, or a remote scheduler."""

from __future__ import annotations

from typing import Any

import dask

from .errors import GeoanomError

# Dask's nanny sets MALLOC_TRIM_THRESHOLD_ in its workers, which also freezes
# glibc's mmap threshold at 128 KiB: every array above it is then mapped and
# unmapped afresh, and the many mid-sized temporaries of batched EM run twice
# as slowly. Arrays below 32 MiB go back to the heap instead. Set the same
# variable in the environment of workers you start yourself (HPC, jobqueue).
WORKER_ENVIRONMENT = {"distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 32 * 2**20}


def make_client(workers: int | None = None, scheduler: str | None = None) -> Any:
    """A ``distributed.Client`` for ``--workers N`` or ``--scheduler ADDRESS``, else None.

    With neither, dask's default threaded scheduler runs in this process.

    Parameters
    ----------
    workers : int, optional
        Start a local cluster of this many single-threaded worker processes.
    scheduler : str, optional
        Address of a running scheduler, e.g. ``tcp://host:8786`` (a dask-jobqueue
        cluster's ``scheduler_address`` works too).
    """
    if workers is not None and scheduler is not None:
        raise GeoanomError("give either --workers or --scheduler, not both.")
    if workers is None and scheduler is None:
        return None
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="10s")
        except (OSError, TimeoutError) as error:
            raise GeoanomError(f"cannot reach the dask scheduler at '{scheduler}' ({error}).") from None
    if workers < 1:
        raise GeoanomError(f"--workers must be at least 1, got {workers}.")
    with dask.config.set(WORKER_ENVIRONMENT):
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0")
    return Client(cluster)
