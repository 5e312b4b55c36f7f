"""Tiles by cell centre, the automatic precision and the fit plan."""

import numpy as np
import xarray as xr

import geoanom as ga
from geoanom import geohash
from geoanom.tiling import choose_precision, plan_batches, tile_codes


def test_labels_are_the_geohash_of_each_cell_centre():
    cube = xr.Dataset(coords={"lat": [10.1, 20.2, 30.3], "lon": [-170.0, 0.5, 179.9]})
    labels = ga.tile_labels(cube, 3)
    assert labels.dims == ("lat", "lon")
    assert labels.sel(lat=20.2, lon=0.5).item() == geohash.encode(20.2, 0.5, 3).item()
    assert labels.attrs["precision"] == 3


def test_curvilinear_labels():
    lat = np.array([[10.0, 10.5], [11.0, 11.5]])
    lon = np.array([[100.0, 101.0], [100.2, 101.2]])
    cube = xr.Dataset(coords={"lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})
    labels = ga.tile_labels(cube, 5)
    assert labels.dims == ("y", "x")
    np.testing.assert_array_equal(labels.values, geohash.encode(lat, lon, 5))


def test_precision_for_north_america_is_two():
    cube = ga.sample_cube("north_america").sel(time=slice(None, "1959"))
    precision, reason = choose_precision(cube)
    assert precision == 2
    assert "2700 observations" in reason
    labels = ga.tile_labels(cube)
    assert labels.attrs["precision"] == 2 and "target" in labels.attrs["precision_reason"]


def test_precision_grows_with_training_length():
    cube = xr.Dataset(coords={"lat": np.arange(0, 10, 0.1), "lon": np.arange(0, 10, 0.1)})
    short, _ = choose_precision(cube, n_times=10)
    long, _ = choose_precision(cube, n_times=10_000)
    assert long > short


def test_plan_batches_sends_blocks_to_the_batches_that_need_them():
    codes = np.array([[0, 0, 1, 1], [0, 2, 2, 1], [3, 3, 2, 1]])
    plan = plan_batches(codes, ((2, 1), (2, 2)), max_tiles=1)
    assert sorted(plan.batch_of_tile) == [0, 1, 2, 3]
    tile2 = plan.blocks_of_batch[plan.batch_of_tile[2]]
    assert set(tile2) == {(0, 0), (0, 1), (1, 1)}
    tile3 = plan.blocks_of_batch[plan.batch_of_tile[3]]
    assert tile3 == [(1, 0)]


def test_tile_codes_round_trip():
    labels = np.array([["b", "a"], ["c", "a"]])
    codes, names = tile_codes(labels)
    np.testing.assert_array_equal(names[codes], labels)


def _tiles_cut(codes, chunks):
    """Tiles with cells in more than one part of a block of ``chunks``."""
    from geoanom.model.score import _code_blocks

    seen: dict[int, int] = {}
    cut = set()
    for index, block in _code_blocks(codes, chunks).items():
        for code in np.unique(block[block >= 0]):
            if seen.setdefault(int(code), index) != index:
                cut.add(int(code))
    return cut


def test_split_chunks_cut_between_tiles_and_refine_the_blocks():
    from geoanom.tiling import split_chunks

    rng = np.random.default_rng(5)
    heights = rng.integers(1, 5, size=12)  # bands of tiles 1 to 4 rows high, 3 tiles across
    codes = np.concatenate([np.repeat(np.arange(3 * b, 3 * b + 3), 4)[None].repeat(h, 0)
                            for b, h in enumerate(heights)])
    codes[0, :2] = -1  # cells with no tile
    blocks = ((codes.shape[0] - 7, 7), (12,))
    split = split_chunks(codes, blocks, 4)
    assert split[1] == (12,) and sum(split[0]) == codes.shape[0]
    bounds = set(np.cumsum(split[0]))
    assert set(np.cumsum(blocks[0])) <= bounds  # every old boundary kept
    assert len(split[0]) > 2 and all(1 <= n for n in split[0])
    assert len(split[0]) <= 4 * len(blocks[0])
    # no tile is cut that the blocks did not cut already
    assert _tiles_cut(codes, split) == _tiles_cut(codes, blocks)
    assert _tiles_cut(codes, ((4, codes.shape[0] - 4), (12,)))  # (the helper sees a cut tile)


def test_split_chunks_fall_back_to_columns_and_leave_unsplittable_blocks_whole():
    from geoanom.tiling import split_chunks

    columns = np.repeat(np.arange(4), 3)[None].repeat(5, 0)  # 4 tiles side by side, each 5 rows tall
    assert split_chunks(columns, ((5,), (12,)), 2) == ((5,), (6, 6))
    one = np.zeros((6, 6), dtype=int)  # one tile: no boundary is clean
    assert split_chunks(one, ((6,), (6,)), 4) == ((6,), (6,))
    rows = np.arange(8)[:, None].repeat(3, 1)  # a tile per row
    assert split_chunks(rows, ((8,), (3,)), 4, min_cells=9) == ((4, 4), (3,))  # parts of at least 3 rows
    assert split_chunks(rows, ((8,), (3,)), 1) == ((8,), (3,))


def test_a_long_daily_record_gets_one_cell_per_tile_not_the_finest_precision():
    # three years of daily data on a 1-degree grid: every precision from 4 on puts each cell alone in its
    # tile; the choice was 12 (tile names like '9yvvgexrqyvv'), now the coarsest of them
    grid = xr.Dataset(coords={"lat": np.arange(30.0, 40.0), "lon": np.arange(0.0, 10.0)})
    precision, reason = choose_precision(grid, n_times=3 * 365)
    assert precision == 4, reason
    labels = ga.tile_labels(grid.assign_coords(time=[0]), precision)
    assert len(np.unique(labels)) == 100  # one cell per tile, as at precision 12
    assert choose_precision(grid, n_times=4 * 3 * 365)[0] == 4  # 6-hourly: the same


def test_an_unknown_tile_lists_the_known_ones_and_says_how_many_there_are():
    from geoanom.tiling import known_tiles

    names = [f"t{i:02d}" for i in range(56)]
    # was "known tiles: t00, ..., t19", as if those 20 were all
    assert known_tiles(names).startswith("known tiles (the first 20 of 56; model.tiles lists them all): t00, ")
    assert known_tiles(names).endswith(", t19")
    assert known_tiles(names[:3]) == "known tiles: t00, t01, t02"
