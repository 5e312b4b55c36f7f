"""Maps and tables of irregularity."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import xarray as xr


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
    from matplotlib.colors import LogNorm
    from matplotlib.figure import Figure

    step = result.isel(time=time) if isinstance(time, int) else result.sel(time=time, method="nearest")
    fused = step["fused_irregularity"].compute()
    flags = step["ensemble"].compute()
    fig = Figure(figsize=(9, 6), layout="constrained")
    ax = fig.subplots()
    finite = fused.values[np.isfinite(fused.values)]
    vmax = max(float(np.percentile(finite, 99)) if finite.size else 10.0, 2.0)
    lat2d, lon2d = xr.broadcast(fused["lat"], fused["lon"])
    # Log colours: irregularity spans orders of magnitude, and 1 is the threshold.
    mesh = ax.pcolormesh(
        lon2d.values, lat2d.values, fused.values, cmap="RdYlBu_r",
        norm=LogNorm(vmin=1.0 / vmax, vmax=vmax), shading="nearest",
    )
    fig.colorbar(mesh, ax=ax, label="fused irregularity (log scale; 1 = detector thresholds)")
    ax.contour(lon2d.values, lat2d.values, flags.values.astype(float), levels=[0.5], colors="black", linewidths=0.8)
    ax.plot([], [], color="black", linewidth=0.8, label="ensemble flags an anomaly")
    _draw_tiles(ax, result["tile"])
    ax.set_xlabel("longitude (degrees east)")
    ax.set_ylabel("latitude (degrees north)")
    ax.set_title(f"geoanom irregularity, {step['time'].values}")
    ax.legend(loc="lower left", fontsize="small")
    fig.savefig(path, dpi=110)
    return str(path)


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
