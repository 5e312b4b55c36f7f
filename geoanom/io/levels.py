"""Vertical levels: find a variable's level dimension and select one level by its coordinate value.

A cube is (time, <grid>): a variable with a level dimension (pressure,
depth, height, model level) is refused unless a level is chosen, in one
sentence that names its levels. ``open_cube(..., level=850)`` selects the
level whose coordinate value is 850 (within a relative 1e-4), whatever the
dimension is called; the chosen level stays as a scalar coordinate.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import numpy as np
import xarray as xr

from geoanom.errors import CoordinateError

# Names of vertical axes that carry no CF marker (axis Z, positive, a vertical standard name).
VERTICAL_NAMES = {"plev", "lev", "level", "levels", "levelist", "depth", "deptht", "depthu", "depthv", "depthw",
                  "olevel", "height", "altitude", "alt", "z", "pressure", "pressure_level", "isobaricinhpa",
                  "model_level_number", "mlev", "zlev", "sigma", "bottom_top", "nz"}
VERTICAL_STANDARD_NAMES = {"air_pressure", "depth", "height", "altitude", "model_level_number",
                           "height_above_reference_ellipsoid", "depth_below_geoid", "geopotential_height"}
# The advice of the many-levels refusal; the command line puts its --level in its place.
LEVEL_ADVICE = "pass level= to open_cube (--level on the command line) to choose one"
RTOL = 1e-4  # float32 levels (e.g. 4478.0049) match the value a user types
MAX_LISTED = 20


@dataclass(frozen=True)
class LevelAxis:
    """The vertical axis of a variable: its dimension, the coordinate holding its values, and their units.

    Examples
    --------
    >>> str(LevelAxis("plev", "plev", (1000.0, 850.0, 500.0), "hPa"))
    'plev: 1000, 850, 500 hPa'
    """

    dim: str
    name: str
    values: tuple[float, ...]
    units: str

    def __str__(self) -> str:
        values = [f"{v:g}" for v in self.values]
        if len(values) > MAX_LISTED:
            values = values[: MAX_LISTED - 5] + ["..."] + values[-4:]
        return f"{self.name}: {', '.join(values)} {self.units}".rstrip()

    def index_of(self, level: float) -> int | None:
        """Index of the level whose value is `level` (relative tolerance 1e-4), None if there is none."""
        hits = np.flatnonzero(np.isclose(np.asarray(self.values), float(level), rtol=RTOL, atol=1e-9))
        return int(hits[0]) if hits.size else None


def level_axis(ds: xr.Dataset, dim: Hashable) -> LevelAxis | None:
    """The vertical axis along `dim` of `ds`, or None if `dim` is not vertical.

    A dimension is vertical when its coordinate (or a 1-D coordinate along
    it) has CF ``axis: Z``, a ``positive`` attribute or a vertical standard
    name, or when it is named like one (plev, lev, level, depth, height, ...).

    Examples
    --------
    >>> ds = xr.Dataset(coords={"depth": ("depth", [5.0, 15.0], {"units": "m", "positive": "down"})})
    >>> str(level_axis(ds, "depth"))
    'depth: 5, 15 m'
    """
    candidates = ([dim] if dim in ds.coords else []) + [n for n, c in ds.coords.items()
                                                        if c.dims == (dim,) and n != dim]
    marked = set(ds.cf.axes.get("Z", [])) | set(ds.cf.coordinates.get("vertical", []))
    for name in candidates:
        coord = ds[name]
        if name in marked or _looks_vertical(name, coord.attrs) or _looks_vertical(dim, {}):
            if coord.dtype.kind not in "iuf":
                continue
            units = str(coord.attrs.get("units", ""))
            units = "" if units == "1" else units  # a dimensionless model level number
            return LevelAxis(str(dim), str(name), tuple(float(v) for v in coord.values), units)
    if _looks_vertical(dim, {}):
        return LevelAxis(str(dim), str(dim), (), "")
    return None


def chosen_level(ds: xr.Dataset | xr.DataArray) -> dict | None:
    """The vertical level a cube holds as a scalar coordinate (as :func:`select_level` leaves it), or None.

    Returned as plain data (name, value, units), as a model records it.

    Examples
    --------
    >>> ds = xr.Dataset(coords={"depth": ((), 10.0, {"units": "m", "positive": "down"})})
    >>> chosen_level(ds)
    {'name': 'depth', 'value': 10.0, 'units': 'm'}
    """
    marked = set(ds.cf.axes.get("Z", [])) | set(ds.cf.coordinates.get("vertical", []))
    for name, coord in ds.coords.items():
        if coord.ndim == 0 and coord.dtype.kind in "iuf" and (name in marked or _looks_vertical(name, coord.attrs)):
            units = str(coord.attrs.get("units", ""))
            return {"name": str(name), "value": float(coord), "units": "" if units == "1" else units}
    return None


def level_dims(ds: xr.Dataset | xr.DataArray) -> list[str]:
    """The vertical dimensions of a cube (levels not selected), by name.

    Examples
    --------
    >>> level_dims(xr.Dataset(coords={"plev": [850.0, 500.0], "lat": [0.0]}))
    ['plev']
    """
    ds = ds.to_dataset(name=ds.name or "values") if isinstance(ds, xr.DataArray) else ds
    return [str(dim) for dim in ds.dims if dim != "time" and level_axis(ds, dim) is not None]


def _looks_vertical(name: Hashable, attrs: dict) -> bool:
    standard = str(attrs.get("standard_name", ""))
    return (attrs.get("axis") == "Z" or "positive" in attrs or standard in VERTICAL_STANDARD_NAMES
            or standard.startswith(("atmosphere_", "ocean_s", "ocean_sigma", "ocean_double"))
            or str(name).lower() in VERTICAL_NAMES)


def variable_levels(ds: xr.Dataset, name: Hashable, spatial: tuple) -> dict[Hashable, LevelAxis | None]:
    """Each dimension of variable `name` beyond time and the grid, with its vertical axis (None if not vertical).

    Examples
    --------
    >>> ds = xr.Dataset({"t": (("member", "plev", "lat", "lon"), np.zeros((2, 2, 1, 1)))},
    ...                 coords={"plev": [850.0, 500.0]})
    >>> {d: str(a) if a else a for d, a in variable_levels(ds, "t", ("lat", "lon")).items()}
    {'member': None, 'plev': 'plev: 850, 500'}
    """
    return {d: level_axis(ds, d) for d in ds[name].dims if d not in ("time", *spatial)}


def select_level(ds: xr.Dataset, spatial: tuple, path: str, level: float | None = None) -> xr.Dataset:
    """Select `level` on every variable's vertical dimension; drop size-1 extra dims; refuse the rest.

    Examples
    --------
    >>> ds = xr.Dataset({"t": (("depth", "lat", "lon"), np.zeros((2, 1, 1)))},
    ...                 coords={"depth": ("depth", [5.0, 15.0], {"positive": "down"})})
    >>> float(select_level(ds, ("lat", "lon"), "f.nc", level=15)["depth"])
    15.0
    """
    selection: dict[Hashable, int] = {}
    has_levels = False
    for name in ds.data_vars:
        for dim, axis in variable_levels(ds, name, spatial).items():
            has_levels |= axis is not None
            selection[dim] = _level_index(ds, name, dim, axis, path, level)
    if level is not None and not has_levels:
        names = ", ".join(f"'{n}'" for n in ds.data_vars)
        raise CoordinateError(f"level {level:g} was asked for, but no variable read from {path} ({names}) has levels.")
    return ds.isel(selection)


def _level_index(ds: xr.Dataset, name: Hashable, dim: Hashable, axis: LevelAxis | None, path: str,
                 level: float | None) -> int:
    size = ds.sizes[dim]
    if axis is None:
        if size > 1:
            raise CoordinateError(f"variable '{name}' in {path} has a dimension '{dim}' of size {size} that is "
                                  "neither time, the grid nor a vertical level; select one first.")
        return 0
    if level is None:
        if size > 1:
            raise CoordinateError(f"variable '{name}' in {path} has {size} levels ({axis}); {LEVEL_ADVICE}.")
        return 0
    if not axis.values:
        raise CoordinateError(f"the levels of '{dim}' in {path} have no coordinate values to match {level:g} against.")
    if (index := axis.index_of(level)) is None:
        raise CoordinateError(f"variable '{name}' in {path} has no level {level:g}; its levels are {axis}.")
    return index
