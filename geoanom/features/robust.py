"""Robust least squares of many cells at once: the numerics behind the climatology.

Each block is (time, cell): every cell's series is fitted on the same design
columns with its own weights, batched as matrix products over the cells,
which no library offers (``xarray.polyfit`` is unweighted and has no robust
option; statsmodels' RLM fits one series at a time: 7,776 SST cells take
about 40 s, against 0.3 s here).

- :func:`robust_fit`: MM-style IRLS of every cell (or plain least squares);
  :class:`DesignRows` sums over a design's distinct rows.
- :func:`final_block`: the chosen model's coefficients, spreads per season
  and what the training anomalies need (weight scale, leverage scale).

The choice of the number of harmonics by robust PRESS is
:mod:`geoanom.features.press`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .irls import RESOLUTION, irls_cells
from .persistence import count_factor, error_persistence
from .point_mass import find_point_masses, plain_spread
from .season_spread import seasonal_spread_cells

MIN_STEPS = 10  # fewer training time steps (or valid values in a cell) give no usable spread
SPREAD_PRIOR = 24.0  # weight, in observations, of a cell's whole-year spread in each month's
HUBER_C, BISQUARE_C = 1.345, 4.685  # 95% efficiency at the Gaussian, each
HUBER_STEPS, BISQUARE_STEPS = 2, 4
SCALE_STEPS = 4
MAX_LEVERAGE = 0.9
ROUNDING_UNITS = 16  # a residual scale within this many units in the last place (float32) of a cell's values is rounding


def bisquare(u: np.ndarray) -> np.ndarray:
    """Tukey's bisquare weight (1 - u^2)^2 inside |u| < 1, else 0.

    Examples
    --------
    >>> bisquare(np.array([0.0, 0.5, 1.0])).tolist()
    [1.0, 0.5625, 0.0]
    """
    inside = np.abs(u) < 1.0
    return np.where(inside, (1.0 - u**2) ** 2, 0.0)


def _bisquare_consistency() -> float:
    """Factor making the bisquare-weighted variance of N(0, 1) residuals equal to 1."""
    z = np.linspace(-BISQUARE_C, BISQUARE_C, 20001)
    density = np.exp(-0.5 * z**2)
    w = bisquare(z / BISQUARE_C)
    return float((w * density).sum() / (w * z**2 * density).sum())


KAPPA = _bisquare_consistency()


@dataclass
class DesignRows:
    """The design columns (time, column) and what the batched products need of them.

    Many steps share a design row (every January of a monthly record without
    trend, every step of an annual mean): sums over time then run over the
    distinct rows, each weighted by the total of its steps, so X'WX costs
    (rows x cells x column^2) instead of (time x ...): 180 -> 12 rows on 15
    years of months. ``rows`` is None when every step has its own row.
    """

    columns: np.ndarray  # (time, column)
    rows: np.ndarray | None = None  # (row, column): the distinct rows
    step_row: np.ndarray | None = None  # (time,): each step's row
    membership: np.ndarray | None = None  # (row, time): 1 where the step has the row

    @classmethod
    def of(cls, columns: np.ndarray) -> "DesignRows":
        rows, step_row = np.unique(columns, axis=0, return_inverse=True)
        if len(rows) == len(columns):
            return cls(columns)
        step_row = step_row.ravel()
        membership = (step_row[None, :] == np.arange(len(rows))[:, None]).astype(np.float64)
        return cls(columns, rows, step_row, membership)

    def per_row(self, by_step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(design rows, sums of a (time, cell) array over each row's steps), or the steps themselves."""
        if self.rows is None:
            return self.columns, by_step
        return self.rows, self.membership @ by_step

    def per_step(self, by_row: np.ndarray) -> np.ndarray:
        """A (row, ...) array spread to (time, ...)."""
        return by_row if self.rows is None else by_row[self.step_row]

    def distinct(self) -> np.ndarray:
        """The distinct rows (row, column), or every step's."""
        return self.columns if self.rows is None else self.rows

    def rows_of_steps(self) -> np.ndarray:
        """Each step's row in :meth:`distinct` (time,)."""
        return np.arange(len(self.columns)) if self.step_row is None else self.step_row


@dataclass
class CellFit:
    """A robust fit of many cells at once: (time, cell) and (cell, ...) arrays."""

    beta: np.ndarray  # (cell, column)
    weights: np.ndarray  # (time, cell)
    scale: np.ndarray  # (cell,)
    residual: np.ndarray  # (time, cell), 0 where missing
    leverage: np.ndarray  # (time, cell)


def _cells_with_data(field: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The (time, cell) values of the cells holding any value, and their flat indices."""
    flat = field.reshape(field.shape[0], -1)
    cells = np.flatnonzero(np.isfinite(flat).any(axis=0))
    return flat[:, cells], cells


def final_block(block: np.ndarray, prefix: np.ndarray, columns: np.ndarray, omega: np.ndarray, seasons: np.ndarray,
                n_seasons: int, window_run: float) -> np.ndarray:
    """Per cell: coefficients, spreads per season, their worth, weight scale, leverage scale, the least expected
    value and whether the cell sits on a point mass, stacked as planes.

    The leverages, and so the spreads of the leave-one-out residuals and the
    leverage scale of the training anomalies, carry the persistence of each
    cell's residuals at the design columns' frequencies ``omega``; each
    season's window of ``window_run`` consecutive steps a year, and the
    whole record, count as the independent values they hold
    (:mod:`geoanom.features.persistence`).
    """
    n_vars, n_times = block.shape[:2]
    n_columns = columns.shape[1]
    out = np.full((n_columns + 2 * n_seasons + 4, n_vars, block[0, 0].size), np.nan)
    design = DesignRows.of(columns)
    for v in range(n_vars):
        y, cells = _cells_with_data(block[v])
        if cells.size == 0:
            continue
        valid = np.isfinite(y)
        cell_prefix = prefix[v, 0].ravel()[cells]
        fitted = robust_fit(y, valid, design, cell_prefix)
        usable = cell_prefix > 0
        rho, inflation = error_persistence(fitted.residual, valid, fitted.weights, fitted.leverage, omega,
                                           cell_prefix, rounding_only(fitted.scale, y, valid))
        leverage = np.minimum(fitted.leverage * inflation, MAX_LEVERAGE)
        spread, worth = seasonal_spread_cells(fitted.residual, leverage, valid, seasons.astype(np.int64),
                                              n_seasons, SCALE_STEPS, BISQUARE_C, KAPPA, SPREAD_PRIOR,
                                              count_factor(rho, window_run), count_factor(rho, n_times),
                                              count_factor(rho, window_run / 3))
        weight_scale = fitted.scale
        leverage_scale = n_times / np.maximum(fitted.weights.sum(axis=0), 1e-12) * inflation
        found = find_point_masses(y, fitted.residual, valid, spread)
        point_mass, variable = found.point_mass | found.variable, found.variable
        if variable.any():
            fit_means(fitted, variable, y, valid, design, cell_prefix)
            weight_scale[variable] = np.inf  # every weight 1 in the training anomalies
            leverage_scale[variable] = (n_times / np.maximum(valid[:, variable].sum(axis=0), 1)
                                        * inflation[variable])
        if point_mass.any():
            mass = np.flatnonzero(point_mass)
            spread[:, mass] = plain_spread(fitted.residual[:, mass], np.minimum(fitted.leverage[:, mass] *
                                           inflation[mass], MAX_LEVERAGE), valid[:, mass], seasons, n_seasons,
                                           SPREAD_PRIOR)
        lower_bound = np.where(variable, found.lowest, -np.inf)  # rain's mean is never under its dry days' 0
        planes = np.concatenate([fitted.beta.T, spread, worth, weight_scale[None], leverage_scale[None],
                                 lower_bound[None], point_mass[None].astype(np.float64)])
        out[:, v, cells] = np.where(usable, planes, np.nan)
    return out.reshape(out.shape[:2] + block.shape[2:])


def fit_means(fitted: CellFit, cells: np.ndarray, y: np.ndarray, valid: np.ndarray, design: DesignRows,
               prefix: np.ndarray) -> None:
    """Refit the chosen ``cells`` (cell,) of ``fitted`` by plain least squares, in place: their mean and its cycle.

    For a variable off its point mass (:mod:`geoanom.features.point_mass`):
    the robust fit of daily rain on 85% dry days is the dry day's 0.
    """
    mean = robust_fit(y[:, cells], valid[:, cells], design, prefix[cells], robust=False)
    fitted.beta[cells], fitted.weights[:, cells] = mean.beta, mean.weights
    fitted.residual[:, cells], fitted.leverage[:, cells] = mean.residual, mean.leverage


def rounding_only(scale: np.ndarray, y: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Cells (cell,) whose residual ``scale`` is within ``ROUNDING_UNITS`` units in the last place of their values.

    Examples
    --------
    >>> y = np.array([[271.35, 10.0], [271.35, 12.0]])
    >>> rounding_only(np.array([1e-5, 1.0]), y, np.ones(y.shape, dtype=bool)).tolist()
    [True, False]
    """
    largest = np.where(valid, np.abs(y), 0.0).max(axis=0)
    return scale <= ROUNDING_UNITS * RESOLUTION * largest


def robust_fit(y: np.ndarray, valid: np.ndarray, design: DesignRows, prefix: np.ndarray, robust: bool = True) -> CellFit:
    """MM-style IRLS per cell: least squares, Huber steps that also settle the scale, then bisquare steps.

    Compiled, one cell at a time (:func:`geoanom.features.irls.irls_cells`).
    The scale is frozen once the Huber steps are done: re-estimating it
    inside the bisquare steps lets a fit on a dozen values collapse onto the
    few it passes through, with a scale near zero. The scale is never below
    the data's float32 resolution, and it widens in a cell where the weights
    would leave a direction of the design without data (every value of a
    month rejected under per-month means): a cell repeating one year to the
    last digit but for one value otherwise got an expected value only the
    ridge decided (OSTIA's Lake Victoria: 136 K in February). Not ``robust``:
    plain least squares (no reweighting steps).
    """
    values = np.where(valid, y, 0.0)
    prefix = np.maximum(prefix, 1)
    return CellFit(*irls_cells(values, np.ascontiguousarray(valid), np.ascontiguousarray(design.distinct()),
                                design.rows_of_steps().astype(np.int64), prefix.astype(np.int64),
                                HUBER_STEPS if robust else 0, BISQUARE_STEPS if robust else 0, HUBER_C, BISQUARE_C,
                                MAX_LEVERAGE))


def normal_equations(values: np.ndarray, weights: np.ndarray, design: DesignRows):
    """X'WX (cell, column, column) and X'Wy (cell, column) of every cell, summed over the design's distinct rows."""
    rows, row_weights = design.per_row(weights)
    _, row_values = design.per_row(weights * values)
    n_rows, n_columns = rows.shape
    pairs = (rows[:, :, None] * rows[:, None, :]).reshape(n_rows, -1)
    gram = (row_weights.T @ pairs).reshape(-1, n_columns, n_columns)
    rhs = row_values.T @ rows
    return gram, rhs
