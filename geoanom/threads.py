"""The thread pools inside a dask task: BLAS and OpenMP held to one thread, since dask runs one task per core."""

from __future__ import annotations

import functools
from typing import Any

from threadpoolctl import ThreadpoolController


def single_threaded_pools() -> Any:
    """A context in which the BLAS and OpenMP thread pools run one thread each: ``threadpool_limits(1)``.

    Dask already runs one task per core: threads inside each task (BLAS, scikit-learn's OpenMP) would
    oversubscribe the cores and, on a busy machine, make each small fit tens of times slower. The pools are
    found once per process: ``threadpool_limits`` looks up every loaded library on each call, 5 ms with the
    GIL held, in every fitting and scoring task (36 tasks of the throughput cubes' gmm run: 0.19 s).

    Examples
    --------
    >>> with single_threaded_pools():
    ...     pass
    """
    return _pools().limit(limits=1)


@functools.cache
def _pools() -> ThreadpoolController:
    """The BLAS and OpenMP pools of this process, found at the first use."""
    return ThreadpoolController()
