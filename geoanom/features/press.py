"""The number of harmonics each group of cells can support, chosen by robust leave-one-out error (PRESS).

- :func:`press_block`: the robust PRESS of every nested candidate model of
  a block's cells, on the cells :func:`press_sample` picks, and each cell's
  largest usable candidate.
- :class:`AnnualCoverage` and :func:`supported_per_cell`: what of the year
  a cell's own values cover, and so which harmonics they can pin down.

The fits themselves are :mod:`geoanom.features.robust`'s; the choice per
group, from these PRESS planes, is :mod:`geoanom.features.climatology_design`'s.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .irls import press_cells
from .persistence import error_persistence, spectrum
from .point_mass import find_point_masses
from .robust import MAX_LEVERAGE, MIN_STEPS, DesignRows, fit_means, normal_equations, robust_fit, rounding_only
from .scale_kernels import loo_scale_cells

PRESS_VALUES = 4_000_000  # time x cell x column values per batch of the nested fits (32 MB an array)
PRESS_CAP = 9.0  # squared robust-scale units: beyond 3 scales a residual counts as an outlier
PRESS_CELLS = 32  # cells per group whose leave-one-out error chooses the group's harmonics


def press_block(block: np.ndarray, sampled: np.ndarray, columns: np.ndarray, omega: np.ndarray, prefixes: list[int],
                annual: "AnnualCoverage | None" = None) -> np.ndarray:
    """Per cell: the robust PRESS of every candidate (NaN unless ``sampled``), then the cell's largest usable prefix.

    With ``annual``, a cell's usable prefix also holds no harmonic of the
    year its own values cannot pin down (the design's rule, per cell: a
    record whose values start in March leaves January unseen), and a last
    plane gives the widest stretch of the year the cell's values leave
    uncovered.

    Every candidate is fitted with the robust weights of the largest one,
    and scored by the leave-one-out residuals of *every* valid value,
    squared in units of a common scale and capped at ``PRESS_CAP`` (an
    outlier counts the same against every candidate; a variable off its
    point mass, such as daily rain, is fitted by least squares and its
    PRESS is uncapped: capped, the wet days' squares hid the seasonal cycle). Summing the weighted
    squares instead would let the richest model discount the points it
    fits worst, and it would win on noise. Each column's leverage carries
    the persistence of the cell's residuals at its frequency ``omega``
    (:mod:`geoanom.features.persistence`): on daily weather that lasts a
    month, plain leave-one-out let the harmonics follow the training years'
    weather, as a day's neighbours stayed in its fit.
    """
    n_vars, n_times = block.shape[:2]
    n_planes = len(prefixes) + 1 + (annual is not None)
    out = np.full((n_planes, n_vars, block[0, 0].size), np.nan)
    design = DesignRows.of(columns)
    for v in range(n_vars):
        present = np.isfinite(block[v]).reshape(n_times, -1)
        limit = _usable_prefix(present.sum(axis=0), prefixes)
        if annual is not None:
            gap = annual.gap(present)
            limit = np.minimum(limit, annual.columns[supported_per_cell(gap, len(annual.columns) - 1)])
            out[-1, v] = gap
        out[len(prefixes), v] = limit
        # the sampled cells' columns alone: masking the others with NaN copied the whole block
        cells = np.flatnonzero(np.ravel(sampled) & present.any(axis=0))
        if cells.size == 0:
            continue
        y = block[v].reshape(n_times, -1)[:, cells]
        valid = np.isfinite(y)
        limit = out[len(prefixes), v, cells].astype(np.int64)
        fitted = robust_fit(y, valid, design, limit)
        rho, inflation = error_persistence(fitted.residual, valid, fitted.weights, fitted.leverage, omega, limit,
                                           rounding_only(fitted.scale, y, valid))
        leverage = np.minimum(fitted.leverage * inflation, MAX_LEVERAGE)
        scale = loo_scale_cells(fitted.residual, leverage, valid)
        variable = find_point_masses(y, fitted.residual, valid, scale[None]).variable
        cap = np.where(variable, np.inf, PRESS_CAP)  # least squares' PRESS: no value is an outlier there
        if variable.any():  # judged on their means, as final_block fits them, in units of their plain spread
            fit_means(fitted, variable, y, valid, design, limit)
            loo = fitted.residual[:, variable] / (1.0 - np.minimum(fitted.leverage[:, variable] *
                                                                   inflation[variable], MAX_LEVERAGE))
            scale[variable] = np.sqrt((loo**2).sum(axis=0) / np.maximum(valid[:, variable].sum(axis=0), 1))
        column_factor = spectrum(rho, omega)  # (cell, column)
        step = max(1, PRESS_VALUES // (n_times * columns.shape[1]))
        for start in range(0, y.shape[1], step):
            batch = slice(start, start + step)
            press = _nested_press(y[:, batch], valid[:, batch], fitted.weights[:, batch], design, limit[batch],
                                  scale[batch], prefixes, column_factor[batch], cap[batch])
            out[:len(prefixes), v, cells[batch]] = np.where(limit[batch] > 0, press, np.nan)
    return out.reshape(out.shape[:2] + block.shape[2:])


@dataclass
class AnnualCoverage:
    """Where in the year each time step falls, to tell what of the year a cell's own values cover.

    ``step_bin`` (time,) indexes ``bin_phase`` (bin,), the distinct phases
    of the year in increasing order (every bin holds a step); ``columns``
    (harmonic + 1,) is the design prefix that holds k harmonics of the year.
    """

    step_bin: np.ndarray
    bin_phase: np.ndarray
    columns: np.ndarray

    def gap(self, present: np.ndarray) -> np.ndarray:
        """The widest stretch of the year (a fraction of it) with no value, per cell of ``present`` (time, cell).

        Examples
        --------
        >>> months = AnnualCoverage(np.arange(12) % 12, np.arange(12) / 12, np.array([1, 3]))
        >>> present = np.ones((12, 2), dtype=bool)
        >>> present[:2, 1] = False  # January and February unseen
        >>> months.gap(present).round(3).tolist()
        [0.083, 0.25]
        """
        order = np.argsort(self.step_bin, kind="stable")
        starts = np.searchsorted(self.step_bin[order], np.arange(self.bin_phase.size))
        held = np.logical_or.reduceat(present[order], starts, axis=0)  # (bin, cell)
        index = np.arange(self.bin_phase.size)[:, None]
        # the last bin with a value at or before each bin, and the one before each bin
        last = np.maximum.accumulate(np.where(held, index, -1), axis=0)
        before = np.vstack([np.full((1, held.shape[1]), -1), last[:-1]])
        phase = self.bin_phase
        inner = np.where(held & (before >= 0), phase[index[:, 0]][:, None] - phase[np.maximum(before, 0)], 0.0)
        first = np.argmax(held, axis=0)
        wrap = phase[first] + 1.0 - phase[np.maximum(last[-1], 0)]
        gap = np.maximum(inner.max(axis=0, initial=0.0), wrap)
        return np.where(held.any(axis=0), gap, 1.0)


# A cell whose own values leave a gap in the year under this share (sea ice or polar night of up to seven months: a
# monthly record's values in five months or more, whose centres leave 8 / 12 of the year between them) still gets the
# annual harmonic; four months (9 / 12 uncovered) do not.
SEASONAL_GAP = 0.7


def supported_per_cell(gap: np.ndarray, limit: int) -> np.ndarray:
    """:func:`geoanom.features.calendar.supported_harmonics` of every cell's widest gap, and the annual harmonic
    for a cell that sees part of every year.

    The whole record must cover over half the year for any harmonic, since
    a season it never saw would be a guess; one cell may see less, a season
    that is ice or night every year. Without the annual harmonic such a cell
    (open water June to November) was judged against one mean: its normal
    June and November read -1.1 spreads, its August +1.0, its spread was 2-3
    times too wide, and a +4-spread June event was found at a third of its
    cells. With it, the cycle through the season it sees is fitted, and the
    ice months, which it never holds, get the sinusoid's continuation.

    Examples
    --------
    >>> supported_per_cell(np.array([0.1, 0.3, 8 / 12, 9 / 12]), 6).tolist()
    [5, 1, 1, 0]
    """
    with np.errstate(divide="ignore"):
        k = np.floor(0.5 / gap + 1e-9)
    seasonal = np.where(gap < SEASONAL_GAP - 1e-9, min(1, limit), 0)
    return np.where(gap >= 0.5 - 1e-9, seasonal, np.minimum(k, limit)).astype(np.int64)


def press_sample(groups: np.ndarray | None, shape: tuple[int, ...], per_group: int = PRESS_CELLS) -> np.ndarray:
    """The cells whose PRESS chooses their group's harmonics: at most ``per_group`` per group, evenly spread.

    A group's choice is one argmin over summed PRESS, which a few dozen
    cells decide about as well as all of them: the same harmonics for every
    cell of the A1B sample (precisions 2 and 3), of the SST sample at
    precision 3 and of the throughput benchmark's monthly cube, and for all
    but 7 of 7,776 SST cells at precision 2. The nested fits were most of
    the climatology's cost (that monthly cube, 180 steps: 21 -> 11 s). The
    sample depends on the groups alone, never on the chunks.

    Examples
    --------
    >>> import numpy as np
    >>> press_sample(np.array([[0, 0, 0, 0], [1, 1, -1, -1]]), (2, 4), per_group=2).astype(int).tolist()
    [[1, 0, 1, 0], [1, 1, 1, 1]]
    """
    codes = np.zeros(shape, dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    flat = np.where(codes < 0, codes.max(initial=0) + 1, codes).ravel()  # ungrouped cells choose together
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size) - starts[flat[order]]
    size = counts[flat]
    keep = np.minimum(size, per_group)
    # the first cell of each of `keep` equal runs of the group's cells, in grid order
    chosen = (rank * keep) // size != ((rank - 1) * keep) // size
    return (chosen | (rank == 0)).reshape(shape)


def _nested_press(y: np.ndarray, valid: np.ndarray, weights: np.ndarray, design: DesignRows, limit: np.ndarray,
                  scale: np.ndarray, prefixes: list[int], column_factor: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Robust PRESS (candidate, cell) of every nested prefix, from one Cholesky factorisation per cell.

    With X'WX = L L', the columns of Q = X L^-T are W-orthonormal and their
    first q span the first q columns of X: the fit and the leverage of every
    prefix are running sums over Q's columns. One factorisation replaces a
    solve and an inverse per candidate (SST, 7 candidates: 0.18 s -> 0.03 s).
    Q depends on the design row alone, so it is built on the distinct rows.
    Each column's share of the leverage is multiplied by its
    ``column_factor`` (cell, column), the persistence's inflation. Each
    cell's squares are capped at its ``cap`` (cell,).
    """
    n_columns = design.columns.shape[1]
    gram, rhs = normal_equations(np.where(valid, y, 0.0), weights, design)
    diagonal = np.diagonal(gram, axis1=1, axis2=2)
    ridge = np.where(diagonal > 0, 1e-9 * diagonal, 1.0)  # a column without weight gets a unit diagonal
    inverse_factor = np.linalg.inv(np.linalg.cholesky(gram + ridge[:, :, None] * np.eye(n_columns)))
    coefficients = np.einsum("cjp,cp->cj", inverse_factor, rhs)
    basis = np.einsum("tp,cjp->tcj", design.distinct(), inverse_factor)  # (row, cell, column)
    fit = np.cumsum(basis * coefficients, axis=2)
    design_leverage = np.cumsum(basis**2 * column_factor[None], axis=2)
    out = np.empty((len(prefixes), y.shape[1]))
    rows_of_steps = design.rows_of_steps().astype(np.int64)
    for i, q in enumerate(prefixes):
        # compiled: the numpy passes made eight (time, cell) temporaries a candidate (tests/reference_kernels.py)
        last = np.clip(np.minimum(limit, q), 1, n_columns).astype(np.int64) - 1
        out[i] = press_cells(y, valid, weights, fit, design_leverage, rows_of_steps, last, scale, MAX_LEVERAGE, cap)
    return out


def _usable_prefix(n_valid: np.ndarray, prefixes: list[int]) -> np.ndarray:
    """The largest candidate each cell's valid values support (2 q + 4 of them), 0 below ``MIN_STEPS``."""
    limit = np.zeros(n_valid.shape, dtype=np.int64)
    for q in prefixes:
        limit = np.where(n_valid >= 2 * q + 4, q, limit)
    return np.where(n_valid >= MIN_STEPS, np.maximum(limit, prefixes[0]), 0)
