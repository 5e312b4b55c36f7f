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
# Half-width of the circular window of seasons whose within-season spreads are
# pooled: a month with its two neighbours, a day with 15 either side (the
# 31-day window of climate practice). With a few years of data a spread from
# one season alone is too noisy to standardise by.
SPREAD_WINDOW = {"none": 0, "month": 1, "dayofyear": 15}


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
    """Per-cell, per-season mean and spread of each variable.

    Arrays have shape (n_seasons, n_variables, *spatial): ``count`` and
    ``mean`` of each season's observations; ``std``, the within-season
    standard deviation pooled over a window of neighbouring seasons
    (``SPREAD_WINDOW``), with ``dof`` degrees of freedom. A zero or undefined
    spread is stored as 1, so that the anomaly of such a cell is its plain
    departure from the mean.
    """

    kind: str
    mean: np.ndarray
    std: np.ndarray
    count: np.ndarray
    dof: np.ndarray

    @classmethod
    def from_values(cls, values: xr.DataArray, kind: str, scheduler: Any = None) -> "Climatology":
        """Compute the climatology of ``values`` (variable, time, *spatial), lazily reduced.

        ``scheduler`` is passed to :func:`dask.compute` (a distributed Client works).
        """
        season = xr.DataArray(season_index(values["time"], kind), dims="time", name="season")
        # float64 sums: float32 ones would round differently for every chunking
        grouped = values.astype(np.float64).groupby(season)
        stats = dask.compute(grouped.count("time"), grouped.mean("time"), grouped.std("time", ddof=1),
                             scheduler=scheduler)
        every_season = np.arange(N_SEASONS[kind])
        count, mean, std = (stat.reindex(season=every_season).transpose("season", ...).values for stat in stats)
        count = np.nan_to_num(count).astype(np.float64)
        squares = np.nan_to_num(std.astype(np.float64) ** 2 * (count - 1))
        pooled_squares = _circular_window_sum(squares, SPREAD_WINDOW[kind])
        dof = _circular_window_sum(np.maximum(count - 1, 0), SPREAD_WINDOW[kind])
        with np.errstate(divide="ignore", invalid="ignore"):
            pooled = np.sqrt(pooled_squares / dof)
        return cls(kind, mean.astype(np.float64), _usable_spread(pooled), count, dof)

    def block(self, rows: slice, cols: slice) -> "Climatology":
        """The part of the climatology over a block of grid cells."""
        parts = (self.mean, self.std, self.count, self.dof)
        return Climatology(self.kind, *(a[:, :, rows, cols] for a in parts))


def _circular_window_sum(per_season: np.ndarray, half_width: int) -> np.ndarray:
    """Sum over seasons s - half_width .. s + half_width, wrapping around the year."""
    return sum(np.roll(per_season, shift, axis=0) for shift in range(-half_width, half_width + 1))


def _usable_spread(std: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(std) & (std > 0), std, 1.0).astype(np.float64)


def feature_names(variables: Sequence[str]) -> list[str]:
    """Names of the feature vector's entries: the variables, then their anomalies."""
    return list(variables) + [f"{name}_anomaly" for name in variables]


def observation_features(
    values: np.ndarray, seasons: np.ndarray, climatology: Climatology, leave_one_out: bool = False
) -> np.ndarray:
    """Feature cube (2 * n_variables, time, *spatial) for one block of data.

    Parameters
    ----------
    values : ndarray (n_variables, time, *spatial)
    seasons : ndarray (time,)
        Season index of each time step (see :func:`season_index`).
    climatology : Climatology
        The block's part of the climatology (see :meth:`Climatology.block`).
    leave_one_out : bool, default False
        For training observations: take each one's anomaly from the
        climatology of the *other* training years. An observation inside the
        climatology's own sample pulls the mean towards itself, so in-sample
        anomalies are narrower than those of new data (by a factor of about
        sqrt((n - 1) / (n + 1)) with n years); leaving it out makes training
        and scoring features alike, so thresholds learnt in training hold.
    """
    mean = np.moveaxis(climatology.mean[seasons], 0, 1)
    std = np.moveaxis(climatology.std[seasons], 0, 1)
    departure = values - mean
    if leave_one_out:
        count = np.moveaxis(climatology.count[seasons], 0, 1)
        dof = np.moveaxis(climatology.dof[seasons], 0, 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            # Removing x from its season's n samples moves the mean by (m - x) / (n - 1)
            # and takes (x - m)^2 n / (n - 1) and one degree of freedom from the pool.
            loo_departure = departure * count / (count - 1)
            loo_squares = std**2 * dof - departure**2 * count / (count - 1)
            loo_std = _usable_spread(np.sqrt(loo_squares / (dof - 1)))
        enough = (count >= 2) & (dof >= 2)
        departure = np.where(enough, loo_departure, departure)
        std = np.where(enough, loo_std, std)
    return np.concatenate([values, departure / std], axis=0)
