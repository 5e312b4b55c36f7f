"""Saving and loading models as plain data: numpy arrays plus JSON, never pickle.

A model is first turned into a tree of JSON values and numpy arrays. Arrays
that recur per tile (``tiles/<tile>/...``) are packed into one array per
kind, so a model of a thousand tiles is a few dozen arrays, not thousands.
The tree is written as an ``.npz`` file (arrays and a JSON entry) or as a
Zarr store (one variable per array, the JSON in the attributes).

This module knows the model only by its attributes: :mod:`geoanom.model.core`
imports it to save and load, and :func:`read_model` gives the keyword
arguments from which ``load_model`` builds the model.
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..detectors import Ensemble
from ..errors import InputFileError, ModelFileError
from ..features import Climatology
from ..io import write_dataset
from ..io.npz import decoding_problem, read_npz, write_npz
from ..io.safety import refuse_incomplete
from ..jsonable import to_jsonable

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
        "attrs": to_jsonable(model.attrs),
        "climatology": model.climatology.to_tree(),
        "grid": {
            "dims": list(labels.dims),
            "coords": {
                name: {"dims": list(coord.dims), "values": np.asarray(coord.values), "attrs": to_jsonable(coord.attrs)}
                for name, coord in labels.coords.items()
            },
            "tile_names": [str(name) for name in model.tile_names],
            "tile_codes": model.tile_codes,
            "precision": model.precision,
            "precision_reason": str(labels.attrs.get("precision_reason", "")),
        },
        # tiles and regions by name: a fit's order follows its chunks, the file's must not
        "skipped": dict(sorted(model.skipped.items())),
        "tiles": {
            tile: {"n_observations": int(getattr(ensemble, "n_observations_", 0)), "ensemble": ensemble.to_dict()}
            for tile, ensemble in sorted(model.ensembles.items())
        },
        # refined region models of a federated fit (a plain pyramid is rebuilt on demand)
        "regions": {prefix: ensemble.to_dict() for prefix, ensemble in sorted(model.region_models.items())}
        if model.attrs.get("federated_rounds") else {},
    }


def tree_to_arguments(tree: dict[str, Any], path: str) -> dict[str, Any]:
    """The keyword arguments of an AnomalyModel from :func:`model_to_tree` output, checked (see :func:`check_tree`).

    Examples
    --------
    >>> AnomalyModel(**tree_to_arguments(model_to_tree(model), "model.npz"))  # doctest: +SKIP
    """
    if not isinstance(tree, dict) or tree.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not a geoanom model file.")
    if tree.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"'{path}' has model format version {tree.get('format_version')}; "
                             f"this geoanom reads {FORMAT_VERSION}.")
    try:
        arguments = _arguments(tree)
        check_tree(tree, path)
    except ModelFileError:
        raise
    except (KeyError, TypeError, IndexError, ValueError, AttributeError) as error:  # an edited or foreign tree
        raise ModelFileError(f"model file '{path}' is malformed ({decoding_problem(error)}).") from None
    return arguments


def _arguments(tree: dict[str, Any]) -> dict[str, Any]:
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
    regions = {prefix: Ensemble.from_dict(entry) for prefix, entry in (tree.get("regions") or {}).items()}
    return dict(
        variables=list(tree["variables"]),
        climatology=Climatology.from_tree(tree["climatology"]),
        labels=labels,
        ensembles=ensembles,
        skipped=dict(tree["skipped"]),
        detectors=tuple(tree["detectors"]),
        attrs=dict(tree["attrs"]),
        regions=regions or None,
    )


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
    codes = np.asarray(grid["tile_codes"])
    shape = _grid_shape(grid, codes.shape)
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
        columns = ensemble.get("columns") or {}
        for name, detector in ensemble["detectors"].items():
            width = len(columns[name]) if name in columns else n_features  # the columns the family reads
            problem = _detector_problem(detector["state"], width)
            if problem:
                raise ModelFileError(f"model file '{path}' is malformed: {where}, detector {name}: {problem}.")


def _grid_shape(grid: dict[str, Any], codes_shape: tuple[int, ...]) -> tuple[int, ...]:
    """The grid's shape from its coordinates; a dimension without one (a curvilinear grid's ``y``, say) takes the
    tile map's size, so only the coordinates it has are checked against the map."""
    sizes: dict[str, int] = {}
    for coord in grid["coords"].values():
        for dim, size in zip(coord["dims"], np.shape(coord["values"])):
            sizes.setdefault(dim, size)
    if len(codes_shape) != len(grid["dims"]):
        return tuple(sizes.get(dim, -1) for dim in grid["dims"])
    return tuple(sizes.get(dim, size) for dim, size in zip(grid["dims"], codes_shape))


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
def save_model(model: "AnomalyModel", path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (``.npz`` or ``.zarr``), atomically, with the user's umask."""
    path = Path(path)
    header, arrays = pack(model_to_tree(model))
    text = json.dumps(header)
    if path.suffix == ".npz":
        write_npz(path, {**arrays, JSON_KEY: np.frombuffer(text.encode(), dtype=np.uint8)})
    elif path.suffix == ".zarr":
        dataset = xr.Dataset({name: (f"{name}_n", values) for name, values in arrays.items()}, attrs={JSON_KEY: text})
        write_dataset(dataset, path)
    else:
        raise ModelFileError(f"cannot save a model to '{path}': use a .npz or .zarr path.")


def read_model(path: str | os.PathLike) -> dict[str, Any]:
    """The keyword arguments of the AnomalyModel saved in ``path`` (no pickle is ever read).

    :func:`geoanom.load_model` builds the model from them.

    Every array and threshold is checked (:func:`check_tree`), so a damaged
    file is refused here rather than scoring NaN later.

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file or ``.zarr`` store.

    Returns
    -------
    dict of str to Any
        ``variables``, ``climatology``, ``labels``, ``ensembles``, ``skipped``,
        ``detectors``, ``attrs`` and ``regions``.

    Raises
    ------
    ModelFileError
        In one sentence naming the file, for a missing, corrupt, edited or
        truncated model.

    Examples
    --------
    >>> arguments = read_model("model.npz")  # doctest: +SKIP
    >>> sorted(arguments)[:2]  # doctest: +SKIP
    ['attrs', 'climatology']
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file '{path}' does not exist.")
    if path.suffix == ".zarr" or path.is_dir():
        arrays, text = _read_zarr(path)
    else:
        arrays = read_npz(path)
        if JSON_KEY not in arrays:
            if {"meta", "parameters"} <= set(arrays):  # what geoanom federate writes (see cli/info.py's kind_of)
                raise ModelFileError(f"'{path}' is a federated anomaly classifier (geoanom federate), not a detector "
                                     "model: no command scores with it; in Python, geoanom.federated.load(path)"
                                     ".predict_proba(rows) gives each row's probability of an event, and geoanom info "
                                     "describes it.")
            raise ModelFileError(f"'{path}' is not a geoanom model file: it has no model description.")
        text = _decode(arrays.pop(JSON_KEY), path)
    try:
        header = json.loads(text)
        tree = unpack(header, arrays)
    except ModelFileError as error:
        raise ModelFileError(f"model file '{path}' is malformed: {error}.") from None
    except (ValueError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise ModelFileError(f"model file '{path}' is malformed ({decoding_problem(error)}).") from None
    return tree_to_arguments(tree, str(path))


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
        raise ModelFileError(f"model store '{path}' is truncated or corrupt ({decoding_problem(error)}).") from None
    if not isinstance(text, str):
        raise ModelFileError(f"model store '{path}' is malformed: its description is not text.")
    return arrays, text


def _decode(raw: np.ndarray, path: Path) -> str:
    try:
        return raw.tobytes().decode()
    except UnicodeDecodeError:
        raise ModelFileError(f"model file '{path}' is malformed: its description is not UTF-8 text.") from None
