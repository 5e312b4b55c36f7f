"""Where dask runs: the local scheduler, a local cluster, or a remote scheduler."""

from __future__ import annotations

from typing import Any

from .errors import GeoanomError


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
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster)
