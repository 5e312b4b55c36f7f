"""Spatial binning of flags: the share of observations the ensemble flags in each geohash cell, on a map.

:func:`flagged_shares` counts, per geohash cell of a chosen precision (by
default the result's tiles), the observations with a score and those the
ensemble flags; :func:`flagged_share_map` draws the shares as the geohash
rectangles (:func:`geoanom.geohash.bbox`), with coastlines, in the
longitude frame centred on the data (:mod:`geoanom.plot.cells`).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import GeoanomError
from .cells import map_cells, map_extent, set_extent, to_frame, wrapped
from .coastlines import draw_coastlines
from .layout import map_layout, saved

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_BIN_LABELS = 60  # more bins than this are not labelled with their share


def flagged_shares(result: xr.Dataset, precision: int | None = None, *, time: Any = None) -> pd.DataFrame:
    """The share of scored observations the ensemble flags, per geohash cell.

    Each grid cell falls in the geohash cell holding its centre
    (:func:`geoanom.tiling.tile_labels`); at the result's own precision the
    bins are its tiles. The cube is reduced over time lazily, to per-cell
    counts, so only maps come into memory.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`AnomalyModel.score` (or a stored copy).
    precision : int, optional
        Geohash length of the bins (1 to 12); by default the result's tile
        precision (the ``geoanom_precision`` attribute of its ``tile``).
    time : slice or label, optional
        Count these time steps only, as for ``result.sel(time=...)``.

    Returns
    -------
    pandas.DataFrame
        Indexed by geohash (``bin``), sorted: ``observations`` (with a
        score), ``flagged`` (by the ensemble), ``share`` (flagged /
        observations), ``cells`` (grid cells in the bin) and the bin's
        bounds ``lat_min``, ``lat_max``, ``lon_min``, ``lon_max``. Bins
        without any scored observation are left out.

    Raises
    ------
    GeoanomError
        Not a scored result, no precision recorded or given, or a precision
        outside 1 to 12.

    Examples
    --------
    >>> shares = flagged_shares(model.score(cube), precision=1)  # doctest: +SKIP
    >>> shares.loc["9", "share"]  # doctest: +SKIP
    0.031
    """
    import dask

    from .. import geohash
    from ..tiling import tile_labels

    missing = [name for name in ("ensemble", "fused_irregularity", "tile") if name not in result]
    if missing:
        raise GeoanomError(f"the result has no '{missing[0]}' variable; pass the output of model.score.")
    precision = _precision(result, precision)
    if time is not None:
        result = result.sel(time=time)
    valid = result["fused_irregularity"].notnull()
    observations, flagged = dask.compute(valid.sum("time"), (result["ensemble"] & valid).sum("time"))
    bins = tile_labels(result["tile"], precision).values
    frame = pd.DataFrame({"bin": bins.ravel(), "observations": np.asarray(observations).ravel(),
                          "flagged": np.asarray(flagged).ravel()})
    table = frame.groupby("bin").agg(observations=("observations", "sum"), flagged=("flagged", "sum"),
                                     cells=("bin", "size"))
    table = table[table["observations"] > 0].astype(np.int64)
    table["share"] = table["flagged"] / table["observations"]
    bounds = geohash.bbox(table.index.to_numpy(dtype=str))
    for name, values in zip(("lat_min", "lat_max", "lon_min", "lon_max"), bounds):
        table[name] = values
    return table[["observations", "flagged", "share", "cells", "lat_min", "lat_max", "lon_min", "lon_max"]]


def _precision(result: xr.Dataset, precision: int | None) -> int:
    if precision is None:
        recorded = result["tile"].attrs.get("geoanom_precision")
        if recorded is None:
            raise GeoanomError("the result's 'tile' records no geoanom_precision; pass precision= (1 to 12).")
        precision = int(recorded)
    if isinstance(precision, bool) or not isinstance(precision, (int, np.integer)) or not 1 <= precision <= 12:
        raise GeoanomError(f"geohash precision must be an integer from 1 to 12, got {precision!r}.")
    return int(precision)


def bin_rectangles(table: pd.DataFrame, west: float) -> np.ndarray:
    """The bins' rectangles (n, 4, 2) as (lon, lat) corners, each moved by whole turns into the frame at ``west``.

    Examples
    --------
    >>> table = pd.DataFrame({"lat_min": [0.0], "lat_max": [45.0], "lon_min": [135.0], "lon_max": [180.0]})
    >>> bin_rectangles(table, -180.0)[0].tolist()
    [[135.0, 0.0], [180.0, 0.0], [180.0, 45.0], [135.0, 45.0]]
    """
    west_edge, east_edge = table["lon_min"].to_numpy(), table["lon_max"].to_numpy()
    shift = to_frame((west_edge + east_edge) / 2, west) - (west_edge + east_edge) / 2
    west_edge, east_edge = west_edge + shift, east_edge + shift
    south, north = table["lat_min"].to_numpy(), table["lat_max"].to_numpy()
    return np.stack([np.stack([west_edge, south], -1), np.stack([east_edge, south], -1),
                     np.stack([east_edge, north], -1), np.stack([west_edge, north], -1)], axis=1)


def flagged_share_map(result: xr.Dataset, precision: int | None = None, *, time: Any = None,
                      ax: "Axes | None" = None, path: str | os.PathLike | None = None) -> "Figure":
    """A map of the share of observations the ensemble flags, binned on a geohash grid.

    Each geohash cell (of the result's tile precision by default) is drawn
    as its rectangle, coloured by the share of its grid cells' scored
    observations that the ensemble flags (see :func:`flagged_shares`), and,
    when there are few bins, labelled with its geohash and share;
    coastlines are drawn. The rectangles are one collection (``gid``
    ``"geohash-bins"``) whose colour values are the shares; bins astride
    the map's longitude edge are drawn on both sides.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`AnomalyModel.score` (or a stored copy).
    precision : int, optional
        Geohash length of the bins; by default the result's tile precision.
    time : slice or label, optional
        Count these time steps only.
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    GeoanomError
        As :func:`flagged_shares`, or no observation with a score.

    Examples
    --------
    >>> fig = flagged_share_map(model.score(cube), precision=2, path="shares.png")  # doctest: +SKIP
    """
    from matplotlib.collections import PolyCollection
    from matplotlib.colors import Normalize

    table = flagged_shares(result, precision, time=time)
    if table.empty:
        raise GeoanomError("the result has no scored observation to bin.")
    cells = map_cells(result["tile"])
    rectangles = bin_rectangles(table, cells.west)
    if ax is None:
        layout = map_layout(cells, 1)
        fig = layout.figure()
        ax = fig.subplots()
    else:
        fig, layout = ax.figure, None
    shapes, index = wrapped(rectangles, cells.west)
    shares = table["share"].to_numpy()
    bins = PolyCollection(shapes, array=shares[index], cmap="YlOrRd", norm=Normalize(0.0, max(shares.max(), 1e-3)),
                          edgecolors="0.35", linewidths=0.5, gid="geohash-bins", zorder=1)
    ax.add_collection(bins)
    set_extent(ax, cells)  # the data's extent: a bin larger than the grid counts the grid's cells in it only
    draw_coastlines(ax, cells)
    if len(table) <= MAX_BIN_LABELS:
        _label_bins(ax, table, rectangles, map_extent(cells))
    bin_precision = len(table.index[0])
    ax.set(xlabel="longitude", ylabel="latitude",
           title=f"share of observations flagged by the ensemble, per geohash cell of precision {bin_precision} "
                 f"({int(table['flagged'].sum())} of {int(table['observations'].sum())} flagged)")
    fig.colorbar(bins, ax=ax, label="flagged share", shrink=0.8)
    if layout is not None:
        layout.shape(ax)
    return saved(fig, path)


def _label_bins(ax: "Axes", table: pd.DataFrame, rectangles: np.ndarray,
                extent: tuple[float, float, float, float]) -> None:
    """Each bin's geohash and share, at the middle of its part inside the map."""
    west, east, south, north = extent
    lon = np.clip(rectangles[..., 0], west, east).mean(axis=1)
    lat = np.clip(rectangles[..., 1], south, north).mean(axis=1)
    for name, share, x, y in zip(table.index, table["share"], lon, lat):
        ax.text(x, y, f"{name}\n{share:.1%}", fontsize=6, ha="center", va="center", clip_on=True, zorder=4)
