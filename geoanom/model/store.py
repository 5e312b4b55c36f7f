"""Saving and loading models as plain data: numpy arrays plus JSON, never pickle.

A model is first turned into a tree of JSON values and numpy arrays. Arrays
that recur per tile (``tiles/<tile>/...``) are packed into one array per
kind, so a model of a thousand tiles is a few dozen arrays, not thousands.
The tree is written as an ``.npz`` file (arrays and a JSON entry) or as a
Zarr store (one variable per array, the JSON in the attributes).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..detectors import Ensemble
from ..errors import InputFileError, ModelFileError
from ..io.safety import refuse_incomplete
from ..features import Climatology

if TYPE_CHECKING:
    from .core import AnomalyModel

FORMAT = "geoanom-model"
FORMAT_VERSION = 2  # 2: the harmonic, robust climatology
JSON_KEY = "__geoanom_model__"


# -- model <-> tree -------------------------------------------------------------
def model_to_tree(model: "AnomalyModel") -> dict[str, Any]:
    """The model as nested dicts of JSON values and numpy arrays."""
    labels = model.labels
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "variables": list(model.variables),
        "detectors": list(model.detectors),
        "attrs": _jsonable(model.attrs),
        "climatology": model.climatology.to_tree(),
        "grid": {
            "dims": list(labels.dims),
            "coords": {
                name: {"dims": list(coord.dims), "values": np.asarray(coord.values), "attrs": _jsonable(coord.attrs)}
                for name, coord in labels.coords.items()
            },
            "tile_names": [str(name) for name in model.tile_names],
            "tile_codes": model.tile_codes,
            "precision": model.precision,
            "precision_reason": str(labels.attrs.get("precision_reason", "")),
        },
        "skipped": dict(model.skipped),
        "tiles": {
            tile: {"n_observations": int(getattr(ensemble, "n_observations_", 0)), "ensemble": ensemble.to_dict()}
            for tile, ensemble in model.ensembles.items()
        },
        # refined region models of a federated fit (a plain pyramid is rebuilt on demand)
        "regions": {prefix: ensemble.to_dict() for prefix, ensemble in (model._pyramid or {}).items()}
        if model.attrs.get("federated_rounds") else {},
    }


def tree_to_model(tree: dict[str, Any], path: str) -> "AnomalyModel":
    """Rebuild an AnomalyModel from :func:`model_to_tree` output, checked (see :func:`check_tree`)."""
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not a geoanom model file.")
    if tree.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"'{path}' has model format version {tree.get('format_version')}; this geoanom reads {FORMAT_VERSION}.")
    try:
        model = _build(tree)
        check_tree(tree, path)
    except ModelFileError:
        raise
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as error:  # an edited or foreign tree
        raise ModelFileError(f"model file '{path}' is malformed ({_what(error)}).") from None
    return model


def _build(tree: dict[str, Any]) -> "AnomalyModel":
    from .core import AnomalyModel

    grid = tree["grid"]
    coords = {name: (c["dims"], c["values"], c["attrs"]) for name, c in grid["coords"].items()}
    names = np.array(grid["tile_names"])
    labels = xr.DataArray(
        names[np.asarray(grid["tile_codes"])], dims=grid["dims"], coords=coords, name="tile",
        attrs={"long_name": "geohash tile of the cell centre", "precision": int(grid["precision"]),
               "precision_reason": grid["precision_reason"]},
    )
    ensembles = {}
    for tile, entry in tree["tiles"].items():
        ensemble = Ensemble.from_dict(entry["ensemble"])
        ensemble.n_observations_ = entry["n_observations"]
        ensembles[tile] = ensemble
    model = AnomalyModel(
        variables=list(tree["variables"]),
        climatology=Climatology.from_tree(tree["climatology"]),
        labels=labels,
        ensembles=ensembles,
        skipped=dict(tree["skipped"]),
        detectors=tuple(tree["detectors"]),
        attrs=dict(tree["attrs"]),
    )
    if tree.get("regions"):
        model._pyramid = {prefix: Ensemble.from_dict(entry) for prefix, entry in tree["regions"].items()}
    return model


def check_tree(tree: dict[str, Any], path: str) -> None:
    """Refuse a model whose arrays disagree in shape or whose detectors hold NaN or infinite thresholds.

    A NaN threshold or mean would load fine and then score every cell NaN
    without a word, so it is refused here. The climatology may hold NaN
    (cells that never had data, e.g. land); a detector's arrays may hold
    ±inf (an isolation tree's leaves) but never NaN.

    Parameters
    ----------
    tree : dict
        As from :func:`model_to_tree`.
    path : str
        The file, for messages.

    Raises
    ------
    ModelFileError
        Naming the file and the tile, detector and entry at fault.

    Examples
    --------
    >>> check_tree(model_to_tree(model), "model.npz")  # doctest: +SKIP
    """
    grid = tree["grid"]
    shape = tuple(len(np.atleast_1d(grid["coords"][dim]["values"])) for dim in grid["dims"])
    codes = np.asarray(grid["tile_codes"])
    if codes.shape != shape or (codes.size and not 0 <= codes.min() <= codes.max() < len(grid["tile_names"])):
        raise ModelFileError(f"model file '{path}' is malformed: its tile map does not match its grid {shape}.")
    for key, value in tree["climatology"].items():
        if isinstance(value, np.ndarray) and key != "gram_inverse" and value.shape[-len(shape):] != shape:
            raise ModelFileError(f"model file '{path}' is malformed: climatology {key} has shape {value.shape}, "
                                 f"not ending in the grid's {shape}.")
    n_features = len(tree["attrs"].get("feature_names") or []) or None
    groups = {**{f"tile {t}": e["ensemble"] for t, e in tree["tiles"].items()},
              **{f"region {r}": e for r, e in (tree.get("regions") or {}).items()}}
    for where, ensemble in groups.items():
        for name, detector in ensemble["detectors"].items():
            problem = _detector_problem(detector["state"], n_features)
            if problem:
                raise ModelFileError(f"model file '{path}' is malformed: {where}, detector {name}: {problem}.")


def _detector_problem(state: dict[str, Any], n_features: int | None) -> str | None:
    """What is wrong with one detector's state, or None."""
    threshold = state.get("threshold_")
    if not isinstance(threshold, (int, float)) or not math.isfinite(threshold) or threshold == 0:
        return f"threshold {threshold!r} is not a finite non-zero number"
    for key, value in state.items():
        if isinstance(value, float) and not math.isfinite(value):
            return f"{key} is {value}"
        if isinstance(value, np.ndarray) and value.dtype.kind == "f" and np.isnan(value).any():
            return f"{key} holds NaN"
        if key in ("center_", "scale_") and n_features and np.shape(value) != (n_features,):
            return f"{key} has shape {np.shape(value)}, not ({n_features},) for the model's features"
    return None


def _what(error: BaseException) -> str:
    """A short description of a decoding error, without Python's jargon where it can be avoided."""
    if isinstance(error, KeyError):
        return f"missing entry {error.args[0]!r}" if error.args else "missing entry"
    text = str(error).rstrip(".") or type(error).__name__
    if "pickle" in text:  # numpy's advice would be to trust the file: never
        return "it holds Python objects, not plain arrays"
    return text[:200]


# -- tree <-> (JSON, packed arrays) --------------------------------------------------
def pack(tree: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """Replace arrays in ``tree`` by references into a few packed flat arrays."""
    pieces: dict[str, list[np.ndarray]] = {}
    sizes: dict[str, int] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {str(key): walk(value, f"{path}/{key}") for key, value in node.items()}
        if isinstance(node, (list, tuple)):
            return [walk(value, f"{path}/{i}") for i, value in enumerate(node)]
        if isinstance(node, np.ndarray):
            if node.dtype.kind not in "biuf":
                raise TypeError(f"cannot store {path} of dtype {node.dtype} as plain numeric data")
            pattern = re.sub(r"^/tiles/[^/]+/", "/tiles/*/", path)
            key = f"{pattern}:{node.dtype.str}".strip("/")
            offset = sizes.get(key, 0)
            pieces.setdefault(key, []).append(node.ravel())
            sizes[key] = offset + node.size
            return {"__array__": key, "offset": offset, "shape": list(node.shape)}
        if isinstance(node, np.generic):
            return node.item()
        return node

    skeleton = walk(tree, "")
    arrays = {f"a{i}": np.concatenate(parts) for i, parts in enumerate(pieces.values())}
    names = dict(zip(pieces, arrays))
    # Checksums catch damage the containers do not: Zarr reads a lost chunk as its fill value.
    digests = {name: _digest(values) for name, values in arrays.items()}
    return {"arrays": names, "digests": digests, "tree": skeleton}, arrays


def _digest(values: np.ndarray) -> str:
    # CRC-32 finds accidental damage (a lost chunk, flipped bytes) at memory speed; a
    # cryptographic hash would add nothing, as whoever edits the arrays can rewrite the JSON too.
    return f"crc32:{zlib.crc32(memoryview(np.ascontiguousarray(values)).cast('B')):08x}"


def unpack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`pack`; arrays whose digest differs from the header's are refused."""
    names = header["arrays"]
    for name, digest in (header.get("digests") or {}).items():  # files from before checksums have none
        if name in arrays and str(digest).startswith("crc32:") and _digest(arrays[name]) != digest:
            raise ModelFileError(f"array {name} differs from what was saved (checksum mismatch)")

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "__array__" in node:
                name = names[node["__array__"]]
                if name not in arrays:
                    raise ModelFileError(f"array {name} ({node['__array__']}) is missing")
                flat = arrays[name]
                size = int(np.prod(node["shape"], dtype=np.int64))
                if node["offset"] < 0 or node["offset"] + size > flat.size:
                    raise ModelFileError(f"array {name} ({node['__array__']}) is shorter than its entries say")
                return flat[node["offset"] : node["offset"] + size].reshape(node["shape"])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(header["tree"])


# -- files ---------------------------------------------------------------------------
NPZ_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip archive: its first entry, or an empty one


def save_model(model: "AnomalyModel", path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (``.npz`` or ``.zarr``), atomically, with the user's umask."""
    path = Path(path)
    header, arrays = pack(model_to_tree(model))
    text = json.dumps(header)
    if path.suffix == ".npz":
        write_npz(path, {**arrays, JSON_KEY: np.frombuffer(text.encode(), dtype=np.uint8)})
    elif path.suffix == ".zarr":
        from ..io import write_dataset

        dataset = xr.Dataset({name: (f"{name}_n", values) for name, values in arrays.items()}, attrs={JSON_KEY: text})
        write_dataset(dataset, path)
    else:
        raise ModelFileError(f"cannot save a model to '{path}': use a .npz or .zarr path.")


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
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp.npz")
    os.close(handle)
    try:
        np.savez_compressed(tmp, **arrays)
        # mkstemp creates 0600 whatever the umask; others must read a model as they read the user's other files.
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


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
        raise ModelFileError(f"cannot read {what} '{path}': the file is truncated or corrupt ({_what(error)}).") from None


def load_model(path: str | os.PathLike) -> "AnomalyModel":
    """Load a model saved by :meth:`AnomalyModel.save` (no pickle is ever read).

    Every array and threshold is checked (:func:`check_tree`), so a damaged
    file is refused here rather than scoring NaN later.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file or ``.zarr`` store.

    Returns
    -------
    AnomalyModel

    Raises
    ------
    ModelFileError
        In one sentence naming the file, for a missing, corrupt, edited or
        truncated model.

    Examples
    --------
    >>> model = ga.load_model("model.npz")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file '{path}' does not exist.")
    if path.suffix == ".zarr" or path.is_dir():
        arrays, text = _read_zarr(path)
    else:
        arrays = read_npz(path)
        if JSON_KEY not in arrays:
            raise ModelFileError(f"'{path}' is not a geoanom model file: it has no model description.")
        text = _decode(arrays.pop(JSON_KEY), path)
    try:
        header = json.loads(text)
        tree = unpack(header, arrays)
    except ModelFileError as error:
        raise ModelFileError(f"model file '{path}' is malformed: {error}.") from None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise ModelFileError(f"model file '{path}' is malformed ({_what(error)}).") from None
    return tree_to_model(tree, str(path))


def _read_zarr(path: Path) -> tuple[dict[str, np.ndarray], str]:
    try:
        # save_model consolidates (Zarr 2); saying so spares xarray's guess and its warning
        with xr.open_zarr(path, consolidated=(path / ".zmetadata").exists()) as store:
            refuse_incomplete(store, str(path))  # a store whose write was killed
            arrays = {name: store[name].values for name in store.data_vars}
            text = store.attrs[JSON_KEY]
    except KeyError:
        raise ModelFileError(f"'{path}' is not a geoanom model store: it has no model description.") from None
    except InputFileError as error:
        raise ModelFileError(str(error)) from None
    except Exception as error:  # zarr, numcodecs and the filesystem raise many kinds
        raise ModelFileError(f"model store '{path}' is truncated or corrupt ({_what(error)}).") from None
    if not isinstance(text, str):
        raise ModelFileError(f"model store '{path}' is malformed: its description is not text.")
    return arrays, text


def _decode(raw: np.ndarray, path: Path) -> str:
    try:
        return raw.tobytes().decode()
    except UnicodeDecodeError:
        raise ModelFileError(f"model file '{path}' is malformed: its description is not UTF-8 text.") from None


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    """Attributes converted to JSON values (numpy scalars and arrays to Python)."""
    out = {}
    for key, value in attrs.items():
        if isinstance(value, np.ndarray):
            value = value.tolist()
        elif isinstance(value, np.generic):
            value = value.item()
        elif isinstance(value, dict):
            value = _jsonable(value)
        elif not isinstance(value, (str, int, float, bool, list, type(None))):
            value = str(value)
        out[str(key)] = value
    return out
