"""Real grids: curvilinear (ORCA / NEMO), rotated poles, regional grids across the antimeridian, tile seams.

Real files come from the iris-sample-data package (orca2_votemper.nc, the
NEMO grid-T files, rotated_pole.nc); the antimeridian files are written here.
"""

import os

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

import geoanom as ga
from geoanom import geohash
from geoanom.features import region_features, region_labels
from geoanom.grid import cell_areas, crosses_antimeridian, grid_spacing, unwrapped_lon, wraps_in_longitude
from geoanom.io.grid import unrotate, west_edge
from geoanom.testing import synthetic_cube
from geoanom.tiling import choose_precision, tile_codes

iris_sample_data = pytest.importorskip("iris_sample_data")
SAMPLES = iris_sample_data.path
ORCA = os.path.join(SAMPLES, "orca2_votemper.nc")
NEMO = os.path.join(SAMPLES, "NEMO", "nemo_1m_20150101-20150201_grid-T.nc")


def tile_counts(cube, precision: int) -> np.ndarray:
    """Cells in each tile that holds any."""
    return np.unique(ga.tile_labels(cube, precision).values, return_counts=True)[1].astype(float)


def cells_per_tile(cube, precision: int) -> float:
    """Mean over cells of how many cells share the cell's tile: the tile a typical cell lives in."""
    counts = tile_counts(cube, precision)
    return float(np.sum(counts**2) / counts.sum())


# --- curvilinear spacing -------------------------------------------------------------------------------


@pytest.mark.parametrize("path, spacing", [(ORCA, (1.0, 2.0)), (NEMO, (0.46, 1.0))])
def test_curvilinear_spacing_is_the_cells_size(path, spacing):
    # ORCA2 is a 2-degree grid refined to 0.5 degree of latitude at the equator;
    # its rows slant a little, which the old per-axis median took for 0.76 degree.
    cube = ga.open_cube(path)
    np.testing.assert_allclose(grid_spacing(cube), spacing, rtol=0.03)


@pytest.mark.parametrize("path", [ORCA, NEMO])
@pytest.mark.parametrize("precision", [2, 3])
def test_estimated_cells_per_tile_match_the_real_tiles(path, precision):
    cube = ga.open_cube(path)
    tile_lat, tile_lon = geohash.cell_size(precision)
    dlat, dlon = grid_spacing(cube)
    estimate = max(1.0, tile_lat / dlat) * max(1.0, tile_lon / dlon)
    real = tile_counts(cube, precision).mean()
    # the old estimate was 1.3 to 1.8 times the real count
    assert 0.8 < estimate / real < 1.2, (estimate, real)


@pytest.mark.parametrize("n_times", [40, 300, 600])
def test_chosen_precision_on_orca_gives_tiles_with_enough_observations(n_times):
    cube = ga.open_cube(ORCA)
    precision, reason = choose_precision(cube, n_times=n_times)
    assert "1 x 2 degree grid" in reason
    assert cells_per_tile(cube, precision) * n_times >= 0.8 * ga.tiling.TARGET_TILE_OBSERVATIONS


def test_a_tile_larger_than_the_grid_holds_only_the_grid():
    # 18 rows of OSTIA: a 45-degree tile cannot hold more rows than the file has
    cube = ga.sample_cube("sst")
    precision, reason = choose_precision(cube, n_times=7)
    cells = float(reason.split("about ")[1].split(" cells")[0])
    rows, columns = cube.sizes["lat"], geohash.cell_size(1)[1] / grid_spacing(cube)[1]
    assert precision == 1 and cells <= rows * columns + 1, reason  # 4374 cells before


def test_orca_rows_close_the_globe_and_regions_join_across_its_seam():
    orca = ga.open_cube(ORCA)
    assert wraps_in_longitude(orca) and wraps_in_longitude(ga.open_cube(NEMO))
    rng = np.random.default_rng(0)
    values = rng.normal(size=(24,) + orca["lat"].shape)
    values[20, 60:70, :4] += 5.0  # one blob either side of the grid's last column
    values[20, 60:70, -4:] += 5.0
    field = xr.DataArray(values, dims=("time", "dim0", "dim1"), name="t",
                         coords={"time": pd.date_range("2000-01-01", periods=24, freq="MS"),
                                 "lat": orca["lat"], "lon": orca["lon"]})
    labels = region_labels(field, threshold=2.0).values[20]
    assert labels[65, 1] > 0 and labels[65, 1] == labels[65, -2]


# --- rotated pole --------------------------------------------------------------------------------------


def test_rotated_pole_file_opens_with_true_coordinates():
    cube = ga.open_cube(os.path.join(SAMPLES, "rotated_pole.nc"))
    assert cube["lat"].dims == cube["lon"].dims == ("grid_latitude", "grid_longitude")
    assert cube["air_pressure_at_sea_level"].dims == ("time", "grid_latitude", "grid_longitude")
    raw = xr.open_dataset(os.path.join(SAMPLES, "rotated_pole.nc"))
    i, j = 10, 20
    lat, lon = unrotate(float(raw.grid_latitude[i]), float(raw.grid_longitude[j]), 37.5, 177.5)
    assert float(cube["lat"][i, j]) == pytest.approx(lat) and float(cube["lon"][i, j]) == pytest.approx(lon)
    # the file's domain: the North Atlantic and Europe
    assert 15 < float(cube["lat"].min()) < float(cube["lat"].max()) < 77
    labels = ga.tile_labels(cube, 2)
    assert labels.dims == ("grid_latitude", "grid_longitude") and len(np.unique(labels)) > 10


def test_unrotate_agrees_with_pyproj():
    pyproj = pytest.importorskip("pyproj")
    mapping = dict(grid_mapping_name="rotated_latitude_longitude", grid_north_pole_latitude=37.5,
                   grid_north_pole_longitude=177.5, north_pole_grid_longitude=20.0)
    to_true = pyproj.Transformer.from_crs(pyproj.CRS.from_cf(mapping), "EPSG:4326", always_xy=True)
    rlat, rlon = np.meshgrid(np.linspace(-60, 60, 9), np.linspace(-170, 170, 11), indexing="ij")
    lon, lat = to_true.transform(rlon, rlat)
    got_lat, got_lon = unrotate(rlat, rlon, 37.5, 177.5, 20.0)
    np.testing.assert_allclose(got_lat, lat, atol=1e-9)
    np.testing.assert_allclose((got_lon - lon + 180) % 360 - 180, 0, atol=1e-9)


def test_rotated_pole_without_its_pole_is_refused(tmp_path):
    raw = xr.open_dataset(os.path.join(SAMPLES, "rotated_pole.nc"))
    del raw["rotated_latitude_longitude"].attrs["grid_north_pole_latitude"]
    raw.to_netcdf(tmp_path / "nopole.nc")
    with pytest.raises(ga.GeoanomError, match=r"rotated_latitude_longitude.*nopole\.nc.*grid_north_pole_latitude"):
        ga.open_cube(tmp_path / "nopole.nc")


# --- antimeridian --------------------------------------------------------------------------------------

EAST_TO_WEST = np.arange(117.5, 262.5 + 1e-9, 2.5)  # 117.5E to 97.5W, as a 0..360 file stores it


def pacific(lon_of_file, n_times: int = 36, seed: int = 3) -> xr.Dataset:
    """Monthly noise over the Pacific with events straddling 180 degrees, stored on the given longitudes.

    The data belong to the longitudes as values: every convention of the same
    longitudes holds the same numbers at the same places.
    """
    rng = np.random.default_rng(seed)
    lat = np.arange(-20.0, 20.1, 2.5)
    values = rng.normal(size=(n_times, lat.size, EAST_TO_WEST.size))
    at_180 = int(np.argmin(np.abs(EAST_TO_WEST - 180.0)))
    for step in range(24, n_times, 2):  # a blob across the antimeridian every other month
        values[step, 4:12, at_180 - 6 : at_180 + 6] += 4.0
    values[30, 2:6, 0:5] += 4.0  # and one at the region's west edge
    order = np.argsort(((np.asarray(lon_of_file) - 117.5) % 360))
    time = pd.date_range("2000-01-01", periods=n_times, freq="MS")
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), values[:, :, np.argsort(order)].astype(np.float64), {"units": "K"})},
        coords={"time": time, "lat": ("lat", lat, {"standard_name": "latitude", "units": "degrees_north"}),
                "lon": ("lon", np.asarray(lon_of_file, dtype=float),
                        {"standard_name": "longitude", "units": "degrees_east"})})


CONVENTIONS = {
    "0..360": EAST_TO_WEST,
    "-180..180": np.sort((EAST_TO_WEST + 180) % 360 - 180),  # the gap in the middle of the file
    "-180..180 west first": (EAST_TO_WEST + 180) % 360 - 180,  # already contiguous, not monotonic
}


@pytest.fixture(scope="module")
def pacific_cubes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pacific")
    cubes = {}
    for name, lon in CONVENTIONS.items():
        path = folder / f"pacific {name}.nc"
        pacific(lon).to_netcdf(path)
        cubes[name] = ga.open_cube(path)
    return cubes


def test_a_region_across_the_antimeridian_opens_contiguous(pacific_cubes):
    for cube in pacific_cubes.values():
        lon = cube["lon"].values
        assert lon[0] == 117.5 and lon[-1] == -97.5
        assert np.all(np.diff(unwrapped_lon(cube)) == 2.5), "west to east without a gap"
        assert crosses_antimeridian(cube) and not wraps_in_longitude(cube)
        # cell areas come from the real 2.5-degree widths, not the 215-degree jump
        assert cell_areas(cube).max() / cell_areas(cube).min() < 1.1


def test_west_edge_leaves_global_and_ordinary_regional_axes_alone():
    assert west_edge(np.arange(-180.0, 180.0, 1.0)) == 0
    assert west_edge(np.arange(-34.5, 1.0, 5.0)) == 0
    assert west_edge(np.sort((EAST_TO_WEST + 180) % 360 - 180)) == int(np.sum(EAST_TO_WEST >= 180))


def test_region_results_do_not_depend_on_the_longitude_convention(pacific_cubes):
    tables = {name: region_features(cube["sst"], threshold=1.5) for name, cube in pacific_cubes.items()}
    labels = {name: region_labels(cube["sst"], threshold=1.5).values for name, cube in pacific_cubes.items()}
    first = next(iter(tables))
    assert tables[first]["n_regions"].sum() > 5
    for name in tables:
        pd.testing.assert_frame_equal(tables[name], tables[first])
        np.testing.assert_array_equal(labels[name], labels[first])


def test_regions_join_across_the_antimeridian_like_anywhere_else(pacific_cubes):
    # the same numbers on a grid that crosses no special meridian (72.5W to 72.5E)
    elsewhere = pacific(EAST_TO_WEST - 190.0)
    expected = region_features(elsewhere["sst"], threshold=1.5)
    got = region_features(pacific_cubes["0..360"]["sst"], threshold=1.5)
    np.testing.assert_array_equal(got["n_regions"], expected["n_regions"])
    np.testing.assert_allclose(got["largest_area"], expected["largest_area"], rtol=1e-12)
    labels = region_labels(pacific_cubes["0..360"]["sst"], threshold=1.5).values
    at_180 = int(np.argmin(np.abs(EAST_TO_WEST - 180.0)))
    west, east = labels[24::2, 8, at_180 - 3], labels[24::2, 8, at_180 + 3]
    assert (west > 0).all() and (west == east).all(), "a blob across 180 degrees is one region"


def pacific_scores(cube: xr.Dataset) -> xr.Dataset:
    model = ga.fit(cube.isel(time=slice(0, 24)), precision=1, detectors=("gmm", "iforest"))
    return model.score(cube).compute()


@pytest.fixture(scope="module")
def reference_scores(pacific_cubes):
    return pacific_scores(pacific_cubes["0..360"])


@pytest.mark.parametrize("convention", ["-180..180", "-180..180 west first"])
def test_tiles_and_scores_do_not_depend_on_the_longitude_convention(pacific_cubes, reference_scores, convention):
    result = pacific_scores(pacific_cubes[convention])
    assert reference_scores["irregularity"].notnull().any()
    for name in ("lon", "tile", "irregularity", "ensemble"):
        np.testing.assert_array_equal(result[name].values, reference_scores[name].values)


# --- tile seams ----------------------------------------------------------------------------------------


def near_tile_edge(cube, precision: int) -> np.ndarray:
    """Cells with a tile edge within one cell: some cell of their 3 x 3 neighbourhood is in another tile."""
    codes, _ = tile_codes(ga.tile_labels(cube, precision).values)
    return ndimage.maximum_filter(codes, size=3, mode="nearest") != ndimage.minimum_filter(codes, size=3,
                                                                                           mode="nearest")


def seam_ratio(cube: xr.Dataset, precision: int) -> float:
    """Share of observations the ensemble flags near tile edges over the share in tiles' interiors."""
    flags = ga.fit(cube, precision=precision).score(cube)["ensemble"].values.astype(bool)
    edge = near_tile_edge(cube, precision)
    assert 0.2 < edge.mean() < 0.8, "both parts are sizeable"
    return float(flags[:, edge].mean() / flags[:, ~edge].mean())


def curvilinear(cube: xr.Dataset) -> xr.Dataset:
    """The cube on a rotated-pole grid over Europe: rows slant across the geohash tiles."""
    rlat = np.linspace(-10, 10, cube.sizes["lat"])
    rlon = np.linspace(-15, 15, cube.sizes["lon"])
    lat, lon = unrotate(rlat[:, None], rlon[None, :], 37.5, 177.5)
    flat = cube.rename(lat="y", lon="x").drop_vars(["y", "x"])
    return flat.assign_coords(lat=(("y", "x"), lat), lon=(("y", "x"), lon))


@pytest.mark.parametrize("grid", ["regular", "curvilinear"])
def test_no_tile_seams_on_a_stationary_cube(grid):
    # about 800 flagged observations: the ratio is known to about 10%
    cube, _ = synthetic_cube(n_years=6, n_lat=40, n_lon=64, anomaly_rate=0.0)
    cube = curvilinear(cube) if grid == "curvilinear" else cube
    assert 1 / 1.5 <= seam_ratio(cube, 2) <= 1.5


# --- saved models on grids without coordinates on their dimensions ----------------------------------


@pytest.mark.parametrize("suffix", [".npz", ".zarr"])
def test_a_model_of_a_curvilinear_grid_saves_loads_and_scores_the_same(tmp_path, suffix):
    # NEMO's dimensions (y, x) carry no coordinate, only the 2-D lat/lon: the loader took each
    # dimension's size from its coordinate and refused every such model as malformed
    grid = ga.open_cube(NEMO).isel(y=slice(0, 40), x=slice(0, 60))
    assert "y" not in grid.coords and "x" not in grid.coords
    rng = np.random.default_rng(1)
    cube = xr.Dataset({"tos": (("time", "y", "x"), rng.normal(size=(30, 40, 60)).astype("float32"))},
                      coords={"time": pd.date_range("2000-01-01", periods=30, freq="MS"),
                              "lat": grid["lat"], "lon": grid["lon"]})
    model = ga.fit(cube.isel(time=slice(0, 24)), detectors="gmm", precision=2)
    path = tmp_path / f"model{suffix}"
    model.save(path)
    loaded = ga.load_model(path)
    assert loaded.ensembles.keys() == model.ensembles.keys()
    expected = model.score(cube)["fused_irregularity"].values
    assert np.isfinite(expected).any()
    np.testing.assert_array_equal(loaded.score(cube)["fused_irregularity"].values, expected)
