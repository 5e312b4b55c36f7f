"""How far a cell's anomalies persist from one step to the next, and what that does to a fit's leverage and counts.

The climatology's leave-one-out corrections take each time step as
independent. Daily anomalies are not: at a lag-1 correlation of 0.95 a
day's weather lasts about a month, a 3-year record holds about 28
independent values, and a harmonic fit follows the training years' weather.
Its in-sample residuals are then narrower than a new day's departure, so
held-back days were flagged at 9% for a contamination of 1%. Taking the
persistence into account is the same correction with honest counts:

- **Leverage.** With AR(1) errors of lag-1 correlation rho, a step's fitted
  value is pulled towards it by its own weight and by that of its
  correlated neighbours: its effective leverage is h times the errors'
  spectrum S(omega) = (1 - rho^2) / (1 - 2 rho cos omega + rho^2) at each
  design column's frequency omega, averaged over the cell's columns
  (:func:`leverage_inflation`). The mean column gets (1 + rho) / (1 - rho),
  39 at 0.95; a monthly record's sixth harmonic, at omega = pi, less than
  1. Leave-one-out with this leverage approximates leaving out the step's
  whole spell of weather (block cross-validation), in closed form.
- **Counts.** A spread estimated from ``L`` consecutive values of an AR(1)
  series has the sampling variance of ``n_eff(L)`` independent ones
  (:func:`count_factor`); the shrinkage of each season's spread towards
  the record's weighs them by that.

Each cell's rho is the lag-1 correlation of its robust fit's residuals
(:func:`lag_one_correlation`), 0 where they are not positively correlated,
so an uncorrelated record is fitted exactly as before. The model stays a
per-cell linear one: its first-order correction is what this is, not a
time-series model of the weather.
"""

from __future__ import annotations

import numpy as np

# Above this lag-1 correlation the record holds too few independent values for the corrections' first-order
# algebra (the mean column's factor would pass 100); the climatology warns there instead.
MAX_RHO = 0.98
MIN_PAIRS = 10  # fewer consecutive pairs of values than this tell nothing of a cell's persistence
PRIOR_PAIRS = 100  # a cell's lag-1 correlation is shrunk towards its block's median by this many pairs


def lag_one_correlation(residual: np.ndarray, valid: np.ndarray, weights: np.ndarray,
                        rounding: np.ndarray | None = None) -> np.ndarray:
    """The lag-1 correlation (cell,) of each cell's residuals (time, cell), at most ``MAX_RHO``.

    Pairs of consecutive valid steps count where the robust fit kept both
    (``weights`` above 0), so an event in the training period does not pass
    for persistence; weighting the pairs by their weights instead made a
    lag-1 correlation of 0.95 read 0.93 (the bisquare trims the long
    excursions that carry it), against 0.94 unweighted. A cell's estimate
    from ``n`` pairs is shrunk towards the median of the block's cells by
    ``PRIOR_PAIRS`` pairs: from a dozen monthly values its noise (about
    1 / sqrt(n)) read as persistence of 0.3 here and there, and such a
    cell's spread came out far too wide (0.03% of white noise flagged for a
    contamination of 1%). Persistence is the field's more than the cell's.
    Cells whose residuals are ``rounding`` (cell,) of the data's last digit
    get 0 and lend the block nothing: a constant cell's rounding follows the
    fitted harmonics, and read as a correlation of 1, its training anomalies
    came out ten times too wide and 76% of its held-back values were flagged.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> walk = np.zeros((2000, 1))
    >>> for t in range(1, 2000):
    ...     walk[t] = 0.9 * walk[t - 1] + rng.standard_normal()
    >>> ones = np.ones_like(walk)
    >>> round(float(lag_one_correlation(walk, ones > 0, ones)[0]), 1)
    0.9
    """
    held = valid & (weights > 0)
    pair = (held[:-1] & held[1:]).astype(np.float64)
    today, tomorrow = np.where(valid[:-1], residual[:-1], 0.0), np.where(valid[1:], residual[1:], 0.0)
    product = np.einsum("tc,tc,tc->c", pair, today, tomorrow)
    squares = np.einsum("tc,tc,tc->c", pair, today, today) * np.einsum("tc,tc,tc->c", pair, tomorrow, tomorrow)
    pairs = pair.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = np.where(squares > 0, product / np.sqrt(squares), np.nan)
    real = np.ones(rho.shape, dtype=bool) if rounding is None else ~np.asarray(rounding, dtype=bool)
    known = np.isfinite(rho) & (pairs >= MIN_PAIRS) & real
    if not known.any():
        return np.zeros(rho.shape)
    typical = float(np.median(rho[known]))
    shrunk = (np.where(known, pairs * rho, 0.0) + PRIOR_PAIRS * typical) / (np.where(known, pairs, 0.0) + PRIOR_PAIRS)
    return np.where(real, np.clip(shrunk, -1.0, MAX_RHO), 0.0)


def error_persistence(residual: np.ndarray, valid: np.ndarray, weights: np.ndarray, leverage: np.ndarray,
                      omega: np.ndarray, prefix: np.ndarray,
                      rounding: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's lag-1 correlation of the errors, and the factor on its leverage (cell,), from a fit's residuals.

    The fit takes up the slow part of the weather, so its residuals
    persist less than the errors: removing a smooth fit leaves the
    variance of day-to-day differences alone and cuts the variance by the
    fit's share of it, the mean effective leverage h_S. Hence
    1 - rho = (1 - rho_residual) (1 - h_S), solved by a few fixed-point
    steps (0.943 -> 0.948 on 3 years of days at 0.95). White noise leaves
    residuals slightly anticorrelated, and its correction lands near 0;
    only then are negative values read as none.

    Parameters
    ----------
    residual, valid, weights, leverage : ndarray (time, cell)
        The robust fit's residuals (0 where missing), valid steps, weights
        and plain leverages.
    omega : ndarray (column,)
    prefix : ndarray of int (cell,)
    rounding : ndarray of bool (cell,), optional
        Cells whose residuals are rounding (see :func:`lag_one_correlation`).

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> e = np.zeros((1000, 1))
    >>> for t in range(1, 1000):
    ...     e[t] = 0.9 * e[t - 1] + rng.standard_normal()
    >>> ones = np.ones_like(e)
    >>> rho, inflation = error_persistence(e - e.mean(), ones > 0, ones, ones / 1000, np.zeros(1), np.ones(1, int))
    >>> round(float(rho[0]), 2), round(float(inflation[0]), 1)
    (0.9, 19.1)
    """
    observed = lag_one_correlation(residual, valid, weights, rounding)
    rho = np.clip(observed, 0.0, MAX_RHO)
    mean_leverage = np.where(valid, leverage, 0.0).sum(axis=0) / np.maximum(valid.sum(axis=0), 1)
    for _ in range(FIXED_POINT_STEPS):
        share = np.minimum(mean_leverage * leverage_inflation(rho, omega, prefix), 0.9)
        rho = np.clip(1.0 - (1.0 - observed) * (1.0 - share), 0.0, MAX_RHO)  # see above: clipped only now
    if rounding is not None:
        rho = np.where(rounding, 0.0, rho)  # nothing was taken up by the fit
    return rho, leverage_inflation(rho, omega, prefix)


FIXED_POINT_STEPS = 3


def spectrum(rho: np.ndarray, omega: np.ndarray) -> np.ndarray:
    """The AR(1) spectrum (..., column) at frequencies ``omega`` (radians per step), relative to white noise.

    Examples
    --------
    >>> spectrum(np.array([0.0, 0.5]), np.array([0.0, np.pi])).round(3).tolist()
    [[1.0, 1.0], [3.0, 0.333]]
    """
    rho = np.asarray(rho, dtype=np.float64)[..., None]
    return (1.0 - rho**2) / (1.0 - 2.0 * rho * np.cos(omega) + rho**2)


def leverage_inflation(rho: np.ndarray, omega: np.ndarray, prefix: np.ndarray) -> np.ndarray:
    """Factor (cell,) on each cell's leverage: the spectrum averaged over its first ``prefix`` design columns.

    In the fit's orthonormal basis every column carries an equal share of
    the leverage on average, so the mean over the columns is the factor.
    A fast harmonic's spectrum under 1 is kept (its coefficient is pinned
    down better under persistent errors): counted as 1 at least, 24
    months of the real SST (lag-1 about 0.9) had leverages past 0.9, spreads
    so wide that the fused ROC AUC fell to 0.5, and PRESS chose no
    per-month means; with it, the mean over a saturated monthly design's
    columns is about 1 (the spectrum averages to 1).

    Parameters
    ----------
    rho : ndarray (cell,)
    omega : ndarray (column,)
        Each design column's frequency in radians per time step
        (:meth:`geoanom.features.calendar.Design.frequencies`).
    prefix : ndarray of int (cell,)
        Columns each cell uses; at least 1 is assumed.

    Examples
    --------
    >>> leverage_inflation(np.array([0.0, 0.5]), np.array([0.0, np.pi]), np.array([2, 1])).round(3).tolist()
    [1.0, 3.0]
    """
    used = np.arange(omega.size)[None, :] < np.maximum(prefix, 1)[:, None]
    return (spectrum(rho, omega) * used).sum(axis=1) / used.sum(axis=1)


def count_factor(rho: np.ndarray, run: float) -> np.ndarray:
    """Raw values per independent one (cell,), for a variance estimated from ``run`` consecutive AR(1) values.

    A variance from ``L`` values of correlation rho^|i - j| varies as one
    from n_eff = L^2 / sum_ij rho^(2 |i - j|) independent values: about
    L (1 - rho^2) / (1 + rho^2) for a long run, fewer than L always.
    Returns ``L / n_eff``, 1 where rho is 0.

    Examples
    --------
    >>> count_factor(np.array([0.0, 0.95]), 1095).round(1).tolist()
    [1.0, 19.3]
    """
    r = np.asarray(rho, dtype=np.float64) ** 2
    n = max(float(run), 1.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        # sum over k = 1 .. L-1 of (L - k) r^k, in closed form
        lagged = r * (n * (1.0 - r) - 1.0 + r**n) / (1.0 - r) ** 2
    lagged = np.where(r > 0, lagged, 0.0)
    return (n + 2.0 * lagged) / n


# Training anomalies with a lag-1 correlation above this in the median cell are warned of (persistence_warning),
# judged on the first WARNING_STEPS steps of daily or finer records (which read 0.94 where it is 0.95).
PERSISTENT, WARNING_STEPS = 0.93, 120


def persistence_warning(anomaly: np.ndarray, n_times: int, what: str) -> str | None:
    """A warning where training anomalies persist beyond what the correction allows for, else None.

    The correction is first order: on a field with a lag-1 correlation of
    0.95 trained on 3 years, clean held-back days were flagged at 3.2% for
    a contamination of 1% (8.5-8.7% without it), at 0.98 at 6.6% (19.6%),
    at 0.9 at 2.0% (4.0%) (``benchmarks/persistence.py``).

    Parameters
    ----------
    anomaly : ndarray (variable, time, *spatial)
        Training anomalies of the first steps of the record.
    n_times : int
        Steps of the whole training record.
    what : str
        Names the data.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> weather = np.zeros((1, 120, 30))
    >>> for t in range(1, 120):
    ...     weather[0, t] = 0.98 * weather[0, t - 1] + 0.2 * rng.standard_normal(30)
    >>> persistence_warning(weather, 1095, "'tas'")[:60]
    "the training anomalies of 'tas' persist from one step to the"
    >>> persistence_warning(rng.standard_normal((1, 120, 30)), 1095, "'tas'") is None
    True
    """
    series = np.moveaxis(anomaly, 1, 0).reshape(anomaly.shape[1], -1)  # (time, cell)
    valid = np.isfinite(series)
    rho = float(np.median(lag_one_correlation(np.where(valid, series, 0.0), valid, valid.astype(np.float64))))
    if rho <= PERSISTENT:
        return None
    independent = n_times * (1 - rho) / (1 + rho)
    return (f"the training anomalies of {what} persist from one step to the next (lag-1 correlation {rho:.2f} in "
            f"the median cell): its {n_times} steps hold about {independent:.0f} independent values. The climatology "
            "allows for that, but only to first order, and new data may be flagged more often than the contamination "
            "asks (1% gave 3% at 0.95 with 3 years of daily data, 7% at 0.98); train on more years, or on monthly "
            "means.")

