"""The bit codec behind :mod:`geoanom.geohash` (private).

Lookup tables between 5-bit values and the characters of the geohash
alphabet, the Morton (Z-order) spreading and compacting of bits that
interleaves latitude and longitude cell indices, coordinates to cell
indices, and the writing and parsing of geohashes held as numpy UCS-4 code
points. Every function works on whole numpy arrays; the public functions
built on them are in :mod:`geoanom.geohash`.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

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
