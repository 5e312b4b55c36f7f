"""How fit and score cut each block of a cube into parts between tiles, so that every thread stays busy.

:func:`part_chunks` is the one rule (fit's features and sketches through
:func:`in_parts`, score's tasks, and ``benchmarks/gmm_kernels.py``). A part
never splits a tile (:func:`geoanom.tiling.split_chunks`): no tile is
sketched or scored more often, and the results are the same for any cut.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..tiling import split_chunks

# Parts each block of the cube is sketched (fit) and scored in (cut between tiles, see tiling.split_chunks), and the
# fewest observations of a part. benchmarks/throughput.py, annual cube (5 blocks of 209 x 100 x 100): 5 tasks left
# one of 2 threads idle for the last block's 1.6 s; 4 parts per block give 20 tasks.
SCORE_PARTS = 4
MIN_PART_OBSERVATIONS = 2**16


def part_chunks(codes: np.ndarray, chunks: tuple[tuple[int, ...], ...]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The spatial chunks cutting each block of an array chunked ``chunks`` into parts between tiles.

    Each block is cut into up to ``SCORE_PARTS`` parts, none splitting a
    tile, each of at least ``MIN_PART_OBSERVATIONS`` observations over the
    longest time block (see :func:`geoanom.tiling.split_chunks`). Both
    constants are read at each call.

    Parameters
    ----------
    codes : ndarray (y, x)
        Tile code of every cell (negative: no tile).
    chunks : tuple of tuples of int
        Chunks of the array to cut, (..., time, y, x): a dask array's ``chunks``.

    Returns
    -------
    tuple of two tuples of int
        Row and column chunks whose boundaries include those of ``chunks[-2:]``.

    Examples
    --------
    >>> codes = np.repeat(np.arange(4), 2)[:, None] * np.ones((1, 3), dtype=int)  # 4 tiles of 2 rows
    >>> part_chunks(codes, ((1,), (2**14,), (8,), (3,)))  # parts of at least 4 cells: 2 rows
    ((2, 2, 2, 2), (3,))
    >>> part_chunks(codes, ((1,), (2**12,), (8,), (3,)))  # at least 16 cells: the block stays whole
    ((8,), (3,))
    """
    return split_chunks(codes, chunks[-2:], SCORE_PARTS, -(-MIN_PART_OBSERVATIONS // max(chunks[-3])))


def in_parts(values: xr.DataArray, codes: np.ndarray) -> xr.DataArray:
    """``values`` (variable, time, *spatial) with each block cut between tiles into up to ``SCORE_PARTS`` parts.

    The training features and sketches of a cube stored in time slabs were
    one task per slab: the throughput cubes' 3 slabs ran on 2 threads with
    the last (and smaller) one alone. Parts cut between tiles keep every
    tile in one part of a slab, so its sketch merges no more partial
    sketches; features and samples are the same for any chunking.

    Examples
    --------
    >>> in_parts(stack_variables(train), model.tile_codes).chunks  # doctest: +SKIP
    ((1,), (72, 72, 36), (30, 30, 30, 30), (240,))
    """
    data = values.data
    rows, cols = part_chunks(codes, data.chunks)
    return values.copy(data=data.rechunk({2: rows, 3: cols}))
