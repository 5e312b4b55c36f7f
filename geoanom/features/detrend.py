"""Removing each cell's slow change: the running climate of a record.

A retrospective view of a record, for analyses like ``geoanom demo``: at
each time the expected value of a cell is its climate *of that time*, a
local linear fit over a centred window of ``window_years``, so what
remains is weather and events, not a warming. It looks at later years to
judge earlier ones, so it suits a finished record, not scoring new data
(for that, see ``trend="linear"`` of :class:`geoanom.Climatology`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .calendar import decimal_year

RUNNING_WINDOW_YEARS = 31


def running_climate(cube, training: slice, window_years: int = RUNNING_WINDOW_YEARS):
    """The cube with each cell's slow change removed: value - trend + the trend's training mean.

    The trend is a local linear fit in time with tricube weights over
    ``window_years`` (the WMO's 30-year normal, centred), so at each year
    it is the cell's climate of that time, without the lag of a running
    mean at the ends of the record. Meant for annual data without gaps
    (the demo's); values keep their units and the training level.

    Parameters
    ----------
    cube : xarray.Dataset
        With a time dimension.
    training : slice
        The period whose mean level the detrended values keep.
    window_years : int, default 31

    Returns
    -------
    xarray.Dataset like ``cube``

    Examples
    --------
    >>> cube = geoanom.sample_cube("north_america").load()  # doctest: +SKIP
    >>> detrended = running_climate(cube, slice(None, "1959"))  # doctest: +SKIP
    """
    years = decimal_year(cube["time"], "dayofyear")
    smoother = _local_linear_smoother(years, window_years / 2)
    steps = xr.DataArray(np.arange(cube.sizes["time"]), dims="time", coords={"time": cube["time"]})
    in_training = steps.sel(time=training).values
    out = cube.copy()
    for name, variable in cube.data_vars.items():
        values = variable.transpose("time", ...)
        trend = np.tensordot(smoother, np.asarray(values.values, dtype=np.float64), axes=(1, 0))
        detrended = np.asarray(values.values, dtype=np.float64) - trend + trend[in_training].mean(axis=0)
        out[name] = values.copy(data=detrended.astype(variable.dtype))
    return out


def _local_linear_smoother(x: np.ndarray, half_width: float) -> np.ndarray:
    """The (n, n) matrix of a local linear regression with tricube weights of ``half_width``."""
    rows = []
    for centre in x:
        weights = np.clip(1 - (np.abs(x - centre) / half_width) ** 3, 0, None) ** 3
        design = np.stack([np.ones_like(x), x - centre], axis=1)
        weighted = design * weights[:, None]
        rows.append(np.linalg.solve(weighted.T @ design, weighted.T)[0])
    return np.array(rows)
