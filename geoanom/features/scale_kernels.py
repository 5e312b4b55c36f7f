"""The robust scales of the climatology's residuals, compiled: each cell's, and each season's.

:func:`robust_scale` (1.4826 x the median absolute residual, by a
quickselect that equals numpy's median bit for bit: :func:`median`) serves
the IRLS of :mod:`geoanom.features.irls` as it settles a cell's scale;
:func:`loo_scale_cells` is the scale of the leave-one-out residuals that
PRESS divides by; :func:`seasonal_spread_cells` is every cell's spread per
season, each season judged on its own scale and shrunk towards the whole
record's as far as the seasons differ. One cell at a time, the GIL
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


# A season's own robust scale never starts under this share of the whole record's: a dry season's window of
# zeros is not a spread of 0 (any rain would be a hundred spreads).
SEASON_SCALE_FLOOR = 0.1


@numba.njit(cache=True, nogil=True)
def seasonal_spread_cells(residual, leverage, valid, seasons, n_seasons, scale_steps, bisquare_c, kappa,
                          spread_prior, window_factor, record_factor):  # pragma: no cover - compiled; see the oracle
    """Spread (season, cell) of the leave-one-out residuals residual / (1 - leverage), and its worth.

    The whole record's spread is the fixed point of a bisquare-weighted
    variance (Huber's "proposal 2"): starting from the median absolute
    residual, which alone is biased low on a dozen values, and iterating
    until the weights agree with the scale they imply. Each month's spread
    is the same fixed point over the month and its neighbours, started from
    their variance under the whole record's weights (at least
    ``SEASON_SCALE_FLOOR`` of the record's spread) and judged on its own scale: judged on the whole
    record's, a summer three times as variable as the winter lost its large
    residuals to the weights, and the winter's spread was set by the summer's
    (``tests/test_seasonal_spread.py``). It is shrunk towards the whole
    record's by as many observations as the months' spreads support: a
    spread estimated from ``n`` values has a relative variance of about
    ``2 / n``, so where the months' variances differ by ``tau2`` (relative
    variance, their noise taken out) the record is worth ``2 / tau2``
    observations, and ``spread_prior`` at most (months alike). Weights
    count as independent observations once divided by each cell's
    ``window_factor`` (a season's window) or ``record_factor`` (the whole
    record), its raw values per independent one
    (:func:`geoanom.features.persistence.count_factor`; 1 for
    uncorrelated residuals).
    One cell at a time; sums run over time in order, as numpy's sums over a
    block's first axis do, so the results equal the numpy oracle's bit for bit.

    Returns
    -------
    spread (season, cell), worth (season, cell)

    Examples
    --------
    >>> residual = np.tile([-1.0, 1.0], 12)[:, None]
    >>> spread, worth = seasonal_spread_cells(residual, np.zeros_like(residual), np.ones(residual.shape, dtype=bool),
    ...                                       np.zeros(24, dtype=np.int64), 1, 4, 4.685, 1.0, 24.0, np.ones(1),
    ...                                       np.ones(1))
    >>> spread.shape, bool(spread[0, 0] > 0)
    ((1, 1), True)
    """
    n_times, n_cells = residual.shape
    spread = np.empty((n_seasons, n_cells))
    worth = np.empty((n_seasons, n_cells))
    loo = np.empty(n_times)
    ok = np.empty(n_times, dtype=np.bool_)
    w = np.empty(n_times)
    magnitude = np.empty(3 * n_times)
    variance = np.empty(n_seasons)
    window_w = np.empty(n_seasons)
    part_sq = np.empty(3)
    part_w = np.empty(3)
    season_sq = np.empty(n_seasons)
    season_w = np.empty(n_seasons)
    grouped = np.empty(n_times)
    members, first = _steps_by_season(seasons, n_seasons)
    for c in range(n_cells):
        n_valid = leave_one_out(residual, leverage, valid, c, loo, ok)
        start = robust_scale(loo, ok, n_valid, magnitude)
        scale = start
        total = 0.0
        for _ in range(scale_steps):
            squares = 0.0
            total = 0.0
            for t in range(n_times):  # apart from the sums, which must run in order: vectorised
                u = loo[t] / (bisquare_c * scale)
                w[t] = (1.0 - u**2) ** 2 if ok[t] and abs(u) < 1.0 else 0.0
            for t in range(n_times):
                squares += w[t] * loo[t] ** 2
                total += w[t]
            scale = np.sqrt(kappa * squares / max(total, 1e-12))
            # never below half the median's answer: a cluster of tiny residuals is not the whole story
            scale = max(scale, 0.5 * start)
        if n_seasons == 1:
            spread[0, c] = scale
            worth[0, c] = total / record_factor[c]
            continue
        overall = scale**2
        # the whole record's weights per season: each window's start
        season_sq[:] = 0.0
        season_w[:] = 0.0
        for t in range(n_times):
            season_sq[seasons[t]] += w[t] * loo[t] ** 2
            season_w[seasons[t]] += w[t]
        for i in range(n_times):  # one season after another, each in time order: a window is three runs
            grouped[i] = loo[members[i]] if ok[members[i]] else np.nan
        for s in range(n_seasons):
            window = ((s + 1) % n_seasons, s, (s - 1) % n_seasons)  # added in numpy's order (rolls by -1, 0, 1)
            start_sq = ((0.0 + season_sq[window[0]]) + season_sq[window[1]]) + season_sq[window[2]]
            start_w = ((0.0 + season_w[window[0]]) + season_w[window[1]]) + season_w[window[2]]
            start_local = max(np.sqrt(kappa * start_sq / max(start_w, 1e-12)), SEASON_SCALE_FLOOR * scale)
            local = start_local
            weight = 0.0
            for _ in range(scale_steps):
                for i in range(3):
                    part_sq[i] = 0.0
                    part_w[i] = 0.0
                    for j in range(first[window[i]], first[window[i] + 1]):
                        u = grouped[j] / (bisquare_c * local)
                        if abs(u) < 1.0:  # False for NaN: a step without a value
                            one = (1.0 - u**2) ** 2
                            part_sq[i] += one * grouped[j] ** 2
                            part_w[i] += one
                weight = ((0.0 + part_w[0]) + part_w[1]) + part_w[2]
                local = np.sqrt(kappa * (((0.0 + part_sq[0]) + part_sq[1]) + part_sq[2]) / max(weight, 1e-12))
                local = max(local, 0.5 * start_local)
            variance[s] = local**2
            window_w[s] = weight / window_factor[c]
        prior = _record_worth(variance, window_w, overall, spread_prior)
        independent = total / record_factor[c]
        for s in range(n_seasons):
            spread[s, c] = np.sqrt((window_w[s] * variance[s] + prior * overall) / (window_w[s] + prior))
            worth[s, c] = (window_w[s] + prior) / (1.0 + prior / max(independent, 1e-12))
    return spread, worth


@numba.njit(cache=True, nogil=True)
def _steps_by_season(seasons, n_seasons):  # pragma: no cover - compiled
    """The steps of each season in time order, one after another, and where each season's begin (n_seasons + 1,)."""
    first = np.zeros(n_seasons + 1, dtype=np.int64)
    for t in range(seasons.size):
        first[seasons[t] + 1] += 1
    for s in range(n_seasons):
        first[s + 1] += first[s]
    members = np.empty(seasons.size, dtype=np.int64)
    filled = first[:-1].copy()
    for t in range(seasons.size):
        members[filled[seasons[t]]] = t
        filled[seasons[t]] += 1
    return members, first


@numba.njit(cache=True, nogil=True, inline="always")
def _record_worth(variance, window_w, overall, spread_prior):  # pragma: no cover - compiled
    """Observations' worth of the whole record's variance in each season's: ``2 / tau2``, at most ``spread_prior``.

    ``tau2`` is the seasons' relative variance about the record's, less the
    ``2 / n`` each one's estimate from ``n`` observations' worth would show
    by chance.
    """
    spread_of_seasons = 0.0
    noise = 0.0
    for s in range(variance.size):
        ratio = variance[s] / overall
        spread_of_seasons += (ratio - 1.0) ** 2
        noise += 2.0 * ratio * ratio / max(window_w[s], 1.0)
    tau2 = (spread_of_seasons - noise) / variance.size
    return spread_prior if tau2 * spread_prior <= 2.0 else 2.0 / tau2


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
