"""Moran's I of per-tile residuals, for clients that are geohash tiles.

When every client of a federation is a geohash tile, its residual (say, the
gap between its own model's score and the fused one) is a map. Moran's I says
whether neighbouring tiles err alike (I well above ``-1 / (n - 1)``, the
expectation with no autocorrelation), which a single global model would then
miss, or whether the errors are spatially random. Tiles are neighbours when
they touch, edge or corner (queen contiguity), across the antimeridian too.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import scipy.sparse

from geoanom import geohash
from geoanom.errors import GeoanomError

__all__ = ["geohash_weights", "morans_i", "tile_morans_i"]


def geohash_weights(tiles: Sequence[str]) -> scipy.sparse.csr_matrix:
    """Return the binary contiguity weights of geohash tiles.

    Parameters
    ----------
    tiles : sequence of str
        Distinct geohashes, all of the same precision.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n, n)`` float matrix with ``w[i, j] = 1`` when tile ``j`` is one
        of the eight neighbours of tile ``i`` (see
        :func:`geoanom.geohash.neighbours`: longitude wraps, latitude does
        not), else 0. The matrix is symmetric; a tile with no neighbour among
        ``tiles`` has an empty row.

    Raises
    ------
    GeoanomError
        If a tile is not a valid geohash, the precisions differ, or a tile is
        listed twice.
    """
    labels = _check_tiles(tiles)
    n = labels.size
    if n == 0:
        return scipy.sparse.csr_matrix((0, 0))
    order = np.argsort(labels)
    ordered = labels[order]
    # (8, n) neighbour names; each is looked up among the sorted tiles.
    around = np.stack(list(geohash.neighbours(labels).values()))
    slot = np.minimum(np.searchsorted(ordered, around), n - 1)
    found = ordered[slot] == around
    rows = np.broadcast_to(np.arange(n), around.shape)[found]
    columns = order[slot[found]]
    weights = scipy.sparse.csr_matrix((np.ones(rows.size), (rows, columns)), shape=(n, n))
    weights.data[:] = 1.0  # binary even if two directions named one tile
    return weights


def _check_tiles(tiles: Sequence[str]) -> np.ndarray:
    """Return the tiles as a string array, or raise GeoanomError."""
    tiles = list(tiles)
    if not tiles:
        return np.array([], dtype="<U1")
    odd = next((tile for tile in tiles if not isinstance(tile, str)), None)
    if odd is not None:
        raise GeoanomError(f"tiles must be geohash strings, got {odd!r}")
    try:
        geohash.bbox(tiles)  # validates every hash, naming the first bad one
    except ValueError as error:
        raise GeoanomError(f"invalid tile: {error}") from None
    lengths = {len(tile) for tile in tiles}
    if len(lengths) > 1:
        raise GeoanomError(
            f"tiles must share one geohash precision, got lengths {sorted(lengths)}"
        )
    labels = np.asarray(tiles, dtype=str)
    unique, counts = np.unique(labels, return_counts=True)
    if (counts > 1).any():
        raise GeoanomError(f"tile '{unique[np.argmax(counts > 1)]}' is listed more than once")
    return labels


def morans_i(
    values: np.ndarray,
    weights: scipy.sparse.spmatrix | np.ndarray,
    *,
    row_standardise: bool = True,
) -> float:
    """Return Moran's I, the spatial autocorrelation of values.

    Parameters
    ----------
    values : numpy.ndarray
        One finite value per site, shape ``(n,)``.
    weights : scipy.sparse matrix or numpy.ndarray
        ``(n, n)`` spatial weights, ``w[i, j] > 0`` when site ``j`` is a
        neighbour of site ``i`` (the diagonal is normally 0).
    row_standardise : bool, optional
        Divide each row of ``weights`` by its sum first (esda's default
        transformation ``"r"``), so each site weighs its neighbours' mean.
        Rows with no neighbour (islands) stay zero. Default True.

    Returns
    -------
    float
        ``I = (n / S0) * sum_ij w_ij z_i z_j / sum_i z_i**2`` with
        ``z = values - mean(values)`` and ``S0`` the sum of the weights: near
        1 for smooth maps, near ``-1 / (n - 1)`` for random ones, negative
        when neighbours differ. NaN when undefined: constant values, or no
        weight at all.

    Raises
    ------
    GeoanomError
        If a value is NaN or infinite.
    ValueError
        If ``values`` is not 1-D or ``weights`` is not ``(n, n)``.
    """
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D, got shape {values.shape}")
    bad = ~np.isfinite(values)
    if bad.any():
        raise GeoanomError(f"value {values[bad][0]} at index {int(np.argmax(bad))} is not finite")
    matrix = scipy.sparse.csr_matrix(weights, dtype=np.float64)
    if matrix.shape != (values.size, values.size):
        raise ValueError(f"weights must be {(values.size,) * 2}, got {matrix.shape}")
    if row_standardise:
        matrix = _row_standardised(matrix)
    z = values - values.mean()
    s0 = matrix.sum()
    spread = z @ z
    if s0 == 0 or spread == 0:
        return float("nan")
    return float(values.size / s0 * (z @ (matrix @ z)) / spread)


def _row_standardised(matrix: scipy.sparse.csr_matrix) -> scipy.sparse.csr_matrix:
    """Divide each row by its sum; rows summing to 0 (islands) stay 0."""
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    scale = np.divide(1.0, sums, out=np.zeros_like(sums), where=sums != 0)
    return scipy.sparse.diags(scale) @ matrix


def tile_morans_i(residuals: Mapping[str, float]) -> float:
    """Return Moran's I of per-tile residuals over geohash contiguity.

    Parameters
    ----------
    residuals : mapping of str to float
        One finite residual per geohash tile, all tiles of one precision.

    Returns
    -------
    float
        :func:`morans_i` of the residuals in sorted tile order, with
        :func:`geohash_weights` row-standardised.

    Raises
    ------
    GeoanomError
        If a residual is NaN or infinite (the tile is named), or the tiles
        are invalid (see :func:`geohash_weights`).
    """
    tiles = sorted(residuals)
    values = np.array([residuals[tile] for tile in tiles], dtype=np.float64)
    bad = [tile for tile, value in zip(tiles, values) if not np.isfinite(value)]
    if bad:
        raise GeoanomError(f"the residual of tile '{bad[0]}' is {residuals[bad[0]]}, not finite")
    return morans_i(values, geohash_weights(tiles))
