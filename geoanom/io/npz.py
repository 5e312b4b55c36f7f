"""Plain-array ``.npz`` files: written atomically, read without ever unpickling.

Models (:mod:`geoanom.model.store`) and federated results
(:mod:`geoanom.federated.result`) are both stored this way.
"""

from __future__ import annotations

import os
import zipfile
import zlib

import numpy as np

from ..atomic import replacing
from ..errors import ModelFileError

NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive: its first entry, or an empty one


def write_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Write a compressed ``.npz`` atomically, with the permissions a plain ``open`` would give.

    Parameters
    ----------
    path : str or path-like
        The file; replaced only once the new one is complete.
    arrays : dict of str to ndarray
        Plain numeric arrays (never objects: they would need pickle).

    Examples
    --------
    >>> write_npz("weights.npz", {"w": np.zeros(3)})  # doctest: +SKIP
    """
    with replacing(path) as tmp:
        np.savez_compressed(tmp, **arrays)


def read_npz(path: str | os.PathLike, what: str = "model") -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file, refusing anything but plain arrays in one sentence.

    Parameters
    ----------
    path : str or path-like
    what : str
        What the file should be, for messages ("model", "federated model").

    Returns
    -------
    dict of str to ndarray

    Raises
    ------
    ModelFileError
        If the file is not a zip archive of numeric arrays, or is cut short.

    Examples
    --------
    >>> arrays = read_npz("model.npz")  # doctest: +SKIP
    """
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic not in NPZ_MAGIC:  # np.load would try it as a pickle, and say so
        raise ModelFileError(f"cannot read {what} '{path}': it is not an .npz archive.")
    try:
        with np.load(path, allow_pickle=False) as store:
            return {name: store[name] for name in store.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ModelFileError(f"cannot read {what} '{path}': the file is truncated or corrupt "
                             f"({decoding_problem(error)}).") from None


def decoding_problem(error: BaseException) -> str:
    """A short description of a decoding error, without Python's jargon where it can be avoided.

    Examples
    --------
    >>> decoding_problem(KeyError("tiles"))
    "missing entry 'tiles'"
    """
    if isinstance(error, KeyError):
        return f"missing entry {error.args[0]!r}" if error.args else "missing entry"
    text = str(error).rstrip(".") or type(error).__name__
    if "pickle" in text:  # numpy's advice would be to trust the file: never
        return "it holds Python objects, not plain arrays"
    return text[:200]
