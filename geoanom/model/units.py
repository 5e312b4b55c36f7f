"""The units of a cube's variables: what a model records at fit, and the check that scored data are in them.

Spellings of one unit count as equal (:func:`normalised_units`: 'kelvin'
and 'K', 'Celsius' and 'degC'); units are compared, never converted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import xarray as xr

from ..errors import UnitsError
from ..features.pipeline import source_name
from ..units import normalised_units  # re-exported: the model's check and its callers import it here

__all__ = ["check_same_units", "cube_units", "normalised_units", "variable_units"]

if TYPE_CHECKING:  # the model checks the units of the data it scores
    from .core import AnomalyModel


def cube_units(cube: xr.Dataset | xr.DataArray, variables: list[str]) -> dict[str, str]:
    """Units of each variable, as the cube gives them (for the anomalies' attributes, map titles and the units check).

    Examples
    --------
    >>> cube_units(xr.Dataset({"tas": ("x", [1.0], {"units": "K "})}), ["tas"])
    {'tas': 'K '}
    """
    if isinstance(cube, xr.DataArray):
        return {name: str(cube.attrs.get("units", "")) for name in variables}
    return {name: str(cube[name].attrs.get("units", "")) for name in variables if name in cube}


def variable_units(cube: xr.Dataset | xr.DataArray, variables: list[str]) -> dict[str, str]:
    """Each variable's ``units`` attribute as the cube gives it ('' when it has none): what a model records at fit.

    Examples
    --------
    >>> variable_units(xr.Dataset({"tas": ("x", [1.0], {"units": "K"}), "pr": ("x", [0.0])}), ["tas", "pr"])
    {'tas': 'K', 'pr': ''}
    """
    return {name: str(units).strip() for name, units in cube_units(cube, variables).items()}


def check_same_units(model: "AnomalyModel", cube: xr.Dataset | xr.DataArray) -> None:
    """Raise :class:`UnitsError` when a variable's units differ from those the model was fitted on.

    Spellings of one unit count as equal (:func:`normalised_units`); a
    variable without units, in the cube or in the model (models saved before
    units were recorded), is not checked.

    Examples
    --------
    >>> check_same_units(model, celsius_cube)  # doctest: +SKIP
    Traceback (most recent call last):
    geoanom.errors.UnitsError: air_temperature in 'e1c.nc' is in 'degC', but the model was fitted on it in 'K'; ...
    """
    trained = model.attrs.get("units") or {}
    for name, found in variable_units(cube, model.variables).items():
        expected = str(trained.get(name) or "").strip()
        if expected and found and normalised_units(expected) != normalised_units(found):
            raise UnitsError(f"{name} in {source_name(cube)} is in '{found}', but the model was fitted on it in "
                             f"'{expected}'; convert {name} to {expected} before scoring, or fit a model on "
                             f"data in {found}.")
