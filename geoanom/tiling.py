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
from .errors import GeoanomError
from .geohash import MAX_PRECISION
from .grid import cell_centres, grid_extent, grid_spacing

# A tile should hold at least this many training observations to fit its
# ensemble: a few-component mixture in a handful of dimensions and an
# isolation forest of 256-observation trees are well determined by it.
TARGET_TILE_OBSERVATIONS = 1000


def choose_precision(
    cube: xr.Dataset | xr.DataArray,
    n_times: int | None = None,
    target_observations: int = TARGET_TILE_OBSERVATIONS,
) -> tuple[int, str]:
    """The finest geohash precision whose typical tile holds enough observations.

    Never finer than the coarsest precision of one cell per tile: with a
    long record every precision from there on gives the same tiles.

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
    >>> choose_precision(grid, n_times=3 * 365)[0]  # one cell per tile is enough: the coarsest such precision
    4
    """
    n_times = int(n_times if n_times is not None else cube.sizes.get("time", 1))
    dlat, dlon = grid_spacing(cube)
    # a tile larger than the grid holds only the grid's rows and columns
    span_lat, span_lon = (extent / step + 1.0 for extent, step in zip(grid_extent(cube), (dlat, dlon)))
    for precision in range(MAX_PRECISION, 0, -1):
        tile_lat, tile_lon = geohash.cell_size(precision)
        if precision > 1 and _within_a_cell(geohash.cell_size(precision - 1), (dlat, dlon)):
            continue  # coarser tiles hold one cell each as well: the same tiles, shorter names
        cells = min(max(1.0, tile_lat / dlat), span_lat) * min(max(1.0, tile_lon / dlon), span_lon)
        if cells * n_times >= target_observations:
            return precision, (
                f"precision {precision}: a tile of {tile_lat:g} x {tile_lon:g} degrees holds about "
                f"{cells:.0f} cells x {n_times} time steps = {cells * n_times:.0f} observations "
                f"(target {target_observations}) on a {dlat:g} x {dlon:g} degree grid"
            )
    return 1, f"precision 1: even the coarsest tiles hold fewer than {target_observations} observations"


def _within_a_cell(tile: tuple[float, float], spacing: tuple[float, float]) -> bool:
    """Whether a tile is no larger than a grid cell along both axes, so it holds at most one cell centre."""
    return tile[0] <= spacing[0] and tile[1] <= spacing[1]


def known_tiles(names: list[str], most: int = 20) -> str:
    """The model's tiles as text for an error about an unknown tile: all of them, or the first ``most`` of how many.

    Examples
    --------
    >>> known_tiles(["9q", "9r"])
    'known tiles: 9q, 9r'
    >>> known_tiles([f"t{i:02d}" for i in range(56)], most=3)
    'known tiles (the first 3 of 56; model.tiles lists them all): t00, t01, t02'
    """
    names = sorted(names)
    if len(names) <= most:
        return f"known tiles: {', '.join(names)}"
    return f"known tiles (the first {most} of {len(names)}; model.tiles lists them all): {', '.join(names[:most])}"


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


def tile_fill(labels: xr.DataArray | np.ndarray, has_data: np.ndarray) -> tuple[int, int, float]:
    """The tiles, the tiles holding data, and the mean number of cells with data in each of those.

    Cells with data are what a tile's model sees: land in an ocean field,
    and the part of an edge tile beyond the grid, hold none.

    Parameters
    ----------
    labels : DataArray or ndarray of str
        Each cell's tile (:func:`tile_labels`).
    has_data : ndarray of bool
        Over the same cells: whether the cell holds any value.

    Examples
    --------
    >>> tile_fill(np.array([["a", "a"], ["b", "c"]]), np.array([[True, True], [True, False]]))
    (3, 2, 1.5)
    """
    labels, has_data = np.asarray(labels), np.asarray(has_data, dtype=bool)
    filled = np.unique(labels[has_data])
    return int(np.unique(labels).size), int(filled.size), float(has_data.sum() / filled.size) if filled.size else 0.0


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
