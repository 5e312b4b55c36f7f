"""Packed integer variables whose fill is not declared: their type's sentinels, unpacked as xarray unpacks them.

xarray unpacks an int16 with ``scale_factor`` 0.01 and ``add_offset``
273.15 to floats, so land stored as -32768 becomes -54.53 K, which none of
:data:`geoanom.io.fill_values.CONVENTIONS` matches. Packers put their fill at
the integer type's edges: its least value, the one above it (netCDF's
default fill for int16 and int8) and its greatest; for an unsigned type its
greatest (255, 65535). Each is unpacked here by :func:`xarray.decode_cf` with
the variable's own ``scale_factor`` and ``add_offset`` in their own types:
the very arithmetic that unpacked the file's values, so
:func:`geoanom.io.fill_values.find_fill` can compare them exactly.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Iterable
from typing import NamedTuple

import numpy as np
import xarray as xr

_DECLARED = ("_FillValue", "missing_value")  # xarray masks these itself


class PackedFill(NamedTuple):
    """One sentinel of a packed variable: the integer the file holds, and its type."""

    raw: int
    dtype: str

    def label(self, value: float) -> str:
        """How messages name it, `value` being the sentinel unpacked.

        Examples
        --------
        >>> PackedFill(-32768, "int16").label(-54.53)
        'the packed int16 -32768 (-54.53 unpacked)'
        """
        return f"the packed {self.dtype} {self.raw} ({value:g} unpacked)"


def packed_sentinels(ds: xr.Dataset, names: Iterable[Hashable]) -> dict[Hashable, dict[float, PackedFill]]:
    """The sentinels of each packed integer variable of `ds` that declares no fill, unpacked.

    Parameters
    ----------
    ds : xarray.Dataset
        Just opened (its variables' encodings still say how they are stored).
    names : iterable of hashable
        The variables to look at.

    Returns
    -------
    dict
        Each such variable to {unpacked value: :class:`PackedFill`}; the
        others are left out.

    Examples
    --------
    >>> raw = xr.Variable("x", np.int16([-32768, 0]), {"scale_factor": np.float32(0.01), "add_offset": np.float32(273.15)})
    >>> ds = xr.decode_cf(xr.Dataset({"tas": raw}))
    >>> packed_sentinels(ds, ["tas"])["tas"]  # doctest: +NORMALIZE_WHITESPACE
    {-54.529998779296875: PackedFill(raw=-32768, dtype='int16'), -54.519989013671875: PackedFill(raw=-32767, dtype='int16'),
     600.8199462890625: PackedFill(raw=32767, dtype='int16')}
    """
    found = {}
    for name in names:
        encoding = ds[name].encoding
        stored = np.dtype(encoding.get("dtype", ds[name].dtype))
        packing = tuple(encoding.get(key) for key in ("scale_factor", "add_offset"))
        if stored.kind in "iu" and packing != (None, None) and not any(key in encoding for key in _DECLARED):
            unsigned = stored.kind == "i" and str(encoding.get("_Unsigned", "false")).lower() == "true"
            found[name] = _unpacked(stored.str, unsigned, *(_key(value) for value in packing))
    return found


def _key(value) -> tuple[str, float] | None:
    """A scale_factor or add_offset as a cache key with its type, which sets the type unpacked to."""
    if value is None:
        return None
    value = np.asarray(value).ravel()[0] if np.ndim(value) else value
    return np.dtype(type(value)).str, value.item() if isinstance(value, np.generic) else value


@functools.lru_cache(maxsize=256)  # a thousand files share a handful of packings
def _unpacked(stored: str, unsigned: bool, scale: tuple | None, offset: tuple | None) -> dict[float, PackedFill]:
    dtype = np.dtype(stored)
    shown = np.dtype(dtype.str.replace("i", "u")) if unsigned else dtype  # netCDF3's _Unsigned: the type meant
    edges = np.iinfo(shown)
    raws = [edges.max] if shown.kind == "u" else [edges.min, edges.min + 1, edges.max]
    attrs = {key: np.dtype(value[0]).type(value[1]) for key, value in (("scale_factor", scale), ("add_offset", offset))
             if value is not None}
    if unsigned:
        attrs["_Unsigned"] = "true"
    stored_values = np.array(raws, dtype=shown).astype(dtype)  # 255 is held as -1 under _Unsigned
    decoded = xr.decode_cf(xr.Dataset({"v": xr.Variable("s", stored_values, attrs)}))["v"].values
    return {value: PackedFill(raw, shown.name) for value, raw in zip(decoded.tolist(), raws)}
