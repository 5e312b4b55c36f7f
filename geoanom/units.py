"""Spellings of one unit, for comparing the units of two files or of a file and a model.

Low-level on purpose: ``io`` (files joined in time) and ``model`` (scored data
against the fitted model) both compare units, and ``model`` imports ``io``.
"""

from __future__ import annotations

import re

# Spellings of the same unit (udunits and CF names, with and without the degree sign), each group by its
# canonical name. cf-xarray converts units only through pint, which is not a dependency: this table covers
# the units climate files use for the same quantity in different spellings. Products of units are also
# compared term by term (:func:`_terms`: W/m2 is W m-2), so the table lists each product in one spelling.
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
    "m s-1": ("m s-1", "meters per second", "metres per second"),
    "kg m-2 s-1": ("kg m-2 s-1",),
    "mm/day": ("mm day-1",),
    "W m-2": ("w m-2", "watts per square metre", "watts per square meter"),
    "m": ("m",),
    # Salinity in parts per thousand: CF's 1e-3 (also as 0.001), g/kg, and the practical salinity unit,
    # whose numbers are the same (35 for sea water).
    "1e-3": ("0.001", "g kg-1", "psu", "pss", "pss-78", "ppt", "ppth", "practical_salinity_unit"),
}
# Names of units spelled out, as their symbols (within a product: "metre second-1" is "m s-1").
_SYMBOLS = {"metre": "m", "metres": "m", "meter": "m", "meters": "m", "second": "s", "seconds": "s", "sec": "s",
            "watt": "w", "watts": "w", "kilogram": "kg", "kilograms": "kg", "gram": "g", "grams": "g",
            "d": "day", "days": "day", "hour": "h", "hours": "h", "hr": "h"}
_TERM = re.compile(r"([a-z_]+)(-?[0-9]+)?")


def _terms(text: str) -> str:
    """A product of units in one spelling: each unit by its symbol with its power, sorted; `text` if it is none.

    ``W/m2``, ``W m-2`` and ``W.m-2`` give ``w m-2``; ``kg/m2/s`` gives ``kg m-2 s-1``.
    """
    try:
        return f"{float(text):g}"  # a number: 0.001 and 1e-3 are one
    except ValueError:
        pass
    powers: dict[str, int] = {}
    for i, part in enumerate(text.split("/")):
        for term in part.replace(".", " ").split():
            found = _TERM.fullmatch(term)
            if found is None:
                return text
            name = _SYMBOLS.get(found[1], found[1])
            power = int(found[2] or 1) * (-1 if i else 1)
            powers[name] = powers.get(name, 0) + power
    ordered = sorted((power < 0, name, power) for name, power in powers.items() if power)
    return " ".join(name if power == 1 else f"{name}{power}" for _, name, power in ordered) or text


def _spelling(units: str) -> str:
    text = " ".join(units.replace("\u00b0", "deg").replace("**", "").replace("^", "").lower().split())
    return text if text in _PLAIN else _terms(text)


_PLAIN = {spelling for spellings in _UNIT_SPELLINGS.values() for spelling in spellings if " " in spelling}
_CANONICAL_UNITS = {_spelling(spelling): name for name, spellings in _UNIT_SPELLINGS.items()
                    for spelling in (*spellings, name)}


def normalised_units(units: str) -> str:
    """One spelling per unit, for comparing the units of two files: 'kelvin' and 'K', 'Celsius' and 'degC'.

    Case, spaces, the degree sign and ``^`` / ``**`` before exponents do
    not matter, nor how a product is written (``W/m2``, ``W m-2``,
    ``W.m-2``; ``metre`` and ``m``) or a number (``0.001``, ``1e-3``);
    salinity's ``g/kg`` and ``psu`` are ``1e-3``. Other units are compared
    as written.

    Examples
    --------
    >>> normalised_units("degree_Celsius"), normalised_units("°C"), normalised_units("kelvin")
    ('degC', 'degC', 'K')
    >>> normalised_units("kg m^-2 s^-1") == normalised_units("kg m-2 s-1")
    True
    >>> normalised_units("W/m2"), normalised_units("psu"), normalised_units("0.001")
    ('W m-2', '1e-3', '1e-3')
    """
    text = _spelling(units)
    return _CANONICAL_UNITS.get(text, text)
