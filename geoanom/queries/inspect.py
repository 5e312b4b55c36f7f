"""Inspection queries: the observations of a scored result that match a question, as a table.

The reference paper's practitioners inspect anomalies by selecting every
anomalous observation of one tile, or of one area, in a time range, and by
reading their scores side by side. :func:`query` answers such a question on
the output of :meth:`geoanom.AnomalyModel.score` (lazy, in memory or opened
from a file), one row per observation.

It selects before it computes: the time range and the grid rows and
columns holding the chosen cells are cut from the lazy result first (the
cell selection reads only the small 2-D ``tile``, ``lat`` and ``lon``
arrays), and then each remaining block is computed, filtered and turned
into rows by its own task, so a one-tile query of a large result computes
that tile's blocks, and no query ever holds more than one block's scores
at once besides its answer.

The selection helpers (:func:`time_positions`, :func:`cells_of_tiles`,
:func:`cells_in_bbox`, :func:`cell_columns`, :func:`join_keys`) are
shared with the feature trajectory (:mod:`geoanom.model.trajectory`), so
both tables select and name cells the same way and join on the same keys.
"""

from __future__ import annotations

from typing import Any, Sequence

import dask
import numpy as np
import pandas as pd
import xarray as xr

from .. import geohash
from ..errors import CoordinateError, GeoanomError, TileError
from ..grid import cell_centres, spatial_dims
from .event_stats import result_tiles

__all__ = ["cell_columns", "cells_in_bbox", "cells_of_tiles", "join_keys", "positions_indexer", "query", "time_positions"]

Tiles = str | Sequence[str]
BBox = tuple[float, float, float, float]


def query(result: xr.Dataset, *, tile: Tiles | None = None, time: Any = None, min_irregularity: float | None = None,
          bbox: BBox | None = None, detector: str | None = None, flagged: bool | None = None,
          features: pd.DataFrame | None = None) -> pd.DataFrame:
    """The observations of a scored result that match every filter given, one row per (time, cell).

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`geoanom.AnomalyModel.score`, lazy or computed, or
        the same opened from a file.
    tile : str or sequence of str, optional
        Geohashes; a cell matches when its centre lies in any of them. A
        hash of the result's tile precision is a tile (it must be one of the
        result's); a shorter one is a region, every tile under that prefix;
        a longer one is an area inside a tile.
    time : slice or label, optional
        As for ``result.sel(time=...)``: ``slice("2010-01", "2010-06")``, a
        time step, or a partial date such as ``"2010-05"``.
    min_irregularity : float, optional
        Keep rows whose ``fused_irregularity`` (or, with ``detector``, that
        family's irregularity) is at least this.
    bbox : (lon_min, lat_min, lon_max, lat_max), optional
        Cells whose centre lies in the box, edges included, in degrees.
        ``lon_min > lon_max`` is a box across the antimeridian
        (``(170, -10, -170, 10)`` spans 20 degrees); any longitude
        convention works.
    detector : str, optional
        A family of the result: ``min_irregularity`` and ``flagged`` then
        refer to its score and flag instead of the fused score and the
        ensemble's majority. Alone it filters nothing.
    flagged : bool, optional
        True keeps only the rows the ensemble (or ``detector``) flags as
        anomalous, False only the others.
    features : pandas.DataFrame, optional
        A feature table from :meth:`geoanom.AnomalyModel.features` (or
        :func:`geoanom.model.trajectory.feature_trajectory`): its feature
        columns are joined to the matching rows (NaN where it has none).

    Returns
    -------
    pandas.DataFrame
        Ordered by time, then grid position: ``time``, ``y`` and ``x`` (the
        cell's grid indices, on curvilinear grids only), ``lat``, ``lon``,
        ``tile``, ``irregularity_<family>`` for every family,
        ``fused_irregularity``, ``votes``, ``ensemble``, ``<variable>_anomaly``
        for every variable, ``consensus`` when the result has it, then any
        joined feature columns. Cells with nothing to show (every score and
        anomaly NaN, such as land in a sea-surface cube) are left out. An
        empty selection gives an empty table with these columns.

    Raises
    ------
    GeoanomError
        ``result`` is not a scored result; an unknown tile or detector; a
        time label the result does not hold; a bbox holding no cell centre.

    Examples
    --------
    >>> result = model.score(cube)  # doctest: +SKIP
    >>> ga.query(result, tile="dj", time=slice("2010", "2012"), flagged=True).head()  # doctest: +SKIP
    >>> ga.query(result, bbox=(170, -10, -170, 10), min_irregularity=2.0, detector="gmm")  # doctest: +SKIP
    """
    detectors = _check_result(result)
    score, flag = _criteria_columns(detectors, detector)
    codes, names = result_tiles(result)
    keep = _cell_selection(result, codes, names, tile, bbox)
    rows, cols = np.flatnonzero(keep.any(axis=1)), np.flatnonzero(keep.any(axis=0))
    dims = spatial_dims(result)
    times = time_positions(result["time"], time)
    subset = result.isel({"time": positions_indexer(times), dims[0]: positions_indexer(rows), dims[1]: positions_indexer(cols)})
    columns = _score_columns(subset, detectors, dims)
    found = _gather(columns, keep[np.ix_(rows, cols)], _Filter(score, min_irregularity, flag, flagged))
    table = cell_columns(result, times[found.pop("_t")], rows[found.pop("_y")], cols[found.pop("_x")], codes, names)
    table = pd.concat([table, pd.DataFrame(found)], axis=1)
    return table if features is None else _join_features(table, features, result)


def _check_result(result: xr.Dataset) -> list[str]:
    """The result's detector families; raise unless it is a scored result."""
    if not isinstance(result, xr.Dataset) or not {"irregularity", "tile", "fused_irregularity"} <= set(result.variables):
        raise GeoanomError("query needs the output of model.score (a Dataset with 'irregularity', "
                           "'fused_irregularity' and 'tile').")
    return [str(name) for name in result["detector"].values]


def _criteria_columns(detectors: list[str], detector: str | None) -> tuple[str, str]:
    """The columns ``min_irregularity`` and ``flagged`` test: the fused ones, or one family's."""
    if detector is None:
        return "fused_irregularity", "ensemble"
    if detector not in detectors:
        raise GeoanomError(f"detector '{detector}' is not in the result; its families are {', '.join(detectors)}.")
    return f"irregularity_{detector}", f"irregularity_{detector}"


def _cell_selection(result: xr.Dataset, codes: np.ndarray, names: np.ndarray, tile: Tiles | None,
                    bbox: BBox | None) -> np.ndarray:
    """The cells (y, x) of both the tiles and the box."""
    keep = np.ones(codes.shape, dtype=bool)
    if tile is not None:
        keep &= cells_of_tiles(result, codes, names, tile)
    if bbox is not None:
        keep &= cells_in_bbox(result, bbox)
    return keep


def time_positions(time: xr.DataArray, selection: Any, source: str = "the result") -> np.ndarray:
    """Positions along a time coordinate of ``time.sel(time=selection)`` (all of them for None).

    ``source`` names what the coordinate belongs to, in the error raised
    for a time it does not hold.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> months = xr.DataArray(pd.date_range("2000-01-01", periods=12, freq="MS"), dims="time", name="time")
    >>> time_positions(months, slice("2000-03", "2000-05")).tolist(), time_positions(months, "2000-07").tolist()
    ([2, 3, 4], [6])
    """
    positions = xr.DataArray(np.arange(time.size), dims="time", coords={"time": time.values})
    if selection is None:
        return positions.values
    try:
        return np.atleast_1d(positions.sel(time=selection).values)
    except (KeyError, TypeError, ValueError) as err:
        span = f"{time.values[0]} to {time.values[-1]}" if time.size else "no time at all"
        raise CoordinateError(f"time {selection!r} is not in {source}, which runs from {span} ({err}).") from None


def positions_indexer(positions: np.ndarray) -> slice | np.ndarray:
    """A slice where the sorted positions run without a gap (cheaper for dask than a list), else the positions.

    Examples
    --------
    >>> import numpy as np
    >>> positions_indexer(np.array([3, 4, 5])), positions_indexer(np.array([0, 7])).tolist()
    (slice(3, 6, None), [0, 7])
    """
    if positions.size and np.all(np.diff(positions) == 1):
        return slice(int(positions[0]), int(positions[-1]) + 1)
    return positions


def cells_of_tiles(grid: xr.Dataset | xr.DataArray, codes: np.ndarray, names: np.ndarray, tiles: Tiles) -> np.ndarray:
    """Cells (y, x) whose centre lies in any of the geohashes ``tiles`` (tiles, regions or finer areas).

    Parameters
    ----------
    grid : Dataset or DataArray
        With the ``lat`` and ``lon`` of the cells (for hashes finer than a tile).
    codes, names : ndarray
        Each cell's tile code and the geohash of each code, as from
        :func:`geoanom.queries.event_stats.result_tiles` or :func:`geoanom.tiling.tile_codes`.
    tiles : str or sequence of str

    Raises
    ------
    TileError
        A hash that is not a geohash, a tile the grid does not hold, or a
        region or area holding none of its cells.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> grid = xr.Dataset(coords={"lat": [26.0], "lon": [-81.0, -70.0]})
    >>> cells_of_tiles(grid, np.array([[0, 1]]), np.array(["dhw", "dj3"]), "dj").tolist()
    [[False, True]]
    """
    keep = np.zeros(codes.shape, dtype=bool)
    precision = len(names[0]) if len(names) else 0
    for code in [tiles] if isinstance(tiles, str) else list(tiles):
        keep |= _cells_of_tile(grid, codes, names, str(code), precision)
    return keep


def _cells_of_tile(grid: xr.Dataset | xr.DataArray, codes: np.ndarray, names: np.ndarray, code: str,
                   precision: int) -> np.ndarray:
    try:
        geohash.bbox(code)
    except ValueError:
        raise TileError(f"tile '{code}' is not a geohash (1 to 12 characters of "
                        f"'{geohash.ALPHABET}').") from None
    known = ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")
    if len(code) > precision:  # an area inside a tile: its cells are those whose centre it holds
        lat, lon = (np.asarray(c.values, dtype=float) for c in cell_centres(grid))
        usable = np.isfinite(lat) & np.isfinite(lon)
        inside = np.zeros(lat.shape, dtype=bool)
        inside[usable] = geohash.encode(lat[usable], lon[usable], len(code)) == code
        if not inside.any():
            raise TileError(f"geohash '{code}' holds no cell centre of the grid, whose tiles are {known}.")
        return inside
    matching = np.flatnonzero(np.char.startswith(names.astype(str), code))
    if not matching.size:
        what = "is not a tile of" if len(code) == precision else "is the prefix of no tile of"
        raise TileError(f"tile '{code}' {what} the grid, whose tiles are {known}.")
    return np.isin(codes, matching)


def cells_in_bbox(grid: xr.Dataset | xr.DataArray, bbox: BBox) -> np.ndarray:
    """Cells (y, x) whose centre lies in ``(lon_min, lat_min, lon_max, lat_max)``, edges included.

    ``lon_min > lon_max`` is a box across the antimeridian; longitudes are
    compared modulo 360, so any convention works.

    Raises
    ------
    CoordinateError
        A malformed box, or one that holds no cell centre of the grid.

    Examples
    --------
    >>> import xarray as xr
    >>> grid = xr.Dataset(coords={"lat": [0.0], "lon": [-175.0, 0.0, 175.0]})
    >>> cells_in_bbox(grid, (170, -5, -170, 5)).tolist()
    [[True, False, True]]
    """
    lon_min, lat_min, lon_max, lat_max = _checked_bbox(bbox)
    lat, lon = (np.asarray(c.values, dtype=float) for c in cell_centres(grid))
    # the box's eastward width from lon_min: past 360 it is the whole circle
    width = lon_max - lon_min if lon_min <= lon_max else lon_max - lon_min + 360.0
    with np.errstate(invalid="ignore"):
        east = np.mod(lon - lon_min, 360.0)
        inside = (lat >= lat_min) & (lat <= lat_max) & ((width >= 360.0) | (east <= width))
    if not inside.any():
        raise CoordinateError(
            f"bbox {tuple(bbox)} holds no cell centre of the grid (latitudes {np.nanmin(lat):g} to "
            f"{np.nanmax(lat):g}, longitudes {np.nanmin(lon):g} to {np.nanmax(lon):g}).")
    return inside


def _checked_bbox(bbox: BBox) -> tuple[float, float, float, float]:
    try:
        lon_min, lat_min, lon_max, lat_max = (float(value) for value in bbox)
    except (TypeError, ValueError):
        raise CoordinateError(f"bbox must be (lon_min, lat_min, lon_max, lat_max) in degrees, got {bbox!r}.") from None
    if not np.isfinite([lon_min, lat_min, lon_max, lat_max]).all() or not -90 <= lat_min <= lat_max <= 90:
        raise CoordinateError(f"bbox {tuple(bbox)} needs finite degrees with -90 <= lat_min <= lat_max <= 90.")
    return lon_min, lat_min, lon_max, lat_max


def _score_columns(subset: xr.Dataset, detectors: list[str], dims: tuple[str, str]) -> dict[str, xr.DataArray]:
    """The result's per-observation variables (time, y, x), one per output column, in output order."""
    columns = {f"irregularity_{name}": subset["irregularity"].isel(detector=i, drop=True)
               for i, name in enumerate(detectors)}
    names = ["fused_irregularity", "votes", "ensemble"]
    names += sorted(str(name) for name in subset.data_vars if str(name).endswith("_anomaly"))
    names += ["consensus"] if "consensus" in subset else []
    columns.update({name: subset[name] for name in names if name in subset})
    return {name: column.reset_coords(drop=True).transpose("time", *dims) for name, column in columns.items()}


class _Filter:
    """What a row must satisfy besides its cell: a minimum score, and a flag."""

    def __init__(self, score: str, minimum: float | None, flag: str, flagged: bool | None):
        self.score, self.minimum, self.flag, self.flagged = score, minimum, flag, flagged

    def rows(self, data: dict[str, np.ndarray]) -> np.ndarray:
        """Which observations of a block pass: they have something to show, and meet the criteria."""
        shown = [v for name, v in data.items() if name.startswith("irregularity_") or name.endswith("_anomaly")]
        keep = np.logical_or.reduce([np.isfinite(values) for values in shown])
        with np.errstate(invalid="ignore"):
            if self.minimum is not None:
                keep &= data[self.score] >= self.minimum
            if self.flagged is not None:
                flag = data[self.flag]
                flag = flag > 1.0 if flag.dtype.kind == "f" else flag.astype(bool)  # a family: irregularity above 1
                keep &= flag == bool(self.flagged)
        return keep


def _gather(columns: dict[str, xr.DataArray], keep: np.ndarray, rule: _Filter) -> dict[str, np.ndarray]:
    """The passing observations' values, and their positions ``_t``, ``_y``, ``_x`` in the subset, ordered.

    One task per block turns its scores into rows, so the blocks are never
    all in memory at once, and one ``dask.compute`` shares the upstream graph
    (the features of a lazy result are computed once for every column).
    """
    arrays = xr.unify_chunks(*(c if c.chunks else c.chunk() for c in columns.values()))
    first = arrays[0].data
    if 0 in first.shape:
        return _ordered({name: np.empty(0, c.dtype) for name, c in columns.items()} | _no_positions())
    starts = [np.cumsum((0,) + sizes) for sizes in first.chunks]
    blocks = [array.data.to_delayed(optimize_graph=False) for array in arrays]
    tasks = []
    for index in np.ndindex(*first.numblocks):
        origin = tuple(int(s[i]) for s, i in zip(starts, index))
        cells = keep[origin[1]:starts[1][index[1] + 1], origin[2]:starts[2][index[2] + 1]]
        tasks.append(dask.delayed(_block_rows)(list(columns), [b[index] for b in blocks], cells, origin, rule))
    parts = dask.compute(*tasks)
    return _ordered({name: np.concatenate([part[name] for part in parts]) for name in parts[0]})


def _block_rows(names: list[str], blocks: list[np.ndarray], cells: np.ndarray, origin: tuple[int, int, int],
                rule: _Filter) -> dict[str, np.ndarray]:
    """One block's passing observations, with their positions in the subset."""
    data = {name: np.asarray(block) for name, block in zip(names, blocks)}
    t, y, x = np.nonzero(rule.rows(data) & cells[None])
    out = {name: values[t, y, x] for name, values in data.items()}
    return out | {"_t": t + origin[0], "_y": y + origin[1], "_x": x + origin[2]}


def _no_positions() -> dict[str, np.ndarray]:
    return {name: np.empty(0, dtype=np.int64) for name in ("_t", "_y", "_x")}


def _ordered(found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows by time, then grid row, then column: the same table whatever the chunking."""
    order = np.lexsort((found["_x"], found["_y"], found["_t"]))
    return {name: values[order] for name, values in found.items()}


def cell_columns(grid: xr.Dataset | xr.DataArray, times: np.ndarray, ys: np.ndarray, xs: np.ndarray,
                 codes: np.ndarray, names: np.ndarray) -> pd.DataFrame:
    """The descriptive columns of rows at time positions ``times`` and grid positions (``ys``, ``xs``).

    ``time``, then ``y`` and ``x`` on curvilinear grids (2-D ``lat``/``lon``),
    ``lat``, ``lon`` and ``tile`` (``names[codes]``).

    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> grid = xr.Dataset(coords={"time": pd.date_range("2000", periods=2), "lat": [1.0, 2.0], "lon": [5.0]})
    >>> cell_columns(grid, np.array([1]), np.array([0]), np.array([0]), np.zeros((2, 1), int), np.array(["s0"]))
            time  lat  lon tile
    0 2000-01-02  1.0  5.0   s0
    """
    lat, lon = (np.asarray(c.values) for c in cell_centres(grid))
    table = {"time": np.asarray(grid["time"].values)[times]}
    if grid["lat"].ndim == 2:
        table |= {"y": ys, "x": xs}
    table |= {"lat": lat[ys, xs], "lon": lon[ys, xs], "tile": np.asarray(names, dtype=str)[codes[ys, xs]]}
    return pd.DataFrame(table)


def join_keys(grid: xr.Dataset | xr.DataArray) -> list[str]:
    """The columns a row's observation is known by: time and grid indices, or time, lat and lon.

    Examples
    --------
    >>> import xarray as xr
    >>> join_keys(xr.Dataset(coords={"lat": [0.0], "lon": [0.0]}))
    ['time', 'lat', 'lon']
    """
    return ["time", "y", "x"] if grid["lat"].ndim == 2 else ["time", "lat", "lon"]


def _join_features(table: pd.DataFrame, features: pd.DataFrame, result: xr.Dataset) -> pd.DataFrame:
    """The query's rows with the feature table's own columns (those the query lacks) joined on the keys."""
    keys = join_keys(result)
    if not isinstance(features, pd.DataFrame) or not set(keys) <= set(features.columns):
        raise GeoanomError(f"features must be a table with columns {', '.join(keys)} (from model.features).")
    extra = [name for name in features.columns if name not in table.columns]
    left, right = _keyed(table, keys), _keyed(features[keys + extra], keys)
    joined = left.merge(right.drop(columns=keys).drop_duplicates("_key"), on="_key", how="left")
    return joined.drop(columns="_key")


def _keyed(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """The table with one ``_key`` column; coordinates rounded to 1e-6 degree, as grids are compared."""
    parts = [table[name].round(6) if name in ("lat", "lon") else table[name] for name in keys]
    return table.assign(_key=list(zip(*parts)))
