"""Connected regions of a chunked (time, y, x) mask, stitched across chunk edges.

Written here rather than taken from :func:`dask_image.ndmeasure.label`:
that function builds its graph from many small array expressions, and with
the current dask it took over a minute to even build the graph of a cube of
a few hundred chunks. Here the graph has one task per chunk, one per seam
between rows or columns (or time steps) of chunks, and one that joins them.

Two modes share the machinery. :func:`label_regions` connects cells within
each time step alone (2-D regions, numbered per step); :func:`label_events`
connects them across time as well (3-D events, numbered once for the cube).

1. Each chunk is labelled alone (:func:`scipy.ndimage.label` with the mode's
   3 x 3 x 3 structuring element, see :class:`Connection`); a chunk's labels
   become int64 keys ``chunk << 32 | label``, unique in the cube without any
   count known in advance.
2. Each seam (the two rows or columns either side of a chunk boundary, the
   whole width or height of the cube; the antimeridian on a global grid; in
   3-D, the whole planes either side of a time boundary) gives the pairs of
   keys that touch under the structuring element. Bridged gaps add pairs of
   keys two steps apart in the same cell, within chunks and across seams.
3. One task joins the pairs (:func:`scipy.sparse.csgraph.connected_components`),
   drops components smaller than ``min_cells`` and numbers the rest 1, 2, ...
   in order of their first cell: in (time, raster) order for events, in
   raster order within each time step for regions, as
   :func:`scipy.ndimage.label` numbers a whole image.
4. Each chunk's keys are replaced by those numbers.

Every step depends on the cells alone, never on where chunks end, so the
numbers are identical for every chunking.
"""

from __future__ import annotations

from dataclasses import dataclass

import dask
import dask.array as da
import numpy as np
from dask.delayed import Delayed
from scipy import ndimage
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

KEY_SHIFT = 32

Lookup = tuple[np.ndarray, np.ndarray]
"""Sorted keys and the number of each (0: dropped); see :func:`apply_lookup`."""


@dataclass(frozen=True)
class Connection:
    """Which cells of a (time, y, x) mask are connected.

    Parameters
    ----------
    connectivity : {1, 2}
        1: cells sharing an edge are connected; 2: sharing a corner too.
    wrap : bool
        Connect the last column to the first (a global longitude axis).
    across_time : bool
        Connect cells across one time step (3-D events) rather than within
        each step alone (2-D regions).
    bridge_gaps : bool
        With ``across_time``, also connect a cell's flags two steps apart, so
        one unflagged step does not split an event.

    Notes
    -----
    The 3-D structuring element: connectivity 1 is the 6-neighbourhood
    (:func:`scipy.ndimage.generate_binary_structure` ``(3, 1)``): edges in
    space, and the same cell one step before or after. Connectivity 2 is the
    26-neighbourhood (``(3, 3)``): the spatial 8-neighbourhood in the same
    step and in the steps either side, so a blob moving one cell diagonally
    per step stays one event.

    Examples
    --------
    >>> int(Connection(1, across_time=True).element.sum()), int(Connection(2, across_time=True).element.sum())
    (7, 27)
    """

    connectivity: int = 1
    wrap: bool = False
    across_time: bool = False
    bridge_gaps: bool = False

    def __post_init__(self) -> None:
        if self.bridge_gaps and not self.across_time:
            raise ValueError("bridging gaps in time needs across_time=True: 2-D regions have no time connections.")

    @property
    def element(self) -> np.ndarray:
        """The 3 x 3 x 3 structuring element over (time, y, x)."""
        if self.across_time:
            return ndimage.generate_binary_structure(3, 1 if self.connectivity == 1 else 3)
        element = np.zeros((3, 3, 3), dtype=bool)
        element[1] = ndimage.generate_binary_structure(2, self.connectivity)
        return element

    def offsets(self, axis: int) -> list[tuple[int, int]]:
        """Shifts (along the other two axes) from a cell to the cells it touches one step further along ``axis``."""
        return [tuple(int(i) - 1 for i in index) for index in np.argwhere(self.element.take(2, axis=axis))]


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

    Examples
    --------
    >>> mask = da.from_array(np.array([[[1, 0, 1]], [[1, 1, 0]]], dtype=bool), chunks=(1, 1, 2))
    >>> label_regions(mask).compute().tolist()
    [[[1, 0, 2]], [[1, 1, 0]]]
    """
    keys, lookup = stitch(mask, Connection(connectivity, wrap))
    return relabel(keys, lookup)


def label_events(mask: da.Array, connectivity: int = 1, wrap: bool = False, *, bridge_gaps: bool = False,
                 min_cells: int = 1) -> da.Array:
    """Label connected events of a chunked boolean mask in (time, y, x).

    Parameters
    ----------
    mask : dask array of bool (time, y, x)
    connectivity : {1, 2}
        See :class:`Connection` for the 3-D structuring element.
    wrap : bool
        Connect the last column to the first (a global longitude axis).
    bridge_gaps : bool
        Connect a cell's flags separated by one unflagged step.
    min_cells : int
        Events of fewer flagged cell-steps are dropped (label 0).

    Returns
    -------
    dask array of int32 (time, y, x)
        0 outside events; events numbered 1..N in (time, raster) order of
        their first cell, identical for every chunking of ``mask``.

    Examples
    --------
    >>> mask = da.from_array(np.array([[[1, 0, 1]], [[1, 1, 0]]], dtype=bool), chunks=(1, 1, 2))
    >>> label_events(mask).compute().tolist()
    [[[1, 0, 2]], [[1, 1, 0]]]
    >>> label_events(mask, min_cells=2).compute().tolist()
    [[[1, 0, 0]], [[1, 1, 0]]]
    """
    keys, lookup = stitch(mask, Connection(connectivity, wrap, across_time=True, bridge_gaps=bridge_gaps),
                          min_cells=min_cells)
    return relabel(keys, lookup)


def stitch(mask: da.Array, connection: Connection, min_cells: int = 1) -> tuple[da.Array, Delayed]:
    """The chunk keys of a mask and the delayed lookup that numbers them (steps 1 to 3).

    Callers that aggregate per chunk (the event catalogue) group by key and
    map keys to numbers with :func:`apply_lookup` at the end, so no chunk
    waits for the join.

    Examples
    --------
    >>> mask = da.from_array(np.array([[[1, 0, 1]]], dtype=bool), chunks=(1, 1, 2))
    >>> keys, lookup = stitch(mask, Connection())
    >>> apply_lookup(keys.compute(), lookup.compute()).tolist()
    [[[1, 0, 2]]]
    """
    keys = _chunk_keys(mask, connection.element)
    blocks = keys.to_delayed(optimize_graph=False)
    nodes = [dask.delayed(_block_nodes, pure=True)(block, tuple(part.start for part in where), keys.shape,
                                                   connection.bridge_gaps)
             for block, where in zip(blocks.ravel(), block_slices(keys.chunks))]
    edges = np.empty(blocks.shape, dtype=object)
    for index in np.ndindex(*blocks.shape):
        edges[index] = dask.delayed(_block_edges, pure=True)(blocks[index])
    pairs = [dask.delayed(_seam_pairs, pure=True)(before, after, offsets, periodic)
             for before, after, offsets, periodic in _seams(edges, connection)]
    pairs += _time_seams(keys, connection)
    plane = int(np.prod(keys.shape[1:]))
    lookup = dask.delayed(_join, pure=True)(nodes, pairs, 0 if connection.across_time else plane, int(min_cells))
    return keys, lookup


def relabel(keys: da.Array, lookup: Delayed) -> da.Array:
    """Step 4: every chunk's keys replaced by their numbers, int32."""
    return keys.map_blocks(apply_lookup, lookup, dtype=np.int32, meta=np.empty((0, 0, 0), dtype=np.int32))


def apply_lookup(keys: np.ndarray, lookup: Lookup) -> np.ndarray:
    """The number of every key (0 for key 0 and for dropped components), int32, of the same shape.

    Examples
    --------
    >>> apply_lookup(np.array([0, 7, 9]), (np.array([7, 9]), np.array([2, 1], dtype=np.int32))).tolist()
    [0, 2, 1]
    """
    known, numbers = lookup
    out = np.zeros(np.shape(keys), dtype=np.int32)
    inside = keys > 0
    out[inside] = numbers[np.searchsorted(known, keys[inside])]
    return out


def block_slices(chunks: tuple[tuple[int, ...], ...]) -> list[tuple[slice, ...]]:
    """Where every block lies in the array, in ``to_delayed().ravel()`` order.

    Examples
    --------
    >>> block_slices(((2,), (1, 2)))
    [(slice(0, 2, None), slice(0, 1, None)), (slice(0, 2, None), slice(1, 3, None))]
    """
    bounds = [np.cumsum((0,) + tuple(axis)) for axis in chunks]
    return [tuple(slice(int(b[i]), int(b[i + 1])) for b, i in zip(bounds, index))
            for index in np.ndindex(*(len(axis) for axis in chunks))]


def _chunk_keys(mask: da.Array, element: np.ndarray) -> da.Array:
    n_blocks = mask.numblocks

    def keys_of_block(block: np.ndarray, block_info=None) -> np.ndarray:
        index = np.ravel_multi_index(block_info[0]["chunk-location"], n_blocks)
        local, _ = ndimage.label(block, element)
        return np.where(local > 0, (np.int64(index) << KEY_SHIFT) | local, 0)

    return mask.map_blocks(keys_of_block, dtype=np.int64, meta=np.empty((0, 0, 0), dtype=np.int64))


def _block_nodes(keys: np.ndarray, offset: tuple[int, int, int], shape: tuple[int, int, int],
                 bridge_gaps: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Keys of a block, the global (time, raster) order of each one's first cell, its size, and bridge pairs.

    A block's C order is the cube's (time, y, x) order restricted to the
    block, so a key's first occurrence in the block is its first cell.
    """
    flat = keys.ravel()
    inside = np.flatnonzero(flat)
    found, first, counts = np.unique(flat[inside], return_index=True, return_counts=True)
    t, y, x = np.unravel_index(inside[first], keys.shape)
    order = np.ravel_multi_index((t + offset[0], y + offset[1], x + offset[2]), shape).astype(np.int64)
    bridges = _touching(keys[:-2], keys[2:], [(0, 0, 0)]) if bridge_gaps else np.empty((2, 0), dtype=np.int64)
    return found, order, counts.astype(np.int64), bridges


def _block_edges(keys: np.ndarray) -> dict[str, np.ndarray]:
    """The outermost rows and columns of a block of keys: all that spatial seams need of it."""
    return {"top": keys[:, 0, :], "bottom": keys[:, -1, :], "left": keys[:, :, 0], "right": keys[:, :, -1]}


def _seams(edges: np.ndarray, connection: Connection) -> list[tuple[list, list, list, bool]]:
    """(edges before, edges after, offsets, periodic along the seam) for every spatial seam and time chunk.

    ``edges`` holds each block's delayed :func:`_block_edges`, so a seam task
    receives a few rows of keys, not whole blocks.
    """
    n_times, n_rows, n_cols = edges.shape
    down, across = connection.offsets(axis=1), connection.offsets(axis=2)
    seams = []
    for t in range(n_times):
        for i in range(n_rows - 1):
            seams.append(([(edges[t, i, j], "bottom") for j in range(n_cols)],
                          [(edges[t, i + 1, j], "top") for j in range(n_cols)], down, connection.wrap))
        column_pairs = [(j, j + 1) for j in range(n_cols - 1)] + ([(n_cols - 1, 0)] if connection.wrap else [])
        for left, right in column_pairs:
            seams.append(([(edges[t, i, left], "right") for i in range(n_rows)],
                          [(edges[t, i, right], "left") for i in range(n_rows)], across, False))
    return seams


def _seam_pairs(before: list[tuple[dict, str]], after: list[tuple[dict, str]], offsets: list[tuple[int, int]],
                periodic: bool) -> np.ndarray:
    """Pairs of region keys (2, n) that touch across a seam: (block edges, side) along its length."""
    before = np.concatenate([edges[side] for edges, side in before], axis=1)
    after = np.concatenate([edges[side] for edges, side in after], axis=1)
    return _touching(before, after, offsets, periodic)


def _time_seams(keys: da.Array, connection: Connection) -> list[Delayed]:
    """Pair tasks across every boundary between time chunks (3-D only).

    Each receives the whole planes either side of its boundary, cut from
    the keys by dask (two each side when bridging gaps, which may reach
    past a one-step chunk into the next).
    """
    offsets = connection.offsets(axis=0)
    if not offsets:
        return []
    reach = 2 if connection.bridge_gaps else 1
    bounds = np.cumsum(keys.chunks[0])[:-1]
    tasks = []
    for bound in bounds:
        lo, hi = max(int(bound) - reach, 0), min(int(bound) + reach, keys.shape[0])
        planes = keys[lo:hi].rechunk((hi - lo, -1, -1)).to_delayed(optimize_graph=False).ravel()[0]
        tasks.append(dask.delayed(_time_seam_pairs, pure=True)(planes, int(bound) - lo, offsets, connection))
    return tasks


def _time_seam_pairs(planes: np.ndarray, bound: int, offsets: list[tuple[int, int]],
                     connection: Connection) -> np.ndarray:
    """Pairs across the boundary before plane ``bound``: neighbours one step apart, and bridged gaps."""
    found = [_touching(planes[bound - 1], planes[bound], offsets, connection.wrap)]
    if connection.bridge_gaps:  # steps t and t + 2 with the boundary between them
        found += [_touching(planes[t], planes[t + 2], [(0, 0)])
                  for t in (bound - 2, bound - 1) if t >= 0 and t + 2 < len(planes)]
    return np.concatenate(found, axis=1)


def _touching(a: np.ndarray, b: np.ndarray, offsets: list[tuple[int, ...]], periodic: bool = False) -> np.ndarray:
    """Distinct pairs (2, n) of keys ``a[i]``, ``b[i + offset]``, both set, for every offset.

    With ``periodic`` the last axis wraps round (the antimeridian).
    """
    found = []
    for offset in offsets:
        near, far = [], []
        other = b
        for axis, shift in enumerate(offset):
            if periodic and axis == a.ndim - 1:
                other = np.roll(other, -shift, axis=axis)
                near.append(slice(None))
                far.append(slice(None))
            elif shift >= 0:
                near.append(slice(0, a.shape[axis] - shift))
                far.append(slice(shift, None))
            else:
                near.append(slice(-shift, None))
                far.append(slice(0, b.shape[axis] + shift))
        first, second = a[tuple(near)], other[tuple(far)]
        both = (first > 0) & (second > 0) & (first != second)
        found.append(np.stack([first[both], second[both]]))
    pairs = np.concatenate(found, axis=1) if found else np.empty((2, 0), dtype=np.int64)
    return np.unique(pairs, axis=1) if pairs.shape[1] else pairs.astype(np.int64)


def _join(nodes: list[tuple[np.ndarray, ...]], pairs: list[np.ndarray], plane: int, min_cells: int) -> Lookup:
    """Sorted keys and the number of each: 1..N in order of first cell, restarting every step when ``plane``.

    ``plane`` is the number of cells in one time step for 2-D regions
    (numbered within each step), 0 for 3-D events (numbered once).
    """
    keys, firsts, sizes = (np.concatenate([node[i] for node in nodes]) for i in range(3))
    order = np.argsort(keys)
    keys, firsts, sizes = keys[order], firsts[order], sizes[order]
    if keys.size == 0:
        return keys, np.empty(0, dtype=np.int32)
    edges = np.concatenate(list(pairs) + [node[3] for node in nodes], axis=1).astype(np.int64)
    ends = np.searchsorted(keys, edges)
    graph = coo_matrix((np.ones(ends.shape[1], dtype=np.int8), (ends[0], ends[1])), shape=(keys.size, keys.size))
    n_components, component = connected_components(graph, directed=False)
    first = np.full(n_components, np.iinfo(np.int64).max)
    np.minimum.at(first, component, firsts)
    kept = np.flatnonzero(np.bincount(component, weights=sizes, minlength=n_components) >= min_cells)
    kept = kept[np.argsort(first[kept], kind="stable")]
    rank = np.arange(kept.size)
    if plane:  # restart at 1 in every time step
        steps = first[kept] // plane
        rank -= np.searchsorted(steps, steps)
    number = np.zeros(n_components, dtype=np.int32)
    number[kept] = rank + 1
    return keys, number[component]
