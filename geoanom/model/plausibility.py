"""Warnings that scored data are not what the model can judge: values no weather gives, a trend stretched too far.

Both checks are cheap and warn rather than refuse: the scores are still the
model's, but a scientist should not read them as events.

- **Values far from every expected value.** One time step (the middle one)
  is standardised by the model's climatology; when the median |anomaly| of a
  variable's cells exceeds :data:`FAR_SPREADS`, the data are almost surely in
  other units than their label says, or another variable. Weather does not do
  that: the warmest year of A1B North America (2099) against its 1860-1959
  climate has a median |anomaly| of 7; the same data converted to degrees
  Celsius but still labelled K, -383 (a trial's SST, -647), and every cell
  was flagged without a word.
- **A linear trend extrapolated far.** With ``trend="linear"`` the expected
  value of a step is the line's. Beyond the training period by more than
  its own length, the line decides every score: a trial scoring a century
  before a model's 30-year training period saw 76% flagged.
- **Fewer cells than in training.** A cell's neighbours' feature is a mean
  over the neighbours holding values: over fewer of them (a cloudy month
  scored by a model of gap-free fields) it is noisier than the families
  learnt, and more normal cells are flagged (a trial's five families: 1.3%
  of a whole field, 25% with 30% of its cells kept, before the neighbours'
  rule of :mod:`geoanom.features.neighbourhood`). A model fitted since
  stands the missing neighbours in (:mod:`geoanom.features.neighbour_relation`:
  1.6% at 30% kept); for a model saved before, a step holding values in
  under :data:`COVERAGE_DROP` of the share of cells the training steps
  held (``model.attrs["training_coverage"]``) warns.
- **Cells the model never saw.** Values in cells that had none in training
  (sea ice that retreated, a wider land mask) score NaN: the same step says
  how many (a trial's 15 of 264 cells were left NaN without a word).
"""

from __future__ import annotations

import re
import warnings
from typing import TYPE_CHECKING

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..errors import GeoanomWarning
from ..features.calendar import decimal_year
from ..features.pipeline import source_name, stack_variables
from ..formatting import iso_date

if TYPE_CHECKING:  # the model's checks of the data it scores
    from .core import AnomalyModel

__all__ = ["COVERAGE_DROP", "FAR_SPREADS", "coverage", "warn_implausible"]

# A median |anomaly| over a step's cells this large is not weather (see the module docstring).
FAR_SPREADS = 20.0
# A scored step holding values in under this share of the cells training steps held (their median) warns.
COVERAGE_DROP = 0.7


def coverage(values: xr.DataArray, trained: np.ndarray) -> da.Array:
    """The share of each variable's trained cells holding a value at each step (variable, time), lazily.

    ``trained``: (variable, *spatial) bool, the cells the climatology was fitted on.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> values = xr.DataArray(np.array([[[[1.0, np.nan], [2.0, 3.0]]]]), dims=("variable", "time", "lat", "lon"))
    >>> coverage(values, np.ones((1, 2, 2), dtype=bool)).compute().tolist()
    [[0.75]]
    """
    held = da.isfinite(da.asarray(values.data)) & trained[:, None]
    return held.sum(axis=(2, 3)) / np.maximum(trained.sum(axis=(1, 2)), 1)[:, None]


def warn_implausible(model: "AnomalyModel", cube: xr.Dataset | xr.DataArray) -> None:
    """Warn when the scored cube is far outside what the model can judge (see the module docstring).

    Examples
    --------
    >>> warn_implausible(model, celsius_labelled_kelvin)  # doctest: +SKIP
    GeoanomWarning: tas in 'sst.nc' lies a median of 647 spreads below the model's expected values ...
    """
    _warn_of_one_step(model, cube)
    _warn_extrapolated_trend(model, cube)


def _warn_of_one_step(model: "AnomalyModel", cube: xr.Dataset | xr.DataArray) -> None:
    """Far fewer cells than training held, cells the model never saw, values no weather gives: at the middle step."""
    middle = cube.sizes["time"] // 2
    values = stack_variables(cube.isel(time=[middle]), model.variables)
    # one read of the step for the three checks: its values, their anomalies and its coverage
    observed, anomalies, share = (np.asarray(a) for a in dask.compute(
        values.data, model.climatology.standardise(values).data, coverage(values, model.climatology.prefix > 0)))
    share = share[:, 0]
    units = model.attrs.get("units") or {}
    trained_share = model.attrs.get("training_coverage") or {}
    for name, data, cells, held in zip(model.variables, observed, anomalies, share):
        # a model with the neighbours' relation stands the missing neighbours in (features/neighbour_relation.py)
        if (usual := trained_share.get(name)) and held < COVERAGE_DROP * usual and \
                model.climatology.neighbour_relation is None:
            warnings.warn(f"{name} in {source_name(cube)} holds values in {held:.0%} of the model's cells at "
                          f"{_step_label(cube, middle)}, where its training steps held {usual:.0%}: this model was "
                          "fitted before geoanom judged gappy steps as it judges full ones, so each cell's "
                          "neighbours' mean is over fewer cells and noisier than it learnt, and more normal cells "
                          "are flagged; fit it again to judge them as full ones.", GeoanomWarning, stacklevel=4)
        if unjudged := int((np.isfinite(data) & ~np.isfinite(cells)).sum()):
            warnings.warn(f"{name} in {source_name(cube)} has values in {unjudged} of {data.size} cells at "
                          f"{_step_label(cube, middle)} where the model had no training values (ice that "
                          "retreated, a wider mask): they score NaN; fit on data that cover them to judge them.",
                          GeoanomWarning, stacklevel=4)
        finite = cells[np.isfinite(cells)]
        if finite.size == 0:
            continue
        median = float(np.median(finite))
        if abs(median) > FAR_SPREADS:
            unit = f" ({units[name]})" if units.get(name) else ""
            warnings.warn(f"{name} in {source_name(cube)} lies a median of {abs(median):.0f} spreads "
                          f"{'above' if median > 0 else 'below'} the model's expected values at "
                          f"{_step_label(cube, middle)}, which weather does not do: check that it is the variable "
                          f"the model was fitted on and in its units{unit}; every cell will be flagged.",
                          GeoanomWarning, stacklevel=4)


def _warn_extrapolated_trend(model: "AnomalyModel", cube: xr.Dataset | xr.DataArray) -> None:
    design = model.climatology.design
    start, end = (_decimal(model.attrs.get(key)) for key in ("training_start", "training_end"))
    if not design.trend or start is None or end is None:
        return
    span = max(end - start, 1.0 / 12.0)
    years = decimal_year(cube["time"], design.kind)
    beyond = float(max(start - years.min(), years.max() - end, 0.0))
    if beyond > span:
        warnings.warn(f"{source_name(cube)} reaches {beyond:.0f} years beyond the model's training period "
                      f"({model.attrs['training_start']} to {model.attrs['training_end']}, {span:.0f} years), along "
                      "which its linear trend is extrapolated: there the line, not the data, decides the expected "
                      "values; fit a model on a period nearer the scored one, or without trend.",
                      GeoanomWarning, stacklevel=4)


def _decimal(date: object) -> float | None:
    """``'1960-07-16'`` as a decimal year (to the month: enough to compare spans of years); None if unreadable."""
    match = re.match(r"\s*(-?\d+)-(\d{2})", str(date))
    return int(match[1]) + (int(match[2]) - 1) / 12.0 if match else None


def _step_label(cube: xr.Dataset | xr.DataArray, index: int) -> str:
    return iso_date(cube["time"].values[index])
