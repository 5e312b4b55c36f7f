"""Maps and tables of irregularity over the grid: what geoanom found, and where."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Mapping

import numpy as np
import pandas as pd
import xarray as xr

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def irregularity_map(result: xr.Dataset, path: str | os.PathLike, time: int | str = -1) -> str:
    """Write a PNG map of the fused irregularity at one time step, with tile outlines.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`AnomalyModel.score`.
    path : str or path-like
        PNG file to write.
    time : int or str, default -1
        Time step: an index, or a date understood by ``sel``.

    Returns
    -------
    str
        The path written.
    """
    # A bare Figure (no pyplot) draws off screen without changing the
    # backend, so calling this from a notebook leaves inline plots working.
    from matplotlib.figure import Figure

    step = _time_step(result, time)
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    mesh = _draw_irregularity(ax, step, _colour_limit([step]))
    fig.colorbar(mesh, ax=ax, label="fused irregularity (log scale; 1 = detector thresholds)")
    ax.set_title(f"geoanom irregularity, {step['time'].values}")
    fig.savefig(path, dpi=110)
    return str(path)


def irregularity_maps(results: Mapping[str, xr.Dataset], path: str | os.PathLike, time: int | str = -1,
                      title: str | None = None) -> str:
    """Write side-by-side PNG maps of one time step scored against different expectations.

    Every panel shares one colour scale, and says which share of its valid
    cells the ensemble flags.

    Parameters
    ----------
    results : mapping of str to xarray.Dataset
        Panel title (e.g. ``"against the fixed 1860-1959 climate"``) to the
        output of :meth:`AnomalyModel.score`; all on one grid.
    path : str or path-like
        PNG file to write.
    time : int or str, default -1
        Time step of every result: an index, or a date understood by ``sel``.
    title : str, optional
        Title of the whole figure.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> irregularity_maps({"fixed climate": fixed, "running climate": running}, "2027.png",
    ...                   time="2027")  # doctest: +SKIP
    """
    from matplotlib.figure import Figure

    steps = {name: _time_step(result, time) for name, result in results.items()}
    vmax = _colour_limit(list(steps.values()))
    fig = Figure(figsize=(7.5 * len(steps) + 1, 6), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(steps), sharex=True, sharey=True))
    for ax, (name, step) in zip(axes, steps.items()):
        mesh = _draw_irregularity(ax, step, vmax)
        valid = step["fused_irregularity"].notnull()
        share = float(step["ensemble"].where(valid).sum() / max(int(valid.sum()), 1))
        ax.set_title(f"{name}\n{share:.1%} of cells flagged")
    for ax in axes[1:]:
        ax.set_ylabel("")
    fig.colorbar(mesh, ax=list(axes), label="fused irregularity (log scale; 1 = detector thresholds)")
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return str(path)


def _time_step(result: xr.Dataset, time: int | str) -> xr.Dataset:
    """One time step of a result, in memory."""
    step = result.isel(time=time) if isinstance(time, int) else result.sel(time=time, method="nearest")
    if "time" in step.dims:  # a partial date such as "2027" selects every step of that year
        step = step.isel(time=0)
    return step[["fused_irregularity", "ensemble", "tile"]].compute()


def _colour_limit(steps: list[xr.Dataset]) -> float:
    """Upper end of a log colour scale symmetric about 1: the 99th percentile, at least 2."""
    finite = np.concatenate([np.ravel(step["fused_irregularity"].values) for step in steps])
    finite = finite[np.isfinite(finite)]
    return max(float(np.percentile(finite, 99)) if finite.size else 10.0, 2.0)


def _draw_irregularity(ax: "Axes", step: xr.Dataset, vmax: float):
    """Fused irregularity of one time step on ``ax``, the ensemble's flags outlined, tiles named."""
    from matplotlib.colors import LogNorm

    fused, flags = step["fused_irregularity"], step["ensemble"]
    lat2d, lon2d = xr.broadcast(fused["lat"], fused["lon"])
    # Log colours: irregularity spans orders of magnitude, and 1 is the threshold.
    mesh = ax.pcolormesh(
        lon2d.values, lat2d.values, fused.values, cmap="RdYlBu_r",
        norm=LogNorm(vmin=1.0 / vmax, vmax=vmax), shading="nearest",
    )
    if flags.values.any():
        ax.contour(lon2d.values, lat2d.values, flags.values.astype(float), levels=[0.5], colors="black",
                   linewidths=0.8)
    ax.plot([], [], color="black", linewidth=0.8, label="ensemble flags an anomaly")
    _draw_tiles(ax, step["tile"])
    ax.set_xlabel("longitude (degrees east)")
    ax.set_ylabel("latitude (degrees north)")
    ax.legend(loc="lower left", fontsize="small")
    return mesh


def _draw_tiles(ax, tiles: xr.DataArray) -> None:
    """Label each tile at the mean position of its cells."""
    lat2d, lon2d = xr.broadcast(tiles["lat"], tiles["lon"])
    frame = pd.DataFrame(
        {"tile": tiles.values.ravel(), "lat": lat2d.values.ravel(), "lon": lon2d.values.ravel()}
    ).groupby("tile").mean()
    for tile, row in frame.iterrows():
        ax.text(row["lon"], row["lat"], tile, fontsize=6, ha="center", va="center", alpha=0.7)


def top_tiles(result: xr.Dataset, n: int = 10) -> pd.DataFrame:
    """The ``n`` tiles with the highest mean fused irregularity.

    Columns: ``mean_irregularity``, ``max_irregularity``, ``flagged_share``
    (share of the tile's valid observations the ensemble flags) and ``cells``.
    The cube is first reduced over time, lazily, to per-cell sums, so only
    maps are brought into memory.
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
    frame["tile"] = result["tile"].values.ravel()
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


def learning_curve(history: pd.DataFrame, path: str | os.PathLike) -> str:
    """Write a PNG of a federated run: loss and update norm per round, and the privacy spent.

    Parameters
    ----------
    history : pandas.DataFrame
        ``FederatedResult.history``.
    path : str or path-like

    Returns
    -------
    str
        The path written.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4), layout="constrained")
    learning, privacy = fig.subplots(1, 2)
    rounds = history.index.to_numpy()
    learning.plot(rounds, history["update_norm"], label="update norm")
    if history["loss"].notna().any():
        learning.plot(rounds, history["loss"], label="loss (global model, clients' data)")
    learning.set(xlabel="round", title="learning", yscale="log")
    learning.legend()
    epsilon = history["epsilon"] if "epsilon" in history else pd.Series(np.nan, index=history.index)
    if epsilon.notna().any():
        privacy.plot(rounds, epsilon, color="tab:red")
        privacy.set(xlabel="round", ylabel="epsilon", title="privacy spent")
    else:
        privacy.text(0.5, 0.5, "no differential privacy", ha="center", va="center", transform=privacy.transAxes)
        privacy.set_axis_off()
    fig.savefig(path, dpi=100)
    return str(path)


def flagged_share_and_change(shares: pd.DataFrame, change: xr.DataArray, path: str | os.PathLike, *,
                             mark: float | None = None, title: str | None = None) -> str:
    """Write a PNG of how much is flagged over time (left) and a map of a change (right).

    Parameters
    ----------
    shares : pandas.DataFrame
        Indexed by year (a number); one column per expectation, each the
        share of valid cells the ensemble flags that year (0 to 1).
    change : xarray.DataArray
        A (lat, lon) or curvilinear (y, x) map, e.g. the mean departure of a
        period from the training climate; its ``long_name`` and ``units``
        label the colour bar, its ``title`` attribute the panel.
    path : str or path-like
        PNG file to write.
    mark : float, optional
        A year to mark on the left panel (a dashed vertical line).
    title : str, optional
        Title of the whole figure.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> shares = pd.DataFrame({"fixed climate": [0.01, 0.5, 0.99]}, index=[1960, 2030, 2099])
    >>> flagged_share_and_change(shares, warming_map, "warming.png")  # doctest: +SKIP
    """
    from matplotlib.colors import TwoSlopeNorm
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
    lat2d, lon2d = xr.broadcast(change["lat"], change["lon"])
    values = np.asarray(change.values, dtype=float)
    finite = values[np.isfinite(values)]
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (-1.0, 1.0)
    if low >= 0:  # one sign: a sequential scale from 0
        colours = {"cmap": "Reds", "vmin": 0.0, "vmax": max(high, 1e-6)}
    elif high <= 0:
        colours = {"cmap": "Blues_r", "vmin": low, "vmax": 0.0}
    else:
        colours = {"cmap": "RdBu_r", "norm": TwoSlopeNorm(0.0, -max(-low, high), max(-low, high))}
    mesh = where.pcolormesh(lon2d.values, lat2d.values, values, shading="nearest", **colours)
    label = change.attrs.get("long_name", change.name or "change")
    units = change.attrs.get("units")
    fig.colorbar(mesh, ax=where, label=f"{label} ({units})" if units else str(label))
    where.set(xlabel="longitude (degrees east)", ylabel="latitude (degrees north)",
              title=change.attrs.get("title", str(label)))
    if title:
        fig.suptitle(title)
    fig.savefig(path, dpi=110)
    return str(path)
