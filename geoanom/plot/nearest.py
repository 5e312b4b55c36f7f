"""The grid cell nearest to a point, among the cells with data, and how far from the point it is.

A point on land of an ocean grid is drawn at the nearest cell with data,
and the picture says how far that is ("nearest cell with data to 55.5, -38,
255 km away"); a point farther than :data:`NEAREST_LIMIT_SPACINGS` grid
spacings from every cell with data is refused, naming the distance: its
nearest cell with data is somewhere else, not a picture of the point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from ..model import AnomalyModel

EARTH_RADIUS_KM = 6371.0
# A cell with data is drawn for a point at most this many grid spacings (the cell's longer side) from it: a
# coastal point one land cell from the sea (1.5 spacings) is drawn; a point two land cells in (2.5) is refused.
# Two grid diagonals (2.8 spacings) drew a land point 2.5 cells from the sea, 318 km off on a 127 km grid.
NEAREST_LIMIT_SPACINGS = 2.0


def nearest_cell(model: "AnomalyModel", lat: float, lon: float, variable: str | None = None) -> tuple[int, int]:
    """Row and column of the grid cell nearest to a point, among the cells that have data.

    Distances are great-circle distances, so this works on curvilinear
    grids (2-D ``lat``/``lon``), across the antimeridian and for longitudes
    in either [-180, 180) or [0, 360). Cells without a climatology for the
    variable (land on an ocean grid, cells without valid training values)
    are passed over; :func:`nearest_description` says how far the cell
    found is from the point.

    Parameters
    ----------
    model : AnomalyModel
    lat, lon : float
        The point, in degrees.
    variable : str, optional
        The variable whose cells count (default: the model's first).

    Returns
    -------
    (int, int)
        Indices along the model's two spatial dimensions (``model.labels.dims``).

    Raises
    ------
    GeoanomError
        The latitude is outside [-90, 90], or the point is farther from every
        cell with data than two grid spacings: outside the grid, or on a
        patch of cells without data (land on an ocean grid), each said so
        with the distance.

    Examples
    --------
    >>> row, col = nearest_cell(model, 25.5, -80.2)  # doctest: +SKIP
    >>> model.labels.isel(lat=row, lon=col).item()  # doctest: +SKIP
    'dh'
    """
    from ..errors import GeoanomError

    index = variable_index(model, variable)
    has_data = np.isfinite(model.climatology.coefficients[:, index]).all(axis=0)
    if not has_data.any():
        raise GeoanomError(f"no cell of the model's grid has data for '{model.variables[index]}'.")
    return nearest_grid_cell(model.labels, lat, lon, has_data)


def nearest_grid_cell(grid: xr.Dataset | xr.DataArray, lat: float, lon: float,
                      usable: np.ndarray | None = None) -> tuple[int, int]:
    """Row and column of the cell of ``grid`` (anything with ``lat``/``lon``) nearest to a point.

    As :func:`nearest_cell`, on a bare grid: ``usable`` (bool, the grid's
    shape) limits the candidates. It reads coordinates only, so the command
    line checks a point with it before any computation.

    Examples
    --------
    >>> grid = xr.Dataset(coords={"lat": [10.0, 11.0, 12.0], "lon": [30.0, 31.0, 32.0]})
    >>> nearest_grid_cell(grid, 11.2, 31.9)
    (1, 2)
    """
    from ..errors import GeoanomError

    distance, lats, lons = distances_km(grid, lat, lon)
    if usable is not None:
        distance = np.where(usable, distance, np.inf)
    row, col = np.unravel_index(int(np.argmin(distance)), distance.shape)
    limit = NEAREST_LIMIT_SPACINGS * spacing_km(grid, lats[row, col])
    if distance[row, col] > limit:
        away = (f"({lats[row, col]:.2f}, {lons[row, col]:.2f}) is {distance[row, col]:,.0f} km away, more than two "
                f"grid spacings ({limit:,.0f} km).")
        if usable is None:
            raise GeoanomError(f"the point {lat:g}, {lon:g} is outside the grid: the nearest cell {away}")
        any_row, any_col = nearest_grid_cell(grid, lat, lon)  # raises if the point is off the grid itself
        raise GeoanomError(
            f"the point {lat:g}, {lon:g} is on a cell without data (land, or no valid training values) at "
            f"{lats[any_row, any_col]:.2f}, {lons[any_row, any_col]:.2f}: the nearest cell with data {away}"
        )
    return int(row), int(col)


def nearest_description(grid: xr.Dataset | xr.DataArray, lat: float, lon: float, row: int, col: int) -> str:
    """How the cell (``row``, ``col``) drawn for a point relates to it: the pictures' words.

    "nearest cell to" when it is the grid's nearest cell to the point,
    "nearest cell with data to" when the nearest one has none (land), and
    its great-circle distance from the point either way.

    Examples
    --------
    >>> grid = xr.Dataset(coords={"lat": [10.0, 11.0, 12.0], "lon": [30.0, 31.0, 32.0]})
    >>> nearest_description(grid, 11.0, 31.0, 1, 1)
    'nearest cell to 11, 31, 0 km away'
    >>> nearest_description(grid, 11.0, 31.0, 1, 2)
    'nearest cell with data to 11, 31, 109 km away'
    """
    distance = distances_km(grid, lat, lon)[0]
    nearest = np.unravel_index(int(np.argmin(distance)), distance.shape) == (row, col)
    return f"nearest cell{'' if nearest else ' with data'} to {lat:g}, {lon:g}, {distance[row, col]:,.0f} km away"


def distances_km(grid: xr.Dataset | xr.DataArray, lat: float, lon: float) -> tuple[np.ndarray, ...]:
    """Great-circle distances (km) from a point to every cell centre of ``grid``, and the centres' lat and lon.

    Examples
    --------
    >>> grid = xr.Dataset(coords={"lat": [0.0], "lon": [0.0, 1.0]})
    >>> distances_km(grid, 0.0, 0.0)[0].round(1).tolist()
    [[0.0, 111.2]]
    """
    from ..errors import GeoanomError
    from ..grid import cell_centres

    if not (np.isfinite(lat) and np.isfinite(lon) and -90.0 <= lat <= 90.0):
        raise GeoanomError(f"the point {lat:g}, {lon:g} is not on the globe: latitude must be in [-90, 90].")
    lats, lons = (np.asarray(c.values, dtype=float) for c in cell_centres(grid))
    return _great_circle_km(lat, lon, lats, lons), lats, lons


def spacing_km(grid: xr.Dataset | xr.DataArray, lat: float) -> float:
    """The grid's spacing at latitude ``lat``: its cells' longer side, in km.

    Examples
    --------
    >>> grid = xr.Dataset(coords={"lat": [59.0, 60.0, 61.0], "lon": [0.0, 2.0, 4.0]})
    >>> round(spacing_km(grid, 60.0))
    111
    """
    from ..grid import grid_spacing

    step_lat, step_lon = grid_spacing(grid)
    return float(max(step_lat, step_lon * np.cos(np.radians(lat))) * np.pi / 180 * EARTH_RADIUS_KM)


def _great_circle_km(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Haversine distances (km) from one point to many."""
    phi1, phi2 = np.radians(lat), np.radians(lats)
    half_dphi, half_dlambda = (phi2 - phi1) / 2, np.radians(lons - lon) / 2
    h = np.sin(half_dphi) ** 2 + np.cos(phi1) * np.cos(phi2) * np.sin(half_dlambda) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.clip(h, 0.0, 1.0)))


def variable_index(model: "AnomalyModel", variable: str | None) -> int:
    """The position of ``variable`` among the model's (default: its first), or a one-sentence refusal.

    Examples
    --------
    >>> variable_index(model, "tas")  # doctest: +SKIP
    0
    """
    from ..errors import VariableNotFoundError

    if variable is None:
        return 0
    if variable not in model.variables:
        raise VariableNotFoundError(f"the model has no variable '{variable}'; its variables: "
                                    f"{', '.join(model.variables)}.")
    return model.variables.index(variable)
