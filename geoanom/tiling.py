"""Geohash tiles over a grid, and the plan of which tasks fit which tiles.

Every grid cell belongs to the geohash tile that contains its centre. Tiles
are the unit of modelling: one detector ensemble per tile.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from . import geohash
from .errors import CoordinateError, GeoanomError
from .geohash import MAX_PRECISION

# A tile should hold at least this many training observations to fit its
# ensemble: a few-component mixture in a handful of dimensions and an
# isolation forest of 256-observation trees are well determined by it.
TARGET_TILE_OBSERVATIONS = 1000


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


def choose_precision(
    cube: xr.Dataset | xr.DataArray,
    n_times: int | None = None,
    target_observations: int = TARGET_TILE_OBSERVATIONS,
) -> tuple[int, str]:
    """The finest geohash precision whose typical tile holds enough observations.

    A tile at precision p covers ``geohash.cell_size(p)`` degrees, so it holds
    about ``(tile_lat / dlat) * (tile_lon / dlon)`` grid cells (at least one
    along each axis, and no more than the grid spans), each observed
    ``n_times`` times in training; ``dlat`` and ``dlon`` come from
    :func:`grid_spacing`, which measures curvilinear cells too.

    Returns
    -------
    precision : int
    reason : str
        One sentence saying why, for logs and provenance.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> grid = xr.Dataset(coords={"lat": np.arange(0.0, 30.0, 0.5), "lon": np.arange(0.0, 60.0, 0.5)})
    >>> choose_precision(grid, n_times=120)[1][:62]
    'precision 2: a tile of 5.625 x 11.25 degrees holds about 253 c'
    """
    n_times = int(n_times if n_times is not None else cube.sizes.get("time", 1))
    dlat, dlon = grid_spacing(cube)
    # a tile larger than the grid holds only the grid's rows and columns
    span_lat, span_lon = (extent / step + 1.0 for extent, step in zip(grid_extent(cube), (dlat, dlon)))
    for precision in range(MAX_PRECISION, 0, -1):
        tile_lat, tile_lon = geohash.cell_size(precision)
        cells = min(max(1.0, tile_lat / dlat), span_lat) * min(max(1.0, tile_lon / dlon), span_lon)
        if cells * n_times >= target_observations:
            return precision, (
                f"precision {precision}: a tile of {tile_lat:g} x {tile_lon:g} degrees holds about "
                f"{cells:.0f} cells x {n_times} time steps = {cells * n_times:.0f} observations "
                f"(target {target_observations}) on a {dlat:g} x {dlon:g} degree grid"
            )
    return 1, f"precision 1: even the coarsest tiles hold fewer than {target_observations} observations"


def tile_labels(cube: xr.Dataset | xr.DataArray, precision: int | None = None) -> xr.DataArray:
    """Geohash label of the tile containing each cell centre.

    Parameters
    ----------
    cube : Dataset or DataArray
        With ``lat`` and ``lon`` coordinates (1-D or 2-D curvilinear).
    precision : int, optional
        Geohash length. When None it is chosen by :func:`choose_precision`,
        and the reason is kept in the ``precision_reason`` attribute.

    Returns
    -------
    DataArray of str over the spatial dimensions, named ``tile``.
    """
    if precision is None:
        precision, reason = choose_precision(cube)
    elif not 1 <= int(precision) <= MAX_PRECISION:
        raise GeoanomError(f"geohash precision must be between 1 and {MAX_PRECISION}, got {precision}.")
    else:
        reason = f"precision {precision}: given"
    lat, lon = cell_centres(cube)
    labels = geohash.encode(lat.values, lon.values, precision)
    return xr.DataArray(
        labels,
        dims=lat.dims,
        coords={"lat": cube["lat"].reset_coords(drop=True), "lon": cube["lon"].reset_coords(drop=True)},
        name="tile",
        attrs={
            "long_name": "geohash tile of the cell centre",
            "precision": int(precision),
            "precision_reason": reason,
        },
    )


def tile_codes(labels: xr.DataArray | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Integer code of each cell's tile and the sorted tile names the codes index."""
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    return codes.reshape(np.shape(labels)).astype(np.int32), names


@dataclass
class FitPlan:
    """Which spatial blocks feed which batch of tiles.

    Attributes
    ----------
    batch_of_tile : ndarray (n_tiles,)
        Batch number of every tile code.
    blocks_of_batch : list of list of (int, int)
        For each batch, the spatial block indices holding any of its cells.
    """

    batch_of_tile: np.ndarray
    blocks_of_batch: list[list[tuple[int, int]]]


def group_cells(codes: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(tile code, flat cell indices) for every tile present in a block of codes; negative codes are no tile.

    Examples
    --------
    >>> [(code, cells.tolist()) for code, cells in group_cells(np.array([[1, 0], [1, -1]]))]
    [(0, [1]), (1, [0, 2])]
    """
    flat = codes.ravel()
    order = np.argsort(flat, kind="stable")
    present, starts = np.unique(flat[order], return_index=True)
    bounds = list(starts[1:]) + [len(flat)]
    return [(int(code), order[start:stop]) for code, start, stop in zip(present, starts, bounds) if code >= 0]


def plan_batches(codes: np.ndarray, chunks: tuple[tuple[int, ...], tuple[int, ...]], max_tiles: int = 64) -> FitPlan:
    """Group tiles into batches by the spatial block that holds their first cell.

    A batch's tiles are fitted in one task; the block tasks that hold any of
    its cells send their partial sketches to it (and only those).
    """
    row_block = np.repeat(np.arange(len(chunks[0])), chunks[0])
    col_block = np.repeat(np.arange(len(chunks[1])), chunks[1])
    cells = pd.DataFrame(
        {
            "code": codes.ravel(),
            "row": np.repeat(row_block, codes.shape[1]),
            "col": np.tile(col_block, codes.shape[0]),
        }
    )
    home = cells.groupby("code")[["row", "col"]].first().sort_values(["row", "col"])
    home["rank"] = home.groupby(["row", "col"]).cumcount() // max_tiles
    batch_keys = home[["row", "col", "rank"]].drop_duplicates().reset_index(drop=True)
    batch_keys["batch"] = np.arange(len(batch_keys))
    home = home.reset_index().merge(batch_keys, on=["row", "col", "rank"])
    n_tiles = int(codes.max()) + 1 if codes.size else 0
    batch_of_tile = np.full(n_tiles, -1, dtype=np.int64)
    batch_of_tile[home["code"].to_numpy()] = home["batch"].to_numpy()
    cells["batch"] = batch_of_tile[cells["code"].to_numpy()]
    pairs = cells[["batch", "row", "col"]].drop_duplicates().sort_values(["batch", "row", "col"])
    blocks = [[] for _ in range(len(batch_keys))]
    for batch, row, col in pairs.itertuples(index=False):
        blocks[batch].append((int(row), int(col)))
    return FitPlan(batch_of_tile, blocks)


def split_chunks(codes: np.ndarray, chunks: tuple[tuple[int, ...], tuple[int, ...]], parts: int,
                 min_cells: int = 1) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Spatial ``chunks`` refined so that each band of blocks splits into up to ``parts``, cut between tiles.

    Each band of rows (a row of blocks) is cut at up to ``parts - 1`` row
    boundaries that no tile crosses, nearest to equal parts; a band with no
    such boundary is left whole, and so is one of fewer than ``parts *
    min_cells`` cells per block. Bands of columns are then cut the same way
    if no band of rows was (columns come second: a block of whole rows
    stays one slice of memory). A tile's cells stay in one part of each
    block, so scoring the parts calls each tile's models as often as
    scoring the blocks did.

    Parameters
    ----------
    codes : ndarray (y, x)
        Tile code of every cell (negative: no tile).
    chunks : tuple of two tuples of int
        Row and column chunk sizes of the blocks to refine.
    parts : int
        Most parts per block along the cut axis.
    min_cells : int, default 1
        Fewest cells of a part.

    Returns
    -------
    tuple of two tuples of int
        Chunks whose boundaries include those of ``chunks``.

    Examples
    --------
    >>> codes = np.repeat(np.arange(4), 2)[:, None] * np.ones((1, 3), dtype=int)  # 4 tiles of 2 rows
    >>> split_chunks(codes, ((8,), (3,)), 2)
    ((4, 4), (3,))
    >>> split_chunks(codes, ((8,), (3,)), 3)
    ((2, 4, 2), (3,))
    """
    rows = _split_axis(codes, chunks[0], parts, -(-min_cells // max(max(chunks[1]), 1)))
    if rows != tuple(chunks[0]):
        return rows, tuple(chunks[1])
    return tuple(chunks[0]), _split_axis(codes.T, chunks[1], parts, -(-min_cells // max(max(chunks[0]), 1)))


def _split_axis(codes: np.ndarray, sizes: tuple[int, ...], parts: int, least: int) -> tuple[int, ...]:
    """Row chunk ``sizes`` of ``codes``, each cut into parts of at least ``least`` rows (see :func:`split_chunks`)."""
    out: list[int] = []
    start = 0
    for size in sizes:
        bounds = [0, *_clean_cuts(codes[start:start + size], parts, max(least, 1)), size]
        out += [b - a for a, b in zip(bounds[:-1], bounds[1:])]
        start += size
    return tuple(out)


def _clean_cuts(band: np.ndarray, parts: int, least: int) -> list[int]:
    """Up to ``parts - 1`` row boundaries of ``band`` that no tile crosses, each nearest an equal share of the
    rows, leaving parts of at least ``least`` rows."""
    height, width = band.shape
    flat = band.ravel()
    keep = flat >= 0
    if parts < 2 or height < 2 * least or not keep.any():
        return []
    row = np.repeat(np.arange(height), width)[keep]
    flat = flat[keep]
    # rows come in order: a tile's first and last occurrences are its top and bottom rows
    _, first = np.unique(flat, return_index=True)
    _, last = np.unique(flat[::-1], return_index=True)
    top, bottom = row[first], row[len(flat) - 1 - last]
    crossing = np.zeros(height + 1, dtype=np.int64)  # at b: tiles with rows both above and below boundary b
    np.add.at(crossing, top + 1, 1)
    np.add.at(crossing, bottom + 1, -1)
    clean = np.flatnonzero(np.cumsum(crossing)[:height] == 0)
    clean = clean[(clean >= least) & (clean <= height - least)]
    cuts: list[int] = []
    parts = min(parts, height // least)  # as many parts as fit at their smallest
    for target in np.arange(1, parts) * height / parts:
        if clean.size == 0:
            break
        best = int(clean[np.argmin(np.abs(clean - target))])
        if all(abs(best - cut) >= least for cut in cuts):
            cuts.append(best)
    return sorted(cuts)


EARTH_RADIUS_KM = 6371.0088  # mean radius (IUGG)


def cell_areas(cube: xr.Dataset | xr.DataArray) -> np.ndarray:
    """Area of every grid cell in km^2, over the spatial dimensions.

    On a 1-D latitude-longitude grid a cell's edges lie halfway between
    centres (the outer ones mirror the inner, latitudes clipped to the
    poles) and its area is exact on the sphere:
    ``R^2 * dlon * (sin(lat_north) - sin(lat_south))``. On a curvilinear grid
    it is approximated from the distances to neighbouring centres.
    """
    if cube["lat"].ndim == 1 and cube["lon"].ndim == 1:
        lat_edges = np.clip(_edges(np.asarray(cube["lat"].values, dtype=float)), -90.0, 90.0)
        lon_edges = _edges(unwrapped_lon(cube))
        band = np.abs(np.diff(np.sin(np.radians(lat_edges))))
        width = np.abs(np.radians(np.diff(lon_edges)))
        areas = EARTH_RADIUS_KM**2 * band[:, None] * width[None, :]
        return areas if spatial_dims(cube)[0] == cube["lat"].dims[0] else areas.T
    lat, lon = (np.asarray(c.values, dtype=float) for c in cell_centres(cube))
    dy_lat, dx_lat = np.gradient(lat)
    dy_lon, dx_lon = (np.mod(g + 180.0, 360.0) - 180.0 for g in np.gradient(lon))
    scale = np.cos(np.radians(lat))
    row_step = np.hypot(dy_lat, dy_lon * scale)
    col_step = np.hypot(dx_lat, dx_lon * scale)
    return (np.radians(1.0) * EARTH_RADIUS_KM) ** 2 * row_step * col_step


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
