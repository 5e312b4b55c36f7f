"""The robust scales of the climatology's residuals, compiled: each cell's, and of its leave-one-out residuals.

:func:`robust_scale` (1.4826 x the median absolute residual, by a
quickselect that equals numpy's median bit for bit: :func:`median`) serves
the IRLS of :mod:`geoanom.features.irls` as it settles a cell's scale;
:func:`loo_scale_cells` is the scale of the leave-one-out residuals that
PRESS divides by; every cell's spread per season, built on these, is
:mod:`geoanom.features.season_spread`'s. One cell at a time, the GIL
released; each equals its numpy oracle in ``tests/reference_kernels.py``
bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def robust_scale(r, ok, n_valid, magnitude):  # pragma: no cover - compiled
    """1.4826 x the median absolute residual of the valid values; the RMS where that is 0; never 0.

    ``magnitude`` is scratch of 3 x ``r.size`` values.

    Examples
    --------
    >>> r = np.array([1.0, -2.0, 3.0])
    >>> round(robust_scale(r, np.ones(3, dtype=bool), 3, np.empty(9)), 4)
    2.9652
    """
    m = 0
    for t in range(r.size):  # the valid values' magnitudes to the front, without a jump
        magnitude[m] = abs(r[t])
        m += ok[t]
    mad = 1.4826 * median(magnitude, m, magnitude[r.size:]) if m > 0 else np.nan
    if np.isfinite(mad) and mad > 0:
        return mad
    squares = 0.0  # summed only here: the serial sum cost a quarter of the median's time
    for t in range(r.size):
        squares += r[t] ** 2
    scale = np.sqrt(squares / max(n_valid, 1))
    return scale if scale > 0 else 1e-12


_ONE, _TWO = np.uint64(1), np.uint64(2)  # the median's unsigned index arithmetic


@numba.njit(cache=True, nogil=True)
def median(a, n, scratch):  # pragma: no cover - compiled
    """numpy's median of a[:n], n >= 1 (the mean of the two middle values when n is even); a is left as it was.

    Quickselect with a three-way partition that does not branch on the
    values: each pass copies its range from one half of ``scratch`` (2 n
    values) to the other, the values under the pivot from the front, those
    over it from the back, those equal to it in between. The Hoare
    partition's mispredicted jumps took 2.4 us for 180 values (0.57 us here),
    a third of the IRLS. The median is one of the values or the mean of two,
    computed as numpy does: the same bits. The indices are unsigned, which
    spares numba's wraparound of negative ones on every access (a Python int
    added to them would make them floats: hence ``_ONE``).

    Examples
    --------
    >>> median(np.array([3.0, 1.0, 2.0, 10.0]), 4, np.empty(8))
    2.5
    """
    k = np.uint64(n // 2)
    for i in range(n):
        scratch[i] = a[i]
    lo, hi = np.uint64(0), np.uint64(n)  # the range that holds the k-th value, in either half
    src, dst = np.uint64(0), np.uint64(n)  # the halves read and written
    below = -np.inf  # the largest value discarded under the range, once any is
    while hi - lo > _ONE:
        first, middle, last = scratch[src + lo], scratch[src + (lo + hi) // _TWO], scratch[src + hi - _ONE]
        pivot = max(min(first, middle), min(max(first, middle), last))  # the median of the three
        front, back = dst + lo, dst + hi - _ONE
        for i in range(src + lo, src + hi):
            x = scratch[i]
            scratch[front] = x
            scratch[back] = x
            front += np.uint64(x < pivot)
            back -= np.uint64(x > pivot)
        front -= dst
        back -= dst
        if k < front:  # among the smaller values
            hi = front
        elif k > back:  # among the larger ones: every value discarded is at most the pivot
            lo, below = back + _ONE, pivot
        else:
            if n % 2:
                return pivot
            lower = pivot
            if k == front:  # the value before the k-th is the largest smaller one
                lower = below
                for i in range(dst + lo, dst + front):
                    lower = max(lower, scratch[i])
            return (lower + pivot) / 2
        src, dst = dst, src
    value = scratch[src + lo]
    return value if n % 2 else (below + value) / 2


@numba.njit(cache=True, nogil=True)
def loo_scale_cells(residual, leverage, valid):  # pragma: no cover - compiled; tested against numpy
    """Robust scale (cell,) of each cell's leave-one-out residuals residual / (1 - leverage) (time, cell).

    1.4826 x their median absolute value over the valid steps, their root
    mean square where that is 0, never 0: robust_scale of the
    quotient, bit for bit, without its block-sized temporaries and sort.

    Examples
    --------
    >>> residual = np.array([[1.0], [-2.0], [3.0]])
    >>> loo_scale_cells(residual, np.zeros_like(residual), np.ones((3, 1), dtype=bool)).round(4).tolist()
    [2.9652]
    """
    n_times, n_cells = residual.shape
    scale = np.empty(n_cells)
    loo = np.empty(n_times)
    ok = np.empty(n_times, dtype=np.bool_)
    magnitude = np.empty(3 * n_times)
    for c in range(n_cells):
        scale[c] = robust_scale(loo, ok, leave_one_out(residual, leverage, valid, c, loo, ok), magnitude)
    return scale


@numba.njit(cache=True, nogil=True)
def leave_one_out(residual, leverage, valid, c, loo, ok):  # pragma: no cover - compiled
    """Cell c's leave-one-out residuals into ``loo`` and its valid steps into ``ok`` (time,); returns their count.

    Examples
    --------
    >>> loo, ok = np.empty(2), np.empty(2, dtype=bool)
    >>> leave_one_out(np.array([[1.0], [2.0]]), np.array([[0.5], [0.0]]), np.ones((2, 1), bool), 0, loo, ok), loo.tolist()
    (2, [2.0, 2.0])
    """
    n_valid = 0
    for t in range(residual.shape[0]):
        loo[t] = residual[t, c] / (1.0 - leverage[t, c])
        ok[t] = valid[t, c]
        n_valid += ok[t]
    return n_valid
