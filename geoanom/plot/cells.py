"""Grid cells as polygons on a map: 1-D or curvilinear grids, any longitude convention, no seam smears.

Maps are drawn in plate carree, in a longitude *frame* ``[west, west + 360)``
chosen from the data alone: a regional grid is contiguous in it whichever
convention its file uses (0..360 or -180..180), so the same data draw the
same picture. Each cell is a quadrilateral whose corners lie halfway between
neighbouring centres, unwrapped around the cell's own centre; a cell cut by
the frame's edge (the seam of a global grid) is drawn twice, shifted by 360
degrees, and the axes clip it, so nothing is drawn across the map. Cells
whose corners still span more than 180 degrees of longitude cannot be drawn
in plate carree and are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PolyCollection

MAX_CELL_SPAN = 180.0  # degrees of longitude; wider cells would cross the map
GLOBAL_GAP = 20.0  # degrees: a grid whose longitudes leave no wider gap goes round the globe


@dataclass(frozen=True)
class MapCells:
    """The cells of a grid in a longitude frame.

    Attributes
    ----------
    west : float
        West edge of the frame; longitudes run over ``[west, west + 360)``.
    lat, lon : ndarray (rows, cols)
        Cell centres, longitudes in the frame.
    corners : ndarray (rows, cols, 4, 2)
        (lon, lat) of each cell's corners, counter-clockwise from (row, col).
    drawable : ndarray of bool (rows, cols)
        Cells that can be drawn (finite, narrower than 180 degrees).
    """

    west: float
    lat: np.ndarray
    lon: np.ndarray
    corners: np.ndarray
    drawable: np.ndarray


def map_cells(field: xr.DataArray | xr.Dataset) -> MapCells:
    """The cells of anything with ``lat``/``lon`` coordinates, in the frame centred on its data.

    Examples
    --------
    >>> import xarray as xr, numpy as np
    >>> grid = xr.Dataset(coords={"lat": [10.0, 12.0], "lon": [170.0, 190.0, 210.0]})
    >>> cells = map_cells(grid)
    >>> cells.west, cells.lon[0].tolist()
    (0.0, [170.0, 190.0, 210.0])
    """
    from ..grid import cell_centres

    lat, lon = (np.asarray(c.values, dtype=float) for c in cell_centres(field))
    west = frame_west(lon)
    lon = to_frame(lon, west)
    corners = _corners(lat, lon)
    span = corners[..., 0].max(axis=-1) - corners[..., 0].min(axis=-1)
    drawable = np.isfinite(corners).all(axis=(-1, -2)) & (span <= MAX_CELL_SPAN)
    return MapCells(west, lat, lon, corners, drawable)


def frame_west(lon: np.ndarray) -> float:
    """West edge of the longitude frame a map is drawn in.

    The frame's edge falls in the widest gap between the data's longitudes,
    so the data are contiguous in it; [-180, 180) when that gap holds 180
    degrees or the grid goes round the globe, [0, 360) when it holds 0.
    Longitudes are compared modulo 360, so any convention gives one frame.
    """
    finite = np.unique(np.round(np.mod(np.asarray(lon, dtype=float)[np.isfinite(lon)], 360.0), 6))
    if finite.size == 0:
        return -180.0
    gaps = np.diff(np.append(finite, finite[0] + 360.0))
    widest = int(np.argmax(gaps))
    start, end = finite[widest], finite[widest] + gaps[widest]
    # no gap wider than a few cells: the grid goes round the globe (curvilinear grids have many longitudes)
    global_grid = gaps[widest] < GLOBAL_GAP or (finite.size > 2 and gaps[widest] <= 2 * np.median(gaps) + 1e-6)
    if global_grid or start < 180.0 < end or start < 540.0 < end:
        return -180.0
    if start < 360.0 < end:
        return 0.0
    return float(start + gaps[widest] / 2)


def to_frame(lon: np.ndarray, west: float) -> np.ndarray:
    """Longitudes moved by whole turns into ``[west, west + 360)``."""
    return np.mod(np.asarray(lon, dtype=float) - west, 360.0) + west


def _near(values: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Longitudes moved by whole turns to within 180 degrees of ``reference``."""
    return reference + np.mod(values - reference + 180.0, 360.0) - 180.0


def _padded(lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres with one ring of extrapolated cells around them (the outer edges mirror the inner)."""
    step = _typical_step(lat, lon)
    for axis in (0, 1):
        if lat.shape[axis] > 1:
            first, second = np.take(lat, [0], axis), np.take(lat, [1], axis)
            last, before = np.take(lat, [-1], axis), np.take(lat, [-2], axis)
            lon_first, lon_last = np.take(lon, [0], axis), np.take(lon, [-1], axis)
            lon_second = _near(np.take(lon, [1], axis), lon_first)
            lon_before = _near(np.take(lon, [-2], axis), lon_last)
            lat = np.concatenate([2 * first - second, lat, 2 * last - before], axis)
            lon = np.concatenate([2 * lon_first - lon_second, lon, 2 * lon_last - lon_before], axis)
        else:  # a single row or column: cells as wide as the grid's other steps (1 degree for one cell)
            lat = np.concatenate([lat - step * (axis == 0), lat, lat + step * (axis == 0)], axis)
            lon = np.concatenate([lon - step * (axis == 1), lon, lon + step * (axis == 1)], axis)
    return np.clip(lat, -90.0, 90.0), lon


def _typical_step(lat: np.ndarray, lon: np.ndarray) -> float:
    """Median distance in degrees between neighbouring centres; 1 for a single cell."""
    steps = []
    for axis in (0, 1):
        if lat.shape[axis] > 1:
            dlat = np.diff(lat, axis=axis)
            dlon = _near(np.diff(lon, axis=axis), 0.0)
            steps.append(np.hypot(dlat, dlon).ravel())
    steps = np.concatenate(steps) if steps else np.array([])
    steps = steps[np.isfinite(steps) & (steps > 0)]
    return float(np.median(steps)) if steps.size else 1.0


def _corners(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """(rows, cols, 4, 2) corners: each the mean of the four centres around it, unwrapped about the cell."""
    plat, plon = _padded(lat, lon)
    quad_lat = np.stack([plat[:-1, :-1], plat[:-1, 1:], plat[1:, 1:], plat[1:, :-1]])
    quad_lon = np.stack([plon[:-1, :-1], plon[:-1, 1:], plon[1:, 1:], plon[1:, :-1]])
    corner_lat = quad_lat.mean(axis=0)
    corner_lon = _near(quad_lon, quad_lon[0]).mean(axis=0)  # the four around a corner may straddle the seam
    # corner (i, j) sits between centres i-1..i and j-1..j; cell (i, j) has corners (i, j) .. (i+1, j+1)
    lats = np.stack([corner_lat[:-1, :-1], corner_lat[:-1, 1:], corner_lat[1:, 1:], corner_lat[1:, :-1]], axis=-1)
    lons = np.stack([corner_lon[:-1, :-1], corner_lon[:-1, 1:], corner_lon[1:, 1:], corner_lon[1:, :-1]], axis=-1)
    lons = _near(lons, lon[..., None])  # every cell contiguous around its own centre
    return np.stack([lons, lats], axis=-1)


def wrapped(vertices: np.ndarray, west: float) -> tuple[np.ndarray, np.ndarray]:
    """Shapes (n, k, 2) plus a copy, shifted a turn, of each that sticks out of the frame (axes clip both).

    Returns the shapes and, for each, the index of the shape it came from.
    """
    lon = vertices[..., 0]
    shapes, index = [vertices], [np.arange(len(vertices))]
    for sticks_out, turn in ((lon.max(axis=1) > west + 360.0, -360.0), (lon.min(axis=1) < west, 360.0)):
        copy = vertices[sticks_out].copy()
        copy[..., 0] += turn
        shapes.append(copy)
        index.append(np.flatnonzero(sticks_out))
    return np.concatenate(shapes), np.concatenate(index)


def draw_cells(ax: "Axes", cells: MapCells, values: np.ndarray, **style: Any) -> "PolyCollection":
    """Fill each cell with finite ``values`` (rows, cols); NaN cells stay transparent (land, no data).

    ``style`` goes to :class:`~matplotlib.collections.PolyCollection`
    (``cmap``, ``norm``, ...). Returns the collection, for a colour bar.
    """
    from matplotlib.collections import PolyCollection

    values = np.asarray(values, dtype=float)
    keep = cells.drawable & np.isfinite(values)
    vertices, index = wrapped(cells.corners[keep], cells.west)
    # no antialiasing and no edges: neighbouring cells meet without hairline gaps
    collection = PolyCollection(vertices, array=values[keep][index], antialiased=False, linewidths=0, **style)
    ax.add_collection(collection)
    return collection


def outline_cells(ax: "Axes", cells: MapCells, mask: np.ndarray, wrap: bool = False, **style: Any) -> None:
    """Draw the boundary of the cells where ``mask`` is true (edges between flagged and other cells).

    With ``wrap`` (a global grid), the last column neighbours the first, so
    flags on both sides of the seam draw no edge along it.
    """
    from matplotlib.collections import LineCollection

    mask = np.asarray(mask, dtype=bool) & cells.drawable
    padded = np.pad(np.pad(mask, ((1, 1), (0, 0))), ((0, 0), (1, 1)), mode="wrap" if wrap else "constant")
    corners = cells.corners
    edges = []
    # cell edges in corner order: (0,1) towards row-1, (1,2) towards col+1, (2,3) towards row+1, (3,0) towards col-1
    for (a, b), (dr, dc) in (((0, 1), (-1, 0)), ((1, 2), (0, 1)), ((2, 3), (1, 0)), ((3, 0), (0, -1))):
        neighbour = padded[1 + dr:padded.shape[0] - 1 + dr, 1 + dc:padded.shape[1] - 1 + dc]
        boundary = mask & ~neighbour
        edges.append(np.stack([corners[boundary][:, a], corners[boundary][:, b]], axis=1))
    segments = np.concatenate(edges) if edges else np.empty((0, 2, 2))
    if len(segments):
        ax.add_collection(LineCollection(wrapped(segments, cells.west)[0], **style))


def map_extent(cells: MapCells) -> tuple[float, float, float, float]:
    """(west, east, south, north) around the drawable cells, inside the frame and the globe.

    Examples
    --------
    >>> import xarray as xr
    >>> map_extent(map_cells(xr.Dataset(coords={"lat": [10.0, 12.0], "lon": [170.0, 190.0, 210.0]})))
    (160.0, 220.0, 9.0, 13.0)
    """
    corners = cells.corners[cells.drawable] if cells.drawable.any() else np.zeros((1, 4, 2))
    west = max(float(corners[..., 0].min()), cells.west)
    east = min(float(corners[..., 0].max()), cells.west + 360.0)
    south, north = max(float(corners[..., 1].min()), -90.0), min(float(corners[..., 1].max()), 90.0)
    return west, east, south, north


def set_extent(ax: "Axes", cells: MapCells) -> None:
    """Limits around the drawable cells (inside the frame), a plate carree aspect, and E/W, N/S ticks."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    west, east, south, north = map_extent(cells)
    ax.set_xlim(west, east)
    ax.set_ylim(south, north)
    middle = np.radians(np.clip((south + north) / 2, -70.0, 70.0))
    ax.set_aspect(1.0 / np.cos(middle), adjustable="box")  # plate carree, true shape at mid-latitude
    for axis in (ax.xaxis, ax.yaxis):  # ticks at whole multiples of 1, 2, 3, 5, 6 ... degrees: 30, 60, ...
        axis.set_major_locator(MaxNLocator(nbins=8, steps=[1, 2, 2.5, 3, 5, 6, 10]))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: _degrees(np.mod(x + 180.0, 360.0) - 180.0, "E", "W")))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: _degrees(y, "N", "S")))


def _degrees(value: float, positive: str, negative: str) -> str:
    value = round(float(value), 6) + 0.0  # + 0.0: no "-0"
    if value == 0 or abs(value) == 180:
        return f"{abs(value):g}\u00b0"
    return f"{abs(value):g}\u00b0{positive if value > 0 else negative}"
