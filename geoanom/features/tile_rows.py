"""One tile's observations out of a block of feature vectors, and its scores back into the block's, compiled.

Scoring a block (:func:`geoanom.model.score._score_block`) takes each
tile's cells out of the block as rows, scores them with the tile's models
and puts the scores back. In numpy that was a gather of the tile's cells, a
transpose, a finiteness test of every value, a boolean selection, a clip
to float32's range and a scatter: six passes and their temporaries per
tile, with the GIL held between them (annual throughput cube: 729 tiles in
each of 5 blocks). Here it is one pass each way, the GIL released; the rows
and scores are the same numbers in the same order.
"""

from __future__ import annotations

import numba
import numpy as np

FLOAT32_MAX = float(np.finfo(np.float32).max)


def tile_rows(features: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The complete rows (n, feature) of ``cells`` in a block of features (feature, time, cell), and their places.

    Rows run time step by time step, the cells in the order given; a row
    with any non-finite feature is left out. ``places`` (n,) holds each
    row's ``time * len(cells) + i``, ``i`` its cell's position in ``cells``.

    Examples
    --------
    >>> features = np.arange(12.0).reshape(2, 2, 3)
    >>> features[0, 1, 2] = np.nan
    >>> rows, places = tile_rows(features, np.array([2, 0]))
    >>> rows.tolist(), places.tolist()
    ([[2.0, 8.0], [0.0, 6.0], [3.0, 9.0]], [0, 1, 3])
    """
    # strided blocks as they come (a part of a block, cut along y, is no contiguous array): no copy
    return _tile_rows(np.asarray(features, dtype=np.float64), np.asarray(cells, dtype=np.int64))


def place_scores(out: np.ndarray, scores: np.ndarray, places: np.ndarray, cells: np.ndarray) -> None:
    """Write scores (detector, n) of the rows at ``places`` (see :func:`tile_rows`) into ``out`` (detector, time, cell).

    Each score is clipped to float32's finite range, which ``out`` holds
    (never infinity: the density families grow as the cube of the distance,
    and an infinite score drew blank on a map), and rounded to float32; NaN
    stays NaN.

    Examples
    --------
    >>> out = np.full((1, 2, 3), np.nan, dtype=np.float32)
    >>> place_scores(out, np.array([[1.5, 1e300]]), np.array([0, 3]), np.array([2, 0]))
    >>> out[0].tolist()
    [[nan, nan, 1.5], [3.4028234663852886e+38, nan, nan]]
    """
    _place_scores(out, np.ascontiguousarray(scores, dtype=np.float64), places, np.asarray(cells, dtype=np.int64),
                  FLOAT32_MAX)


@numba.njit(cache=True, nogil=True)
def _tile_rows(features, cells):  # pragma: no cover - compiled; tested against the numpy selection
    n_features, n_times = features.shape[0], features.shape[1]
    n_cells = cells.size
    rows = np.empty((n_times * n_cells, n_features))
    places = np.empty(n_times * n_cells, dtype=np.int64)
    n = 0
    for t in range(n_times):
        for i in range(n_cells):
            c = cells[i]
            complete = True
            for f in range(n_features):
                value = features[f, t, c]
                if not np.isfinite(value):
                    complete = False
                    break
                rows[n, f] = value
            if complete:
                places[n] = t * n_cells + i
                n += 1
    return rows[:n], places[:n]


@numba.njit(cache=True, nogil=True)
def _place_scores(out, scores, places, cells, largest):  # pragma: no cover - compiled; tested against numpy's
    n_cells = cells.size
    for d in range(scores.shape[0]):
        for j in range(places.size):
            value = scores[d, j]
            if value > largest:
                value = largest
            elif value < -largest:
                value = -largest
            out[d, places[j] // n_cells, cells[places[j] % n_cells]] = np.float32(value)
