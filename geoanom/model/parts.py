"""How fit and score cut each block of a cube into parts between tiles, so that every thread stays busy.

A part never splits a tile (:func:`geoanom.tiling.split_chunks`): no tile is
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
    parts = split_chunks(codes, data.chunks[2:], SCORE_PARTS, -(-MIN_PART_OBSERVATIONS // max(data.chunks[1])))
    return values.copy(data=data.rechunk({2: parts[0], 3: parts[1]}))
