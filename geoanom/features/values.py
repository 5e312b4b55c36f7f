"""Per-observation features: each variable and its standardised anomaly.

The anomaly of an observation is taken from its own cell's training
climatology, per month or day of year when the data are sub-annual, so a
warm July is judged against Julys and a coastal cell against itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import dask

import numpy as np
import pandas as pd
import xarray as xr

N_SEASONS = {"none": 1, "month": 12, "dayofyear": 366}


def season_kind(time: xr.DataArray) -> str:
    """``"dayofyear"``, ``"month"`` or ``"none"`` from the median time step.

    Daily or finer data get a day-of-year climatology, monthly data a
    monthly one, annual and coarser data a single one.
    """
    if time.size < 2:
        return "none"
    steps = pd.to_timedelta(pd.Series(np.diff(time.values))).dt.total_seconds() / 86400.0
    days = float(np.median(steps))
    if days <= 2:
        return "dayofyear"
    if days <= 45:
        return "month"
    return "none"


def season_index(time: xr.DataArray, kind: str) -> np.ndarray:
    """0-based season of each time step (month - 1, day of year - 1, or 0)."""
    if kind == "month":
        return time.dt.month.values.astype(np.int16) - 1
    if kind == "dayofyear":
        return time.dt.dayofyear.values.astype(np.int16) - 1
    return np.zeros(time.size, dtype=np.int16)


@dataclass
class Climatology:
    """Per-cell, per-season mean and standard deviation of each variable.

    ``mean`` and ``std`` have shape (n_seasons, n_variables, *spatial).
    A zero or undefined spread is stored as 1, so that the anomaly of such a
    cell is its plain departure from the mean.
    """

    kind: str
    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def from_values(cls, values: xr.DataArray, kind: str, scheduler: Any = None) -> "Climatology":
        """Compute the climatology of ``values`` (variable, time, *spatial), lazily reduced.

        ``scheduler`` is passed to :func:`dask.compute` (a distributed Client works).
        """
        season = xr.DataArray(season_index(values["time"], kind), dims="time", name="season")
        grouped = values.groupby(season)
        mean, std = grouped.mean("time"), grouped.std("time")
        mean, std = dask.compute(mean, std, scheduler=scheduler)
        every_season = np.arange(N_SEASONS[kind])
        mean = mean.reindex(season=every_season).transpose("season", ...)
        std = std.reindex(season=every_season).transpose("season", ...)
        spread = std.values
        spread = np.where(np.isfinite(spread) & (spread > 0), spread, 1.0)
        return cls(kind, mean.values.astype(np.float64), spread.astype(np.float64))


def feature_names(variables: Sequence[str]) -> list[str]:
    """Names of the feature vector's entries: the variables, then their anomalies."""
    return list(variables) + [f"{name}_anomaly" for name in variables]


def observation_features(
    values: np.ndarray, seasons: np.ndarray, clim_mean: np.ndarray, clim_std: np.ndarray
) -> np.ndarray:
    """Feature cube (2 * n_variables, time, *spatial) for one block of data.

    Parameters
    ----------
    values : ndarray (n_variables, time, *spatial)
    seasons : ndarray (time,)
        Season index of each time step (see :func:`season_index`).
    clim_mean, clim_std : ndarray (n_seasons, n_variables, *spatial)
        The block's part of the climatology.
    """
    mean = np.moveaxis(clim_mean[seasons], 0, 1)
    std = np.moveaxis(clim_std[seasons], 0, 1)
    return np.concatenate([values, (values - mean) / std], axis=0)
