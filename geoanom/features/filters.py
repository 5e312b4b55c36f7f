"""NaN-aware image filters over the two spatial axes of a (time, y, x) block.

scipy.ndimage has no notion of missing data: a NaN spreads through a
Gaussian filter to every cell within its radius and makes a median
meaningless. Land and gaps are common in ocean and satellite cubes, so the
two filters here treat NaN cells (and cells beyond the block's edge) as
missing: the Gaussian is a normalised convolution and the median is taken
over the valid cells of each window. Every output cell depends only on the
input within the filter's radius, which is what makes the chunked pipeline
exact (see :mod:`geoanom.features.regions`).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy import ndimage

GAUSSIAN_TRUNCATE = 4.0  # scipy's default: the kernel spans 4 standard deviations
# Rows of windows sorted at once by the NaN-aware median: bounds its
# temporary copy to about 64 MiB for a 5 x 5 window.
MEDIAN_ROWS_PER_PASS = 1 << 18


def gaussian_radius(sigma: float) -> int:
    """Cells either side that a Gaussian of ``sigma`` cells reads (as scipy truncates it)."""
    return int(GAUSSIAN_TRUNCATE * float(sigma) + 0.5) if sigma > 0 else 0


def nan_gaussian(block: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing over axes 1 and 2 by normalised convolution; NaN stays NaN.

    Each valid cell becomes the Gaussian-weighted mean of the valid cells
    around it, so missing cells neither enter the mean nor dilute it.
    """
    valid = np.isfinite(block)
    if sigma <= 0:
        return np.where(valid, block, np.nan)
    sigmas = (0.0, float(sigma), float(sigma))
    options = dict(mode="constant", cval=0.0, truncate=GAUSSIAN_TRUNCATE)
    weighted = ndimage.gaussian_filter(np.where(valid, block, 0.0), sigmas, **options)
    weight = ndimage.gaussian_filter(valid.astype(np.float64), sigmas, **options)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(valid & (weight > 0), weighted / weight, np.nan)


def nan_median(block: np.ndarray, size: int) -> np.ndarray:
    """Median of the valid cells in a ``size`` x ``size`` window over axes 1 and 2; NaN stays NaN.

    Windows without a missing cell take scipy's median filter; only the
    others (near NaN cells or the block's edge) are sorted here.
    """
    size = int(size)
    valid = np.isfinite(block)
    if size <= 1:
        return np.where(valid, block, np.nan)
    radius = size // 2
    footprint = (1, size, size)
    fast = ndimage.median_filter(np.where(valid, block, 0.0), size=footprint, mode="nearest")
    touches_missing = ndimage.maximum_filter(~valid, size=footprint, mode="constant", cval=True)
    out = np.where(valid, fast, np.nan)
    slow = np.argwhere(touches_missing & valid)
    if len(slow):
        out[tuple(slow.T)] = _sorted_window_median(block, slow, size, radius)
    return out


def _sorted_window_median(block: np.ndarray, cells: np.ndarray, size: int, radius: int) -> np.ndarray:
    """Median of the valid values around each (t, y, x) in ``cells``; NaN sorts last."""
    padded = np.pad(block, ((0, 0), (radius, radius), (radius, radius)), constant_values=np.nan)
    windows = sliding_window_view(padded, (size, size), axis=(1, 2))
    out = np.empty(len(cells), dtype=np.float64)
    for start in range(0, len(cells), MEDIAN_ROWS_PER_PASS):
        part = cells[start : start + MEDIAN_ROWS_PER_PASS]
        values = np.sort(windows[part[:, 0], part[:, 1], part[:, 2]].reshape(len(part), -1), axis=1)
        count = np.isfinite(values).sum(axis=1)
        rows = np.arange(len(part))
        low = values[rows, (count - 1) // 2]
        high = values[rows, count // 2]
        out[start : start + len(part)] = (low + high) / 2
    return out
