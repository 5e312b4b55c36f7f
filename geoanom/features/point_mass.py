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

import numpy as np


def find_point_masses(y: np.ndarray, residual: np.ndarray, valid: np.ndarray,
                      robust: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which cells (cell,) of ``y`` (time, cell) equal their median in half their valid values or more, and which
    equal it in ``MASS_SHARE`` of them or more and are a variable of their own off it (``OFF_VALUES`` values or
    more) rather than a constant with spikes.

    Only cells whose ``robust`` spread (season, cell) is under half the
    root mean square of their robust fit's ``residual`` are searched (the
    median of every cell cost 12% of the SST's climatology). A cell that
    holds one value but for a few spikes (a sea-ice cell at the freezing
    point) keeps its robust expected value, which the spikes do not move.

    Examples
    --------
    >>> y = np.r_[np.zeros(16), np.arange(1.0, 13.0)][:, None]  # dry four days in seven
    >>> [mask.tolist() for mask in find_point_masses(y, y, np.ones(y.shape, dtype=bool), np.zeros((1, 1)))]
    [[True], [True]]
    """
    point_mass, variable = np.zeros(y.shape[1], dtype=bool), np.zeros(y.shape[1], dtype=bool)
    kept = np.where(valid, residual, 0.0)
    squares = np.einsum("tc,tc->c", kept, kept)  # no leave-one-out factor: a bound to screen with
    suspects = np.flatnonzero(robust.max(axis=0) ** 2 * valid.sum(axis=0) < SUSPECT_RATIO**2 * squares)
    if not suspects.size:
        return point_mass, variable
    held = np.where(valid[:, suspects], y[:, suspects], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # cells without values
        median, lowest = np.nanmedian(held, axis=0), np.nanmin(held, axis=0)
    on, count = (held == median).sum(axis=0), valid[:, suspects].sum(axis=0)
    point_mass[suspects] = on * 2 >= count
    on = np.maximum(on, (held == lowest).sum(axis=0))  # under half the values, the mass is rain's dry days, at 0
    variable[suspects] = (on >= MASS_SHARE * count) & (count - on >= OFF_VALUES)
    return point_mass, variable


# Searched only where the robust spread is under this share of the residuals' root mean square: a point mass makes
# the median absolute deviation small (searching every cell cost 12% of the SST's climatology).
SUSPECT_RATIO = 0.7
# A variable on one value in this share of its values or more is zero-inflated: its robust fit is no mean (daily rain
# on 45% dry days: 0.4 of the mean).
MASS_SHARE = 0.25
OFF_VALUES = 10  # values off the point mass that make a variable of its own (daily rain on 95% dry days: 40 in 2 years)


def plain_spread(residual: np.ndarray, leverage: np.ndarray, valid: np.ndarray, seasons: np.ndarray,
                 n_seasons: int, prior: float) -> np.ndarray:
    """Root mean square spread (season, cell) of the leave-one-out residuals residual / (1 - leverage).

    Each season's mean square is shrunk towards the record's by ``prior``
    observations, as the robust spread's is at most.

    Examples
    --------
    >>> residual = np.tile([-1.0, 1.0], 12)[:, None]
    >>> plain_spread(residual, np.zeros_like(residual), np.ones((24, 1), bool), np.zeros(24, int), 1, 24.0).tolist()
    [[1.0]]
    """
    loo = np.where(valid, residual / (1.0 - leverage), 0.0)
    count = valid.sum(axis=0)
    record = (loo**2).sum(axis=0) / np.maximum(count, 1)
    in_season = (np.asarray(seasons)[None, :] == np.arange(n_seasons)[:, None]).astype(np.float64)  # (season, time)
    season_count, season_sum = in_season @ valid, in_season @ loo**2
    return np.sqrt((season_sum + prior * record) / (season_count + prior))


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
            "or more (a zero-inflated or discrete variable: precipitation, a flag): their expected value is the plain "
            "mean and their spread the plain root mean square, not robust ones, so an event in their training period "
            "moves and widens them; a transform (such as log1p of precipitation) makes such a variable better behaved.")

