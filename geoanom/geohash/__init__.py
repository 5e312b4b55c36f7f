"""Vectorised geohash encoding, decoding and cell arithmetic with numpy.

A geohash names a cell of a regular latitude/longitude grid: the bits of the
cell's longitude index and latitude index are interleaved (longitude first,
most significant bit first) and written five bits per character in the base32
alphabet ``0123456789bcdefghjkmnpqrstuvwxyz``. A hash of ``p`` characters has
``5 p`` bits: ``ceil(5 p / 2)`` for longitude and ``floor(5 p / 2)`` for
latitude.

geoanom labels every grid cell of a data cube with a geohash (see
``geoanom.tiling``), millions of points per chunk. The geohash libraries on
PyPI (pygeohash, python-geohash, geolib, ...) encode one point per Python call,
which would dominate the run time, so this module is written by hand: it works
on whole numpy arrays with integer bit arithmetic and has no loop per point.
It imports only numpy and the standard library.

Cell membership follows the usual bisection (and pygeohash) exactly: each cell
is the half-open interval ``[lo, hi)`` in latitude and in longitude, except
that latitude 90 belongs to the top row. Longitudes are first wrapped into
``[-180, 180)``, so longitude 180 is the same meridian as -180 and is encoded
in the westernmost column (pygeohash instead puts 180 in the easternmost
column; every other longitude in ``[-180, 180)`` gives the same cell).

Hashes are case-sensitive: only the lower-case alphabet is accepted, so that a
tile has exactly one label.
"""

from __future__ import annotations

from collections.abc import Container

import numpy as np
from numpy.typing import ArrayLike

from ._codec import (
    _BLOCK,
    ALPHABET,
    MAX_PRECISION,
    _as_float,
    _bits,
    _cell_index,
    _check_precision,
    _hashes_from_indices,
    _indices,
    _interleave,
    _parse,
    _strings,
    _where,
    _write_chars,
)

__all__ = [
    "ALPHABET",
    "MAX_PRECISION",
    "bbox",
    "cell_size",
    "decode",
    "enclosing",
    "encode",
    "neighbours",
    "parent",
]

_DIRECTIONS = {
    "n": (1, 0),
    "ne": (1, 1),
    "e": (0, 1),
    "se": (-1, 1),
    "s": (-1, 0),
    "sw": (-1, -1),
    "w": (0, -1),
    "nw": (1, -1),
}


# --------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------


def cell_size(precision: int) -> tuple[float, float]:
    """Return the size in degrees of a geohash cell.

    Parameters
    ----------
    precision : int
        Number of characters of the geohash, 1 to 12.

    Returns
    -------
    lat_degrees : float
        Height of the cell in degrees of latitude, ``180 / 2**floor(5p/2)``.
    lon_degrees : float
        Width of the cell in degrees of longitude, ``360 / 2**ceil(5p/2)``.

    Raises
    ------
    ValueError
        If ``precision`` is not an integer from 1 to 12.

    Examples
    --------
    >>> cell_size(1)
    (45.0, 45.0)
    >>> cell_size(2)
    (5.625, 11.25)
    """
    nlat, nlon = _bits(_check_precision(precision))
    return 180.0 / (1 << nlat), 360.0 / (1 << nlon)


def encode(lat: ArrayLike, lon: ArrayLike, precision: int = 8) -> np.ndarray:
    """Encode latitudes and longitudes as geohashes.

    Parameters
    ----------
    lat : array_like of float
        Latitudes in degrees, in [-90, 90].
    lon : array_like of float
        Longitudes in degrees. Any finite value is accepted and wrapped into
        [-180, 180) with ``((lon + 180) % 360) - 180``; values already in
        [-180, 180) are used exactly as given.
    precision : int, optional
        Number of characters of each hash, 1 to 12 (default 8).

    Returns
    -------
    numpy.ndarray
        Array of dtype ``<U{precision}`` with the broadcast shape of ``lat``
        and ``lon`` (0-d for scalar input).

    Raises
    ------
    ValueError
        If a latitude is NaN or outside [-90, 90], a longitude is NaN or
        infinite, the shapes do not broadcast, or ``precision`` is not an
        integer from 1 to 12.

    Notes
    -----
    A point on a cell boundary belongs to the cell above it or east of it
    (cells are ``[lo, hi)``), as with the bisection of the reference
    algorithm, except that latitude 90 belongs to the top row. Longitude 180
    is wrapped to -180 and so lies in the westernmost column.

    The work is integer arithmetic on whole arrays (cell indices, Morton bit
    interleaving, a table from 5-bit values to characters), processed in
    blocks of 65536 points; there is no Python loop per point.

    Examples
    --------
    >>> str(encode(57.64911, 10.40744, precision=11))
    'u4pruydqqvj'
    >>> encode([0.0, -90.0], [0.0, -180.0], precision=3).tolist()
    ['s00', '000']
    """
    precision = _check_precision(precision)
    lat = _as_float(lat, "latitudes")
    lon = _as_float(lon, "longitudes")
    in_range = (lat >= -90.0) & (lat <= 90.0)  # False for NaN
    if not in_range.all():
        i = int(np.argmin(in_range.reshape(-1)))
        value = float(lat.reshape(-1)[i])
        where = _where(lat.shape, i)
        if np.isnan(value):
            raise ValueError(f"latitude is NaN{where}")
        raise ValueError(f"latitude {value!r}{where} is outside [-90, 90]")
    finite = np.isfinite(lon)
    if not finite.all():
        i = int(np.argmin(finite.reshape(-1)))
        value = float(lon.reshape(-1)[i])
        where = _where(lon.shape, i)
        if np.isnan(value):
            raise ValueError(f"longitude is NaN{where}")
        raise ValueError(f"longitude {value!r}{where} is not finite")
    try:
        shape = np.broadcast_shapes(lat.shape, lon.shape)
    except ValueError:
        raise ValueError(
            f"latitude shape {lat.shape} and longitude shape {lon.shape} "
            "do not broadcast together"
        ) from None
    lat_flat = np.ascontiguousarray(np.broadcast_to(lat, shape)).reshape(-1)
    lon_flat = np.ascontiguousarray(np.broadcast_to(lon, shape)).reshape(-1)

    nlat, nlon = _bits(precision)
    chars = np.empty((lat_flat.size, precision), dtype=np.uint32)
    for start in range(0, lat_flat.size, _BLOCK):
        block = slice(start, start + _BLOCK)
        la = lat_flat[block]
        lo = lon_flat[block]
        outside = (lo < -180.0) | (lo >= 180.0)
        if outside.any():
            lo = lo.copy()
            lo[outside] = ((lo[outside] + 180.0) % 360.0) - 180.0
            lo[lo >= 180.0] = -180.0  # 360 - tiny can round up to 360
        lat_index = _cell_index(la, -90.0, 180.0, nlat)
        lon_index = _cell_index(lo, -180.0, 360.0, nlon)
        code = _interleave(lat_index, lon_index, precision)
        _write_chars(code, precision, chars[block])
    return _strings(chars, precision, shape)


def bbox(
    hashes: ArrayLike,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return the bounds of geohash cells.

    Parameters
    ----------
    hashes : array_like of str
        Geohashes of 1 to 12 lower-case characters; the lengths may differ.

    Returns
    -------
    lat_min, lat_max, lon_min, lon_max : numpy.ndarray
        float64 arrays of the shape of ``hashes``. The cell holds the points
        with ``lat_min <= lat < lat_max`` and ``lon_min <= lon < lon_max``
        (and ``lat == 90`` for the top row). The bounds are exact.

    Raises
    ------
    ValueError
        If a hash is empty, longer than 12 characters, or has a character
        outside the geohash alphabet; the message names the hash.

    Examples
    --------
    >>> [float(v) for v in bbox("u4")]
    [56.25, 61.875, 0.0, 11.25]
    """
    shape, chars, lengths = _parse(hashes)
    lat_index, lon_index = _indices(chars, lengths)
    nlat, nlon = _bits(lengths)
    lat_step = np.ldexp(180.0, -nlat)
    lon_step = np.ldexp(360.0, -nlon)
    lat_lo = lat_index.astype(np.float64)
    lon_lo = lon_index.astype(np.float64)
    lat_min = lat_lo * lat_step - 90.0
    lat_max = (lat_lo + 1.0) * lat_step - 90.0
    lon_min = lon_lo * lon_step - 180.0
    lon_max = (lon_lo + 1.0) * lon_step - 180.0
    return (
        lat_min.reshape(shape),
        lat_max.reshape(shape),
        lon_min.reshape(shape),
        lon_max.reshape(shape),
    )


def decode(hashes: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return the centres of geohash cells.

    Parameters
    ----------
    hashes : array_like of str
        Geohashes of 1 to 12 lower-case characters; the lengths may differ.

    Returns
    -------
    lat, lon : numpy.ndarray
        float64 arrays of the shape of ``hashes``: the exact centre of each
        cell, in degrees.

    Raises
    ------
    ValueError
        If a hash is empty, longer than 12 characters, or has a character
        outside the geohash alphabet; the message names the hash.

    Examples
    --------
    >>> lat, lon = decode(["u4", "s0"])
    >>> lat.tolist(), lon.tolist()
    ([59.0625, 2.8125], [5.625, 5.625])
    """
    lat_min, lat_max, lon_min, lon_max = bbox(hashes)
    return (lat_min + lat_max) * 0.5, (lon_min + lon_max) * 0.5


def neighbours(hashes: ArrayLike) -> dict[str, np.ndarray]:
    """Return the eight neighbouring cells of geohash cells.

    Parameters
    ----------
    hashes : array_like of str
        Geohashes of 1 to 12 lower-case characters; the lengths may differ.
        Each neighbour has the length of its cell.

    Returns
    -------
    dict of str to numpy.ndarray
        Keys ``"n", "ne", "e", "se", "s", "sw", "w", "nw"``; each value is a
        string array of the shape of ``hashes``. Longitude wraps across the
        antimeridian (the east neighbour of the easternmost column is in the
        westernmost one). There is no cell north of the top row or south of
        the bottom row: there the ``"n"``, ``"ne"``, ``"nw"`` (or ``"s"``,
        ``"se"``, ``"sw"``) entries are the empty string ``""``.

    Raises
    ------
    ValueError
        If a hash is empty, longer than 12 characters, or has a character
        outside the geohash alphabet; the message names the hash.

    Examples
    --------
    >>> {k: str(v) for k, v in neighbours("u4pruyd").items()}["n"]
    'u4pruyf'
    >>> str(neighbours("b")["n"])
    ''
    """
    shape, chars, lengths = _parse(hashes)
    width = chars.shape[1]
    lat_index, lon_index = _indices(chars, lengths)
    nlat, nlon = _bits(lengths)
    rows = np.left_shift(1, nlat).astype(np.int64)
    columns = np.left_shift(1, nlon).astype(np.int64)
    lat_signed = lat_index.astype(np.int64)
    lon_signed = lon_index.astype(np.int64)
    result: dict[str, np.ndarray] = {}
    for name, (dlat, dlon) in _DIRECTIONS.items():
        new_lat = lat_signed + dlat
        exists = (new_lat >= 0) & (new_lat < rows)
        new_lat = np.clip(new_lat, 0, None).astype(np.uint64)
        new_lon = ((lon_signed + dlon) % columns).astype(np.uint64)  # wraps
        result[name] = _hashes_from_indices(
            new_lat, new_lon, lengths, width, shape, exists
        )
    return result


def parent(hashes: ArrayLike, precision: int | None = None) -> np.ndarray:
    """Return the enclosing coarser cells of geohash cells.

    Parameters
    ----------
    hashes : array_like of str
        Geohashes of 1 to 12 lower-case characters; the lengths may differ.
    precision : int, optional
        Length of the parents, 0 to 12; it must not exceed the length of any
        hash. By default each parent is its hash less the last character.

    Returns
    -------
    numpy.ndarray
        String array of the shape of ``hashes`` holding the prefixes. The
        parent of a one-character hash (or any parent of precision 0) is the
        empty string ``""``, the root of the prefix tree (the whole globe).

    Raises
    ------
    ValueError
        If a hash is invalid (the message names it), ``precision`` is not an
        integer from 0 to 12, or a hash is shorter than ``precision``.

    Examples
    --------
    >>> parent(["u4pruyd", "s0"]).tolist()
    ['u4pruy', 's']
    >>> str(parent("u4pruyd", precision=2))
    'u4'
    """
    shape, chars, lengths = _parse(hashes)
    width = chars.shape[1]
    if precision is None:
        new_width = max(width - 1, 1)
        out = chars[:, :new_width].copy()
        out[np.arange(new_width) >= (lengths - 1)[:, None]] = 0
        return _strings(out, new_width, shape)
    precision = _check_precision(precision, lowest=0)
    short = lengths < precision
    if short.any():
        i = int(np.argmax(short))
        text = chars[i].copy().view(f"<U{width}")[0]
        raise ValueError(
            f"geohash {str(text)!r}{_where(shape, i)} has {int(lengths[i])} "
            f"characters, fewer than the requested parent precision {precision}"
        )
    if precision == 0:
        return np.full(shape, "", dtype="<U1")
    return _strings(chars[:, :precision], precision, shape)


def enclosing(code: str, regions: Container[str]) -> list[str]:
    """The proper prefixes of one geohash found in ``regions``, the smallest region first.

    The one definition of "the regions enclosing a tile" (a geohash's prefix
    is the cell holding it), used by the region pyramid, the federated
    rounds and the tiles' adaptation towards their region.

    Parameters
    ----------
    code : str
        A geohash.
    regions : container of str
        The region codes that exist (a dict of region models, say).

    Returns
    -------
    list of str
        Longest prefix first; empty when no region encloses ``code``.

    Examples
    --------
    >>> enclosing("u4pr", {"u", "u4p", "s"})
    ['u4p', 'u']
    """
    return [code[:length] for length in range(len(code) - 1, 0, -1) if code[:length] in regions]
