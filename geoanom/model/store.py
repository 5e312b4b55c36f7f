"""Saving and loading models as plain data: numpy arrays plus JSON, never pickle.

A model is first turned into a tree of JSON values and numpy arrays. Arrays
that recur per tile (``tiles/<tile>/...``) are packed into one array per
kind, so a model of a thousand tiles is a few dozen arrays, not thousands.
The tree is written as an ``.npz`` file (arrays and a JSON entry) or as a
Zarr store (one variable per array, the JSON in the attributes).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..detectors import Ensemble
from ..errors import ModelFileError
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
    """Rebuild an AnomalyModel from :func:`model_to_tree` output."""
    from .core import AnomalyModel

    if tree.get("format") != FORMAT:
        raise ModelFileError(f"'{path}' is not a geoanom model file.")
    if tree.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(f"'{path}' has model format version {tree.get('format_version')}; this geoanom reads {FORMAT_VERSION}.")
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
    return {"arrays": names, "tree": skeleton}, arrays


def unpack(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    """Inverse of :func:`pack`."""
    names = header["arrays"]

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "__array__" in node:
                flat = arrays[names[node["__array__"]]]
                size = int(np.prod(node["shape"], dtype=np.int64))
                return flat[node["offset"] : node["offset"] + size].reshape(node["shape"])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(value) for value in node]
        return node

    return walk(header["tree"])


# -- files ---------------------------------------------------------------------------
def save_model(model: "AnomalyModel", path: str | os.PathLike) -> None:
    """Write ``model`` to ``path`` (``.npz`` or ``.zarr``), atomically."""
    path = Path(path)
    header, arrays = pack(model_to_tree(model))
    text = json.dumps(header)
    if path.suffix == ".npz":
        handle, tmp = tempfile.mkstemp(dir=path.parent or ".", prefix=f".{path.name}.", suffix=".tmp.npz")
        os.close(handle)
        try:
            np.savez_compressed(tmp, **arrays, **{JSON_KEY: np.frombuffer(text.encode(), dtype=np.uint8)})
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)
    elif path.suffix == ".zarr":
        from ..io import write_dataset

        dataset = xr.Dataset({name: (f"{name}_n", values) for name, values in arrays.items()}, attrs={JSON_KEY: text})
        write_dataset(dataset, path)
    else:
        raise ModelFileError(f"cannot save a model to '{path}': use a .npz or .zarr path.")


def load_model(path: str | os.PathLike) -> "AnomalyModel":
    """Load a model saved by :meth:`AnomalyModel.save` (no pickle is ever read).

    Parameters
    ----------
    path : str or path-like
        A ``.npz`` file or ``.zarr`` store.

    Returns
    -------
    AnomalyModel
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileError(f"model file '{path}' does not exist.")
    try:
        if path.suffix == ".zarr" or path.is_dir():
            with xr.open_zarr(path) as store:
                arrays = {name: store[name].values for name in store.data_vars}
                text = store.attrs[JSON_KEY]
        else:
            with np.load(path, allow_pickle=False) as store:
                arrays = {name: store[name] for name in store.files if name != JSON_KEY}
                text = store[JSON_KEY].tobytes().decode()
        tree = unpack(json.loads(text), arrays)
    except ModelFileError:
        raise
    except Exception as error:  # any decoding failure means a corrupt or foreign file
        raise ModelFileError(f"cannot read model '{path}': {type(error).__name__}: {error}".rstrip(".") + ".") from None
    return tree_to_model(tree, str(path))


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
