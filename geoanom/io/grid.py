"""Canonical coordinates: find time, latitude and longitude by CF metadata or name, and normalise them.

Every cube leaves here with coordinates ``time``, ``lat`` and ``lon``,
longitudes in [-180, 180) and 1-D axes ascending.
"""

from __future__ import annotations

from collections.abc import Hashable

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import xarray as xr

from geoanom.errors import CoordinateError

from .messages import short_reason

_CF_KEYS = {"time": "time", "lat": "latitude", "lon": "longitude"}
# Tried only when CF metadata finds nothing; the generic axis names (second
# set) count only with degree units, as y/x are often projection metres.
_FALLBACK = {
    "time": ({"time", "time_counter", "t", "times", "date", "valid_time"}, set()),
    "lat": ({"lat", "latitude", "nav_lat", "lats", "xlat"}, {"y", "j"}),
    "lon": ({"lon", "longitude", "nav_lon", "lons", "long", "xlong"}, {"x", "i"}),
}


def find_coordinate(ds: xr.Dataset, key: str, path: str) -> Hashable:
    """Name of the variable holding `key` (time, lat, lon): by CF metadata, else by name."""
    bounds = {v.attrs.get("bounds") for v in ds.variables.values()}
    probe = ds.set_coords(list(ds.data_vars))  # cf-xarray looks at coordinates only
    found = [n for n in probe.cf.coordinates.get(_CF_KEYS[key], []) if n not in bounds]
    if not found:
        strong, weak = _FALLBACK[key]
        found = [n for n, v in ds.variables.items() if n not in bounds and (
            str(n).lower() in strong
            or (str(n).lower() in weak and str(v.attrs.get("units", "")).lower().startswith("degree")))]
    if not found:
        raise CoordinateError(f"no {_CF_KEYS[key]} coordinate found in {path}.")
    # Prefer decoded dates for time (NEMO's time_counter has no units), then
    # dimension coordinates, then grids over scalars.
    undated = lambda n: key == "time" and ds[n].dtype.kind not in "MO"  # noqa: E731
    return sorted(found, key=lambda n: (undated(n), n not in ds.dims, ds[n].ndim == 0))[0]


def rename_coordinate(ds: xr.Dataset, old: Hashable, new: str, path: str) -> xr.Dataset:
    """Rename coordinate `old` to `new`; a 1-D one also becomes the dimension."""
    try:
        if old != new:
            if new in ds.variables:
                raise ValueError(f"'{new}' already names another variable")
            # rename_vars alone would leave a dimension coordinate's index inconsistent
            ds = ds.rename({old: new}) if ds[old].dims == (old,) else ds.rename_vars({old: new})
        ds = ds.set_coords(new)
        if ds[new].ndim == 1 and ds[new].dims[0] != new:
            ds = ds.swap_dims({ds[new].dims[0]: new})
    except ValueError as exc:
        raise CoordinateError(f"cannot use '{old}' as {_CF_KEYS[new]} in {path}: {short_reason(exc)}.") from exc
    return ds


def grid_dims(ds: xr.Dataset, path: str) -> tuple[Hashable, ...]:
    """Grid dims: (lat, lon) for 1-D axes, the shared dims of 2-D lat/lon otherwise."""
    lat, lon = ds["lat"], ds["lon"]
    if lat.ndim == 1 and lon.ndim == 1 and lat.dims != lon.dims:
        return ("lat", "lon")
    if lat.ndim == 2 and lat.dims == lon.dims:
        return lat.dims
    raise CoordinateError(
        f"latitude {lat.dims} and longitude {lon.dims} in {path} form neither 1-D axes nor one 2-D grid.")


def squeeze_levels(ds: xr.Dataset, spatial: tuple, path: str) -> xr.Dataset:
    """Drop size-1 extra dims (a single level, kept as a scalar coordinate); refuse longer ones."""
    extra = {d for v in ds.data_vars.values() for d in v.dims if d not in ("time", *spatial)}
    for name, var in ds.data_vars.items():
        if long := [d for d in var.dims if d in extra and ds.sizes[d] > 1]:
            raise CoordinateError(
                f"variable '{name}' in {path} has a level dimension '{long[0]}' of size {ds.sizes[long[0]]}; "
                "level dimensions are not yet supported, select one level first.")
    return ds.isel({d: 0 for d in extra})


def normalise_lon_lat(ds: xr.Dataset) -> xr.Dataset:
    """Longitudes to [-180, 180); 1-D axes sorted ascending (2-D grids keep their order)."""
    lon = ds["lon"].variable
    attrs = {**lon.attrs, "standard_name": "longitude", "units": "degrees_east"}
    ds = ds.assign_coords(lon=xr.Variable(lon.dims, ((lon.values + 180) % 360) - 180, attrs),
                          lat=ds["lat"].assign_attrs(standard_name="latitude", units="degrees_north"))
    for name in ("lat", "lon"):
        if ds[name].ndim == 1 and not ds.indexes[name].is_monotonic_increasing:
            ds = ds.sortby(name)
    return ds
