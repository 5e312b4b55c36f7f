"""The event catalogue: connected flagged cells of a scored result in (time, lat, lon).

An event is a set of flagged cells connected in space and across time
steps (see :class:`geoanom.features.stitching.Connection` for the 3-D
structuring element). :func:`event_labels` gives the lazy label cube and
:func:`events` one row per event; their ids agree, and neither depends on
how the result is chunked. Connections cross chunk edges and, on a global
grid, the antimeridian.
"""

from __future__ import annotations

import functools
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import GeoanomError, VariableNotFoundError
from ..features.stitching import Connection, relabel, stitch
from ..grid import cell_areas, cell_centres, spatial_dims, wraps_in_longitude
from ..timesteps import gaps_after
from .event_stats import partial_stats, reduce_stats, result_tiles

COLUMNS = ("event", "start", "end", "duration", "cells", "max_area_km2", "peak_irregularity", "mean_irregularity",
           "sign", "variable", "mean_anomaly", "lat", "lon", "tiles", "consensus")
"""The columns of :func:`events`, in order."""


def event_labels(result: xr.Dataset, *, flag: str = "ensemble", connectivity: int = 1, min_cells: int = 1,
                 bridge_gaps: bool = False) -> xr.DataArray:
    """Label the events of a scored result, lazily: connected flagged cells in (time, lat, lon).

    Parameters
    ----------
    result : xarray.Dataset
        The output of ``model.score`` (lazy or loaded from Zarr/NetCDF), on a
        regular, global or curvilinear grid.
    flag : str, default "ensemble"
        The (time, lat, lon) flag variable whose set cells make events.
    connectivity : {1, 2}, default 1
        1: cells sharing an edge, and the same cell in consecutive steps, are
        connected (the 6-neighbourhood); 2: cells sharing a corner too, in
        the same step and in consecutive ones (the 26-neighbourhood).
    min_cells : int, default 1
        Events with fewer flagged cell-steps are dropped (label 0).
    bridge_gaps : bool, default False
        Also connect a cell's flags separated by one unflagged step. Steps
        on either side of a gap in the time axis (a step over 1.5 times the
        usual one: months missing) are never connected, nor are steps either
        side of a step with no data anywhere (every ``<variable>_anomaly``
        NaN, or without them every ``fused_irregularity``): it is missing,
        not quiet. Finding those steps reads the result once more.

    Returns
    -------
    xarray.DataArray of int32 (time, *spatial), named ``event``
        0 outside events; events numbered 1..N in (time, raster) order of
        their first cell, identical for every chunking. Global grids join
        across the antimeridian.

    Raises
    ------
    GeoanomError
        The flag variable is missing or not (time, lat, lon), or
        ``connectivity`` or ``min_cells`` is invalid.

    Examples
    --------
    >>> flags = np.zeros((3, 2, 4), dtype=bool)
    >>> flags[0, 0, 0] = flags[1, 0, 0] = flags[1, 1, 3] = True
    >>> result = xr.Dataset({"ensemble": (("time", "lat", "lon"), flags)},
    ...                     coords={"lat": [0.0, 10.0], "lon": [0.0, 90.0, 180.0, 270.0]})
    >>> event_labels(result).values[1].tolist()  # one event in time; the other wraps to no neighbour
    [[1, 0, 0, 0], [0, 0, 0, 2]]
    >>> int(event_labels(result, connectivity=2).max())  # corners across the antimeridian: one event
    1
    """
    mask = flag_mask(result, flag)
    keys, lookup = _stitched(mask, result, connectivity, bridge_gaps, min_cells)
    return xr.DataArray(relabel(keys, lookup), dims=mask.dims, coords=mask.coords, name="event", attrs={
        "long_name": f"event of connected '{flag}' flags in time and space", "units": "1",
        "flag_meaning": "0 is no event", "geoanom_connectivity": int(connectivity),
        "geoanom_min_cells": int(min_cells), "geoanom_bridge_gaps": int(bool(bridge_gaps))})


def events(result: xr.Dataset, *, flag: str = "ensemble", connectivity: int = 1, min_cells: int = 1,
           bridge_gaps: bool = False, labels: xr.DataArray | None = None) -> pd.DataFrame:
    """The event catalogue of a scored result: one row per event.

    Parameters
    ----------
    result : xarray.Dataset
        The output of ``model.score`` (lazy or loaded from Zarr/NetCDF).
    flag, connectivity, min_cells, bridge_gaps
        How events are found; see :func:`event_labels`.
    labels : xarray.DataArray, optional
        Labels from :func:`event_labels` (perhaps already computed) to
        summarise instead of finding events again; the other event options
        are then ignored.

    Returns
    -------
    pandas.DataFrame
        One row per event, by id, with columns

        - ``event``: the id, equal to the label in :func:`event_labels`;
        - ``start``, ``end``: time coordinate of the first and last step;
        - ``duration``: steps from start to end, both counted (a bridged gap
          counts);
        - ``cells``: flagged cell-steps;
        - ``max_area_km2``: the largest area flagged in one step, summed from
          the cells' areas on the sphere (:func:`geoanom.grid.cell_areas`);
        - ``peak_irregularity``, ``mean_irregularity``: maximum and mean of
          ``fused_irregularity`` over the event's cells (NaN without it);
        - ``sign``: +1 (warm, wet: above expected) or -1 (cold, dry), the sign
          of ``mean_anomaly`` (0 when the result has no anomalies);
        - ``variable``: of the result's ``<variable>_anomaly``, the variable
          whose mean over the event is furthest from 0: the one that departs
          most, in spreads ('' when the result has none);
        - ``mean_anomaly``: that mean, in spreads (standardised anomaly), so
          an event flagged for its rain is not read as warm or cold by its
          temperature;
        - ``lat``, ``lon``: the area-weighted centroid of the cell-steps; the
          longitude is a circular mean, so an event across the antimeridian
          centres near it, in [-180, 180);
        - ``tiles``: the geohash tiles it touches, sorted, space-separated;
        - ``consensus``: the mean ``consensus`` over its cells where scored
          (NaN when the result has none).

        The work is one partial sum per chunk and one reduction: the cube is
        never loaded as one array.

    Raises
    ------
    GeoanomError
        As :func:`event_labels`, or ``labels`` not on the result's grid.

    Examples
    --------
    >>> flags = np.zeros((3, 2, 4), dtype=bool)
    >>> flags[0, 0, 0] = flags[1, 0, 0] = flags[1, 0, 3] = True
    >>> result = xr.Dataset({"ensemble": (("time", "lat", "lon"), flags)},
    ...                     coords={"time": [2001, 2002, 2003], "lat": [0.0, 10.0], "lon": [0.0, 90.0, 180.0, 270.0]})
    >>> events(result)[["event", "start", "end", "duration", "cells", "lat", "lon"]].round(2)
       event  start   end  duration  cells  lat    lon
    0      1   2001  2002         2      3  0.0 -26.57

    The longitude is the circular mean of 0, 0 and -90 degrees (area-weighted).
    """
    dims = ("time", *spatial_dims(result))
    if labels is None:
        keys, lookup = _stitched(flag_mask(result, flag), result, connectivity, bridge_gaps, min_cells)
    else:
        keys, lookup = _given_labels(result, labels, dims), None
    parts = partial_stats(keys, _scores(result, dims), _planes(result))
    sums, tiles = dask.compute(dask.delayed(reduce_stats, pure=True)(parts, lookup))[0]
    return _table(sums, tiles, result["time"].values, result_tiles(result)[1])


def flag_mask(result: xr.Dataset, flag: str) -> xr.DataArray:
    """The flag as a dask-backed boolean (time, *spatial) DataArray; NaN (missing) is unflagged.

    Examples
    --------
    >>> result = xr.Dataset({"ensemble": (("time", "lat", "lon"), [[[1.0, np.nan]]])}, coords={"lat": [0.0], "lon": [0.0, 1.0]})
    >>> flag_mask(result, "ensemble").values.tolist()
    [[[True, False]]]
    """
    if flag not in result.data_vars:
        found = ", ".join(map(str, result.data_vars)) or "none"
        raise VariableNotFoundError(f"the result has no flag variable '{flag}' (it has {found}); "
                                    "pass the output of model.score or name a flag with flag=.")
    dims = ("time", *spatial_dims(result))
    variable = result[flag]
    if set(variable.dims) != set(dims):
        raise GeoanomError(f"the flag '{flag}' has dimensions {variable.dims}, not {dims}; "
                           "select one detector first, e.g. result.sel(detector='gmm').")
    mask = (variable.fillna(0) != 0).transpose(*dims)
    return mask if isinstance(mask.data, da.Array) else mask.chunk()


def _stitched(mask: xr.DataArray, result: xr.Dataset, connectivity: int, bridge_gaps: bool,
              min_cells: int) -> tuple[da.Array, Any]:
    """:func:`stitch` of the flags, never joining steps across a gap in the time axis (a month missing).

    Two empty steps go into each gap before stitching (so that not even
    ``bridge_gaps`` reaches over it) and come out of the keys after. When
    bridging, so do steps with no data anywhere (:func:`missing_steps`):
    a flag before one and a flag after it are not one event.
    """
    connection, least = _connection(result, connectivity, bridge_gaps), _min_cells(min_cells)
    gaps = gaps_after(result["time"])
    if bridge_gaps:  # after a missing step, so that the steps either side are four apart
        missing = missing_steps(result)
        gaps = np.union1d(gaps, missing[missing < mask.shape[0] - 1]).astype(np.int64)
    if not gaps.size:
        return stitch(mask.data, connection, least)
    empty = da.zeros((2,) + mask.shape[1:], dtype=bool, chunks=(2,) + mask.data.chunks[1:])
    bounds = [0, *(gaps + 1), mask.shape[0]]
    pieces = [part for start, stop in zip(bounds[:-1], bounds[1:]) for part in (mask.data[start:stop], empty)]
    keys, lookup = stitch(da.concatenate(pieces[:-1], axis=0), connection, least)
    real = np.arange(mask.shape[0]) + 2 * np.searchsorted(gaps, np.arange(mask.shape[0]), side="left")
    return keys[real].rechunk(mask.data.chunks), lookup


def missing_steps(result: xr.Dataset) -> np.ndarray:
    """The time steps (indices) where no cell of the result has data, computed now.

    Data are the ``<variable>_anomaly`` variables (NaN where the input was
    missing), or ``fused_irregularity`` in a result without them; a result
    with neither has no step known to be missing.

    Examples
    --------
    >>> anomaly = np.ones((3, 1, 2))
    >>> anomaly[1] = np.nan
    >>> result = xr.Dataset({"tas_anomaly": (("time", "lat", "lon"), anomaly)}, coords={"lat": [0.0], "lon": [0.0, 1.0]})
    >>> missing_steps(result).tolist()
    [1]
    """
    dims = ("time", *spatial_dims(result))
    names = [name for name in result.data_vars if str(name).endswith("_anomaly") and set(result[name].dims) == set(dims)]
    if not names and "fused_irregularity" in result and set(result["fused_irregularity"].dims) == set(dims):
        names = ["fused_irregularity"]
    if not names:
        return np.zeros(0, dtype=np.int64)
    present = [result[name].transpose(*dims).notnull().any(dims[1:]).data for name in names]
    (present,) = dask.compute(functools.reduce(np.logical_or, present))
    return np.flatnonzero(~np.asarray(present)).astype(np.int64)


def _connection(result: xr.Dataset, connectivity: int, bridge_gaps: bool) -> Connection:
    if isinstance(connectivity, bool) or connectivity not in (1, 2):
        raise GeoanomError(f"connectivity must be 1 (edges) or 2 (edges and corners), got {connectivity!r}.")
    return Connection(int(connectivity), wraps_in_longitude(result), across_time=True, bridge_gaps=bool(bridge_gaps))


def _min_cells(min_cells: int) -> int:
    if isinstance(min_cells, bool) or int(min_cells) != min_cells or min_cells < 1:
        raise GeoanomError(f"min_cells must be a whole number of cells, 1 or more, got {min_cells!r}.")
    return int(min_cells)


def _given_labels(result: xr.Dataset, labels: xr.DataArray, dims: tuple[str, ...]) -> da.Array:
    """The given labels as a dask (time, *spatial) array, checked against the result's grid."""
    if not isinstance(labels, xr.DataArray) or set(labels.dims) != set(dims) or \
            any(labels.sizes[d] != result.sizes[d] for d in dims):
        raise GeoanomError(f"labels must be a DataArray over {dims} of the result's shape, as event_labels returns.")
    data = labels.transpose(*dims).data
    return data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=_chunks_of(result, dims))


def _chunks_of(result: xr.Dataset, dims: tuple[str, ...]) -> tuple | str:
    """The chunks of the result's first lazy (time, *spatial) variable, so in-memory labels split as it does."""
    for variable in result.data_vars.values():
        if set(variable.dims) == set(dims) and isinstance(variable.data, da.Array):
            return variable.transpose(*dims).data.chunks
    return "auto"


def _scores(result: xr.Dataset, dims: tuple[str, ...]) -> dict[str, da.Array | None]:
    """Fused irregularity, consensus and each variable's anomaly (``"anomaly:<variable>"``) as dask
    (time, *spatial), None if absent."""
    anomalies = {f"anomaly:{str(name).removesuffix('_anomaly')}": name for name in result.data_vars
                 if str(name).endswith("_anomaly")}
    names = {"fused": "fused_irregularity", "consensus": "consensus", **anomalies}
    out = {}
    for key, name in names.items():
        if name is None or name not in result or set(result[name].dims) != set(dims):
            out[key] = None
            continue
        data = result[name].transpose(*dims).data
        out[key] = data if isinstance(data, da.Array) else da.from_array(np.asarray(data))
    return out


def _planes(result: xr.Dataset) -> dict[str, np.ndarray]:
    """Cell area (km^2), centre latitude and longitude, and tile code over the spatial grid."""
    lat, lon = cell_centres(result)
    return {"area": np.asarray(cell_areas(result), dtype=np.float64), "lat": np.asarray(lat.values, dtype=np.float64),
            "lon": np.asarray(lon.values, dtype=np.float64), "tile": result_tiles(result)[0]}


def _table(sums: pd.DataFrame, tiles: pd.DataFrame, times: np.ndarray, tile_names: np.ndarray) -> pd.DataFrame:
    """The catalogue's rows from the reduced sums."""
    ids = sums.index.to_numpy(dtype=np.int64)
    start, end = sums["start"].to_numpy(), sums["end"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        weight = sums["area"].to_numpy()
        lon = np.degrees(np.arctan2(sums["sin_sum"].to_numpy(), sums["cos_sum"].to_numpy()))
        table = pd.DataFrame({
            "event": ids, "start": times[start], "end": times[end], "duration": (end - start + 1).astype(np.int64),
            "cells": sums["cells"].to_numpy(dtype=np.int64), "max_area_km2": sums["max_area"].to_numpy(dtype=float),
            "peak_irregularity": sums["fused_max"].to_numpy(dtype=float),
            "mean_irregularity": (sums["fused_sum"] / sums["fused_n"]).to_numpy(dtype=float),
            **_departure(sums),
            "lat": sums["lat_sum"].to_numpy() / weight,
            "lon": np.where(weight > 0, (lon + 180.0) % 360.0 - 180.0, np.nan),
            "tiles": _tile_text(tiles, ids, tile_names),
            "consensus": (sums["consensus_sum"] / sums["consensus_n"]).to_numpy(dtype=float),
        })
    return table.loc[:, list(COLUMNS)]


def _departure(sums: pd.DataFrame) -> dict[str, np.ndarray]:
    """Each event's ``sign``, ``variable`` and ``mean_anomaly``: of its variables' mean anomalies, the furthest from 0."""
    names = [name.removeprefix("anomaly:").removesuffix("_sum") for name in sums.columns
             if name.startswith("anomaly:") and name.endswith("_sum")]
    if not names:
        return {"sign": np.zeros(len(sums), dtype=np.int64), "variable": np.full(len(sums), ""),
                "mean_anomaly": np.full(len(sums), np.nan)}
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.stack([(sums[f"anomaly:{name}_sum"] / sums[f"anomaly:{name}_n"]).to_numpy(dtype=float)
                          for name in names], axis=1)
    furthest = np.argmax(np.nan_to_num(np.abs(means), nan=-1.0), axis=1)
    mean = means[np.arange(len(sums)), furthest]
    return {"sign": np.sign(np.nan_to_num(mean)).astype(np.int64), "variable": np.asarray(names)[furthest],
            "mean_anomaly": mean}


def _tile_text(tiles: pd.DataFrame, ids: np.ndarray, names: np.ndarray) -> list[str]:
    """The sorted, space-separated tile names of each event (one join per event: a groupby-apply took seconds)."""
    label, name = tiles["label"].to_numpy(), names[tiles["tile"].to_numpy()]
    order = np.lexsort((name, label))
    label, name = label[order], name[order].tolist()
    found, starts = np.unique(label, return_index=True)
    text = dict(zip(found.tolist(), (" ".join(part for part in name[a:b] if part)
                                     for a, b in zip(starts, list(starts[1:]) + [len(name)]))))
    return [text.get(event, "") for event in ids.tolist()]
