"""Inspection queries (ga.query) and the feature trajectory, on a real fit and on handmade results.

Every filter is checked against a direct xarray selection made here: a
boolean mask (time, y, x) built with xarray, and the result's variables
indexed with it in C order, which is the query's row order.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom.detectors.fusion import fuse, majority
from geoanom.errors import GeoanomError
from geoanom.features import feature_names
from geoanom.model.result import tile_names
from geoanom.model.trajectory import feature_trajectory
from geoanom.queries.inspect import query
from geoanom.testing import synthetic_cube
from geoanom.tiling import tile_codes, tile_labels

DETECTORS = ("gmm", "kmeans")


# --- a real fit and score ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scored():
    """12 tiles of precision 2 over the south-east of North America, fitted on 1860-1959, scored to 2099.

    The result is computed once, so that each check here costs a query, not a scoring; the lazy
    result's own answers are checked in `test_a_lazy_result_answers_the_same`.
    """
    cube = ga.sample_cube("north_america").isel(lat=slice(6, 22), lon=slice(24, 40))
    model = ga.fit(cube.isel(time=slice(None, 100)), precision=2, detectors=",".join(DETECTORS))
    return model, cube, model.score(cube).compute()


def direct(result: xr.Dataset, keep: xr.DataArray) -> dict[str, np.ndarray]:
    """Each output column's values where ``keep`` (time, *spatial) holds, by plain xarray and numpy indexing."""
    dims = ("time",) + tuple(result["tile"].dims)
    mask = keep.broadcast_like(result["fused_irregularity"]).transpose(*dims).values
    columns = {f"irregularity_{name}": result["irregularity"].sel(detector=name) for name in result["detector"].values}
    for name in ("fused_irregularity", "votes", "ensemble", "consensus", "air_temperature_anomaly", "tas_anomaly"):
        if name in result:
            columns[name] = result[name]
    return {name: column.transpose(*dims).values[mask] for name, column in columns.items()}


def assert_rows(table: pd.DataFrame, result: xr.Dataset, keep: xr.DataArray) -> None:
    """The table holds exactly the observations ``keep`` selects, with the result's values, in C order.

    A trajectory's features are float64, as scored; the result stores them as float32.
    """
    expected = direct(result, keep)
    assert len(table) == len(expected["fused_irregularity"]) > 0
    for name, values in expected.items():
        np.testing.assert_array_equal(table[name].to_numpy().astype(values.dtype), values, err_msg=name)
    mask = keep.broadcast_like(result["fused_irregularity"]).transpose("time", *result["tile"].dims)
    times = np.broadcast_to(result["time"].values[:, None, None], mask.shape)[mask.values]
    np.testing.assert_array_equal(table["time"].to_numpy(), times)


def test_tile_filter_matches_the_cells_of_that_tile(scored):
    model, _, result = scored
    table = query(result, tile="dj")
    assert_rows(table, result, tile_names(result) == "dj")
    assert set(table["tile"]) == {"dj"}
    assert list(table.columns[:4]) == ["time", "lat", "lon", "tile"]


def test_prefix_and_list_of_tiles(scored):
    _, _, result = scored
    names = tile_names(result)
    assert_rows(query(result, tile=["dj", "dn"]), result, (names == "dj") | (names == "dn"))
    # a finer geohash: the cells whose centre it holds (dj is 5.6 x 11.25 degrees; djj is a corner of it)
    finer = query(result, tile="djj")
    fine_cells = xr.apply_ufunc(lambda lat, lon: ga.geohash.encode(lat, lon, 3) == "djj",
                                *xr.broadcast(result["lat"], result["lon"]))
    assert_rows(finer, result, fine_cells)


def test_time_slice_and_label(scored):
    _, _, result = scored
    years = result["time"].dt.year
    assert_rows(query(result, time=slice("2000", "2009")), result, (years >= 2000) & (years <= 2009))
    one_step = query(result, time="2050-06")
    assert_rows(one_step, result, years == 2050)
    assert one_step["time"].nunique() == 1


def test_min_irregularity_on_the_fused_score_or_one_family(scored):
    _, _, result = scored
    assert_rows(query(result, min_irregularity=2.0), result, result["fused_irregularity"] >= 2.0)
    kmeans = result["irregularity"].sel(detector="kmeans")
    by_family = query(result, min_irregularity=2.0, detector="kmeans")
    assert_rows(by_family, result, kmeans >= 2.0)
    assert (by_family["irregularity_kmeans"] >= 2.0).all() and (by_family["fused_irregularity"] < 2.0).any()


def test_flagged_by_the_ensemble_or_one_family(scored):
    _, _, result = scored
    assert_rows(query(result, flagged=True), result, result["ensemble"])
    assert_rows(query(result, flagged=False), result, ~result["ensemble"])
    gmm = result["anomalous"].sel(detector="gmm")
    assert_rows(query(result, flagged=True, detector="gmm"), result, gmm)
    assert_rows(query(result, flagged=False, detector="gmm"), result, ~gmm)
    pd.testing.assert_frame_equal(query(result, tile="dj", detector="gmm"), query(result, tile="dj"))  # alone: no filter


def test_bbox_filter(scored):
    _, _, result = scored
    box = (-80.0, 30.0, -70.0, 35.0)
    inside = (result["lon"] >= -80) & (result["lon"] <= -70) & (result["lat"] >= 30) & (result["lat"] <= 35)
    assert_rows(query(result, bbox=box), result, inside)
    # the same box in the 0-360 convention
    assert_rows(query(result, bbox=(280.0, 30.0, 290.0, 35.0)), result, inside)


def test_every_filter_combined(scored):
    _, _, result = scored
    table = query(result, tile=["dj", "dn", "dq"], time=slice("2030", "2099"), bbox=(-85, 25, -70, 40),
                  min_irregularity=1.2, flagged=True)
    names, years = tile_names(result), result["time"].dt.year
    keep = (names.isin(["dj", "dn", "dq"]) & (years >= 2030) & (result["lon"] >= -85) & (result["lon"] <= -70)
            & (result["lat"] >= 25) & (result["lat"] <= 40) & (result["fused_irregularity"] >= 1.2)
            & result["ensemble"])
    assert_rows(table, result, keep)


def test_an_empty_selection_is_an_empty_table_with_the_columns(scored):
    _, _, result = scored
    full = query(result, tile="dj", time="2050")
    for empty in (query(result, tile="dj", min_irregularity=1e9), query(result, time=slice("2200", "2300")),
                  query(result, tile="dj", bbox=(-70, 40, -60, 41))):  # dj is Florida: the box is off New England
        assert empty.empty
        assert list(empty.columns) == list(full.columns)
        assert (empty.dtypes.astype(str) == full.dtypes.astype(str)).all()


def test_a_lazy_result_answers_the_same(scored):
    model, cube, result = scored
    lazy = model.score(cube.chunk({"time": 100, "lat": 8, "lon": 6}))
    pd.testing.assert_frame_equal(query(lazy, tile="dk", min_irregularity=1.0),
                                  query(result, tile="dk", min_irregularity=1.0))


def test_a_stored_result_answers_the_same(scored, tmp_path):
    _, _, result = scored
    path = tmp_path / "result.nc"
    result.to_netcdf(path)
    with xr.open_dataset(path, chunks={"time": 50, "lat": 7, "lon": 5}) as stored:
        pd.testing.assert_frame_equal(query(stored, tile="dk", flagged=True), query(result, tile="dk", flagged=True))


@pytest.mark.parametrize("kwargs, match", [
    ({"tile": "zz"}, "tile 'zz' is not a tile"),
    ({"tile": "u"}, "tile 'u' is the prefix of no tile"),
    ({"tile": "dj!"}, "is not a geohash"),
    ({"tile": "u4pru"}, "holds no cell centre"),
    ({"detector": "dpmm"}, "detector 'dpmm' is not in the result; its families are gmm, kmeans"),
    ({"bbox": (0, 0, 10, 10)}, "holds no cell centre of the grid"),
    ({"bbox": (0, 10)}, "bbox must be"),
    ({"bbox": (0, 40, 10, 30)}, "lat_min <= lat_max"),
    ({"time": "1700-01-01"}, "time '1700-01-01' is not in the result"),
])
def test_bad_questions_are_refused_in_one_sentence(scored, kwargs, match):
    with pytest.raises(GeoanomError, match=match):
        query(scored[2], **kwargs)


def test_only_a_scored_result_is_queried(scored):
    with pytest.raises(GeoanomError, match="needs the output of model.score"):
        query(scored[1])


# --- the feature trajectory ------------------------------------------------------------------------------------


def test_trajectory_features_are_those_scored(scored):
    model, cube, result = scored
    names = feature_names(model.variables, tuple(model.attrs["features"]))
    trajectory = feature_trajectory(model, cube, tile="dj", time=slice("2040", "2060"))
    years = result["time"].dt.year
    keep = (tile_names(result) == "dj") & (years >= 2040) & (years <= 2060)
    assert list(trajectory.columns) == ["time", "lat", "lon", "tile", *names, "irregularity_gmm",
                                        "irregularity_kmeans", "fused_irregularity", "votes", "ensemble"]
    # the ensemble, asked here about the trajectory's vectors, gives the result's irregularity
    recomputed = model.ensembles["dj"].irregularity(trajectory[names].to_numpy()).astype(np.float32)
    expected = direct(result, keep)
    for index, name in enumerate(DETECTORS):
        np.testing.assert_array_equal(recomputed[index], expected[f"irregularity_{name}"])
    assert_rows(trajectory, result, keep)  # its own scores, fused score, flags and anomalies are the result's too


def test_the_models_features_method_is_the_trajectory(scored):
    model, cube, result = scored
    method = model.features(cube, tile="dj", time=slice("2040", "2045"))
    pd.testing.assert_frame_equal(method, feature_trajectory(model, cube, tile="dj", time=slice("2040", "2045")))
    assert len(method) == int(((tile_names(result) == "dj") & result["time"].dt.year.isin(range(2040, 2046))).sum())


def test_trajectory_of_the_nearest_cell_and_joined_to_a_query(scored):
    model, cube, result = scored
    trajectory = feature_trajectory(model, cube, cell=(30.1, -81.0), time=slice("2090", None))
    assert set(zip(trajectory["lat"], trajectory["lon"])) == {(30.0, -80.625)}
    near = (result["lat"] == 30.0) & (result["lon"] == np.float32(-80.625)) & (result["time"].dt.year >= 2090)
    assert_rows(trajectory, result, near)
    joined = query(result, tile="dj", time=slice("2090", None), features=trajectory)
    matched = joined.dropna(subset=["air_temperature_neighbours"])
    assert len(matched) == len(trajectory) < len(joined)
    np.testing.assert_array_equal(matched["air_temperature_neighbours"], trajectory["air_temperature_neighbours"])


def test_trajectory_refuses_unclear_requests(scored):
    model, cube, _ = scored
    with pytest.raises(GeoanomError, match="either tile= .* or cell="):
        feature_trajectory(model, cube)
    with pytest.raises(GeoanomError, match="tile 'zz'"):
        feature_trajectory(model, cube, tile="zz")
    with pytest.raises(GeoanomError, match="cell must be a"):
        feature_trajectory(model, cube, cell=30.0)


# --- handmade results: global, curvilinear, lazy --------------------------------------------------------------


def handmade(lat: np.ndarray, lon: np.ndarray, n_times: int = 6, *, dims=("lat", "lon"), seed: int = 0,
             chunks: dict | None = None, land: np.ndarray | None = None) -> xr.Dataset:
    """A result shaped like model.score's: random irregularities, their flags, fused scores and tile codes."""
    rng = np.random.default_rng(seed)
    shape = (n_times,) + (np.shape(lat) if np.ndim(lat) == 2 else (len(lat), len(lon)))
    irregularity = rng.gamma(2.0, 0.4, (len(DETECTORS),) + shape).astype(np.float32)
    anomaly = rng.normal(size=shape).astype(np.float32)
    if land is not None:
        irregularity[:, :, land], anomaly[:, land] = np.nan, np.nan
    time = pd.date_range("2000-01-01", periods=n_times, freq="MS")
    spatial = {"lat": (dims, lat), "lon": (dims, lon)} if np.ndim(lat) == 2 else {"lat": lat, "lon": lon}
    grid = xr.Dataset(coords=spatial)
    codes, names = tile_codes(tile_labels(grid, 2).values)
    flags = irregularity > 1.0
    votes = flags.sum(axis=0).astype(np.int8)
    result = xr.Dataset(
        {"irregularity": (("detector", "time") + dims, irregularity),
         "anomalous": (("detector", "time") + dims, flags),
         "votes": (("time",) + dims, votes),
         "ensemble": (("time",) + dims, majority(votes, len(DETECTORS))),
         "fused_irregularity": (("time",) + dims, fuse(irregularity, DETECTORS).astype(np.float32)),
         "consensus": (("time",) + dims, rng.random(shape).astype(np.float32)),
         "tas_anomaly": (("time",) + dims, anomaly),
         "tile": (dims, codes.astype(np.int32), {"flag_values": np.arange(len(names)),
                                                  "flag_meanings": " ".join(names)})},
        coords={"detector": list(DETECTORS), "time": time, **spatial},
    )
    return result.chunk(chunks) if chunks else result


def test_antimeridian_bbox_on_a_global_grid():
    result = handmade(np.arange(-88.75, 90, 2.5), np.arange(-180, 180, 2.5))
    table = query(result, bbox=(170.0, -10.0, -170.0, 10.0))
    lon, lat = result["lon"], result["lat"]
    across = ((lon >= 170) | (lon <= -170)) & (lat >= -10) & (lat <= 10)
    assert_rows(table, result, across)
    assert table["lon"].min() == -180 and table["lon"].max() == 177.5 and table["lon"].nunique() == 9
    assert "consensus" in table and table["consensus"].notna().all()
    # the same box as 350 to 10 degrees in the 0-360 convention, across the Greenwich meridian this time
    greenwich = ((lon >= -10) & (lon <= 10)) & (lat >= -10) & (lat <= 10)
    assert_rows(query(result, bbox=(350.0, -10.0, 10.0, 10.0)), result, greenwich)


def test_curvilinear_grid_rows_carry_their_grid_indices():
    y, x = np.meshgrid(np.arange(12.0), np.arange(20.0), indexing="ij")
    lat, lon = 30.0 + 1.5 * y + 0.4 * x, -100.0 + 2.0 * x - 0.5 * y  # rows slant across the tiles
    result = handmade(lat, lon, dims=("y", "x"), chunks={"time": 2, "y": 5, "x": 7})
    tile = str(tile_names(result).values[6, 10])
    table = query(result, tile=tile, bbox=(-95, 30, -70, 50), time=slice("2000-02", "2000-05"))
    inside = ((result["lon"] >= -95) & (result["lon"] <= -70) & (result["lat"] >= 30) & (result["lat"] <= 50)
              & (tile_names(result) == tile) & (result["time"] >= np.datetime64("2000-02-01"))
              & (result["time"] <= np.datetime64("2000-05-01")))
    assert_rows(table, result, inside)
    assert list(table.columns[:6]) == ["time", "y", "x", "lat", "lon", "tile"]
    np.testing.assert_array_equal(table["lat"], lat[table["y"], table["x"]])
    np.testing.assert_array_equal(table["lon"], lon[table["y"], table["x"]])


def test_cells_without_data_are_left_out_and_chunking_changes_nothing():
    land = np.zeros((10, 16), dtype=bool)
    land[2:5, 3:9] = True
    lat, lon = np.linspace(20, 40, 10), np.linspace(-100, -70, 16)
    whole = query(handmade(lat, lon, land=land))
    chunked = query(handmade(lat, lon, land=land, chunks={"time": 4, "lat": 3, "lon": 5}))
    pd.testing.assert_frame_equal(whole, chunked)
    assert len(whole) == 6 * (land.size - land.sum())


def poisoned(result: xr.Dataset, spared: np.ndarray) -> xr.Dataset:
    """The result with every block of its scores outside the ``spared`` cells (y, x) failing when computed."""
    def check(block, block_info=None):
        (y0, y1), (x0, x1) = block_info[0]["array-location"][-2:]
        if not spared[y0:y1, x0:x1].any():
            raise RuntimeError("a block outside the query was computed")
        return block
    out = result.copy()
    for name, variable in result.data_vars.items():
        if "time" in variable.dims:
            out[name] = variable.copy(data=da.map_blocks(check, variable.data, dtype=variable.dtype))
    return out


def test_a_tile_query_computes_only_that_tiles_blocks():
    result = handmade(np.linspace(0, 22, 12), np.linspace(0, 44, 24), chunks={"time": 3, "lat": 4, "lon": 6})
    names = tile_names(result)
    cells = (names == "s0").values
    lazy = poisoned(result, cells)
    with pytest.raises(RuntimeError, match="outside the query"):  # the poison is real
        query(lazy)
    assert_rows(query(lazy, tile="s0"), result, names == "s0")


def test_trajectory_and_query_on_a_fitted_curvilinear_grid():
    cube, _ = synthetic_cube(n_years=6, n_lat=12, n_lon=16, anomaly_rate=0.0)
    y, x = np.meshgrid(np.arange(12.0), np.arange(16.0), indexing="ij")
    lat, lon = 25.0 + 1.5 * y + 0.3 * x, -100.0 + 2.0 * x - 0.4 * y  # rows slant across the tiles
    cube = cube.rename(lat="y", lon="x").drop_vars(["y", "x"]).assign_coords(lat=(("y", "x"), lat),
                                                                               lon=(("y", "x"), lon))
    model = ga.fit(cube.isel(time=slice(None, 36)), precision=2, detectors="gmm")
    result = model.score(cube).compute()
    tile = model.tiles[0]
    trajectory = feature_trajectory(model, cube, tile=tile, time=slice("2004", None))
    keep = (tile_names(result) == tile) & (result["time"].dt.year >= 2004)
    expected = direct(result, keep)
    np.testing.assert_array_equal(trajectory["irregularity_gmm"], expected["irregularity_gmm"])
    assert list(trajectory.columns[:3]) == ["time", "y", "x"]
    joined = query(result, tile=tile, time=slice("2004", None), features=trajectory)
    np.testing.assert_array_equal(joined["tas_neighbours"], trajectory["tas_neighbours"])
    with pytest.raises(GeoanomError, match="time '1990' is not in the cube"):
        feature_trajectory(model, cube, tile=tile, time="1990")


def test_a_feature_table_needs_the_join_keys(scored):
    with pytest.raises(GeoanomError, match="features must be a table with columns time, lat, lon"):
        query(scored[2], tile="dj", features=pd.DataFrame({"time": [0]}))
