"""Canonical coordinates: find time, latitude and longitude by CF metadata or name, and normalise them.

Every cube leaves here with coordinates ``time``, ``lat`` and ``lon`` and
longitudes in [-180, 180). A 1-D latitude axis ascends; a 1-D longitude axis
runs west to east without a gap: it ascends, except for a regional grid that
crosses the antimeridian, which starts at the region's west edge and steps
from 179.x to -180 (so neighbouring cells stay neighbours in the array).
Rotated-pole grids get true 2-D latitude and longitude from their CF grid
mapping and become curvilinear.
"""

from __future__ import annotations

from collections.abc import Hashable

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import numpy as np
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
    if not found and key == "time":
        found = _dated_dimensions(ds)
    if not found:
        raise CoordinateError(f"no {_CF_KEYS[key]} coordinate found in {path}.")
    # Prefer decoded dates for time (NEMO's time_counter has no units), then
    # dimension coordinates, then grids over scalars.
    undated = lambda n: key == "time" and ds[n].dtype.kind not in "MO"  # noqa: E731
    return sorted(found, key=lambda n: (undated(n), n not in ds.dims, ds[n].ndim == 0))[0]


def _dated_dimensions(ds: xr.Dataset) -> list[Hashable]:
    """The one dimension coordinate holding decoded dates, if only one does: a time axis its units alone make CF.

    xarray moves the units (``seconds since 1900-01-01``) into the
    encoding as it decodes, so cf-xarray no longer sees them: ROMS'
    ``ocean_time`` has no other attribute.
    """
    dated = [n for n in ds.dims if n in ds.coords and ds[n].ndim == 1 and (
        ds[n].dtype.kind == "M" or (ds[n].dtype.kind == "O" and ds[n].size and hasattr(ds[n].values[0], "calendar")))]
    return dated if len(dated) == 1 else []


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


def normalise_lon_lat(ds: xr.Dataset) -> xr.Dataset:
    """Longitudes to [-180, 180); 1-D axes in order, a longitude axis starting at its region's west edge.

    Examples
    --------
    >>> ds = xr.Dataset(coords={"lat": [1.0, 0.0], "lon": [170.0, 180.0, 190.0]})
    >>> normalise_lon_lat(ds)["lon"].values.tolist()
    [170.0, -180.0, -170.0]
    """
    lon = ds["lon"].variable
    attrs = {**lon.attrs, "standard_name": "longitude", "units": "degrees_east"}
    ds = ds.assign_coords(lon=xr.Variable(lon.dims, ((lon.values + 180) % 360) - 180, attrs),
                          lat=ds["lat"].assign_attrs(standard_name="latitude", units="degrees_north"))
    for name in ("lat", "lon"):
        if ds[name].ndim == 1 and not ds.indexes[name].is_monotonic_increasing:
            ds = ds.sortby(name)
    if ds["lon"].ndim == 1 and (start := west_edge(ds["lon"].values)):
        ds = ds.isel(lon=np.roll(np.arange(ds.sizes["lon"]), -start))
    return ds


def west_edge(lon: np.ndarray) -> int:
    """Index in ascending longitudes [-180, 180) where a region crossing the antimeridian starts, else 0.

    A region crosses it when its widest gap between neighbouring longitudes
    lies inside the axis rather than across the antimeridian, and is clearly
    a gap (over twice the median step): e.g. 117.5E to 97.5W, sorted as
    -180..-97.5 then 117.5..180, starts at 117.5. The answer depends only on
    the set of longitudes, so every longitude convention gives one order.

    Examples
    --------
    >>> west_edge(np.array([-175.0, -170.0, 160.0, 165.0, 170.0]))
    2
    >>> west_edge(np.arange(-180.0, 180.0, 2.5))
    0
    """
    lon = np.asarray(lon, dtype=float)
    if lon.size < 2:
        return 0
    inner = np.diff(lon)
    across = lon[0] + 360.0 - lon[-1]
    widest = int(np.argmax(inner))
    # a tolerance so float noise on a global grid's equal gaps never rolls it
    clear = inner[widest] > max(across + 1e-6 * 360.0, 2.0 * float(np.median(np.append(inner, across))))
    return widest + 1 if clear else 0


def true_lat_lon(ds: xr.Dataset, path: str) -> xr.Dataset:
    """Add 2-D ``lat``/``lon`` from a CF ``rotated_latitude_longitude`` grid mapping, when the file has none.

    The rotated axes (``grid_latitude``, ``grid_longitude``) stay the grid's
    dims, so the cube becomes curvilinear.

    Examples
    --------
    >>> import iris_sample_data
    >>> path = iris_sample_data.path + "/rotated_pole.nc"
    >>> true_lat_lon(xr.open_dataset(path), path)["lat"].dims
    ('grid_latitude', 'grid_longitude')
    """
    mapping = _rotated_mapping(ds)
    if mapping is None or any(ds[n].attrs.get("standard_name") in ("latitude", "longitude") for n in ds.variables):
        return ds
    # by CF standard name, else by CF axis (some writers give rlat/rlon only axis Y/X)
    axes = {key: [n for n, v in ds.coords.items() if v.ndim == 1 and v.attrs.get("standard_name") == key]
            or [n for n, v in ds.coords.items() if v.ndim == 1 and v.attrs.get("axis") == axis]
            for key, axis in (("grid_latitude", "Y"), ("grid_longitude", "X"))}
    if not axes["grid_latitude"] or not axes["grid_longitude"]:
        raise CoordinateError(f"{path} has a rotated-pole grid mapping '{mapping.name}' but no 1-D "
                              "grid_latitude and grid_longitude coordinates.")
    rlat, rlon = ds[axes["grid_latitude"][0]], ds[axes["grid_longitude"][0]]
    try:
        pole = tuple(float(mapping.attrs[k]) for k in ("grid_north_pole_latitude", "grid_north_pole_longitude"))
    except (KeyError, TypeError, ValueError) as exc:
        raise CoordinateError(f"the rotated-pole grid mapping '{mapping.name}' in {path} lacks a valid "
                              f"{exc.args[0] if isinstance(exc, KeyError) else 'pole position'}.") from exc
    # float64: float32 grid axes would cost about a metre of position
    lat, lon = unrotate(rlat.values.astype(np.float64)[:, None], rlon.values.astype(np.float64)[None, :], *pole,
                        float(mapping.attrs.get("north_pole_grid_longitude", 0.0)))
    dims = (rlat.dims[0], rlon.dims[0])
    return ds.assign_coords(lat=(dims, lat, {"standard_name": "latitude", "units": "degrees_north"}),
                            lon=(dims, lon, {"standard_name": "longitude", "units": "degrees_east"}))


def _rotated_mapping(ds: xr.Dataset) -> xr.DataArray | None:
    for var in ds.data_vars.values():
        name = var.attrs.get("grid_mapping")
        if isinstance(name, str) and name in ds.variables:
            if ds[name].attrs.get("grid_mapping_name") == "rotated_latitude_longitude":
                return ds[name]
    return None


def unrotate(grid_lat: np.ndarray, grid_lon: np.ndarray, pole_lat: float, pole_lon: float,
             pole_grid_lon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """True latitude and longitude (degrees, longitude in [-180, 180)) of rotated-pole grid points.

    Written here (a rotation of the sphere, a few lines of numpy) rather than
    taking pyproj for it. The rotated grid's north pole lies at true
    (``pole_lat``, ``pole_lon``); ``pole_grid_lon`` is the CF
    ``north_pole_grid_longitude``, the true north pole's longitude on the
    rotated grid.

    Examples
    --------
    >>> lat, lon = unrotate(np.array(0.0), np.array(0.0), 37.5, 177.5)
    >>> round(float(lat), 6), round(float(lon), 6)
    (52.5, -2.5)
    """
    phi, lam = np.radians(grid_lat), np.radians(np.asarray(grid_lon) - pole_grid_lon)
    pole = np.radians(pole_lat)
    sin_lat = np.sin(phi) * np.sin(pole) + np.cos(phi) * np.cos(lam) * np.cos(pole)
    lat = np.degrees(np.arcsin(np.clip(sin_lat, -1.0, 1.0)))
    east = np.cos(phi) * np.sin(lam)
    north = np.sin(pole) * np.cos(phi) * np.cos(lam) - np.cos(pole) * np.sin(phi)
    lon = pole_lon + 180.0 + np.degrees(np.arctan2(east, north))
    return lat, (lon + 180.0) % 360.0 - 180.0
