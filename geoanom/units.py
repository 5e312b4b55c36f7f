"""Spellings of one unit, for comparing the units of two files or of a file and a model.

Low-level on purpose: ``io`` (files joined in time) and ``model`` (scored data
against the fitted model) both compare units, and ``model`` imports ``io``.
"""

from __future__ import annotations

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
