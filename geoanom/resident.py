"""Arrays that live on the workers: in-memory data that many tasks read, sent once instead of in every graph.

A fitted climatology holds about 300 bytes per cell (its planes). Embedded in
a graph, a 1-degree global grid's planes (20 MB) travel with every graph
that reads them, twice for a score, and distributed warns of graphs above
10 MB. Inside ``with on_workers(client):`` (what `fit` and `score` do when
given a client), `resident_array` scatters the blocks to the workers first
and the graph holds only their keys; elsewhere it is ``da.from_array``, so a
result made without a client computes on any scheduler.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Iterator

import dask.array as da
import numpy as np

_CLIENT: ContextVar[Any] = ContextVar("geoanom_resident_client", default=None)


@contextlib.contextmanager
def on_workers(client: Any) -> Iterator[None]:
    """Within the block, `resident_array` scatters its blocks to `client`'s workers (None: it does not).

    Examples
    --------
    >>> import numpy as np
    >>> with on_workers(None):
    ...     resident_array(np.zeros(4), chunks=2).numblocks
    (2,)
    """
    token = _CLIENT.set(client)
    try:
        yield
    finally:
        _CLIENT.reset(token)


def resident_array(values: np.ndarray, chunks: Any) -> da.Array:
    """`values` as a dask array whose blocks, inside `on_workers(client)`, are on the workers already.

    Parameters
    ----------
    values : numpy.ndarray
        The data, in memory.
    chunks : tuple
        As for :func:`dask.array.from_array`.

    Returns
    -------
    dask.array.Array
        The same values and chunks.

    Examples
    --------
    >>> import numpy as np
    >>> resident_array(np.arange(6.0).reshape(2, 3), chunks=(2, 1)).chunks
    ((2,), (1, 1, 1))
    """
    array = da.from_array(values, chunks=chunks)
    client = _CLIENT.get()
    if client is None:
        return array
    slices = da.core.slices_from_chunks(array.chunks)
    futures = client.scatter([values[block] for block in slices], hash=False)
    grid = np.empty(array.numblocks, dtype=object)
    for index, (future, block) in enumerate(zip(futures, slices)):
        shape = tuple(part.stop - part.start for part in block)
        grid.flat[index] = da.from_delayed(future, shape=shape, dtype=values.dtype)
    return da.block(grid.tolist())
