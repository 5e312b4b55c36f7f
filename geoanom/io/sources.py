"""The files a lazy dataset still reads: so that a write never replaces its own input.

A result of ``model.score(cube)`` is lazy: its values are read from the
cube's files while it is written. Writing it over one of those files would
first replace the user's data, then read the replacement. The files are
found three ways, each covering what the others may miss: the ``source``
xarray records in a variable's encoding (NetCDF), the files ``open_cube``
names in ``attrs["geoanom_source"]``, and the backend arrays the dask graph
reads from (NetCDF and Zarr, opened by ``open_cube`` or by xarray).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import xarray as xr

_INNER = ("array", "_array", "variable", "_data", "datastore", "store_path", "store")  # wrappers' inner objects
_PLACES = ("path", "_filename", "filename", "root")  # where a backend object names its file or store
_DEPTH = 10


def read_sources(ds: xr.Dataset | xr.DataArray) -> set[Path]:
    """The real paths of the local files and Zarr stores `ds` reads its values or coordinates from.

    Parameters
    ----------
    ds : xarray.Dataset or xarray.DataArray
        Lazy or loaded; what is in memory reads nothing (but the encoding's
        ``source`` and ``geoanom_source`` still name where it came from).

    Returns
    -------
    set of pathlib.Path
        Absolute paths with symbolic links resolved; URLs are left out.

    Examples
    --------
    >>> cube = ga.open_cube("my_sst.nc")  # doctest: +SKIP
    >>> read_sources(model.score(cube))  # doctest: +SKIP
    {PosixPath('/data/my_sst.nc')}
    """
    found: set[Path] = set()
    variables = ds.variables.values() if isinstance(ds, xr.Dataset) else [ds.variable, *ds.coords.values()]
    for var in variables:
        _add(found, var.encoding.get("source"))
    _add_all(found, str(ds.attrs.get("geoanom_source", "")).split(", "))
    graph = ds.__dask_graph__()
    for name, layer in (graph.layers.items() if graph is not None and hasattr(graph, "layers") else ()):
        if str(name).startswith("original-"):  # xarray's key for the backend array a dask array reads
            for value in layer.values():
                _backend_paths(value, found, _DEPTH)
    return found


def inputs_at(ds: xr.Dataset | xr.DataArray, target: str | os.PathLike) -> Path | None:
    """The input of `ds` that writing to `target` would replace (the same path, inside it, or holding it), or None.

    Examples
    --------
    >>> inputs_at(model.score(ga.open_cube("my_sst.nc")), "my_sst.nc")  # doctest: +SKIP
    PosixPath('/data/my_sst.nc')
    """
    where = Path(os.path.realpath(os.path.expanduser(target)))
    for source in sorted(read_sources(ds)):
        if source == where or where in source.parents or source in where.parents:
            return source
    return None


def _backend_paths(obj: Any, found: set[Path], depth: int) -> None:
    """Follow wrappers of a backend array down to what names a file or store."""
    if depth == 0 or obj is None or isinstance(obj, (str, bytes, int, float)):
        return
    for place in _PLACES:
        value = getattr(obj, place, None)
        if isinstance(value, (str, os.PathLike)):
            _add(found, value)
    for inner in _INNER:
        try:
            value = getattr(obj, inner, None)
        except Exception:  # a closed store's property may raise: it names nothing
            continue
        if value is not None and value is not obj:
            _backend_paths(value, found, depth - 1)


def _add_all(found: set[Path], paths: Any) -> None:
    for path in paths:
        _add(found, path)


def _add(found: set[Path], path: Any) -> None:
    if not isinstance(path, (str, os.PathLike)) or not str(path).strip():
        return
    text = str(path)
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    elif "://" in text:
        return
    if os.path.lexists(os.path.expanduser(text)):
        found.add(Path(os.path.realpath(os.path.expanduser(text))))
