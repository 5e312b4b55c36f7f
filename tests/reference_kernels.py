"""Test oracles: plain numpy definitions of the steps geoanom runs as compiled kernels.

The package has one implementation of each step, compiled with numba. These
are the batched numpy passes they replaced, kept here only so that tests
(``test_mixture_compiled.py``, ``test_robust_kernel.py``,
``test_anomaly_kernel.py``) and benchmarks (``fit_kernels.py``,
``fit_equivalence.py``, ``pipeline_memory.py``) can check the kernels
against an independent, readable statement of the same arithmetic. Nothing
in ``geoanom`` imports this module.

Each oracle takes the arguments of the kernel it checks, so a test can put
it in the kernel's place (``monkeypatch.setattr``):

- :func:`em_reference` for ``geoanom.detectors.mixture._em_compiled``;
- :func:`irls_reference` for ``geoanom.features.irls.irls_cells`` (sums over
  every time step, not over the design's distinct rows);
- :func:`seasonal_spread_reference` for ``geoanom.features.season_spread.seasonal_spread_cells``;
- :func:`loo_scale_reference` and :func:`press_reference` for ``geoanom.features.irls.loo_scale_cells`` and
  ``press_cells`` (the PRESS of each candidate);
- :func:`anomaly_reference` for ``geoanom.features.Climatology.anomaly``.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from geoanom.features.robust import BISQUARE_C, KAPPA, MAX_LEVERAGE, bisquare


# -- EM of Gaussian mixtures (detectors/mixture.py) -------------------------------------------------------------------
def em_reference(X, counts, initial, reg_covar, max_iter, tol):
    """Batched EM of every tile of (T, n, d) padded samples from responsibilities (T, k, n), all tiles at once.

    Each tile stops on its own convergence. Returns weights (T, k), means
    (T, k, d), covariances (T, k, d, d) and the mean log-likelihood (T,).

    Examples
    --------
    >>> X = np.array([[[0.0], [0.1], [5.0], [5.1]]])
    >>> initial = np.array([[[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]]])
    >>> weights, means, _, _ = em_reference(X, np.array([4]), initial, 1e-4, 100, 1e-3)
    >>> np.round(means[0, :, 0], 2).tolist(), weights[0].round(2).tolist()
    ([0.05, 5.05], [0.5, 0.5])
    """
    mask = (np.arange(X.shape[1])[None, :] < np.asarray(counts)[:, None]).astype(np.float64)  # padding comes last
    counts = mask.sum(axis=1)
    Xt = np.ascontiguousarray(np.swapaxes(X, 1, 2))[:, None]  # (T, 1, d, n)
    weights, means, covs = _m_step(Xt, initial, counts, reg_covar)
    previous = np.full(len(X), -np.inf)
    active = np.arange(len(X))
    for _ in range(max_iter):
        resp, mean_llk = _e_step(Xt[active], mask[active], weights[active], means[active], covs[active])
        converged = np.abs(mean_llk - previous[active]) < tol
        previous[active] = mean_llk
        active, resp = active[~converged], resp[~converged]
        if not active.size:
            break
        weights[active], means[active], covs[active] = _m_step(Xt[active], resp, counts[active], reg_covar)
    _, mean_llk = _e_step(Xt, mask, weights, means, covs)
    return weights, means, covs, mean_llk


def _m_step(Xt, resp, counts, reg_covar):
    """Weights (T, k), means (T, k, d), covariances (T, k, d, d) from responsibilities (T, k, n)."""
    totals = resp.sum(axis=2) + 10 * np.finfo(float).eps
    weights = totals / counts[:, None]
    weighted = Xt * resp[:, :, None, :]  # (T, k, d, n)
    means = weighted.sum(axis=3) / totals[..., None]
    second = weighted @ np.swapaxes(Xt, 2, 3) / totals[..., None, None]
    covs = second - means[..., :, None] * means[..., None, :]
    covs += reg_covar * np.eye(Xt.shape[2])
    return weights, means, covs


def _e_step(Xt, mask, weights, means, covs):
    """Responsibilities (T, k, n) and the mean log-likelihood of each sample."""
    chol = np.linalg.cholesky(covs)
    inverse = np.linalg.inv(chol)  # whitening: |inverse @ (x - mean)|^2 is the Mahalanobis distance
    projected = inverse @ Xt - (inverse @ means[..., None])  # (T, k, d, n)
    log_det = np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
    n_features = Xt.shape[2]
    constant = np.log(weights) - log_det - 0.5 * n_features * np.log(2 * np.pi)
    log_prob = constant[..., None] - 0.5 * np.square(projected).sum(axis=2)  # (T, k, n)
    peak = log_prob.max(axis=1, keepdims=True)
    joint = np.exp(log_prob - peak)
    total = joint.sum(axis=1, keepdims=True)
    llk = (peak + np.log(total))[:, 0]
    mean_llk = (llk * mask).sum(axis=1) / mask.sum(axis=1)
    return joint / total * mask[:, None, :], mean_llk


# -- the climatology's robust fit (features/robust.py, features/irls.py) ----------------------------------------------
def irls_reference(values, valid, rows, step_row, prefix, huber_steps, bisquare_steps, huber_c, bisquare_c,
                   max_leverage):
    """MM-style IRLS of every cell at once: least squares, Huber steps that also settle the scale, bisquare steps.

    Sums run over every time step (design row ``rows[step_row]``). Returns
    beta (cell, column), weights (time, cell), scale (cell,), residual
    (time, cell) and leverage (time, cell), as ``irls_cells``.

    Examples
    --------
    >>> y = np.array([[1.0], [2.0], [3.0], [50.0], [2.0], [1.0], [3.0], [2.0], [1.0], [3.0]])
    >>> beta, weights, *_ = irls_reference(y, np.ones(y.shape, dtype=bool), np.ones((1, 1)), np.zeros(10, dtype=int),
    ...                                    np.ones(1, dtype=int), 2, 4, 1.345, 4.685, 0.9)
    >>> round(float(beta[0, 0]), 2), float(weights[3, 0])
    (2.0, 0.0)
    """
    columns = rows[step_row]
    n_valid = valid.sum(axis=0)
    # residuals of a q-column fit are narrower than the noise by sqrt((n - q) / n)
    dof = np.sqrt(np.maximum(n_valid, 1) / np.maximum(n_valid - prefix, 1))
    weights = valid.astype(np.float64)
    for step in range(huber_steps + bisquare_steps):
        beta, _ = _solve(*_normal_equations(values, weights, columns), prefix)
        residual = np.where(valid, values - columns @ beta.T, 0.0)
        if step < huber_steps:
            scale = dof * _robust_scale(residual, valid)
            weights = valid * np.minimum(1.0, huber_c / np.maximum(np.abs(residual / scale), 1e-12))
        else:
            weights = valid * bisquare(residual / (bisquare_c * scale))
    beta, inverse = _solve(*_normal_equations(values, weights, columns), prefix, inverse=True)
    residual = np.where(valid, values - columns @ beta.T, 0.0)
    pairs = (columns[:, :, None] * columns[:, None, :]).reshape(len(columns), -1)
    design_leverage = pairs @ inverse.reshape(inverse.shape[0], -1).T  # x' (X'WX)^-1 x of every step and cell
    leverage = np.clip(weights * design_leverage, 0.0, max_leverage)
    return beta, weights, scale, residual, leverage


def _normal_equations(values, weights, columns):
    """X'WX (cell, column, column) and X'Wy (cell, column) of every cell, summed over every time step."""
    n_times, n_columns = columns.shape
    pairs = (columns[:, :, None] * columns[:, None, :]).reshape(n_times, -1)
    gram = (weights.T @ pairs).reshape(-1, n_columns, n_columns)
    rhs = (weights * values).T @ columns
    return gram, rhs


def _solve(gram, rhs, prefix, inverse=False):
    """Coefficients (cell, column) of each cell's first ``prefix`` columns (zero beyond), and with
    ``inverse`` also (X'WX)^-1 (cell, column, column), zero-padded; a whisker of ridge on the diagonal."""
    n_cells, n_columns = rhs.shape
    beta = np.zeros((n_cells, n_columns))
    inv = np.zeros((n_cells, n_columns, n_columns)) if inverse else None
    uniform = prefix.size > 0 and (prefix == prefix[0]).all()
    for q in np.unique(prefix):
        cells = slice(None) if uniform else np.flatnonzero(prefix == q)
        if q <= 0:
            continue
        system = gram[cells, :q, :q]
        diagonal = np.diagonal(system, axis1=1, axis2=2)
        # a column without weight (a cell without data) gets a unit diagonal
        ridge = np.where(diagonal > 0, 1e-9 * diagonal.mean(axis=1, keepdims=True), 1.0)
        system = system + ridge[:, :, None] * np.eye(q)
        if inverse:
            block = np.linalg.inv(system)
            inv[cells, :q, :q] = block
            beta[cells, :q] = np.einsum("cpq,cq->cp", block, rhs[cells, :q])
        else:
            beta[cells, :q] = np.linalg.solve(system, rhs[cells, :q, None])[..., 0]
    return beta, inv


def seasonal_spread_reference(residual, leverage, valid, seasons, n_seasons, scale_steps, bisquare_c, kappa,
                              spread_prior, window_factor, record_factor, month_factor):
    """Spread (season, cell) of the leave-one-out residuals residual / (1 - leverage), and its worth (season, cell).

    The whole record's spread is the fixed point of a bisquare-weighted
    variance started from the median absolute residual; each season's is the
    same fixed point over the season alone and over its two neighbours, each
    started from its variance under the whole record's weights, the
    neighbours' counting by ``2 / tau2`` observations at most (``tau2``: the
    seasons' relative variance about their neighbours', less its noise), then
    shrunk towards the whole record's by ``2 / tau2``
    observations (``tau2``: the seasons' relative variance less its noise),
    ``spread_prior`` at most; weights count as independent observations
    once divided by each cell's ``window_factor`` or ``record_factor``.

    Examples
    --------
    >>> residual = np.tile([-1.0, 1.0], 12)[:, None]
    >>> spread, worth = seasonal_spread_reference(residual, np.zeros_like(residual), np.ones(residual.shape, bool),
    ...                                           np.zeros(24, dtype=int), 1, 4, 4.685, 1.0, 24.0, np.ones(1), np.ones(1),
    ...                                           np.ones(1))
    >>> spread.shape, bool(spread[0, 0] > 0)
    ((1, 1), True)
    """
    from geoanom.features.season_spread import OWN_MIN_COUNT, SEASON_SCALE_FLOOR

    loo = residual / (1.0 - leverage)
    start = _robust_scale(loo, valid)
    scale = start
    for _ in range(scale_steps):
        weights = valid * bisquare(loo / (bisquare_c * scale))
        squares = weights * loo**2
        scale = np.sqrt(kappa * squares.sum(axis=0) / np.maximum(weights.sum(axis=0), 1e-12))
        scale = np.maximum(scale, 0.5 * start)
    overall, total = scale**2, weights.sum(axis=0)
    if n_seasons == 1:
        return scale[None], (total / record_factor)[None]
    n_cells = residual.shape[1]
    by_season_sq = [squares[seasons == s].sum(axis=0) for s in range(n_seasons)]
    by_season_w = [weights[seasons == s].sum(axis=0) for s in range(n_seasons)]
    own_var, own_w, near_var, near_w, window_var, window_w = (np.empty((n_seasons, n_cells)) for _ in range(6))
    for s in range(n_seasons):
        window = [(s + 1) % n_seasons, s, (s - 1) % n_seasons]
        rows = [seasons == k for k in window]
        start_sq = ((0.0 + by_season_sq[window[0]]) + by_season_sq[window[1]]) + by_season_sq[window[2]]
        start_w = ((0.0 + by_season_w[window[0]]) + by_season_w[window[1]]) + by_season_w[window[2]]
        start_local = np.maximum(np.sqrt(kappa * start_sq / np.maximum(start_w, 1e-12)), SEASON_SCALE_FLOOR * scale)
        local = start_local
        weight = np.zeros(n_cells)
        for _ in range(scale_steps):
            one = valid * bisquare(loo / (bisquare_c * local))
            part_w = [sum_rows(one, r) for r in rows]
            part_sq = [sum_rows(one * loo**2, r) for r in rows]
            weight = ((0.0 + part_w[0]) + part_w[1]) + part_w[2]
            local = np.sqrt(kappa * (((0.0 + part_sq[0]) + part_sq[1]) + part_sq[2]) / np.maximum(weight, 1e-12))
            local = np.maximum(local, 0.5 * start_local)
        window_var[s], window_w[s] = local**2, weight / window_factor
    for s in range(n_seasons):
        for parts, var_out, w_out in (([s], own_var, own_w), ([(s + 1) % n_seasons, (s - 1) % n_seasons], near_var,
                                                                near_w)):
            rows = np.concatenate([np.flatnonzero(seasons == k) for k in parts])  # one season's steps, then the other's
            held = valid[rows]
            start_local = np.maximum(_robust_scale(np.where(held, loo[rows], 0.0), held), SEASON_SCALE_FLOOR * scale)
            local = start_local
            weight = np.zeros(n_cells)
            for _ in range(scale_steps):
                one = valid * bisquare(loo / (bisquare_c * local))
                weight = sum_rows(one, rows)
                local = np.maximum(np.sqrt(kappa * sum_rows(one * loo**2, rows) / np.maximum(weight, 1e-12)),
                                   0.5 * start_local)
            var_out[s], w_out[s] = local**2, weight / month_factor
    alone = np.stack([valid[seasons == s].sum(axis=0) for s in range(n_seasons)]) / month_factor >= OWN_MIN_COUNT
    own_var, own_w = np.where(alone, own_var, window_var), np.where(alone, own_w, window_w)
    near_var, near_w = np.where(alone, near_var, window_var), np.where(alone, near_w, window_w)
    variance, window_w = shrink_logs_reference(own_var, own_w, near_var, near_w, near_w, alone)
    independent = total / record_factor
    overall_var, overall_w = np.broadcast_to(overall, own_var.shape), np.broadcast_to(independent, own_var.shape)
    pooled, pooled_w = shrink_logs_reference(variance, window_w, overall_var, overall_w,
                                             np.full(own_var.shape, spread_prior), np.ones(own_var.shape, dtype=bool))
    worth = pooled_w / (1.0 + (pooled_w - window_w) / np.maximum(independent, 1e-12))
    return np.sqrt(pooled), worth


def shrink_logs_reference(estimate, count, target, target_count, cap, used):
    """Each season's variance (season, cell) shrunk towards its target on the log scale (``_shrink_logs``).

    ``log`` and ``exp`` are the C library's, as in the compiled kernel: numpy's vectorised ones differ from them by
    a unit in the last place here and there.
    """
    from geoanom.features.season_spread import OWN_DIFFERENCE

    noise = 2.0 / np.maximum(count, 1.0) + 2.0 / np.maximum(target_count, 1.0)
    squared = (_log(estimate) - _log(target)) ** 2
    common = np.zeros(estimate.shape[1])
    for s in range(estimate.shape[0]):
        common = common + np.where(used[s], squared[s] - noise[s], 0.0)
    common = common / np.maximum(used.sum(axis=0), 1)
    tau2 = np.maximum(common, squared - OWN_DIFFERENCE * noise)
    with np.errstate(divide="ignore"):
        borrowed = np.where(tau2 * cap <= 2.0, cap, 2.0 / tau2)
    own_log = _log(estimate) + 1.0 / np.maximum(count, 1.0)
    target_log = _log(target) + 1.0 / np.maximum(target_count, 1.0)
    weight = count + borrowed
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(weight > 0, _exp((count * own_log + borrowed * target_log) / weight), _exp(target_log))
    return np.where(used, out, estimate), np.where(used, weight, count)


def _log(x):
    return np.vectorize(math.log, otypes=[float])(np.asarray(x, dtype=float))


def _exp(x):
    return np.vectorize(math.exp, otypes=[float])(np.asarray(x, dtype=float))


def sum_rows(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """The sum over the chosen ``rows`` (time,) of ``values`` (time, cell), one row after another in time order."""
    out = np.zeros(values.shape[1])
    for row in values[rows]:
        out = out + row
    return out


def _robust_scale(residual: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """1.4826 x the median absolute residual of each cell (its valid values); never 0."""
    if valid.all():
        mad = 1.4826 * np.median(np.abs(residual), axis=0)
    else:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # cells without values
            mad = 1.4826 * np.nanmedian(np.where(valid, np.abs(residual), np.nan), axis=0)
    rms = np.sqrt((residual**2).sum(axis=0) / np.maximum(valid.sum(axis=0), 1))
    scale = np.where(np.isfinite(mad) & (mad > 0), mad, rms)  # over half the residuals 0: fall back
    return np.where(scale > 0, scale, 1e-12)


def loo_scale_reference(residual, leverage, valid):
    """The robust scale (cell,) of the leave-one-out residuals residual / (1 - leverage), as numpy passes.

    Examples
    --------
    >>> residual = np.array([[1.0], [-2.0], [3.0]])
    >>> loo_scale_reference(residual, np.zeros_like(residual), np.ones((3, 1), dtype=bool)).round(4).tolist()
    [2.9652]
    """
    return _robust_scale(residual / (1.0 - leverage), valid)


def press_reference(y, valid, weights, fit, design_leverage, step_row, last, scale, max_leverage, cap):
    """Capped robust PRESS (cell,) of one candidate whose prefix ends at column ``last`` (cell,) of each cell.

    ``fit`` and ``design_leverage`` are (row, cell, column), ``step_row``
    (time,) gives each step's row; the rest are (time, cell) or (cell,).

    Examples
    --------
    >>> fit = np.zeros((1, 1, 1)); lev = np.zeros((1, 1, 1))
    >>> y = np.array([[1.0], [-1.0], [10.0]])
    >>> press_reference(y, np.ones((3, 1), dtype=bool), np.ones((3, 1)), fit, lev, np.zeros(3, dtype=int),
    ...                 np.zeros(1, dtype=int), np.ones(1), 0.9, 9.0).tolist()
    [11.0]
    """
    index = last[None, :, None]
    expected = np.take_along_axis(fit, index, axis=2)[..., 0][step_row]
    leverage = np.clip(weights * np.take_along_axis(design_leverage, index, axis=2)[..., 0][step_row], 0.0,
                       max_leverage)
    residual = np.where(valid, y - expected, 0.0)
    loo = residual / (1.0 - leverage)
    return np.minimum((loo / scale) ** 2, cap).sum(axis=0)


# -- the standardised anomaly (features/climatology.py, features/anomaly.py) ------------------------------------------
def anomaly_reference(clim, values, terms):
    """``clim.anomaly(values, terms)`` in numpy: (value - expected) / spread, leave-one-out on training steps.

    A training step's departure is divided by 1 - h (its approximate leverage
    in the robust fit) and its spread is the season's with itself left out.

    Examples
    --------
    >>> z = anomaly_reference(clim, block, clim.time_terms(cube["time"]))  # doctest: +SKIP
    """
    n_columns = clim.coefficients.shape[0]
    columns, season = terms[:, :n_columns], terms[:, n_columns].astype(np.intp)
    training, other, blend = terms[:, n_columns + 1] > 0, terms[:, n_columns + 2].astype(np.intp), terms[:, n_columns + 3]
    leverage = terms[:, n_columns + 4:]
    departure = values.astype(np.float64) - clim.expected_from(columns)
    shape = (-1,) + (1,) * (clim.spread.ndim - 1)
    blended = (1.0 - blend.reshape(shape)) * clim.spread[season] + blend.reshape(shape) * clim.spread[other]
    spread = np.moveaxis(blended, 0, 1)
    if training.any():
        departure[:, training] /= 1.0 - _leverage(clim, departure[:, training], leverage[training])
        spread = spread.copy()
        spread[:, training] = _spread_without(clim, departure[:, training], season[training], spread[:, training])
    return departure / spread


def _leverage(clim, departure, design_leverage):
    """Each training observation's leverage: w x' (X'X)^-1 x times (steps / total weight) of its cell."""
    weights = bisquare(departure / (BISQUARE_C * clim.weight_scale[:, None]))
    prefix = np.clip(clim.prefix, 1, None) - 1
    design = np.take(design_leverage, prefix, axis=1)  # (time, variable, *spatial)
    leverage = weights * np.moveaxis(design, 0, 1) * clim.leverage_scale[:, None]
    return np.clip(np.nan_to_num(leverage), 0.0, MAX_LEVERAGE)


def _spread_without(clim, loo, season, spread):
    """Each training observation's ``spread`` with itself left out (variable, time, *spatial)."""
    worth = np.moveaxis(clim.spread_weight[season], 0, 1)
    weights = bisquare(loo / (BISQUARE_C * spread))
    with np.errstate(invalid="ignore", divide="ignore"):
        squares = (spread**2 * worth - KAPPA * weights * loo**2) / (worth - weights)
    return np.where((worth - weights > 1) & (squares > 0), np.sqrt(squares), spread)
