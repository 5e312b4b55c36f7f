"""Maps and tables of irregularity over the grid: what geoanom found, and where.

Maps draw every grid cell as its own quadrilateral (:mod:`geoanom.plot.cells`),
so 1-D and curvilinear grids, regional grids across the antimeridian and
global grids with a seam all draw as they lie; cells without data stay
blank, and coastlines come from data shipped with the package
(:mod:`geoanom.plot.coastlines`), with no network.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd
import xarray as xr

from ..model.result import tile_names
from .cells import map_cells
from .layout import map_layout, outline_legend, plain_log_ticks, saved
from .panels import (
    IRREGULARITY_LABEL,
    colour_limit,
    draw_anomaly,
    draw_field,
    draw_irregularity,
    time_step,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def irregularity_map(result: xr.Dataset, path: str | os.PathLike | None = None, time: int | str | None = None,
                     variable: str | None = None) -> "Figure":
    """A map of one time step: the fused irregularity, and beside or below it the signed anomaly.

    :func:`irregularity_figure` with a ``path``, kept for the calls that
    give ``path`` second (positionally); both return the Figure.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`AnomalyModel.score` (or a stored copy).
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).
    time : int or str, optional
        Time step: an index, or a date understood by ``sel`` (a partial date
        is its first step). Default: the last step where some cell has a
        score (a result whose last steps are all missing still shows a map).
    variable : str, optional
        Whose anomaly is drawn (default: the model's first variable).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = irregularity_map(model.score(cube), path="2099.png", time="2099")  # doctest: +SKIP
    """
    return irregularity_figure(result, time, variable, path=path)


def irregularity_figure(result: xr.Dataset, time: int | str | None = None, variable: str | None = None, *,
                        path: str | os.PathLike | None = None) -> "Figure":
    """A figure of one time step: the fused irregularity, and beside or below it the signed anomaly.

    The layout follows the domain's shape (:mod:`geoanom.plot.layout`):
    panels side by side, or stacked for a wide domain (a global strip), the
    figure sized to the map, and a map that would be a thin line stretched
    in latitude (its axis label says so). The first panel shows the fused irregularity (log scale, 1 = the
    detectors' thresholds), the cells the ensemble flags outlined; the second
    one the variable's standardised anomaly (``<variable>_anomaly``: red
    warmer or higher than expected, blue colder or lower, in spreads), so a
    flag reads as warm or cold. The title names the variable, its units, the
    time step and the model's training period. Cells without data (land on
    an ocean grid) stay blank; coastlines are drawn. A result stored without
    the anomaly gets the first panel only, and its title says so.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`AnomalyModel.score` (or a stored copy).
    time : int or str, optional
        Time step: an index, or a date understood by ``sel``. Default: the
        last step where some cell has a score.
    variable : str, optional
        Whose anomaly is drawn (default: the model's first variable). With
        several, the title says the flags judge them all together, so a
        flagged cell may be normal in the variable drawn.
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    GeoanomError
        Not a scored result, a time index out of range, or an unknown variable.

    Examples
    --------
    >>> import geoanom as ga
    >>> cube = ga.sample_cube("north_america")
    >>> model = ga.fit(cube.sel(time=slice(None, "1959")))  # doctest: +SKIP
    >>> fig = irregularity_figure(model.score(cube), time="2099", path="2099.png")  # doctest: +SKIP
    """
    # A bare Figure (no pyplot, see Layout.figure) draws off screen without changing
    # the backend, so calling this from a notebook leaves inline plots working.
    step = time_step(result, time, variable)
    cells = map_cells(step.data)
    with_anomaly = step.anomaly is not None
    layout = map_layout(cells, 2 if with_anomaly else 1)
    fig = layout.figure()
    axes = np.atleast_1d(fig.subplots(*layout.grid(2 if with_anomaly else 1), sharey=not layout.stacked))
    mesh = draw_irregularity(axes[0], step, colour_limit([step]), cells)
    plain_log_ticks(fig.colorbar(mesh, ax=axes[0], label=IRREGULARITY_LABEL, **layout.colour_bar))
    axes[0].set_title(f"fused irregularity: {step.flagged_share():.1%} of cells flagged")
    if with_anomaly:
        anomaly = draw_anomaly(axes[1], step, cells)
        fig.colorbar(anomaly, ax=axes[1], label=f"standardised anomaly of {step.variable} (spreads)",
                     **layout.colour_bar)
        axes[1].set_title(f"{step.variable}: red warmer or higher, blue colder or lower than expected")
        if not layout.stacked:
            axes[1].set_ylabel("")
    for ax in axes:
        layout.shape(ax)
    outline_legend(fig)
    note = "" if with_anomaly else " (no signed anomaly stored in this result)"
    if step.flags_note():  # a multi-variable model: the anomaly panel is one variable's, the flags all's
        note += f"; {step.flags_note()} (variable= chooses which)"
    fig.suptitle(layout.wrap(f"geoanom: {step.heading()}; model trained on {step.training}{note}", layout.figsize[0]))
    return saved(fig, path)


def irregularity_maps(results: Mapping[str, xr.Dataset], path: str | os.PathLike | None = None, time: int | str = -1,
                      title: str | None = None) -> "Figure":
    """Maps of one time step scored against different expectations, side by side or stacked.

    Every panel shares one colour scale, and says which share of its valid
    cells the ensemble flags and which training period its model learned.

    Parameters
    ----------
    results : mapping of str to xarray.Dataset
        Panel title (e.g. ``"against the fixed 1860-1959 climate"``) to the
        output of :meth:`AnomalyModel.score`; all on one grid.
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).
    time : int or str, default -1
        Time step of every result: an index, or a date understood by ``sel``.
    title : str, optional
        First line of the figure's title; the second names the variable,
        its units and the time step.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> fig = irregularity_maps({"fixed climate": fixed, "running climate": running}, path="2027.png",
    ...                         time="2027")  # doctest: +SKIP
    """
    steps = {name: time_step(result, time) for name, result in results.items()}
    vmax = colour_limit(list(steps.values()))
    cells = map_cells(next(iter(steps.values())).data)
    layout = map_layout(cells, len(steps))
    fig = layout.figure()
    axes = np.atleast_1d(fig.subplots(*layout.grid(len(steps)), sharey=not layout.stacked))
    for ax, (name, step) in zip(axes, steps.items()):
        mesh = draw_irregularity(ax, step, vmax, cells)
        ax.set_title(f"{name}\n{step.flagged_share():.1%} of cells flagged; model trained on {step.training}")
        layout.shape(ax)
    if not layout.stacked:
        for ax in axes[1:]:
            ax.set_ylabel("")
    plain_log_ticks(fig.colorbar(mesh, ax=list(axes), label=IRREGULARITY_LABEL, **layout.colour_bar))
    outline_legend(fig)
    heading = next(iter(steps.values())).heading()
    fig.suptitle(layout.wrap(f"{title}\n{heading}" if title else heading, layout.figsize[0]))
    return saved(fig, path)


def top_tiles(result: xr.Dataset, n: int = 10) -> pd.DataFrame:
    """The ``n`` tiles with the highest mean fused irregularity.

    Columns: ``mean_irregularity``, ``max_irregularity``, ``flagged_share``
    (share of the tile's valid observations the ensemble flags) and ``cells``,
    indexed by the tile's geohash. The cube is first reduced over time,
    lazily, to per-cell sums, so only maps are brought into memory.

    Examples
    --------
    >>> top_tiles(model.score(cube), n=3)  # doctest: +SKIP
          mean_irregularity  max_irregularity  flagged_share  cells
    tile
    f4             0.912             12.3          0.031     16
    """
    import dask

    fused = result["fused_irregularity"]
    valid = fused.notnull()
    per_cell = dask.compute(
        fused.sum("time"), valid.sum("time"), fused.max("time"), result["ensemble"].where(valid, False).sum("time")
    )
    frame = pd.DataFrame(
        {name: np.asarray(values).ravel() for name, values in zip(("sum", "count", "max", "flagged"), per_cell)}
    )
    frame["tile"] = tile_names(result).values.ravel()
    tiles = frame.groupby("tile").agg(
        sum=("sum", "sum"), count=("count", "sum"), max_irregularity=("max", "max"),
        flagged=("flagged", "sum"), cells=("tile", "size"),
    )
    tiles = tiles[tiles["count"] > 0]
    table = pd.DataFrame(
        {
            "mean_irregularity": tiles["sum"] / tiles["count"],
            "max_irregularity": tiles["max_irregularity"],
            "flagged_share": tiles["flagged"] / tiles["count"],
            "cells": tiles["cells"],
        }
    )
    return table.sort_values("mean_irregularity", ascending=False).head(n)


def flagged_share_and_change(shares: pd.DataFrame, change: xr.DataArray, path: str | os.PathLike | None = None, *,
                             mark: float | None = None, title: str | None = None) -> "Figure":
    """A figure of how much is flagged over time (left) and a map of a change (right).

    Parameters
    ----------
    shares : pandas.DataFrame
        Indexed by year (a number); one column per expectation, each the
        share of valid cells the ensemble flags that year (0 to 1).
    change : xarray.DataArray
        A (lat, lon) or curvilinear (y, x) map, e.g. the mean departure of a
        period from the training climate; its ``long_name`` and ``units``
        label the colour bar, its ``title`` attribute the panel.
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).
    mark : float, optional
        A year to mark on the left panel (a dashed vertical line).
    title : str, optional
        Title of the whole figure.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> shares = pd.DataFrame({"fixed climate": [0.01, 0.5, 0.99]}, index=[1960, 2030, 2099])
    >>> fig = flagged_share_and_change(shares, warming_map, path="warming.png")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(15, 5.5), layout="constrained")
    over_time, where = fig.subplots(1, 2, width_ratios=[1, 1.25])
    for name, column in shares.items():
        over_time.plot(shares.index.to_numpy(), 100 * column.to_numpy(), label=str(name))
    if mark is not None:
        over_time.axvline(mark, color="0.3", linestyle="--", linewidth=0.8, label=f"{mark:g}")
    over_time.set(xlabel="year", ylabel="cells flagged by the ensemble (%)", ylim=(0, 100),
                  title="share of the grid flagged each year")
    over_time.legend(fontsize="small")
    mesh = draw_field(where, change, **_change_colours(np.asarray(change.values, dtype=float)))
    label = change.attrs.get("long_name", change.name or "change")
    units = change.attrs.get("units")
    fig.colorbar(mesh, ax=where, label=f"{label} ({units})" if units else str(label), shrink=0.8)
    where.set_title(change.attrs.get("title", str(label)))
    if title:
        fig.suptitle(title)
    return saved(fig, path)


def _change_colours(values: np.ndarray) -> dict:
    """A sequential scale from 0 for a change of one sign, else a diverging one centred on 0."""
    from matplotlib.colors import Normalize, TwoSlopeNorm

    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    if low >= 0:
        return {"cmap": "Reds", "norm": Normalize(0.0, max(high, 1e-6))}
    if high <= 0:
        return {"cmap": "Blues_r", "norm": Normalize(low, 0.0)}
    return {"cmap": "RdBu_r", "norm": TwoSlopeNorm(0.0, -max(-low, high), max(-low, high))}
