"""Every cell's spread per season, compiled: each month judged on its own scale, then shrunk towards its
neighbours' and the whole record's as far as they differ.

:func:`seasonal_spread_cells` serves :func:`geoanom.features.robust.final_block`:
the robust spread of the leave-one-out residuals of the month alone (where
it holds ``OWN_MIN_COUNT`` independent values' worth) and of its two
neighbours, or of the three months together, each a bisquare fixed point;
the month's variance shrunk towards its neighbours' and the result towards
the record's on the log scale (:func:`_shrink_logs`). One cell at a time,
the GIL released; equal to its numpy oracle in ``tests/reference_kernels.py``
bit for bit.
"""

from __future__ import annotations

import numba
import numpy as np

from .scale_kernels import leave_one_out, robust_scale

# A season's own robust scale never starts under this share of the whole record's: a dry season's window of
# zeros is not a spread of 0 (any rain would be a hundred spreads).
SEASON_SCALE_FLOOR = 0.1


@numba.njit(cache=True, nogil=True)
def seasonal_spread_cells(residual, leverage, valid, seasons, n_seasons, scale_steps, bisquare_c, kappa,
                          spread_prior, window_factor, record_factor, month_factor):  # pragma: no cover - compiled
    """Spread (season, cell) of the leave-one-out residuals residual / (1 - leverage), and its worth.

    The whole record's spread is the fixed point of a bisquare-weighted
    variance (Huber's "proposal 2"): starting from the median absolute
    residual, which alone is biased low on a dozen values, and iterating
    until the weights agree with the scale they imply. Each month's spread
    is the same fixed point over the month alone, and another over its two
    neighbours, each started from its variance under the whole record's
    weights (at least ``SEASON_SCALE_FLOOR`` of the record's spread) and
    judged on its own scale: judged on the whole record's, a summer three
    times as variable as the winter lost its large residuals to the weights,
    and the winter's spread was set by the summer's
    (``tests/test_seasonal_spread.py``). The month's variance is then
    shrunk towards its neighbours', and the result towards the whole
    record's, each on the log scale (:func:`_shrink_logs`): a variance
    estimated from ``n`` values has a log of variance about ``2 / n``, so
    where the months differ from their target by ``tau2`` (the log
    differences' variance, their noise taken out) the target is worth
    ``2 / tau2`` observations, at most as many as the neighbours hold and
    ``spread_prior`` for the record (months alike); a month that differs
    by far more than its noise is judged on its own difference. Pooled over
    the three months on the variance itself, a February ten times quieter
    than January and March read its anomalies at a fifth of their size and
    a +5-spread event there at 0.6, and those two months had 3.3% beyond
    2.576 (``tests/test_seasonal_spread.py``). Weights
    count as independent observations once divided by each cell's
    ``window_factor`` (a season's three-month window), ``month_factor``
    (one month's run of a year) or ``record_factor`` (the whole record),
    its raw values per independent one
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
    ...                                       np.ones(1), np.ones(1))
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
    prior_cap = np.full(n_seasons, spread_prior)
    alone = np.empty(n_seasons, dtype=np.bool_)
    every = np.ones(n_seasons, dtype=np.bool_)
    overall_var = np.empty(n_seasons)
    overall_w = np.empty(n_seasons)
    pooled = np.empty(n_seasons)
    pooled_w = np.empty(n_seasons)
    own_var = np.empty(n_seasons)
    own_w = np.empty(n_seasons)
    near_var = np.empty(n_seasons)
    near_w = np.empty(n_seasons)
    season_sq = np.empty(n_seasons)
    season_w = np.empty(n_seasons)
    season_n = np.zeros(n_seasons, dtype=np.int64)
    values = np.empty(n_times)
    held = np.empty(n_times, dtype=np.bool_)
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
        season_n[:] = 0
        for t in range(n_times):
            season_sq[seasons[t]] += w[t] * loo[t] ** 2
            season_w[seasons[t]] += w[t]
            season_n[seasons[t]] += ok[t]
        for i in range(n_times):  # one season after another, each in time order: a window is three runs
            grouped[i] = loo[members[i]] if ok[members[i]] else np.nan
        for s in range(n_seasons):
            # the month alone and its neighbours where it holds enough values, else the month with its neighbours
            after, before = (s + 1) % n_seasons, (s - 1) % n_seasons
            alone[s] = season_n[s] / month_factor[c] >= OWN_MIN_COUNT
            if alone[s]:
                own_var[s], own_w[s] = _season_fixed_point(grouped, first, s, s, scale, scale_steps, bisquare_c,
                                                           kappa, values, held, magnitude)
                near_var[s], near_w[s] = _season_fixed_point(grouped, first, after, before, scale, scale_steps,
                                                             bisquare_c, kappa, values, held, magnitude)
                own_w[s] /= month_factor[c]
                near_w[s] /= month_factor[c]
            else:
                variance[s], window_w[s] = _window_fixed_point(grouped, first, after, s, before, season_sq, season_w,
                                                               scale, scale_steps, bisquare_c, kappa)
                window_w[s] /= window_factor[c]
                own_var[s], own_w[s], near_var[s], near_w[s] = variance[s], window_w[s], variance[s], window_w[s]
        # each month leans on its neighbours, then on the whole record, by as many observations as they are worth
        _shrink_logs(own_var, own_w, near_var, near_w, near_w, alone, variance, window_w)
        independent = total / record_factor[c]
        overall_var[:] = overall
        overall_w[:] = independent
        _shrink_logs(variance, window_w, overall_var, overall_w, prior_cap, every, pooled, pooled_w)
        for s in range(n_seasons):
            spread[s, c] = np.sqrt(pooled[s])
            prior = pooled_w[s] - window_w[s]
            worth[s, c] = pooled_w[s] / (1.0 + prior / max(independent, 1e-12))
    return spread, worth


@numba.njit(cache=True, nogil=True)
def _window_fixed_point(grouped, first, after, s, before, season_sq, season_w, scale, scale_steps, bisquare_c,
                        kappa):  # pragma: no cover - compiled
    """Variance and bisquare weight of season ``s`` with its neighbours, on their own scale, three runs added in
    numpy's order (rolls by -1, 0, 1); as :func:`_season_fixed_point` otherwise."""
    window = (after, s, before)
    start_sq = ((0.0 + season_sq[window[0]]) + season_sq[window[1]]) + season_sq[window[2]]
    start_w = ((0.0 + season_w[window[0]]) + season_w[window[1]]) + season_w[window[2]]
    start = max(np.sqrt(kappa * start_sq / max(start_w, 1e-12)), SEASON_SCALE_FLOOR * scale)
    local = start
    weight = 0.0
    part_sq = np.zeros(3)
    part_w = np.zeros(3)
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
        local = max(local, 0.5 * start)
    return local**2, weight


@numba.njit(cache=True, nogil=True)
def _season_fixed_point(grouped, first, one, other, scale, scale_steps, bisquare_c, kappa, values, held,
                        magnitude):  # pragma: no cover - compiled
    """Variance and bisquare weight of seasons ``one`` and ``other`` (one season when equal), on their own scale.

    Started from their own median absolute value (at least
    ``SEASON_SCALE_FLOOR`` of the record's ``scale``), never below half of
    that start: a cluster of tiny residuals is not the whole story. Started
    from their variance under the whole record's weights instead, an event
    of 8 of the month's spreads but 1.6 of the record's kept its weight,
    and a February five times quieter than the rest came out at twice its
    spread where it held one. Sums run over ``one``'s steps then
    ``other``'s, each in time order; ``values``, ``held`` and ``magnitude``
    are scratch.
    """
    both = one != other
    n = 0
    for k in range(2 if both else 1):
        season = one if k == 0 else other
        for j in range(first[season], first[season + 1]):
            held[n] = grouped[j] == grouped[j]  # not NaN
            values[n] = grouped[j] if held[n] else 0.0
            n += 1
    n_held = 0
    for i in range(n):
        n_held += held[i]
    start = max(robust_scale(values[:n], held[:n], n_held, magnitude), SEASON_SCALE_FLOOR * scale)
    local = start
    weight = 0.0
    for _ in range(scale_steps):
        squares = 0.0
        weight = 0.0
        for i in range(n):
            u = values[i] / (bisquare_c * local)
            if held[i] and abs(u) < 1.0:
                w = (1.0 - u**2) ** 2
                squares += w * values[i] ** 2
                weight += w
        local = max(np.sqrt(kappa * squares / max(weight, 1e-12)), 0.5 * start)
    return local**2, weight


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


# A month judged apart from its neighbours needs this many independent values in the record: on fewer, one event
# among them sets its own scale (two years of months: an 8-spread event widened its month's spread 5-fold). Counted
# as values, not robust weights (which are under 1: 6 years of months read 5.4 and fell back to the window).
OWN_MIN_COUNT = 6.0
# A season whose log variance lies further from its target than this many times the two estimates' noise variance
# (2 / n each) is judged on its own differences from the target, not the seasons' common ones (see _shrink_logs).
OWN_DIFFERENCE = 4.0


@numba.njit(cache=True, nogil=True)
def _shrink_logs(estimate, count, target, target_count, cap, used, out, out_count):  # pragma: no cover - compiled
    """Each season's ``estimate`` (variance, from ``count`` observations) shrunk towards its ``target`` on the log scale.

    A variance from ``n`` observations has a log whose variance is about
    ``2 / n`` and whose mean is about ``1 / n`` low, which is added back.
    The target counts as ``2 / tau2`` observations, ``cap`` at most:
    ``tau2`` is the seasons' squared log differences from their targets
    less their noise, on average, or a season's own where it exceeds
    ``OWN_DIFFERENCE`` times its noise (a month ten times quieter than the
    rest is not one of them). On the variance itself, and with the common
    ``tau2`` only, such a month was pooled up to its neighbours' spread.
    Writes the shrunk variances to ``out`` and their worth, in
    observations, to ``out_count``; seasons not ``used`` are copied.
    """
    n_seasons = estimate.size
    common = 0.0
    n_used = 0
    for s in range(n_seasons):
        if used[s]:
            difference = np.log(estimate[s]) - np.log(target[s])
            common += difference**2 - (2.0 / max(count[s], 1.0) + 2.0 / max(target_count[s], 1.0))
            n_used += 1
    common /= max(n_used, 1)
    for s in range(n_seasons):
        if not used[s]:
            out[s], out_count[s] = estimate[s], count[s]
            continue
        own_log = np.log(estimate[s]) + 1.0 / max(count[s], 1.0)
        target_log = np.log(target[s]) + 1.0 / max(target_count[s], 1.0)
        noise = 2.0 / max(count[s], 1.0) + 2.0 / max(target_count[s], 1.0)
        tau2 = max(common, (np.log(estimate[s]) - np.log(target[s])) ** 2 - OWN_DIFFERENCE * noise)
        borrowed = cap[s] if tau2 * cap[s] <= 2.0 else 2.0 / tau2
        weight = count[s] + borrowed
        out[s] = np.exp((count[s] * own_log + borrowed * target_log) / weight) if weight > 0 else np.exp(target_log)
        out_count[s] = weight


@numba.njit(cache=True, nogil=True)
def shrink_season_variances(variance, count, record, record_count, cap):  # pragma: no cover - compiled
    """Each cell's season variances (season, cell), from ``count`` values each, shrunk towards its ``record``
    variance (cell,) from ``record_count`` values, ``cap`` observations' worth at most, on the log scale
    (:func:`_shrink_logs`). Returns the shrunk variances (season, cell).

    Examples
    --------
    >>> variance = np.array([[0.01, 1.0], [1.0, 1.1]])  # a season 100 times quieter, and two alike
    >>> shrink_season_variances(variance, np.full((2, 2), 30.0), np.array([0.5, 1.05]), np.full(2, 60.0),
    ...                         24.0).round(2).tolist()
    [[0.01, 1.05], [1.03, 1.11]]
    """
    n_seasons, n_cells = variance.shape
    out = np.empty((n_seasons, n_cells))
    target, target_count = np.empty(n_seasons), np.empty(n_seasons)
    caps, every = np.full(n_seasons, cap), np.ones(n_seasons, dtype=np.bool_)
    pooled, pooled_w = np.empty(n_seasons), np.empty(n_seasons)
    for c in range(n_cells):
        target[:] = record[c]
        target_count[:] = record_count[c]
        _shrink_logs(variance[:, c].copy(), count[:, c].copy(), target, target_count, caps, every, pooled, pooled_w)
        out[:, c] = pooled
    return out

