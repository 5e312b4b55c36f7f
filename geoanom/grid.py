"""The geometry of a grid: its spatial dimensions, cell centres, spacing, extent, areas and longitude wrap.

Regular latitude-longitude grids and curvilinear ones (ocean models' 2-D
``lat``/``lon``) alike; :mod:`geoanom.tiling` cuts such a grid into
geohash tiles.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from .errors import CoordinateError


def spatial_dims(cube: xr.Dataset | xr.DataArray) -> tuple[str, str]:
    """The two spatial dimensions of a cube: (lat, lon) or a curvilinear (y, x)."""
    if "lat" not in cube.coords or "lon" not in cube.coords:
        raise CoordinateError("the cube has no 'lat'/'lon' coordinates; open it with geoanom.open_cube.")
    dims = tuple(dict.fromkeys(cube["lat"].dims + cube["lon"].dims))
    if len(dims) != 2:
        raise CoordinateError(f"expected a 2-D horizontal grid, found spatial dimensions {dims}.")
    return dims  # type: ignore[return-value]


def cell_centres(cube: xr.Dataset | xr.DataArray) -> tuple[xr.DataArray, xr.DataArray]:
    """Latitude and longitude of every cell centre, broadcast over the spatial dims."""
    dims = spatial_dims(cube)
    lat, lon = xr.broadcast(cube["lat"].reset_coords(drop=True), cube["lon"].reset_coords(drop=True))
    return lat.transpose(*dims), lon.transpose(*dims)


def grid_spacing(cube: xr.Dataset | xr.DataArray) -> tuple[float, float]:
    """Typical (lat, lon) size of a grid cell in degrees of latitude and of longitude.

    A 1-D axis gives its median step. A curvilinear grid (ORCA, rotated
    pole) gives, at every cell, the parallelogram spanned by the steps to
    its neighbours along both grid axes in latitude/longitude degrees: its
    latitude extent and its area divided by that extent, as medians over the
    cells. Geohash tiles are rectangles in the same degrees, so these count
    the cells a tile holds whatever the grid's orientation; steps along one
    grid axis alone would mistake a step along a slanted row for a cell's
    size (ORCA's rows change latitude by a few hundredths of a degree).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> grid_spacing(xr.Dataset(coords={"lat": np.arange(0, 10, 0.5), "lon": np.arange(0, 20, 2.0)}))
    (0.5, 2.0)
    """
    if cube["lat"].ndim == 1 and cube["lon"].ndim == 1:
        return _axis_step(cube["lat"].values), _axis_step(cube["lon"].values)
    lat, lon = (np.asarray(c.values, dtype=float) for c in cell_centres(cube))
    if min(lat.shape) < 2:
        return _axis_step(lat.ravel()), _axis_step(lon.ravel())
    dlat0, dlon0 = np.diff(lat, axis=0)[:, :-1], _wrap_step(np.diff(lon, axis=0))[:, :-1]
    dlat1, dlon1 = np.diff(lat, axis=1)[:-1], _wrap_step(np.diff(lon, axis=1))[:-1]
    area = np.abs(dlat0 * dlon1 - dlat1 * dlon0)
    height = np.hypot(dlat0, dlat1)
    usable = np.isfinite(area) & (height > 0) & (area > 0)
    if not usable.any():
        return 1.0, 1.0
    return float(np.median(height[usable])), float(np.median(area[usable] / height[usable]))


def _wrap_step(steps: np.ndarray) -> np.ndarray:
    """Longitude steps in [-180, 180): a step across the antimeridian is small, not 359 degrees."""
    return (steps + 180.0) % 360.0 - 180.0


def _axis_step(values: np.ndarray) -> float:
    steps = np.abs(_wrap_step(np.diff(np.asarray(values, dtype=float))))
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(np.median(steps)) if steps.size else 1.0


def grid_extent(cube: xr.Dataset | xr.DataArray) -> tuple[float, float]:
    """(lat, lon) extent of the grid's cell centres in degrees; the longitude one is the shortest arc holding them all.

    Examples
    --------
    >>> import xarray as xr
    >>> grid_extent(xr.Dataset(coords={"lat": [0.0, 10.0], "lon": [170.0, -170.0]}))
    (10.0, 20.0)
    """
    # the coordinates as they are: broadcasting 1-D axes would cost a grid's worth of memory
    lat, lon = (np.asarray(cube[name].values, dtype=float).ravel() for name in ("lat", "lon"))
    lon = np.unique(np.mod(lon[np.isfinite(lon)], 360.0))
    if lon.size < 2:
        return float(np.nanmax(lat) - np.nanmin(lat)), 0.0
    gaps = np.diff(np.concatenate([lon, [lon[0] + 360.0]]))
    return float(np.nanmax(lat) - np.nanmin(lat)), float(360.0 - gaps.max())


EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


def cell_areas(cube: xr.Dataset | xr.DataArray) -> np.ndarray:
    """Area of every grid cell in km^2, over the spatial dimensions.

    On a 1-D latitude-longitude grid a cell's edges lie halfway between
    centres (the outer ones mirror the inner, latitudes clipped to the
    poles) and its area is exact on the sphere:
    ``R^2 * dlon * (sin(lat_north) - sin(lat_south))``.

    On a curvilinear grid (2-D ``lat``/``lon``: ORCA, NEMO, rotated poles)
    each cell is the spherical quadrilateral whose corners are the
    normalised means of the four surrounding centres as unit vectors, so
    the antimeridian, the geographic pole and a row's change of direction
    at the tripolar fold need no longitude arithmetic. Outside the grid's
    edges the centres are continued by one step (a one-sided difference),
    except across a longitude seam that closes the globe
    (:func:`wraps_in_longitude`), where the other edge's column is the
    neighbour, and at a T-point north fold (the top row is its own mirror
    image: each of its cells appears twice), where a cell ends at the fold
    through its centre, so the two copies share the one cell's area.
    Where the quadrilateral strays more than :data:`AREA_FACTOR` either
    way from the parallelogram of the cell's shorter steps to its
    neighbours along each axis, the cell takes that parallelogram: NEMO
    runs that eliminate land-only processors fill their cells with
    placeholder coordinates, and quadrilaterals reaching into such a patch
    would span tens of degrees.

    Parameters
    ----------
    cube : xarray.Dataset or xarray.DataArray
        A grid with ``lat`` and ``lon`` coordinates, 1-D or 2-D.

    Returns
    -------
    numpy.ndarray of float64 over the spatial dimensions
        NaN where a cell or its neighbours have no coordinates.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> lat, lon = np.meshgrid(np.arange(-89.5, 90.0), np.arange(-179.5, 180.0), indexing="ij")
    >>> grid = xr.Dataset(coords={"lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})
    >>> round(float(cell_areas(grid).sum() / (4 * np.pi * EARTH_RADIUS_KM**2)), 4)
    1.0
    """
    if cube["lat"].ndim == 1 and cube["lon"].ndim == 1:
        lat_edges = np.clip(_edges(np.asarray(cube["lat"].values, dtype=float)), -90.0, 90.0)
        lon_edges = _edges(unwrapped_lon(cube))
        band = np.abs(np.diff(np.sin(np.radians(lat_edges))))
        width = np.abs(np.radians(np.diff(lon_edges)))
        areas = EARTH_RADIUS_KM**2 * band[:, None] * width[None, :]
        return areas if spatial_dims(cube)[0] == cube["lat"].dims[0] else areas.T
    lat, lon = (np.asarray(c.values, dtype=float) for c in cell_centres(cube))
    if min(lat.shape) < 2:  # a single row or column has no second direction to span a cell
        dlat, dlon = grid_spacing(cube)
        return EARTH_RADIUS_KM**2 * np.radians(dlat) * np.radians(dlon) * np.cos(np.radians(lat))
    return EARTH_RADIUS_KM**2 * _curvilinear_areas(lat, lon, wraps_in_longitude(cube))


AREA_FACTOR = 2.0
"""How far (either way) a curvilinear cell's quadrilateral may stray from the parallelogram of its shorter steps.

Ocean cells of ORCA2 and NEMO's eORCA1 cover 1.0 to 1.25 times it; cells
whose quadrilateral reaches into a patch of placeholder coordinates cover
up to thousands of times it (see :func:`cell_areas`)."""


STRIP_CELLS = 1 << 16
"""Cells of a curvilinear grid whose areas are worked out at once: the temporaries stay a few MB whatever the grid."""


def _dot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.stack([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


def _norm(v: np.ndarray) -> np.ndarray:
    return np.sqrt(_dot(v, v))


def _normalised(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / _norm(v)


def _continued(inner: np.ndarray, next_in: np.ndarray) -> np.ndarray:
    """The point one step beyond ``inner`` away from ``next_in``: a one-sided difference at a grid edge."""
    return _normalised(2.0 * inner - next_in)


def _curvilinear_areas(lat: np.ndarray, lon: np.ndarray, wrap: bool) -> np.ndarray:
    """Areas on the unit sphere of a curvilinear grid's cells (see :func:`cell_areas`), a strip of rows at a time."""
    ny, nx = lat.shape
    padded = np.empty((3, ny + 2, nx + 2))  # filled in place: the grid's only full-size temporary
    phi, lam = np.radians(lat), np.radians(lon)
    padded[2, 1:-1, 1:-1] = np.cos(phi)
    padded[0, 1:-1, 1:-1] = padded[2, 1:-1, 1:-1] * np.cos(lam)
    padded[1, 1:-1, 1:-1] = padded[2, 1:-1, 1:-1] * np.sin(lam)
    padded[2, 1:-1, 1:-1] = np.sin(phi)
    del phi, lam
    inner = padded[:, 1:-1]
    if wrap:  # the seam column's neighbour is the other edge's, not a step outside the globe
        inner[:, :, 0], inner[:, :, -1] = inner[:, :, -2], inner[:, :, 1]
    else:
        inner[:, :, 0] = _continued(inner[:, :, 1], inner[:, :, 2])
        inner[:, :, -1] = _continued(inner[:, :, -2], inner[:, :, -3])
    fold = _is_t_fold(padded[:, -2, 1:-1])
    padded[:, -1] = padded[:, -2] if fold else _continued(padded[:, -2], padded[:, -3])
    padded[:, 0] = _continued(padded[:, 1], padded[:, 2])
    rows = max(1, STRIP_CELLS // nx)
    areas = np.empty(lat.shape)
    for start in range(0, ny, rows):
        stop = min(start + rows, ny)
        areas[start:stop] = _strip_areas(padded[:, start:stop + 2], fold and stop == ny)
    return areas


def _strip_areas(padded: np.ndarray, fold: bool) -> np.ndarray:
    """Areas of the cells of rows 1 to m of (3, m + 2, nx + 2) padded centres; ``fold``: the last is a T-fold row."""
    corners = _normalised(padded[:, :-1, :-1] + padded[:, 1:, :-1] + padded[:, :-1, 1:] + padded[:, 1:, 1:])
    a, b, c, d = corners[:, :-1, :-1], corners[:, :-1, 1:], corners[:, 1:, 1:], corners[:, 1:, :-1]
    # signed halves (either orientation of the grid), so a twisted quadrilateral is not counted twice
    areas = np.abs(_signed_triangle(a, b, c) + _signed_triangle(a, c, d))
    # the parallelogram of the shorter steps either way along each axis, which no placeholder reaches
    middle = padded[:, 1:-1, 1:-1]
    across = _shorter(middle - padded[:, 1:-1, :-2], padded[:, 1:-1, 2:] - middle)
    along = _shorter(middle - padded[:, :-2, 1:-1], padded[:, 2:, 1:-1] - middle)
    if fold:  # a top-row cell ends at the fold through its centre: its step north is none
        along[:, -1] = middle[:, -1] - padded[:, -3, 1:-1]
    parallelogram = _norm(_cross(across, along))
    if fold:
        parallelogram[-1] /= 2
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = areas / parallelogram
    return np.where((ratio > AREA_FACTOR) | (ratio < 1.0 / AREA_FACTOR), parallelogram, areas)


def _shorter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(_norm(a) <= _norm(b), a, b)


def _is_t_fold(row: np.ndarray) -> bool:
    """Whether a grid's top row (3, nx) is a T-point north fold: column i is column nx - i (mod nx)."""
    if row.shape[1] < 4 or not np.isfinite(row).all():
        return False
    mirror = np.roll(row[:, ::-1], 1, axis=1)
    step = np.median(_norm(np.diff(row, axis=1)))
    return bool(step > 0 and np.max(_norm(row - mirror)) < 1e-3 * step)


def _signed_triangle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Signed spherical excess of triangles of unit vectors (3, ...) (Van Oosterom and Strackee, 1983)."""
    return 2.0 * np.arctan2(_dot(a, _cross(b, c)), 1.0 + _dot(a, b) + _dot(b, c) + _dot(c, a))


def _edges(centres: np.ndarray) -> np.ndarray:
    if centres.size == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def wraps_in_longitude(cube: xr.Dataset | xr.DataArray) -> bool:
    """True when the grid's last column meets its first: a regular global 1-D longitude axis, or a
    global curvilinear grid (ORCA / NEMO) whose rows go once round the globe.

    Neighbour features, region filters and stitched labels then join the
    last column to the first.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> wraps_in_longitude(xr.Dataset(coords={"lon": np.arange(-180.0, 180.0, 2.5)}))
    True
    >>> wraps_in_longitude(xr.Dataset(coords={"lon": [170.0, 175.0, -180.0, -175.0]}))
    False
    """
    lon = cube["lon"]
    if lon.ndim == 2:
        return _rows_close_the_globe(cube)
    if lon.ndim != 1 or lon.size < 3:
        return False
    steps = _wrap_step(np.diff(np.asarray(lon.values, dtype=float)))
    step = float(np.median(steps))
    return bool(np.allclose(steps, step, rtol=1e-3) and abs(abs(step) * lon.size - 360.0) < 1e-3 * 360.0)


def _rows_close_the_globe(cube: xr.Dataset | xr.DataArray) -> bool:
    """Whether a curvilinear grid's rows (away from the poles, where ORCA folds) run once round the
    globe and the step from the last column back to the first is an ordinary one."""
    lat, lon = (np.asarray(c.values, dtype=float) for c in cell_centres(cube))
    rows = np.nanmax(np.abs(lat), axis=1) < 60.0
    if lon.shape[1] < 3 or not rows.any():
        return False
    lat, lon = lat[rows], lon[rows]
    steps = _wrap_step(np.diff(lon, axis=1))
    seam_lon = _wrap_step(lon[:, 0] - lon[:, -1])
    turns = (steps.sum(axis=1) + seam_lon) / 360.0
    typical = np.median(np.hypot(steps, np.diff(lat, axis=1)), axis=1)
    seam = np.hypot(seam_lon, lat[:, 0] - lat[:, -1])
    return bool(np.all(np.abs(turns - np.round(turns)) < 1e-6) and np.all(np.abs(np.round(turns)) == 1)
                and np.all(seam < 1.5 * typical))


def crosses_antimeridian(cube: xr.Dataset | xr.DataArray) -> bool:
    """True for a regional 1-D longitude axis that runs across the antimeridian (e.g. 117.5E to 97.5W).

    `open_cube` keeps such an axis contiguous, west to east: its values are
    in [-180, 180) and step from 179.x down to -180 once, so it is not
    monotonic. Draw or interpolate it on :func:`unwrapped_lon`.

    Examples
    --------
    >>> import xarray as xr
    >>> crosses_antimeridian(xr.Dataset(coords={"lon": [170.0, 175.0, -180.0, -175.0]}))
    True
    """
    lon = cube["lon"]
    return lon.ndim == 1 and lon.size > 1 and bool(np.any(np.diff(np.asarray(lon.values, dtype=float)) < 0))


def unwrapped_lon(cube: xr.Dataset | xr.DataArray) -> np.ndarray:
    """The 1-D longitude axis made monotonic by continuing past 180 (170, 175, 180, 185 for 170, 175, -180, -175).

    Examples
    --------
    >>> import xarray as xr
    >>> unwrapped_lon(xr.Dataset(coords={"lon": [170.0, 175.0, -180.0, -175.0]})).tolist()
    [170.0, 175.0, 180.0, 185.0]
    """
    lon = np.asarray(cube["lon"].values, dtype=float)
    if lon.ndim != 1 or lon.size < 2:
        return lon
    return lon[0] + np.concatenate([[0.0], np.cumsum(_wrap_step(np.diff(lon)))])
