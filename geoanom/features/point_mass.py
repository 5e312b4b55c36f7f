"""Cells whose values sit on one value half the time or more: daily precipitation's dry days, a flag.

A robust fit of such a cell is a fit to the point mass: its median
absolute deviation is 0, and its expected value is the dry day's 0. Both
are wrong for what a scientist reads them as. The climatology therefore
finds these cells (:func:`find_point_masses`); their spread is the root
mean square of the leave-one-out residuals (:func:`plain_spread`), and
those with ``OFF_VALUES`` values or more off the point mass (and on it in
a quarter of their values or more) are fitted by plain least squares, so
that their expected value is the mean and its seasonal cycle. Daily precipitation with 85% dry days had an
expected value of 0.02 times its mean and no seasonal cycle, 95% dry days
0.0004 times (``tests/test_point_masses.py``); an ordinary wet day read 10
spreads when the floored robust spread was kept.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .season_spread import OWN_MIN_COUNT, SEASON_SCALE_FLOOR, shrink_season_variances


@dataclass
class PointMasses:
    """What :func:`find_point_masses` found: per cell (cell,), and which steps sit on the mass (time, cell)."""

    point_mass: np.ndarray  # on one value in half its values or more: a plain spread
    variable: np.ndarray  # on its lowest value in MASS_SHARE or more, OFF_VALUES off it: fitted by its mean
    on_mass: np.ndarray  # (time, cell): the steps on the mass
    lowest: np.ndarray  # each cell's lowest value: the least a variable's expected value may be


def find_point_masses(y: np.ndarray, residual: np.ndarray, valid: np.ndarray, robust: np.ndarray) -> PointMasses:
    """Cells of ``y`` (time, cell) that sit on one value much of the time, and which of them vary off it.

    - *At their lowest value* (daily rain's dry days): within
      ``DRIZZLE_SHARE`` of the robust fit's ``residual`` spread of the
      cell's lowest value, so that the drizzle of model and reanalysis
      rain (0-0.01 mm/day on dry days, as CMIP's ``pr`` and ERA5 write it)
      counts as dry: compared exactly, such a field was no point mass at
      all, its expected value was 0.05 times its mean and a wet day read
      27 spreads. A cell there in ``MASS_SHARE`` of its values or more,
      with ``OFF_VALUES`` or more off it, is a variable of its own.
    - *On their median* (a flag, a constant with spikes), exactly: searched
      only where the ``robust`` spread (season, cell) is under
      ``SUSPECT_RATIO`` of the residuals' root mean square (the median of
      every cell cost 12% of the SST's climatology). A cell that holds one
      value but for a few spikes keeps its robust expected value, which the
      spikes do not move.

    A point mass is a mass in half the cell's values or more.

    Examples
    --------
    >>> y = np.r_[np.zeros(16), np.arange(1.0, 13.0)][:, None]  # dry four days in seven
    >>> found = find_point_masses(y, y, np.ones(y.shape, dtype=bool), np.zeros((1, 1)))
    >>> found.point_mass.tolist(), found.variable.tolist(), int(found.on_mass.sum())
    ([True], [True], 16)
    """
    count = valid.sum(axis=0)
    kept = np.where(valid, residual, 0.0)
    squares = np.einsum("tc,tc->c", kept, kept)
    lowest = np.where(valid, y, np.inf).min(axis=0)
    on_mass = valid & (y <= lowest + DRIZZLE_SHARE * np.sqrt(squares / np.maximum(count, 1)))
    low = on_mass.sum(axis=0)
    variable = (low >= MASS_SHARE * count) & (count - low >= OFF_VALUES)
    point_mass = low * 2 >= count
    # no leave-one-out factor: a bound to screen with
    suspects = np.flatnonzero(~point_mass & (robust.max(axis=0) ** 2 * count < SUSPECT_RATIO**2 * squares))
    if suspects.size:
        held = np.where(valid[:, suspects], y[:, suspects], np.nan)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # cells without values
            on_median = held == np.nanmedian(held, axis=0)
        median_mass = on_median.sum(axis=0) * 2 >= count[suspects]
        point_mass[suspects[median_mass]] = True
        on_mass[:, suspects[median_mass]] = on_median[:, median_mass]
    on_mass &= (point_mass | variable)[None]
    return PointMasses(point_mass, variable, on_mass, lowest)


# Masses off a cell's lowest value are searched only where the robust spread is under this share of the residuals'
# root mean square: a point mass makes the median absolute deviation small.
SUSPECT_RATIO = 0.7
# Values within this share of the residuals' root mean square of a cell's lowest value sit on it (model drizzle).
DRIZZLE_SHARE = 0.02
# A variable on one value in this share of its values or more is zero-inflated: its robust fit is no mean (daily rain
# on 45% dry days: 0.4 of the mean).
MASS_SHARE = 0.25
OFF_VALUES = 10  # values off the point mass that make a variable of its own (daily rain on 95% dry days: 40 in 2 years)


def plain_spread(residual: np.ndarray, leverage: np.ndarray, valid: np.ndarray, seasons: np.ndarray,
                 n_seasons: int, prior: float) -> np.ndarray:
    """Root mean square spread (season, cell) of the leave-one-out residuals residual / (1 - leverage).

    Each season's mean square is shrunk towards the record's on the log
    scale as the robust spread is (``prior`` observations at most, fewer
    where the seasons differ:
    :func:`~geoanom.features.season_spread.shrink_season_variances`), where
    it holds ``OWN_MIN_COUNT`` values or more; a season of fewer, which one
    spike may set, by ``prior`` observations on the variance itself. Shrunk
    by ``prior`` observations on the variance itself, the open months next
    to five frozen months of sea ice took the frozen months' quiet: May's
    spread 0.31 K against 0.56 K, and 27% of its clean values beyond 2.576.

    Examples
    --------
    >>> residual = np.tile([-1.0, 1.0], 12)[:, None]
    >>> plain_spread(residual, np.zeros_like(residual), np.ones((24, 1), bool), np.zeros(24, int), 1, 24.0).round(3)
    array([[1.021]])
    """
    loo = np.where(valid, residual / (1.0 - leverage), 0.0)
    count = valid.sum(axis=0)
    record = (loo**2).sum(axis=0) / np.maximum(count, 1)
    in_season = (np.asarray(seasons)[None, :] == np.arange(n_seasons)[:, None]).astype(np.float64)  # (season, time)
    season_count, season_sum = in_season @ valid, in_season @ loo**2
    floor = (SEASON_SCALE_FLOOR**2 * record)[None]  # a season on the mass alone: no log of 0
    variance = np.maximum(season_sum / np.maximum(season_count, 1), np.maximum(floor, 1e-300))
    pooled = shrink_season_variances(variance, season_count, np.maximum(record, 1e-300), count.astype(np.float64),
                                     prior)
    # a season of fewer plain values may be set by one spike (a constant cell's): shrunk by ``prior`` on the variance
    few = (season_sum + prior * record) / (season_count + prior)
    return np.sqrt(np.where(season_count >= OWN_MIN_COUNT, pooled, few))


def point_mass_warning(point_mass: np.ndarray, what: str) -> str | None:
    """The warning for the cells (bool, any shape) found on one value, or None where there are none.

    Examples
    --------
    >>> point_mass_warning(np.array([True, False]), "'pr'")[:45]
    "1 cells of 'pr' hold one value (such as 0) in"
    """
    if not point_mass.any():
        return None
    return (f"{int(point_mass.sum())} cells of {what} hold one value (such as 0) in a quarter of their training values "
            "or more (a zero-inflated or discrete variable: precipitation, sea ice at its freezing point, a flag): their "
            "expected value is the plain mean and their spread the plain root mean square, not robust ones, so an event "
            "in their training period moves and widens them; a transform (such as log1p of precipitation) makes such a "
            "variable better behaved.")

