"""The standardised anomaly of a block, compiled: one pass over the observations, no block-sized temporaries.

:meth:`geoanom.features.Climatology.anomaly` is the definition; this is its
arithmetic written per observation, operation for operation in numpy's
order (no fused multiply-add, no reassociation), so the results are the
same to the bit. In numpy the training (leave-one-out) anomaly of a block
of 419 x 100 x 100 observations allocated 73 bytes per observation in
temporaries and took 0.59 s; here it allocates only its output (8 bytes)
and releases the GIL, so two threads standardise two blocks at once
(``benchmarks/pipeline_memory.py``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, error_model="numpy", inline="always")
def _bisquare(u: float) -> float:
    """Tukey's bisquare weight, as :func:`geoanom.features.robust.bisquare` (0 for NaN)."""
    if abs(u) < 1.0:
        inside = 1.0 - u * u
        return inside * inside
    return 0.0


# error_model="numpy": a division by zero gives inf or NaN, as in numpy, instead of raising
@njit(cache=True, nogil=True, error_model="numpy")
def anomaly_kernel(values, columns, season, other, blend, training, design_leverage, coefficients, spread, spread_weight,
                   prefix, weight_scale, leverage_scale, lower_bound, bisquare_c, kappa,
                   max_leverage):  # pragma: no cover
    """Standardised anomaly (variable, time, cell) of ``values`` (variable, time, cell).

    Per-cell arrays are (…, variable, cell); ``columns`` and
    ``design_leverage`` are (time, column); ``season`` (time,) int, and
    ``other`` (time,) int the season each step's spread is blended with by
    ``blend`` (time,) float;
    ``training`` (time,) bool: those steps get the leave-one-out anomaly.
    """
    n_vars, n_times, n_cells = values.shape
    n_columns = coefficients.shape[0]
    out = np.empty((n_vars, n_times, n_cells))
    for v in range(n_vars):
        for t in range(n_times):
            s_index = season[t]
            for c in range(n_cells):
                expected = 0.0
                for p in range(n_columns):
                    expected += columns[t, p] * coefficients[p, v, c]
                if expected < lower_bound[v, c]:  # a zero-inflated cell's mean is never under its point mass
                    expected = lower_bound[v, c]
                departure = np.float64(values[v, t, c]) - expected
                scale = (1.0 - blend[t]) * spread[s_index, v, c] + blend[t] * spread[other[t], v, c]
                if training[t]:
                    # the observation's leverage in its cell's robust fit (Climatology._leverage)
                    weight = _bisquare(departure / (bisquare_c * weight_scale[v, c]))
                    q = max(prefix[v, c], 1) - 1
                    leverage = weight * design_leverage[t, q] * leverage_scale[v, c]
                    if np.isnan(leverage) or leverage < 0.0:
                        leverage = 0.0
                    elif leverage > max_leverage:
                        leverage = max_leverage
                    departure = departure / (1.0 - leverage)
                    # its spread with itself left out (Climatology._spread_without)
                    worth = spread_weight[s_index, v, c]
                    own = _bisquare(departure / (bisquare_c * scale))
                    squares = (scale * scale * worth - kappa * own * (departure * departure)) / (worth - own)
                    if worth - own > 1.0 and squares > 0.0:
                        scale = np.sqrt(squares)
                out[v, t, c] = departure / scale
    return out
