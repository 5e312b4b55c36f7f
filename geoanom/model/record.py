"""The kind of record a model was fitted on: scored data must have its time step and its vertical level.

A monthly model compares each value with the expected value of its month:
annual or seasonal means scored with it would each be compared with one
month's, silently. The kind of time step is :func:`season_kind`'s, the one
the climatology chose its design by. The level is the scalar vertical
coordinate :func:`geoanom.open_cube` leaves when ``level=`` selects one.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from ..errors import CoordinateError, GeoanomWarning
from ..features.calendar import season_kind
from ..features.pipeline import source_name
from ..io.levels import RTOL, chosen_level, level_dims
from ..timesteps import step_days
from .units import normalised_units

if TYPE_CHECKING:  # the model checks the record it scores
    from .core import AnomalyModel

# How each kind of record is said in a refusal.
KIND_WORDS = {"none": "means over seasons, years or longer", "month": "monthly values", "dayofyear": "daily values",
              "subdaily": "sub-daily values"}
# One time step has no step to judge (monitoring appends one month). Two are judged by their one difference:
# two annual means must be refused, at the cost of refusing two months with a gap between them.
MIN_STEPS = 2


def check_same_time_step(model: "AnomalyModel", cube: xr.Dataset | xr.DataArray) -> None:
    """Raise :class:`CoordinateError` when the cube's kind of time step is not the one the model was fitted on.

    The kind (sub-daily, daily, monthly, annual or coarser) is judged from
    the median step, so gaps and another calendar are accepted; a single time
    step is not judged (two months with a gap between them are refused).

    Examples
    --------
    >>> check_same_time_step(monthly_model, annual_means)  # doctest: +SKIP
    Traceback (most recent call last):
    geoanom.errors.CoordinateError: surface_temperature in 'score_annual.nc' steps by 365 days (annual or ...
    """
    if cube.sizes.get("time", 0) < MIN_STEPS:
        return
    expected, found = model.climatology.design.kind, season_kind(cube["time"])
    if found != expected:
        days = float(np.median(step_days(cube["time"])))
        raise CoordinateError(
            f"{', '.join(model.variables)} in {source_name(cube)} steps by {days:.3g} days "
            f"({KIND_WORDS[found]}), but the model was fitted on {KIND_WORDS[expected]}: each value would be "
            f"compared with the expected value of another time step; score data with the model's time step, or "
            f"fit a model on these.")


def check_same_level(model: "AnomalyModel", cube: xr.Dataset | xr.DataArray) -> None:
    """Raise :class:`CoordinateError` when the cube's vertical level is not the one the model was fitted on.

    A model records its level at fit (``attrs['level']``, None without
    one); models saved before levels were recorded are not checked. Data
    at another level are refused; data that say nothing of their level get a
    warning from a model with one (nothing to compare); data with a level are
    refused by a model without one only if a level dimension is left.

    Examples
    --------
    >>> check_same_level(model_at_10m, cube_at_half_a_metre)  # doctest: +SKIP
    Traceback (most recent call last):
    geoanom.errors.CoordinateError: surface_temperature in 'level3.nc' is at depth 0.5 m, but the model was ...
    """
    if "level" not in model.attrs:
        return
    expected, found = model.attrs["level"], chosen_level(cube)
    where = f"{', '.join(model.variables)} in {source_name(cube)}"
    if expected is None:
        if dims := level_dims(cube):
            raise CoordinateError(f"{where} has levels ({', '.join(dims)}), but the model was fitted on data "
                                  "without levels; select the level it was fitted on.")
        return
    if found is None:  # nothing to compare (a CMIP tas without its 2 m height coordinate): said, not refused
        warnings.warn(f"{where} says nothing of its vertical level, but the model was fitted at "
                      f"{level_text(expected)}: it is scored as if at that level (select that level, --level "
                      f"{expected['value']:g}, if the file has levels).", GeoanomWarning, stacklevel=3)
        return
    # by value, as --level selects; units only when both files give them (a depth in m against one in cm)
    same = (np.isclose(found["value"], expected["value"], rtol=RTOL, atol=1e-9)
            and (not (found["units"] and expected["units"])
                 or normalised_units(found["units"]) == normalised_units(expected["units"])))
    if not same:
        raise CoordinateError(f"{where} is at {level_text(found)}, but the model was fitted at "
                              f"{level_text(expected)}; {_level_advice(found, expected)}")


def _level_advice(found: dict, expected: dict) -> str:
    """What to do about a level other than the model's: the same one in other units or sign, or another one.

    Examples
    --------
    >>> _level_advice({"value": 1000.0, "units": "cm"}, {"value": 10.0, "units": "m"})[:60]
    'if that is the same level in other units (cm against the mod'
    >>> _level_advice({"value": -10.0, "units": "m"}, {"value": 10.0, "units": "m"})[:48]
    'if that is the same level counted the other way '
    """
    if found["units"] and expected["units"] and normalised_units(found["units"]) != normalised_units(expected["units"]):
        return (f"if that is the same level in other units ({found['units']} against the model's "
                f"{expected['units']}), convert the level coordinate to {expected['units']}; else score data at the "
                "model's level, or fit a model at this one.")
    if expected["value"] and np.isclose(found["value"], -expected["value"], rtol=RTOL, atol=1e-9):
        return ("if that is the same level counted the other way (positive up against down), flip the sign of the "
                "level coordinate; else score data at the model's level, or fit a model at this one.")
    return (f"score data at that level (select it: --level {expected['value']:g} on the command line), or fit a "
            "model at this one.")


def level_text(level: dict) -> str:
    """A recorded level as words: its coordinate's name, value and units.

    Examples
    --------
    >>> level_text({"name": "plev", "value": 850.0, "units": "hPa"})
    'plev 850 hPa'
    """
    return f"{level['name']} {level['value']:g} {level['units']}".rstrip()
