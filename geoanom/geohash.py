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

import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "ALPHABET",
    "MAX_PRECISION",
    "bbox",
    "cell_size",
    "decode",
    "encode",
    "neighbours",
    "parent",
]

#: The geohash base32 alphabet; a character's index is its 5-bit value.
ALPHABET = "0123456789bcdefghjkmnpqrstuvwxyz"

#: The longest geohash handled (60 bits, which fits an unsigned 64-bit integer).
MAX_PRECISION = 12

# 5-bit value -> Unicode code point (numpy '<U' arrays store UCS-4 code points).
_ENCODE_TABLE = np.array([ord(c) for c in ALPHABET], dtype=np.uint32)

# Code point (0..127) -> 5-bit value, and whether it is a geohash character.
# Code point 0 is the padding of numpy strings shorter than their dtype.
_DECODE_VALUE = np.zeros(128, dtype=np.uint64)
_DECODE_VALID = np.zeros(128, dtype=bool)
for _i, _c in enumerate(ALPHABET):
    _DECODE_VALUE[ord(_c)] = _i
    _DECODE_VALID[ord(_c)] = True
del _i, _c

# Points are encoded in blocks of this many so the temporaries stay in cache.
_BLOCK = 1 << 16

# Masks of the "spread" steps of a Morton (Z-order) code, from the widest.
_SPREAD_STEPS = (
    (16, np.uint64(0x0000FFFF0000FFFF)),
    (8, np.uint64(0x00FF00FF00FF00FF)),
    (4, np.uint64(0x0F0F0F0F0F0F0F0F)),
    (2, np.uint64(0x3333333333333333)),
    (1, np.uint64(0x5555555555555555)),
)

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
# helpers
# --------------------------------------------------------------------------


def _bits(precision: int | np.ndarray) -> tuple[Any, Any]:
    """Return (latitude bits, longitude bits) of hashes of ``precision`` chars."""
    total = 5 * precision
    return total // 2, (total + 1) // 2


def _check_precision(precision: Any, lowest: int = 1) -> int:
    """Return ``precision`` as an int, or raise ValueError if it is not valid."""
    if isinstance(precision, (bool, np.bool_)):
        raise ValueError(f"geohash precision must be an integer, not {precision!r}")
    try:
        value = operator.index(precision)
    except TypeError:
        raise ValueError(
            f"geohash precision must be an integer, not {precision!r}"
        ) from None
    if not lowest <= value <= MAX_PRECISION:
        raise ValueError(
            f"geohash precision must be between {lowest} and {MAX_PRECISION}, "
            f"got {value}"
        )
    return value


def _where(shape: tuple[int, ...], flat_index: int) -> str:
    """Describe the position of element ``flat_index`` of an array of ``shape``."""
    if shape == ():
        return ""
    index = tuple(int(i) for i in np.unravel_index(flat_index, shape))
    return f" at index {index[0] if len(index) == 1 else index}"


def _as_float(values: ArrayLike, name: str) -> np.ndarray:
    """Convert coordinates to a float64 array, naming them if that fails."""
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {values!r}") from None


def _cell_index(
    values: np.ndarray, lowest: float, span: float, nbits: int
) -> np.ndarray:
    """Return ``floor((values - lowest) / span * 2**nbits)`` exactly, clipped.

    The floating-point estimate can be off by one next to a cell boundary
    (``values - lowest`` is rounded), so it is corrected by comparing the value
    with the boundaries themselves, which are exact in float64 (they are
    multiples of ``span / 2**30`` no larger than ``span``). This is the same
    decision as the ``value >= midpoint`` test of the bisection, bit for bit.
    """
    count = float(1 << nbits)
    step = span / count
    index = np.floor((values - lowest) * (count / span))
    index -= values < index * step + lowest
    # Rounding is monotone and every boundary value maps exactly onto its
    # integer (checked for all boundaries up to 20 bits, samples up to 30),
    # so an estimate that is too low has not been seen; this test is kept as
    # cheap insurance.
    index += values >= (index + 1.0) * step + lowest
    np.clip(index, 0.0, count - 1.0, out=index)  # latitude 90 -> top row
    return index.astype(np.uint64)


def _spread(x: np.ndarray, nbits: int) -> np.ndarray:
    """Move bit ``k`` of ``x`` (``x < 2**nbits``, nbits <= 32) to bit ``2k``."""
    for shift, mask in _SPREAD_STEPS:
        if shift < nbits:
            x = (x | (x << np.uint64(shift))) & mask
    return x


def _compact(x: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_spread`: gather the even bits of ``x`` into the low 32."""
    x = x & np.uint64(0x5555555555555555)
    x = (x | (x >> np.uint64(1))) & np.uint64(0x3333333333333333)
    x = (x | (x >> np.uint64(2))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    x = (x | (x >> np.uint64(4))) & np.uint64(0x00FF00FF00FF00FF)
    x = (x | (x >> np.uint64(8))) & np.uint64(0x0000FFFF0000FFFF)
    return (x | (x >> np.uint64(16))) & np.uint64(0x00000000FFFFFFFF)


def _interleave(lat_index: np.ndarray, lon_index: np.ndarray, width: int) -> np.ndarray:
    """Return the ``5 * width`` bit code of full-width cell indices."""
    nlat, nlon = _bits(width)
    lat_bits = _spread(lat_index, nlat)
    lon_bits = _spread(lon_index, nlon)
    # The most significant bit is a longitude bit; with an odd number of bits
    # in all, longitude also owns the least significant one (bit 0).
    if (5 * width) % 2:
        return lon_bits | (lat_bits << np.uint64(1))
    return (lon_bits << np.uint64(1)) | lat_bits


def _deinterleave(code: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Split a ``5 * width`` bit code into (latitude index, longitude index)."""
    if (5 * width) % 2:
        return _compact(code >> np.uint64(1)), _compact(code)
    return _compact(code), _compact(code >> np.uint64(1))


def _write_chars(code: np.ndarray, width: int, out: np.ndarray) -> None:
    """Write the base32 code points of ``code`` into ``out`` (shape (n, width))."""
    for position in range(width):
        shift = np.uint64(5 * (width - 1 - position))
        digit = (code >> shift) & np.uint64(31)
        np.take(_ENCODE_TABLE, digit, out=out[:, position])


def _strings(chars: np.ndarray, width: int, shape: tuple[int, ...]) -> np.ndarray:
    """View code points of shape (n, width) as a '<U{width}' array of ``shape``."""
    chars = np.ascontiguousarray(chars, dtype=np.uint32)
    return chars.view(f"<U{width}").reshape(shape)


def _parse(hashes: ArrayLike) -> tuple[tuple[int, ...], np.ndarray, np.ndarray]:
    """Validate geohashes; return (shape, code points (n, width), lengths (n,)).

    Raises ValueError naming the first hash that is empty, too long, or has a
    character outside the (lower-case) geohash alphabet.
    """
    array = np.asarray(hashes)
    if array.dtype.kind == "S":
        array = np.char.decode(array, "ascii", errors="replace")
    elif array.dtype.kind == "O":
        for i, item in enumerate(array.flat):
            if not isinstance(item, str):
                raise ValueError(
                    f"geohashes must be strings, got {item!r}{_where(array.shape, i)}"
                )
        array = array.astype(str) if array.size else array.astype("<U1")
    elif array.dtype.kind != "U":
        raise ValueError(
            f"geohashes must be strings, got an array of {array.dtype} "
            f"({np.ravel(array)[:3].tolist()!r}...)"
            if array.size
            else f"geohashes must be strings, got an array of {array.dtype}"
        )
    shape = array.shape
    width = max(array.dtype.itemsize // 4, 1)
    flat = np.ascontiguousarray(array.reshape(-1), dtype=f"<U{width}")
    chars = flat.view(np.uint32).reshape(flat.size, width)
    present = chars != 0
    lengths = present.sum(axis=1)
    small = np.minimum(chars, 127)
    valid_char = _DECODE_VALID[small] & (chars < 128)
    # A character is acceptable if it is in the alphabet and lies within the
    # string, padding (code point 0) if it lies after the end.
    inside = np.arange(width) < lengths[:, None]
    bad = (lengths == 0) | (lengths > MAX_PRECISION) | np.any(valid_char != inside, axis=1)
    if bad.any():
        i = int(np.argmax(bad))
        text = str(flat[i])
        where = _where(shape, i)
        if not text:
            raise ValueError(f"empty geohash{where}")
        if len(text) > MAX_PRECISION:
            raise ValueError(
                f"geohash {text!r}{where} has {len(text)} characters; "
                f"at most {MAX_PRECISION} are allowed"
            )
        char = next(c for c in text if c not in ALPHABET)
        hint = " (geohashes are lower case)" if char.lower() in ALPHABET else ""
        raise ValueError(
            f"invalid geohash {text!r}{where}: character {char!r} is not in the "
            f"geohash alphabet {ALPHABET!r}{hint}"
        )
    return shape, chars, lengths


def _indices(chars: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (latitude index, longitude index) of parsed hashes, as uint64."""
    n, width = chars.shape
    values = _DECODE_VALUE[np.minimum(chars, 127)]
    code = np.zeros(n, dtype=np.uint64)
    for position in range(width):
        code = (code << np.uint64(5)) | values[:, position]
    # Shorter hashes are padded with zero bits on the right (code point 0 maps
    # to 0); decode at full width, then drop each hash's padding bits.
    lat_index, lon_index = _deinterleave(code, width)
    full_lat, full_lon = _bits(width)
    nlat, nlon = _bits(lengths)
    lat_index >>= (full_lat - nlat).astype(np.uint64)
    lon_index >>= (full_lon - nlon).astype(np.uint64)
    return lat_index, lon_index


def _hashes_from_indices(
    lat_index: np.ndarray,
    lon_index: np.ndarray,
    lengths: np.ndarray,
    width: int,
    shape: tuple[int, ...],
    exists: np.ndarray | None = None,
) -> np.ndarray:
    """Encode cell indices of hashes of ``lengths`` chars into '<U{width}'."""
    full_lat, full_lon = _bits(width)
    nlat, nlon = _bits(lengths)
    lat_full = lat_index << (full_lat - nlat).astype(np.uint64)
    lon_full = lon_index << (full_lon - nlon).astype(np.uint64)
    code = _interleave(lat_full, lon_full, width)
    chars = np.empty((code.size, width), dtype=np.uint32)
    _write_chars(code, width, chars)
    chars[np.arange(width) >= lengths[:, None]] = 0
    if exists is not None:
        chars[~exists] = 0
    return _strings(chars, width, shape)


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
