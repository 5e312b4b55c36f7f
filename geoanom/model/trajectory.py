"""The feature trajectory: the vectors a model's ensembles scored for some cells over a time range.

"What changed before the event?" The reference paper's practitioners follow
the features of a tile's observations through the time leading up to an
anomaly. :func:`feature_trajectory` gives them as a table: one row per
(time, cell), a column per feature, and the irregularity the cell's
ensemble gives each vector.

The features are those scoring computes: the same pipeline call as
:func:`geoanom.model.score.score_cube` (the model's climatology, feature sets
and region parameters, over the whole cube given, so that grid-wide features
such as the neighbours' anomaly see what scoring sees), then cut to the
chosen cells and times before anything is computed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ..detectors.fusion import fuse, majority
from ..errors import GeoanomError
from ..features.pipeline import feature_cube, source_name, stack_variables
from ..features.vectors import feature_names
from ..grid import cell_centres
from ..queries.inspect import Tiles, cell_columns, cells_of_tiles, positions_indexer, time_positions
from ..tiling import tile_codes
from .score import check_same_grid, feature_sets, region_params

if TYPE_CHECKING:  # the model's thin method calls this module
    from .core import AnomalyModel

__all__ = ["feature_trajectory", "nearest_cell"]


def feature_trajectory(model: "AnomalyModel", cube: xr.Dataset, *, tile: Tiles | None = None, time: Any = None,
                       cell: tuple[float, float] | None = None) -> pd.DataFrame:
    """The feature vectors the model's ensembles score for some cells over a time range, with their scores.

    Parameters
    ----------
    model : AnomalyModel
    cube : xarray.Dataset or DataArray
        On the model's grid, with its variables: the cube that was (or
        would be) scored. The features are those ``model.score(cube)`` uses.
    tile : str or sequence of str, optional
        The cells whose centre lies in these geohashes: a tile, a region
        (a shorter prefix: every tile under it) or a finer area, as for
        :func:`geoanom.queries.inspect.query`. Each cell is scored by its own
        tile's ensemble.
    time : slice or label, optional
        As for ``cube.sel(time=...)``; all times by default.
    cell : (lat, lon), optional
        Instead of ``tile``: the one grid cell whose centre is nearest (on
        the sphere) to this point.

    Returns
    -------
    pandas.DataFrame
        One row per (time, cell) with an observation, by time then grid
        position: ``time``, ``y`` and ``x`` (on curvilinear grids), ``lat``,
        ``lon``, ``tile``, a column per feature (named as
        :func:`geoanom.features.feature_names`), ``irregularity_<family>``
        (float32, as the result stores it), ``fused_irregularity``, ``votes``
        and the ensemble's majority flag ``ensemble``: the numbers ``model.score(cube)``
        gives those observations (:meth:`~geoanom.AnomalyModel.adapt` scores
        with models that change as they go, so its numbers differ). NaN
        scores where the tile has no model.

    Raises
    ------
    GeoanomError
        Neither or both of ``tile`` and ``cell``; an unknown tile; a time
        label the cube does not hold; a cube off the model's grid.

    Examples
    --------
    >>> before = feature_trajectory(model, cube, tile="dj", time=slice("2010-01", "2010-08"))  # doctest: +SKIP
    >>> before.groupby("time")[["tas_anomaly", "tas_neighbours", "fused_irregularity"]].mean()  # doctest: +SKIP
    """
    values = stack_variables(cube, model.variables)
    check_same_grid(model, cube)
    codes, names = tile_codes(model.labels.values)
    keep = _chosen_cells(values, codes, names, tile, cell)
    ys, xs = np.nonzero(keep)
    times = time_positions(values["time"], time, source=source_name(cube))
    vectors = _features(model, values, times, ys, xs)
    shown = np.isfinite(vectors).any(axis=1)  # a cell without an observation then (land, a gap) has no row
    table = _table(values, vectors, times, ys, xs, codes, names, feature_names(model.variables, feature_sets(model)))
    table = table[shown].reset_index(drop=True)
    return pd.concat([table, _scores(model, vectors[shown], table["tile"].to_numpy(dtype=str))], axis=1)


def _chosen_cells(values: xr.DataArray, codes: np.ndarray, names: np.ndarray, tile: Tiles | None,
                  cell: tuple[float, float] | None) -> np.ndarray:
    """The chosen cells (y, x) of the grid: a tile's, or the one nearest a point."""
    if (tile is None) == (cell is None):
        raise GeoanomError("give feature_trajectory either tile= (geohashes) or cell= (lat, lon), not both or neither.")
    if tile is not None:
        return cells_of_tiles(values, codes, names, tile)
    keep = np.zeros(codes.shape, dtype=bool)
    keep[nearest_cell(values, cell)] = True
    return keep


def nearest_cell(grid: xr.Dataset | xr.DataArray, point: tuple[float, float]) -> tuple[int, int]:
    """Grid position (y, x) of the cell whose centre is nearest ``point`` = (lat, lon) on the sphere.

    Examples
    --------
    >>> import xarray as xr
    >>> nearest_cell(xr.Dataset(coords={"lat": [0.0, 10.0], "lon": [-179.0, 0.0, 179.0]}), (9.0, -178.0))
    (1, 0)
    """
    try:
        lat0, lon0 = (float(value) for value in point)
    except (TypeError, ValueError):
        raise GeoanomError(f"cell must be a (lat, lon) pair in degrees, got {point!r}.") from None
    if not (np.isfinite(lon0) and -90.0 <= lat0 <= 90.0):
        raise GeoanomError(f"cell {tuple(point)} needs a latitude in [-90, 90] and a finite longitude.")
    lat, lon = (np.radians(np.asarray(c.values, dtype=float)) for c in cell_centres(grid))
    lat0, lon0 = np.radians(lat0), np.radians(lon0)
    # haversine: exact for near and antipodal points alike, and continuous across the antimeridian
    chord = np.sin((lat - lat0) / 2) ** 2 + np.cos(lat) * np.cos(lat0) * np.sin((lon - lon0) / 2) ** 2
    position = np.unravel_index(np.nanargmin(chord), chord.shape)
    return int(position[0]), int(position[1])


def _features(model: "AnomalyModel", values: xr.DataArray, times: np.ndarray, ys: np.ndarray,
              xs: np.ndarray) -> np.ndarray:
    """Feature vectors (n_times * n_cells, n_features) of the chosen cells, in time-major order.

    The pipeline runs as in scoring, over the whole cube, and is cut before
    it is computed: only the blocks holding the chosen cells (and their
    halos) are worked out.
    """
    anomalies = model.climatology.standardise(values)
    cube = feature_cube(values, model.climatology, feature_sets(model), region_params(model), anomalies=anomalies)
    rows, cols = np.unique(ys), np.unique(xs)
    box = cube[:, positions_indexer(times)][:, :, positions_indexer(rows)][:, :, :, positions_indexer(cols)].compute()
    picked = box[:, :, np.searchsorted(rows, ys), np.searchsorted(cols, xs)]  # (feature, time, cell)
    return picked.reshape(picked.shape[0], -1).T


def _table(values: xr.DataArray, vectors: np.ndarray, times: np.ndarray, ys: np.ndarray, xs: np.ndarray,
           codes: np.ndarray, names: np.ndarray, columns: list[str]) -> pd.DataFrame:
    """Descriptive columns and the features, one row per (time, cell), time-major."""
    where = cell_columns(values, np.repeat(times, ys.size), np.tile(ys, times.size), np.tile(xs, times.size),
                         codes, names)
    return pd.concat([where, pd.DataFrame(vectors, columns=columns)], axis=1)


def _scores(model: "AnomalyModel", features: np.ndarray, tiles: np.ndarray) -> pd.DataFrame:
    """Each row's irregularity per family (float32, as scoring stores it), fused score, votes and majority flag.

    Rows with a NaN feature score NaN, as in scoring; each tile's rows are
    scored by the ensemble that scores that tile.
    """
    irregularity = np.full((len(model.detectors), len(features)), np.nan, dtype=np.float32)
    for tile in np.unique(tiles):
        ensemble = model.scoring_ensemble(str(tile))
        rows = (tiles == tile) & np.isfinite(features).all(axis=1)
        if ensemble is not None and rows.any():
            irregularity[:, rows] = ensemble.irregularity(features[rows])
    scored = np.isfinite(irregularity).all(axis=0)
    fused = np.where(scored, fuse(irregularity, model.detectors), np.nan).astype(np.float32)
    votes = (irregularity > 1.0).sum(axis=0).astype(np.int8)
    columns = {f"irregularity_{name}": irregularity[i] for i, name in enumerate(model.detectors)}
    return pd.DataFrame(columns | {"fused_irregularity": fused, "votes": votes,
                                   "ensemble": majority(votes, len(model.detectors))})
