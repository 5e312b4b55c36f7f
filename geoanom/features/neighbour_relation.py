"""How a cell's neighbours follow it: the slope ``b`` of E[neighbour's anomaly | cell's anomaly z] = b z, and the
correlation ``rho`` of the neighbours' departures from ``b z``.

The neighbours feature (:func:`geoanom.features.neighbourhood.neighbour_anomaly`)
is a mean over the eight cells around a cell. A model fitted on full fields
(an L4 product, a reanalysis) and then given a month with gaps (a cloudy L3
month, missing swaths) saw that mean over fewer cells: noisier in a field of
white noise (its variance grows like 1/k), another statistic in a smooth one,
so normal cells left the joint distribution the families learnt. With ``b``
and ``rho`` a mean over the ``k`` neighbours holding data now is made to
stand for the mean over the ``K`` that held data in training: about ``b z``,
its departure from it scaled by the ratio of the two means' spreads.

Both are fitted per cell on the climatology's own leave-one-out anomalies of
up to ``RELATION_STEPS`` training steps spread over the record, by least
squares over every (cell, valid neighbour) pair, pooled over the 3 x 3 cells
around the cell (nine times the pairs: the slope of white noise within about
0.02 of 0), with anomalies held to ``RELATION_CLIP`` spreads (an event in the
training period does not set them). Both are held to [0, 1]: an event moves
the neighbours by a share of the cell's shift, never beyond it or the other
way (:mod:`geoanom.detectors.event`). They are NaN where the cell has no
climatology (land): such a neighbour is left out, in training and scoring alike.
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from numba import njit
from scipy import ndimage

# the training steps the relation is fitted on, spread over the record: enough pairs (x 8 neighbours x 9 cells)
# at a small share of a climatology's cost
RELATION_STEPS = 48
# anomalies held to this many spreads in the fit: an event in the training period does not set the relation
RELATION_CLIP = 4.0
# the departures of eight neighbours can be no more negatively correlated than -1/7 (their mean's variance >= 0)
LOWEST_CORRELATION = -1.0 / 8.0
# per cell and step, summed over the steps: z S1, z^2 k, S2, S1^2 - S2, z (k - 1) S1, z^2 k (k - 1), k, k (k - 1),
# S1 and S2 the sum of the valid neighbours' anomalies and of their squares, k their number
N_SUMS = 8


def fit_neighbour_relation(anomalies: xr.DataArray | da.Array, known: np.ndarray, wrap: bool,
                           scheduler: Any = None) -> np.ndarray:
    """Each cell's slope ``b`` and correlation ``rho`` (2, variable, y, x) of its neighbours' anomalies on its own.

    Parameters
    ----------
    anomalies : DataArray or dask array (variable, time, y, x)
        Training anomalies (leave-one-out) of the steps to fit on.
    known : ndarray of bool (variable, y, x)
        Cells with a climatology: the rest get NaN.
    wrap : bool
        The grid wraps in longitude.
    scheduler : optional
        Passed to :func:`dask.compute`.

    Returns
    -------
    ndarray (2, variable, y, x), float64
        In [0, 1]; a cell with a climatology but too few pairs within its
        3 x 3 cells takes its variable's median (0 when there is none).
        The same bits for any chunks of ``anomalies``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> smooth = np.cumsum(np.cumsum(rng.normal(size=(1, 40, 30, 30)), axis=2), axis=3)  # neighbours alike
    >>> smooth /= smooth.std(axis=1, keepdims=True)
    >>> white = rng.normal(size=(1, 40, 30, 30))
    >>> known = np.ones((1, 30, 30), bool)
    >>> slope, rho = np.median(fit_neighbour_relation(smooth, known, False), axis=(1, 2, 3))
    >>> bool(slope > 0.8)
    True
    >>> slope, rho = np.median(fit_neighbour_relation(white, known, False), axis=(1, 2, 3))
    >>> bool(slope < 0.05 and rho < 0.05)
    True
    """
    data = da.asarray(anomalies.data if isinstance(anomalies, xr.DataArray) else anomalies)
    # each block of steps with a one-cell halo, periodic in x when the grid wraps, NaN beyond the grid's edges
    depth = {0: 0, 1: 0, 2: min(1, data.shape[2] - 1), 3: min(1, data.shape[3] - 1)}
    if any(min(data.chunks[axis]) < depth[axis] for axis in (2, 3)):
        data = data.rechunk({axis: max(2, max(data.chunks[axis])) for axis in (2, 3)})
    data = data.rechunk({0: -1, 1: -1})  # each cell's sums over its steps in one task, in order: any chunks, one bit
    halo = da.overlap.overlap(data, depth=depth, boundary={0: "none", 1: "none", 2: np.nan,
                                                            3: "periodic" if wrap else np.nan})
    sums = halo.map_blocks(_pair_sums, depth[2], depth[3], dtype=np.float64,
                           chunks=(data.chunks[0], (N_SUMS,)) + data.chunks[2:])
    [sums] = dask.compute(sums, scheduler=scheduler)
    return _relation(sums, known, wrap)


def _relation(sums: np.ndarray, known: np.ndarray, wrap: bool) -> np.ndarray:
    """Slope and correlation from each cell's sums (variable, sum, y, x), pooled over its 3 x 3 cells."""
    pooled = ndimage.uniform_filter(sums, size=(1, 1, 3, 3),
                                    mode=("constant",) * 3 + ("wrap" if wrap else "constant",))
    products, squares, neighbour_squares, cross, cross_centre, cross_squares, pairs, pairs_of_pairs = (
        pooled[:, index] for index in range(N_SUMS))
    with np.errstate(invalid="ignore", divide="ignore"):
        slope = np.clip(products / squares, 0.0, 1.0)
        # the departures r = z_neighbour - b z: their mean square, and the mean product of two of one cell's
        spread = (neighbour_squares - 2 * slope * products + slope ** 2 * squares) / pairs
        together = (cross - 2 * slope * cross_centre + slope ** 2 * cross_squares) / pairs_of_pairs
        correlation = np.clip(together / spread, LOWEST_CORRELATION, 1.0)
    relation = np.stack([np.where(squares > 0, slope, np.nan), np.where(spread > 0, correlation, np.nan)])
    for part in relation:
        for v in range(part.shape[0]):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # a variable without any pair
                typical = np.nanmedian(np.where(known[v], part[v], np.nan))
            part[v] = np.where(np.isfinite(part[v]), part[v], typical if np.isfinite(typical) else 0.0)
    return np.where(known[None], relation, np.nan)


def _pair_sums(block: np.ndarray, halo_y: int, halo_x: int) -> np.ndarray:
    """The ``N_SUMS`` sums (variable, sum, y, x) of each cell of the block less its halo, over its steps."""
    out = np.zeros((block.shape[0], N_SUMS, block.shape[2] - 2 * halo_y, block.shape[3] - 2 * halo_x))
    _pair_sums_kernel(np.ascontiguousarray(block, dtype=np.float64), halo_y, halo_x, RELATION_CLIP, out)
    return out


@njit(cache=True, nogil=True)
def _pair_sums_kernel(block, halo_y, halo_x, clip, out):  # pragma: no cover - compiled
    n_vars, n_times, n_rows, n_cols = block.shape
    for v in range(n_vars):
        for t in range(n_times):
            for i in range(halo_y, n_rows - halo_y):
                for j in range(halo_x, n_cols - halo_x):
                    z = block[v, t, i, j]
                    if not np.isfinite(z):
                        continue
                    z = min(max(z, -clip), clip)
                    held, first, second = 0, 0.0, 0.0
                    for ii in range(max(i - 1, 0), min(i + 2, n_rows)):
                        for jj in range(max(j - 1, 0), min(j + 2, n_cols)):
                            other = block[v, t, ii, jj]
                            if (ii == i and jj == j) or not np.isfinite(other):
                                continue
                            other = min(max(other, -clip), clip)
                            held += 1
                            first += other
                            second += other * other
                    if held == 0:
                        continue
                    cell = out[v, :, i - halo_y, j - halo_x]
                    cell[0] += z * first
                    cell[1] += z * z * held
                    cell[2] += second
                    cell[3] += first * first - second
                    cell[4] += z * (held - 1) * first
                    cell[5] += z * z * held * (held - 1)
                    cell[6] += held
                    cell[7] += held * (held - 1)
