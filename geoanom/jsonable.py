"""One conversion of Python, numpy and path values to plain JSON types, for every file geoanom writes.

Audit logs need strict JSON (no NaN token, nothing silently turned into a
string, so a hash covers exactly what was meant); model files and result
metadata accept NaN and fall back to ``str`` for anything without a JSON form.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime
from pathlib import PurePath
from typing import Any, Mapping

import numpy as np

__all__ = ["to_jsonable"]

# Spellings of the non-finite floats in strict JSON, which has no token for them.
_NONFINITE = {math.inf: "Infinity", -math.inf: "-Infinity"}


def to_jsonable(value: Any, *, strict: bool = False) -> Any:
    """``value`` as nested dicts, lists, str, int, float, bool and None that ``json.dumps`` writes.

    numpy scalars and arrays become Python numbers and lists, mappings dicts
    with string keys, tuples lists, sets sorted lists, bytes hex, dates ISO
    8601 and paths strings.

    Parameters
    ----------
    value : Any
        What to convert; nested containers are converted throughout.
    strict : bool, default False
        With True, non-finite floats become the strings ``"NaN"``,
        ``"Infinity"`` and ``"-Infinity"`` (for ``json.dumps(...,
        allow_nan=False)``) and a value with no JSON form raises
        ``TypeError``; with False, they stay floats and such a value becomes
        its ``str``.

    Returns
    -------
    Any
        Plain JSON types only.

    Raises
    ------
    TypeError
        With ``strict=True``, for a value with no JSON form (naming its type).

    Examples
    --------
    >>> to_jsonable({"n": np.int64(3), "x": np.array([0.5, np.nan]), 1: (b"\\x01", {2})})
    {'n': 3, 'x': [0.5, nan], '1': ['01', [2]]}
    >>> to_jsonable([np.float32(np.inf)], strict=True)
    ['Infinity']
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or type(value) in (bool, str, int):
        return value
    if isinstance(value, (bool, str, int)) and not isinstance(value, float):  # subclasses, e.g. IntEnum
        return str(value) if isinstance(value, (bool, str)) else int(value)
    if isinstance(value, float):
        return _float(float(value), strict)
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist(), strict=strict)
    return _container(value, strict)


def _float(value: float, strict: bool) -> float | str:
    if not strict or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else _NONFINITE[value]


def _container(value: Any, strict: bool) -> Any:
    """Containers and the few scalar types with an obvious text form; others by ``strict``."""
    if isinstance(value, Mapping):
        return {str(key): to_jsonable(item, strict=strict) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(item, strict=strict) for item in value]
    if isinstance(value, (set, frozenset)):
        # Sorted by their JSON text, so a set is written the same way every time.
        return sorted((to_jsonable(item, strict=strict) for item in value), key=json.dumps)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, PurePath):
        return str(value)
    if strict:
        raise TypeError(f"a {type(value).__name__} has no JSON form")
    return str(value)
