"""Arrays that live on the workers: in-memory data that many tasks read, sent once instead of in every graph.

A fitted climatology holds about 300 bytes per cell (its planes). Embedded in
a graph, a 1-degree global grid's planes (20 MB) travel with every graph
that reads them, twice for a score, and distributed warns of graphs above
10 MB. Inside ``with on_workers(client):`` (what `fit` and `score` do when
given a client), `resident_array` submits each block to the cluster first as
a task of its own and the graph holds only their keys; elsewhere it is
``da.from_array``, so a result made without a client computes on any scheduler.

Each block is a task that returns it (its data inside the task), not a
scatter: the scheduler keeps a task's definition, so a block whose worker
dies (a Slurm job cancelled or at its walltime) is made again on another,
where a scattered block would be lost with its worker and fail every graph
that reads it. Submitting also waits for no worker, so an adaptive cluster
at 0 workers scales up for it, where a scatter times out.

`resident_values` does the same for any object: the scoring sends each tile's
models once, and each scoring task reads only its own tiles' from the
workers (a graph holding them all was 86 MiB at 475 tiles).
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Any, Callable, Iterator

import dask.array as da
import numpy as np

_CLIENT: ContextVar[Any] = ContextVar("geoanom_resident_client", default=None)
# Objects sent per message by `resident_values`: 16 tiles' default models are 3 MB (distributed warns above 10)
RESIDENT_BATCH = 16


@contextlib.contextmanager
def on_workers(client: Any) -> Iterator[None]:
    """Within the block, `resident_array` sends its blocks to `client`'s cluster once (None: into the graph).

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
    # One submission per block keeps each message a block's size (distributed warns of graphs above 10 MB).
    futures = [client.submit(_block, values[block], pure=False) for block in slices]
    grid = np.empty(array.numblocks, dtype=object)
    for index, (future, block) in enumerate(zip(futures, slices)):
        shape = tuple(part.stop - part.start for part in block)
        grid.flat[index] = da.from_delayed(future, shape=shape, dtype=values.dtype)
    return da.block(grid.tolist())


def resident_values(values: list[Any], copy: Callable[[Any], Any] | None = None) -> list[Any]:
    """`values` (each through `copy`), or inside `on_workers(client)` futures of tasks on the cluster holding them.

    For objects many tasks read that are too large to copy into every graph
    (a tile's models: 186 kB with the default families, nearly all its
    isolation forest). Put a future in a graph (as a task's argument, never
    inside an array, where dask would not see it): the graph then holds its
    key, and holding the graph keeps the value on the cluster.

    ``copy`` is applied to each value kept in this process; one sent to the
    cluster is serialized before this returns, which copies it already (so a
    value changed later is sent as it was: 0.5 s of deep copies saved at 475
    tiles).

    Examples
    --------
    >>> with on_workers(None):
    ...     resident_values([[1, 2], "a"], copy=list)
    [[1, 2], ['a']]
    """
    client = _CLIENT.get()
    if client is None:
        return values if copy is None else [copy(value) for value in values]
    # tasks of their own, as for the arrays (see the module's note): made again if their worker is lost. One
    # message per object cost 0.8 ms each (0.37 s for 475 tiles); RESIDENT_BATCH a message keeps each a few MB
    return client.map(_block, values, pure=False, batch_size=RESIDENT_BATCH)


def _block(values: Any) -> Any:
    """The task that holds a block: it returns its argument, which the scheduler can run again."""
    return values
