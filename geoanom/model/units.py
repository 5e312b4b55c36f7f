"""The units of a cube's variables: what a model records at fit, and the check that scored data are in them.

Spellings of one unit count as equal (:func:`normalised_units`: 'kelvin'
and 'K', 'Celsius' and 'degC'); units are compared, never converted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import xarray as xr

from ..errors import UnitsError
from ..features.pipeline import source_name

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


# Spellings of the same unit (udunits and CF names, with and without the degree sign), each group by its
# canonical name. cf-xarray converts units only through pint, which is not a dependency: this table covers
# the units climate files use for the same quantity in different spellings.
_UNIT_SPELLINGS = {
    "K": ("k", "kelvin", "kelvins", "degk", "deg k", "deg_k", "degree_k", "degrees_k", "degree k", "degrees k",
          "degree_kelvin", "degrees_kelvin", "degree kelvin", "degrees kelvin"),
    "degC": ("degc", "deg c", "deg_c", "degree_c", "degrees_c", "degree c", "degrees c", "celsius",
             "degree_celsius", "degrees_celsius", "degree celsius", "degrees celsius", "deg_celsius"),
    "degF": ("degf", "deg f", "deg_f", "degree_f", "degrees_f", "degree f", "degrees f", "fahrenheit",
             "degree_fahrenheit", "degrees_fahrenheit", "degree fahrenheit", "degrees fahrenheit"),
    "Pa": ("pa", "pascal", "pascals"),
    "hPa": ("hpa", "hectopascal", "hectopascals", "mbar", "millibar", "millibars"),
    "%": ("%", "percent", "percentage"),
    "m s-1": ("m s-1", "m/s", "m.s-1", "meter second-1", "metre second-1", "meters per second", "metres per second"),
    "kg m-2 s-1": ("kg m-2 s-1", "kg/m2/s", "kg m-2.s-1", "kg.m-2.s-1"),
    "mm/day": ("mm/day", "mm day-1", "mm d-1", "mm/d"),
}
_CANONICAL_UNITS = {spelling: name for name, spellings in _UNIT_SPELLINGS.items() for spelling in spellings}


def normalised_units(units: str) -> str:
    """One spelling per unit, for comparing the units of two files: 'kelvin' and 'K', 'Celsius' and 'degC'.

    Case, spaces, the degree sign and ``^`` / ``**`` before exponents do
    not matter; other units are compared as written.

    Examples
    --------
    >>> normalised_units("degree_Celsius"), normalised_units("°C"), normalised_units("kelvin")
    ('degC', 'degC', 'K')
    >>> normalised_units("kg m^-2 s^-1") == normalised_units("kg m-2 s-1")
    True
    """
    text = " ".join(units.replace("\u00b0", "deg").replace("**", "").replace("^", "").lower().split())
    return _CANONICAL_UNITS.get(text, text)
