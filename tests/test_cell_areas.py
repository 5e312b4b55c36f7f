"""Cell areas of curvilinear grids (ORCA2, NEMO's eORCA1): the antimeridian seam, the north fold, placeholder
coordinates; and the event areas, centroids and region features built on them.

Real files come from the iris-sample-data package. Their lat/lon hold the
whole globe once (land too); eliminated land processors left patches of
placeholder coordinates, so only ocean cells (finite data) have trustworthy
neighbours everywhere.
"""

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom import geohash
from geoanom.features import region_features
from geoanom.grid import EARTH_RADIUS_KM, cell_areas, wraps_in_longitude
from geoanom.queries.events import events

iris_sample_data = pytest.importorskip("iris_sample_data")
ORCA = os.path.join(iris_sample_data.path, "orca2_votemper.nc")
NEMO = os.path.join(iris_sample_data.path, "NEMO", "nemo_1m_20150101-20150201_grid-T.nc")
EARTH = 4 * np.pi * EARTH_RADIUS_KM**2
OCEAN = 3.611e8  # km^2


@pytest.fixture(scope="module")
def grids():
    """(cube, areas, ocean mask) of ORCA2 and NEMO."""
    out = {}
    for name, path, variable in (("orca", ORCA, "votemper"), ("nemo", NEMO, "tos")):
        cube = ga.open_cube(path)
        out[name] = cube, cell_areas(cube), np.isfinite(cube[variable].isel(time=0).values)
    return out


def neighbours(areas: np.ndarray) -> np.ndarray:
    """The four neighbours' areas (4, ny, nx): the seam wraps, the outer rows repeat their own."""
    padded = np.pad(areas, 1, mode="edge")
    padded[1:-1, 0], padded[1:-1, -1] = areas[:, -1], areas[:, 0]
    return np.stack([padded[1:-1, :-2], padded[1:-1, 2:], padded[:-2, 1:-1], padded[2:, 1:-1]])


def cap_area(radius_km: float) -> float:
    return 2 * np.pi * EARTH_RADIUS_KM**2 * (1 - np.cos(radius_km / EARTH_RADIUS_KM))


def distance_km(lat, lon, lat0, lon0):
    """Great-circle distance (haversine)."""
    phi, phi0, dlon = np.radians(lat), np.radians(lat0), np.radians(np.asarray(lon) - lon0)
    h = np.sin((phi - phi0) / 2) ** 2 + np.cos(phi) * np.cos(phi0) * np.sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(h))


# --- the areas --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["orca", "nemo"])
def test_a_global_ocean_grid_covers_the_earth_at_most_once(grids, name):
    # before: NEMO 1.86e9 km^2 and ORCA2 2.45e9 (3.6 and 4.8 Earths), one ORCA2 cell 3.5e8
    cube, areas, ocean = grids[name]
    assert np.isfinite(areas).all() and (areas >= 0).all()
    assert 0.9 * EARTH < areas.sum() <= EARTH
    # the ocean cells, whose coordinates are all real, hold the world ocean (361 M km^2)
    assert abs(areas[ocean].sum() / OCEAN - 1) < 0.03, areas[ocean].sum()


@pytest.mark.parametrize("name", ["orca", "nemo"])
def test_no_cell_is_much_larger_than_its_neighbours(grids, name):
    cube, areas, ocean = grids[name]
    around = neighbours(areas)
    # placeholder coordinates of eliminated land processors give some land cells tiny or zero areas,
    # and ORCA's pivots squeeze cells to nothing; none gets larger than twice its largest neighbour
    assert (areas <= 2 * around.max(axis=0)).all()
    # ocean cells away from the north fold change smoothly everywhere, the seam included (up to 1.4
    # in ORCA2's zoom on the Red Sea and Gulf of Aden, where the columns widen from 0.5 to 2 degrees)
    away = ocean & (np.abs(cube["lat"].values) < 60)
    ocean_around = np.where(neighbours(ocean.astype(float)) > 0, around, areas)
    with np.errstate(invalid="ignore", divide="ignore"):  # zero-area land cells beside ocean ones
        ratio = np.maximum(ocean_around / areas, areas / ocean_around)[:, away]
    assert ratio.max() < 1.5, ratio.max()


@pytest.mark.parametrize("name", ["orca", "nemo"])
def test_cells_either_side_of_the_antimeridian_are_like_the_next_ones(grids, name):
    # before: ~1.98e6 km^2 either side of the seam against ~11,000 for the next cells
    cube, areas, _ = grids[name]
    lon = cube["lon"].values
    rows = np.flatnonzero(np.abs(cube["lat"].values).max(axis=1) < 60)
    checked = 0
    for row in rows:
        seam = np.flatnonzero(np.diff(lon[row]) < -180)
        for k in seam[(seam >= 1) & (seam <= lon.shape[1] - 3)]:
            pair, beside = areas[row, [k, k + 1]], areas[row, [k - 1, k + 2]]
            np.testing.assert_allclose(pair, beside.mean(), rtol=0.05)
            checked += 1
    assert checked > 50


def test_orca2_north_fold_shares_each_duplicated_cell_between_its_copies(grids):
    # ORCA2's top row is a T-point fold: column i is column 180 - i, the same cell twice
    cube, areas, _ = grids["orca"]
    top = areas[-1]
    np.testing.assert_allclose(top, np.roll(top[::-1], 1), rtol=1e-5)  # float32 coordinates
    # each copy keeps the half below the fold: the row holds half as much as the next row down
    assert 0.4 < top.sum() / areas[-2].sum() < 0.6


@pytest.mark.parametrize("shift", [0, 90, 180])
def test_a_regular_global_grid_given_as_2d_coordinates_has_its_exact_areas(shift):
    lat1, lon1 = np.arange(-89.0, 90.0, 2.0), (np.arange(-179.0, 180.0, 2.0) + shift + 180) % 360 - 180
    exact = cell_areas(xr.Dataset(coords={"lat": lat1, "lon": np.arange(-179.0, 180.0, 2.0)}))
    lat, lon = np.meshgrid(lat1, lon1, indexing="ij")
    grid = xr.Dataset(coords={"lat": (("y", "x"), lat), "lon": (("y", "x"), lon)})
    assert wraps_in_longitude(grid)
    areas = cell_areas(grid)
    np.testing.assert_allclose(areas, exact, rtol=1e-3)
    np.testing.assert_allclose(areas.sum(), EARTH, rtol=1e-4)


def test_a_regional_curvilinear_grid_has_the_same_areas_across_the_antimeridian():
    # a slanted 1-degree grid, once across 180 degrees and once across 0: the same cells
    j, i = np.meshgrid(np.arange(30.0), np.arange(40.0), indexing="ij")
    lat, lon = -20 + j + 0.2 * i, 160 + i - 0.1 * j
    areas = {}
    for offset in (0.0, -180.0):
        shifted = (lon + offset + 180) % 360 - 180
        grid = xr.Dataset(coords={"lat": (("y", "x"), lat), "lon": (("y", "x"), shifted)})
        areas[offset] = cell_areas(grid)
    np.testing.assert_allclose(areas[0.0], areas[-180.0], rtol=1e-9)
    assert areas[0.0].max() / areas[0.0].min() < 1.2


# --- what is built on them -----------------------------------------------------------------------------


def dateline_disc(cube, radius_km=1500.0, centre=(-40.0, -170.0)):
    """Cells of the grid within radius_km of centre, a disc that straddles the antimeridian."""
    return distance_km(cube["lat"].values, cube["lon"].values, *centre) < radius_km


def test_an_event_across_the_antimeridian_on_nemo_has_its_true_area_and_centroid(grids):
    # before: ~1.1e8 km^2 (22 % of the Earth) and a centroid pulled towards the seam's inflated cells
    cube, areas, _ = grids["nemo"]
    disc = dateline_disc(cube)
    flags = np.stack([disc, disc])
    result = xr.Dataset({"ensemble": (("time", "y", "x"), flags)},
                        coords={"time": [0, 1], "lat": cube["lat"], "lon": cube["lon"]})
    table = events(result)
    assert len(table) == 1
    row = table.iloc[0]
    assert abs(row["max_area_km2"] / cap_area(1500.0) - 1) < 0.03, row["max_area_km2"]
    # the disc is symmetric about its meridian: the centroid is on it, at its latitude
    assert abs((row["lon"] + 170.0 + 180) % 360 - 180) < 0.2, row["lon"]
    assert abs(row["lat"] + 40.0) < 0.5, row["lat"]


def test_region_features_on_nemo_across_the_antimeridian_fit_in_their_tiles(grids):
    # before: a 61 M km^2 region inside one precision-1 tile (~23 M km^2)
    cube = grids["nemo"][0].isel(y=slice(80, 200))  # 55S to 30N: the whole disc, whole rows
    rng = np.random.default_rng(0)
    disc = dateline_disc(cube)
    times = pd.date_range("2000-01", periods=12, freq="MS")
    values = rng.normal(size=(12,) + disc.shape)
    values[6, disc] += 8.0
    field = xr.DataArray(values, dims=("time", "y", "x"), name="tos",
                         coords={"time": times, "lat": cube["lat"], "lon": cube["lon"]})
    whole = region_features(field, threshold=4.0, n_boot=0)
    assert wraps_in_longitude(field)
    assert abs(whole["largest_area"].iloc[6] / cap_area(1500.0) - 1) < 0.1, whole["largest_area"].iloc[6]
    tiles = region_features(field, threshold=4.0, n_boot=0, precision=1).xs(times[6], level="time")
    assert len(tiles) >= 2  # the disc spans tiles on both sides of the antimeridian
    for tile, row in tiles.iterrows():
        south, north, west, east = (float(v) for v in geohash.bbox(tile))
        tile_area = EARTH_RADIUS_KM**2 * np.radians(east - west) * (np.sin(np.radians(north)) - np.sin(np.radians(south)))
        assert row["total_area"] <= tile_area, (tile, row["total_area"], tile_area)


def test_areas_do_not_depend_on_the_strips_they_are_worked_out_in(grids, monkeypatch):
    cube, areas, _ = grids["orca"]  # T-fold: the last strip carries the fold
    monkeypatch.setattr("geoanom.grid.STRIP_CELLS", 7 * cube.sizes["dim1"] + 3)
    np.testing.assert_array_equal(cell_areas(cube), areas)
