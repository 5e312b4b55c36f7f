"""The climatology's robust fit of every cell, compiled: one cell at a time, its series in a few small arrays.

In numpy each IRLS step of :func:`geoanom.features.robust.robust_fit` was
a dozen passes over the whole (time, cell) block, each allocating a block
of temporaries, and the cells' small systems were solved by batched LU,
whose per-matrix overhead dominates at 12 x 12. Here one loop over the cells does
every step of a cell while its series is in cache: the normal equations
summed over the design's distinct rows, a Cholesky solve, the residuals,
the median absolute residual and the new weights. numba compiles it with
the GIL released, so dask's threads fit blocks side by side. The results
equal the numpy passes' to rounding (about 1e-12 of each quantity's scale;
``tests/test_robust_kernel.py`` checks them against those passes, kept as
test oracles in ``tests/reference_kernels.py``), except where the oracle's
weights leave the fit to the ridge: here the scale is floored at the data's
float32 resolution and widened until the weighted values determine the fit
(``tests/test_climatology_edge_cases.py``). The PRESS of the candidate
models (:func:`press_cells`) is compiled as well, equal to its numpy pass
bit for bit; the scales are :mod:`geoanom.features.scale_kernels`'.
"""

from __future__ import annotations

import numba
import numpy as np

from ..linalg import cholesky_in_place
from .scale_kernels import robust_scale

RIDGE = 1e-9  # of the mean diagonal: keeps a cell whose values cannot pin down its columns solvable
# Float32 data (most climate files) hold about 7 digits: a residual scale below two units in the last place of the
# cell's largest value is rounding, not variability, and must not make every real difference an outlier.
RESOLUTION = 2.0**-22
# The robust weights may not take away more than this share of the information (Cholesky pivot) the cell's valid
# values give any direction of the design: below it the weights have dropped rows the fit needs (every value of
# a month under per-month means), and only the ridge would hold the fit there.
MIN_INFORMATION = 0.01
MAX_WIDENINGS = 200  # doublings of the scale that can restore the information: from 1e-12 past any float64 residual


@numba.njit(cache=True, nogil=True)
def irls_cells(values, valid, rows, step_row, prefix, huber_steps, bisquare_steps, huber_c, bisquare_c,
               max_leverage):  # pragma: no cover - compiled; tested against the numpy oracle
    """MM-style IRLS of every cell: ``robust_fit``'s steps, compiled.

    Parameters
    ----------
    values : ndarray (time, cell)
        0 where not ``valid``.
    valid : ndarray of bool (time, cell)
    rows : ndarray (row, column)
        The design's distinct rows; ``step_row`` (time,) gives each step's.
    prefix : ndarray of int (cell,)
        Columns each cell uses, at least 1.
    huber_steps, bisquare_steps : int
    huber_c, bisquare_c, max_leverage : float

    Returns
    -------
    beta (cell, column), weights (time, cell), scale (cell,), residual (time, cell), leverage (time, cell)

    Examples
    --------
    >>> values = np.array([[1.0], [2.0], [3.0], [50.0], [2.0], [1.0], [3.0], [2.0], [1.0], [3.0]])
    >>> beta, weights, *_ = irls_cells(values, np.ones(values.shape, dtype=bool), np.ones((1, 1)),
    ...                                np.zeros(10, dtype=np.int64), np.ones(1, dtype=np.int64), 2, 4, 1.345, 4.685, 0.9)
    >>> round(float(beta[0, 0]), 2), float(weights[3, 0])  # the outlier gets no weight
    (2.0, 0.0)
    """
    n_times, n_cells = values.shape
    n_rows, n_columns = rows.shape
    beta = np.zeros((n_cells, n_columns))
    # every value of these is written below: np.empty spares a pass of zeros over each (time, cell) array
    weights = np.empty((n_times, n_cells))
    scale_out = np.empty(n_cells)
    residual_out = np.empty((n_times, n_cells))
    leverage_out = np.empty((n_times, n_cells))
    y = np.empty(n_times)
    ok = np.empty(n_times, dtype=np.bool_)
    w = np.empty(n_times)
    r = np.empty(n_times)
    magnitude = np.empty(3 * n_times)
    row_w = np.empty(n_rows)
    row_wy = np.empty(n_rows)
    row_fit = np.empty(n_rows)
    coefficients = np.empty(n_columns)
    whitened = np.empty(n_columns)
    factor = np.empty((n_columns, n_columns))
    valid_pivot = np.empty(n_columns)
    for c in range(n_cells):
        q = prefix[c]
        n_valid = 0
        largest = 0.0
        for t in range(n_times):
            y[t] = values[t, c]
            ok[t] = valid[t, c]
            w[t] = 1.0 if ok[t] else 0.0
            n_valid += ok[t]
            if ok[t]:
                largest = max(largest, abs(y[t]))
        # residuals of a q-column fit are narrower than the noise by sqrt((n - q) / n)
        dof = np.sqrt(max(n_valid, 1) / max(n_valid - q, 1))
        floor = RESOLUTION * largest
        scale = 1.0
        _weighted_fit(y, w, rows, step_row, q, row_w, row_wy, factor, coefficients)
        for a in range(q):
            valid_pivot[a] = factor[a, a]
        _residuals(y, ok, rows, step_row, q, coefficients, row_fit, r)
        for step in range(huber_steps + bisquare_steps):
            huber = step < huber_steps
            if huber:
                scale = max(dof * robust_scale(r, ok, n_valid, magnitude), floor)
            # A scale so small that the weights drop every value of some direction of the design (a cell repeating
            # one year but for a hundredth of a kelvin: scale ~1e-7, every such month rejected) leaves the fit to the
            # ridge, which puts the expected value anywhere (-160 K): widen it until the data determine the fit.
            for _ in range(MAX_WIDENINGS):
                _robust_weights(r, ok, scale, huber, huber_c, bisquare_c, w)
                _weighted_fit(y, w, rows, step_row, q, row_w, row_wy, factor, coefficients)
                if _determined(factor, valid_pivot, q):
                    break
                scale *= 2.0
            _residuals(y, ok, rows, step_row, q, coefficients, row_fit, r)
        # leverage of each distinct row: |L^-1 x|^2 = x' (X'WX)^-1 x
        for u in range(n_rows):
            row_fit[u] = _whitened_square(factor, rows[u], q, whitened)
        for t in range(n_times):
            weights[t, c] = w[t]
            residual_out[t, c] = r[t]
            leverage_out[t, c] = min(max(w[t] * row_fit[step_row[t]], 0.0), max_leverage)
        beta[c, :q] = coefficients[:q]
        scale_out[c] = scale
    return beta, weights, scale_out, residual_out, leverage_out


@numba.njit(cache=True, nogil=True)
def _robust_weights(r, ok, scale, huber, huber_c, bisquare_c, w):  # pragma: no cover - compiled
    """Huber's or Tukey's bisquare weights of the residuals at this scale; 0 where not valid."""
    for t in range(r.size):
        if huber:
            w[t] = min(1.0, huber_c / max(abs(r[t] / scale), 1e-12)) if ok[t] else 0.0
        else:
            u = r[t] / (bisquare_c * scale)
            w[t] = (1.0 - u**2) ** 2 if ok[t] and abs(u) < 1.0 else 0.0


@numba.njit(cache=True, nogil=True)
def _determined(factor, valid_pivot, q):  # pragma: no cover - compiled
    """Whether the weighted fit keeps ``MIN_INFORMATION`` of every Cholesky pivot the valid values give.

    The k-th squared pivot is the information left in column k once the
    earlier columns are accounted for (a Schur complement); weights of at
    most 1 can only lower it, and a direction no weighted value supports
    keeps only the ridge's share, about 1e-9.
    """
    for a in range(q):
        if factor[a, a] ** 2 < MIN_INFORMATION * valid_pivot[a] ** 2:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _weighted_fit(y, w, rows, step_row, q, row_w, row_wy, factor, coefficients):  # pragma: no cover - compiled
    """Coefficients of the first q columns by weighted least squares; ``factor`` holds the Cholesky factor."""
    n_rows = rows.shape[0]
    row_w[:] = 0.0
    row_wy[:] = 0.0
    for t in range(y.size):
        row_w[step_row[t]] += w[t]
        row_wy[step_row[t]] += w[t] * y[t]
    diagonal_mean = 0.0
    for a in range(q):
        for b in range(a + 1):
            value = 0.0
            for u in range(n_rows):
                value += row_w[u] * (rows[u, a] * rows[u, b])
            factor[a, b] = value
        diagonal_mean += factor[a, a]
        rhs = 0.0
        for u in range(n_rows):
            rhs += row_wy[u] * rows[u, a]
        coefficients[a] = rhs
    diagonal_mean /= q
    for a in range(q):
        # a column without weight (a cell without data) gets a unit diagonal
        factor[a, a] += RIDGE * diagonal_mean if factor[a, a] > 0 else 1.0
    if not cholesky_in_place(factor, q):  # the ridge makes X'WX positive definite; rounding could still defeat it
        raise np.linalg.LinAlgError("a cell's weighted normal equations are not positive definite")
    for a in range(q):  # forward: L z = rhs
        value = coefficients[a]
        for b in range(a):
            value -= factor[a, b] * coefficients[b]
        coefficients[a] = value / factor[a, a]
    for a in range(q - 1, -1, -1):  # backward: L' beta = z
        value = coefficients[a]
        for b in range(a + 1, q):
            value -= factor[b, a] * coefficients[b]
        coefficients[a] = value / factor[a, a]


@numba.njit(cache=True, nogil=True)
def _residuals(y, ok, rows, step_row, q, coefficients, row_fit, r):  # pragma: no cover - compiled
    """Residuals of the valid values (0 elsewhere); the fit is evaluated once per distinct row."""
    for u in range(rows.shape[0]):
        value = 0.0
        for a in range(q):
            value += rows[u, a] * coefficients[a]
        row_fit[u] = value
    for t in range(y.size):
        r[t] = y[t] - row_fit[step_row[t]] if ok[t] else 0.0


@numba.njit(cache=True, nogil=True)
def _whitened_square(factor, x, q, z):  # pragma: no cover - compiled
    """|L^-1 x|^2 over the first q columns, L the lower Cholesky factor; ``z`` (q or more) is scratch."""
    total = 0.0
    for a in range(q):
        value = x[a]
        for b in range(a):
            value -= factor[a, b] * z[b]
        z[a] = value / factor[a, a]
        total += z[a] * z[a]
    return total


@numba.njit(cache=True, nogil=True)
def press_cells(y, valid, weights, fit, design_leverage, step_row, last, scale, max_leverage,
                cap):  # pragma: no cover - compiled; tested against the numpy oracle
    """Capped robust PRESS (cell,) of one candidate: its expected values and leverages picked per cell.

    ``fit`` and ``design_leverage`` (row, cell, column) hold the running sums
    of every prefix on the design's distinct rows (``step_row`` (time,) gives
    each step's), ``last`` (cell,) the column of each cell's prefix. Per step
    the leverage is w h clipped to [0, ``max_leverage``], the leave-one-out
    residual (y - fit) / (1 - leverage) (0 where not ``valid``), and its
    square in units of ``scale`` (cell,) is capped at ``cap`` (cell,); the sum over
    time runs in time order, as numpy's over a block's first axis: the same
    bits as the numpy passes it replaced (``tests/reference_kernels.py``).

    Examples
    --------
    >>> fit = np.zeros((1, 1, 1)); lev = np.zeros((1, 1, 1))
    >>> y = np.array([[1.0], [-1.0], [10.0]])
    >>> press_cells(y, np.ones((3, 1), dtype=bool), np.ones((3, 1)), fit, lev, np.zeros(3, dtype=np.int64),
    ...             np.zeros(1, dtype=np.int64), np.ones(1), 0.9, np.full(1, 9.0)).tolist()
    [11.0]
    """
    n_times, n_cells = y.shape
    n_rows = fit.shape[0]
    # each cell's prefix picked first, so that the loop over the steps reads every array in order
    expected = np.empty((n_rows, n_cells))
    row_leverage = np.empty((n_rows, n_cells))
    for u in range(n_rows):
        for c in range(n_cells):
            expected[u, c] = fit[u, c, last[c]]
            row_leverage[u, c] = design_leverage[u, c, last[c]]
    out = np.zeros(n_cells)
    for t in range(n_times):  # time outermost: the sums run in time order, as numpy's over the first axis
        u = step_row[t]
        for c in range(n_cells):
            leverage = min(max(weights[t, c] * row_leverage[u, c], 0.0), max_leverage)
            residual = y[t, c] - expected[u, c] if valid[t, c] else 0.0
            z = residual / (1.0 - leverage) / scale[c]
            out[c] += min(z * z, cap[c])
    return out
