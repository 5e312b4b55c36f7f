"""Each cell's spread shrunk towards its neighbours', as far as the field is smooth there.

A short record gives each cell a noisy spread: after 12 months a cell's
spread is worth about 9 observations, and dividing by a noisy spread gives
anomalies with heavy tails (Student's t, not the normal). On a 16 x 24
grid of white noise trained for 12 months, held-back anomalies had a
standard deviation of 1.22 and 3.6% beyond 2.576, where 1% is due; the
detectors' thresholds, learnt on the training anomalies, flagged 2-5% of
held-back normal data (``tests/test_false_alarms.py``).

Neighbouring cells usually have similar spreads, so each cell borrows
from the 5 x 5 cells around it (same variable, same season), with the
weight an empirical-Bayes estimate gives (a normal-normal model of the
logarithm of the variance):

- the noise of a cell's log variance is ``2 / worth`` (a chi-square with
  ``worth`` degrees of freedom);
- the neighbourhood's spread of true log variances, ``tau2``, is the
  local variance of the log variances less their mean noise (at least 0);
- the neighbourhood's mean variance is worth ``2 / tau2`` observations
  (at most the neighbours' total worth), and the cell's variance is the
  worth-weighted mean of its own and the neighbourhood's: it moves fully
  where the field is smooth (white noise), hardly at all across a coast
  or a front, where the neighbours' spreads differ by more than their
  noise. The means are of variances, not of their logarithms, which a
  short record biases low (by about ``1 / worth``).

The neighbourhood's worth is capped at the cell's own: where true spreads
differ by less than the noise can show, a larger weight would pull every
cell to its window's mean variance. On the SST sample trained for 24
months, uncapped pooling added a median 333 observations' worth to 14 and
halved the share of training anomalies beyond 2.576 (0.81% -> 0.40%),
while held-back ones hardly changed (5.7% -> 5.4%): thresholds learnt in
training flagged more clean data. Capped, 0.52% and 5.4%; on the white
noise above, held-back anomalies beyond 2.576 fall from 3.6% to 1.6% and
the default ensemble's flags from 1.9% to 1.3% (``python
benchmarks/small_tiles.py``, ``results/small_tiles.json``).
Neighbourhoods stop at the grid's edges (no wrap at the antimeridian: an
edge cell pools with fewer neighbours).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import ndimage

WINDOW = 5  # cells per side of the neighbourhood


def _window_mean(field: np.ndarray, valid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """NaN-aware mean of ``field`` over each cell's spatial window, and the number of valid cells in it."""
    size = (1, 1) + (WINDOW,) * (field.ndim - 2)
    count = ndimage.uniform_filter(valid.astype(np.float64), size=size, mode="constant") * WINDOW ** (field.ndim - 2)
    total = ndimage.uniform_filter(np.where(valid, field, 0.0), size=size, mode="constant") * WINDOW ** (field.ndim - 2)
    count = np.round(count, 6)  # the filter's running sums leave 1e-16 residues where a window is empty
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / count, np.nan), count


def pool_spread(spread: np.ndarray, worth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spreads (season, variable, y, x) shrunk towards their neighbourhoods', and their new worth.

    Parameters
    ----------
    spread : ndarray (season, variable, y, x)
        Positive where valid, NaN where a cell has no spread. Other
        layouts are returned as they are.
    worth : ndarray, same shape
        Observations' worth of each spread.

    Returns
    -------
    spread, worth : ndarray
        Same shapes; NaN cells stay NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noisy = np.sqrt(rng.chisquare(9, size=(1, 1, 20, 20)) / 9)  # true spread 1, worth 9
    >>> pooled, worth = pool_spread(noisy, np.full(noisy.shape, 9.0))
    >>> bool(np.std(np.log(pooled)) < 0.8 * np.std(np.log(noisy))), float(np.median(worth))
    (True, 18.0)
    """
    valid = np.isfinite(spread) & (spread > 0) & np.isfinite(worth) & (worth > 0)
    if spread.ndim != 4 or not valid.any():  # neighbours only on a 2-D grid (a list of stations has none)
        return spread, worth
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        log_variance = np.where(valid, 2.0 * np.log(spread), 0.0)
        noise = np.where(valid, 2.0 / worth, 0.0)
        mean, count = _window_mean(log_variance, valid)
        mean_square, _ = _window_mean(log_variance**2, valid)
        mean_variance, _ = _window_mean(np.where(valid, spread**2, 0.0), valid)
        mean_noise, _ = _window_mean(noise, valid)
        worth_total, _ = _window_mean(np.where(valid, worth, 0.0), valid)
        worth_total *= count
        # the local variance of the log variances, unbiased, less what their noise explains
        local = (mean_square - mean**2) * count / np.maximum(count - 1.0, 1.0)
        tau2 = np.maximum(local - mean_noise, 0.0)
        # what the neighbourhood's mean is worth, in observations: its precision 1 / tau2, at most its worth
        prior_worth = np.where(count > 1, np.minimum(2.0 / np.maximum(tau2, 1e-12), worth_total - worth), 0.0)
        prior_worth = np.clip(prior_worth, 0.0, worth)  # at most the cell's own worth: see the module docstring
        pooled = (worth * spread**2 + prior_worth * mean_variance) / (worth + prior_worth)
    return np.where(valid, np.sqrt(pooled), spread), np.where(valid, worth + prior_worth, worth)
