"""Tests of geoanom.federated.spatial against esda/libpysal and brute force."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from geoanom import geohash as gh
from geoanom.errors import GeoanomError
from geoanom.federated.spatial import geohash_weights, morans_i, tile_morans_i

esda = pytest.importorskip("esda")
libpysal = pytest.importorskip("libpysal")

PRECISION = 3
LAT_STEP, LON_STEP = gh.cell_size(PRECISION)  # 128 rows by 256 columns


def tile(row: int, column: int) -> str:
    """The precision-3 tile in latitude row ``row`` and longitude column ``column``."""
    lat = -90.0 + (row + 0.5) * LAT_STEP
    lon = -180.0 + (column % 256 + 0.5) * LON_STEP
    return str(gh.encode(lat, lon, PRECISION))


# A 6 x 8 block straddling the antimeridian (columns 252..255 and 0..3), a
# strip along the top row (no northern neighbours), and one island.
BLOCK = [(r, c % 256) for r in range(60, 66) for c in range(252, 260)]
TOP = [(r, c) for r in (126, 127) for c in range(10, 14)]
ISLAND = [(20, 100)]
CELLS = BLOCK + TOP + ISLAND
TILES = [tile(r, c) for r, c in CELLS]
POSITION = dict(zip(TILES, CELLS))


def brute_force_neighbours(tiles: list[str]) -> dict[str, list[str]]:
    """Tiles whose closed cells touch (edge or corner), longitude taken mod 360."""
    lat_min, lat_max, lon_min, lon_max = gh.bbox(tiles)
    result: dict[str, list[str]] = {t: [] for t in tiles}
    for i, a in enumerate(tiles):
        for j, b in enumerate(tiles):
            if i == j:
                continue
            lat_touch = lat_min[i] <= lat_max[j] and lat_min[j] <= lat_max[i]
            lon_touch = any(
                lon_min[i] <= lon_max[j] + shift and lon_min[j] + shift <= lon_max[i]
                for shift in (-360.0, 0.0, 360.0)
            )
            if lat_touch and lon_touch:
                result[a].append(b)
    return result


def esda_moran(values: np.ndarray, tiles: list[str], transformation: str = "r") -> float:
    """esda's Moran's I over libpysal weights built from the neighbour dict."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the island: "not fully connected"
        w = libpysal.weights.W(brute_force_neighbours(tiles), id_order=list(tiles))
        return float(esda.Moran(values, w, transformation=transformation, permutations=0).I)


def as_dict(weights, tiles: list[str]) -> dict[str, list[str]]:
    """Neighbour lists read off a weights matrix."""
    dense = weights.toarray()
    return {t: sorted(tiles[j] for j in np.flatnonzero(dense[i])) for i, t in enumerate(tiles)}


# --------------------------------------------------------------------------
# geohash_weights
# --------------------------------------------------------------------------


def test_weights_match_brute_force_neighbours():
    weights = geohash_weights(TILES)
    expected = {t: sorted(n) for t, n in brute_force_neighbours(TILES).items()}
    assert as_dict(weights, TILES) == expected
    assert set(weights.data) == {1.0}
    assert (weights != weights.T).nnz == 0


def test_weights_wrap_across_the_antimeridian():
    neighbours = as_dict(geohash_weights(TILES), TILES)
    east_edge, west_edge = tile(62, 255), tile(62, 0)
    assert west_edge in neighbours[east_edge] and east_edge in neighbours[west_edge]
    assert len(neighbours[east_edge]) == 8


def test_weights_edges_of_the_block_and_the_globe():
    neighbours = as_dict(geohash_weights(TILES), TILES)
    assert len(neighbours[tile(60, 252)]) == 3  # corner of the block
    assert len(neighbours[tile(127, 11)]) == 5  # top row: nothing north
    assert neighbours[tile(20, 100)] == []  # island


def test_weights_do_not_depend_on_order():
    shuffled = list(np.random.default_rng(0).permutation(TILES))
    assert as_dict(geohash_weights(shuffled), shuffled) == as_dict(geohash_weights(TILES), TILES)


def test_weights_reject_bad_tiles():
    with pytest.raises(GeoanomError, match="precision"):
        geohash_weights(["u4p", "u4"])
    with pytest.raises(GeoanomError, match="invalid"):
        geohash_weights(["u4p", "u4a"])
    with pytest.raises(GeoanomError, match="more than once"):
        geohash_weights(["u4p", "u4r", "u4p"])
    assert geohash_weights([]).shape == (0, 0)


# --------------------------------------------------------------------------
# morans_i against esda
# --------------------------------------------------------------------------


def gradient() -> np.ndarray:
    """Values rising smoothly northward and eastward (across the antimeridian)."""
    return np.array([r + 0.5 * ((c - 128) % 256) for r, c in CELLS], dtype=float)


def stripes() -> np.ndarray:
    """Alternating columns: six of a tile's eight neighbours differ from it."""
    return np.array([(-1.0) ** c for _, c in CELLS])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_morans_i_matches_esda_on_random_values(seed):
    values = np.random.default_rng(seed).normal(size=len(TILES))
    weights = geohash_weights(TILES)
    assert morans_i(values, weights) == pytest.approx(esda_moran(values, TILES), abs=1e-10)


def test_gradient_is_strongly_positive():
    values = gradient()
    i = morans_i(values, geohash_weights(TILES))
    assert i == pytest.approx(esda_moran(values, TILES), abs=1e-10)
    assert i > 0.5


def test_stripes_are_negative():
    values = stripes()
    i = morans_i(values, geohash_weights(TILES))
    assert i == pytest.approx(esda_moran(values, TILES), abs=1e-10)
    assert i < -0.2


def test_binary_weights_match_esda_and_dense_input_works():
    values = np.random.default_rng(3).normal(size=len(TILES))
    weights = geohash_weights(TILES)
    expected = esda_moran(values, TILES, transformation="b")
    assert morans_i(values, weights, row_standardise=False) == pytest.approx(expected, abs=1e-10)
    assert morans_i(values, weights.toarray()) == pytest.approx(morans_i(values, weights))


def test_morans_i_undefined_and_bad_values():
    weights = geohash_weights(TILES)
    assert np.isnan(morans_i(np.ones(len(TILES)), weights))
    values = np.zeros(len(TILES))
    values[4] = np.nan
    with pytest.raises(GeoanomError, match="index 4"):
        morans_i(values, weights)
    with pytest.raises(ValueError, match="weights"):
        morans_i(np.zeros(3), weights)


def test_tile_morans_i_sorts_tiles():
    values = gradient()
    residuals = dict(zip(TILES, values))
    assert tile_morans_i(residuals) == pytest.approx(esda_moran(values, TILES), abs=1e-10)
    residuals[TILES[5]] = np.nan
    with pytest.raises(GeoanomError, match=TILES[5]):
        tile_morans_i(residuals)
