"""Connected regions of a chunked (time, y, x) mask, stitched across chunk edges.

Written here rather than taken from :func:`dask_image.ndmeasure.label`:
that function builds its graph from many small array expressions, and with
the current dask it took over a minute to even build the graph of a cube of
a few hundred chunks. Here the graph has one task per chunk, one per seam
between rows or columns of chunks, and one that joins them.

1. Each chunk is labelled alone (:func:`scipy.ndimage.label`, no connection
   across time); a chunk's labels become int64 keys ``chunk << 32 | label``,
   unique in the cube without any count known in advance.
2. Each seam (the two rows or columns either side of a chunk boundary, the
   whole width or height of the cube, and the antimeridian on a global grid)
   gives the pairs of keys that touch under the structuring element.
3. One task joins the pairs (:func:`scipy.sparse.csgraph.connected_components`)
   and numbers the regions 1, 2, ... in each time step in raster order of
   their first cell, as :func:`scipy.ndimage.label` numbers a whole image.
4. Each chunk's keys are replaced by those numbers.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

KEY_SHIFT = 32


def label_regions(mask: da.Array, connectivity: int = 1, wrap: bool = False) -> da.Array:
    """Label connected regions of every time step of a chunked boolean mask.

    Parameters
    ----------
    mask : dask array of bool (time, y, x)
    connectivity : {1, 2}
        1: cells sharing an edge are connected; 2: sharing a corner too.
    wrap : bool
        Connect the last column to the first (a global longitude axis).

    Returns
    -------
    dask array of int32 (time, y, x)
        0 outside regions; each time step's regions numbered from 1 in
        raster order, identical for every chunking of ``mask``.
    """
    keys = _chunk_keys(mask, connectivity)
    blocks = keys.to_delayed(optimize_graph=False)
    firsts = [dask.delayed(_first_cells, pure=True)(block, tuple(part.start for part in where))
              for block, where in zip(blocks.ravel(), block_slices(keys.chunks))]
    edges = np.empty(blocks.shape, dtype=object)
    for index in np.ndindex(*blocks.shape):
        edges[index] = dask.delayed(_block_edges, pure=True)(blocks[index])
    pairs = [dask.delayed(_seam_pairs, pure=True)(before, after, connectivity, periodic)
             for before, after, periodic in _seams(edges, wrap)]
    lookup = dask.delayed(_join, pure=True)(firsts, pairs)
    return keys.map_blocks(_relabel, lookup, dtype=np.int32, meta=np.empty((0, 0, 0), dtype=np.int32))


def block_slices(chunks: tuple[tuple[int, ...], ...]) -> list[tuple[slice, ...]]:
    """Where every block lies in the array, in ``to_delayed().ravel()`` order."""
    bounds = [np.cumsum((0,) + tuple(axis)) for axis in chunks]
    return [tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, index))
            for index in np.ndindex(*(len(axis) for axis in chunks))]


def _chunk_keys(mask: da.Array, connectivity: int) -> da.Array:
    element = np.zeros((3, 3, 3), dtype=bool)
    element[1] = ndimage.generate_binary_structure(2, connectivity)
    n_blocks = mask.numblocks

    def keys_of_block(block: np.ndarray, block_info=None) -> np.ndarray:
        index = np.ravel_multi_index(block_info[0]["chunk-location"], n_blocks)
        local, _ = ndimage.label(block, element)
        return np.where(local > 0, (np.int64(index) << KEY_SHIFT) | local, 0)

    return mask.map_blocks(keys_of_block, dtype=np.int64, meta=np.empty((0, 0, 0), dtype=np.int64))


def _block_edges(keys: np.ndarray) -> dict[str, np.ndarray]:
    """The outermost rows and columns of a block of keys: all that seams need of it."""
    return {"top": keys[:, 0, :], "bottom": keys[:, -1, :], "left": keys[:, :, 0], "right": keys[:, :, -1]}


def _seams(edges: np.ndarray, wrap: bool) -> list[tuple[list, list, bool]]:
    """(edges before, edges after, periodic along the seam) for every seam and time chunk.

    ``edges`` holds each block's delayed :func:`_block_edges`, so a seam task
    receives a few rows of keys, not whole blocks.
    """
    n_times, n_rows, n_cols = edges.shape
    seams = []
    for t in range(n_times):
        for i in range(n_rows - 1):
            seams.append(([(edges[t, i, j], "bottom") for j in range(n_cols)],
                          [(edges[t, i + 1, j], "top") for j in range(n_cols)], wrap))
        column_pairs = [(j, j + 1) for j in range(n_cols - 1)] + ([(n_cols - 1, 0)] if wrap else [])
        for left, right in column_pairs:
            seams.append(([(edges[t, i, left], "right") for i in range(n_rows)],
                          [(edges[t, i, right], "left") for i in range(n_rows)], False))
    return seams


def _seam_pairs(before: list[tuple[dict, str]], after: list[tuple[dict, str]], connectivity: int,
                periodic: bool) -> np.ndarray:
    """Pairs of region keys (2, n) that touch across a seam: (block edges, side) along its length."""
    before = np.concatenate([edges[side] for edges, side in before], axis=1)
    after = np.concatenate([edges[side] for edges, side in after], axis=1)
    shifts = (0,) if connectivity == 1 else (-1, 0, 1)
    found = []
    for shift in shifts:
        if periodic:
            other = np.roll(after, -shift, axis=1)
            a, b = before, other
        elif shift >= 0:
            a, b = before[:, : before.shape[1] - shift], after[:, shift:]
        else:
            a, b = before[:, -shift:], after[:, : after.shape[1] + shift]
        touching = (a > 0) & (b > 0)
        found.append(np.stack([a[touching], b[touching]]))
    return np.concatenate(found, axis=1) if found else np.empty((2, 0), dtype=np.int64)


def _first_cells(keys: np.ndarray, offset: tuple[int, int, int]) -> pd.DataFrame:
    """Time step and first cell (raster position ``row << 32 | column``) of each key in a chunk."""
    t, y, x = np.nonzero(keys)
    frame = pd.DataFrame({
        "key": keys[t, y, x],
        "time": (t + offset[0]).astype(np.int64),
        "position": ((y + offset[1]).astype(np.int64) << KEY_SHIFT) | (x + offset[2]),
    })
    return frame.groupby("key", as_index=False).agg(time=("time", "first"), position=("position", "min"))


def _join(firsts: list[pd.DataFrame], pairs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted keys and the raster-order region number of each."""
    nodes = pd.concat(firsts, ignore_index=True).sort_values("key", ignore_index=True)
    keys = nodes["key"].to_numpy()
    if keys.size == 0:
        return keys, np.empty(0, dtype=np.int32)
    edges = np.concatenate(pairs, axis=1) if pairs else np.empty((2, 0), dtype=np.int64)
    ends = np.searchsorted(keys, edges)
    graph = coo_matrix((np.ones(ends.shape[1], dtype=np.int8), (ends[0], ends[1])), shape=(keys.size, keys.size))
    _, component = connected_components(graph, directed=False)
    nodes["component"] = component
    regions = nodes.groupby("component").agg(time=("time", "first"), position=("position", "min"))
    regions = regions.sort_values(["time", "position"])
    number = pd.Series(regions.groupby("time").cumcount().to_numpy() + 1, index=regions.index)
    return keys, number.reindex(component).to_numpy().astype(np.int32)


def _relabel(block: np.ndarray, lookup: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    keys, numbers = lookup
    out = np.zeros(block.shape, dtype=np.int32)
    inside = block > 0
    out[inside] = numbers[np.searchsorted(keys, block[inside])]
    return out
