"""Region features: NaN-aware filters, labels exact across chunks, the feature table."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import ndimage

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.features import RegionParams, region_features, region_labels
from geoanom.features.filters import nan_gaussian, nan_median
from geoanom.grid import cell_areas, wraps_in_longitude

CHUNKINGS = [{"lat": 7, "lon": 9}, {"time": 2, "lat": 13, "lon": 20}, {"time": 3, "lat": 10, "lon": 12}]


def event_field(wrap_lon: bool = False, seed: int = 0, n_times: int = 24) -> xr.DataArray:
    """Monthly noise with events that straddle chunk edges, a lone spike and a NaN 'island'."""
    rng = np.random.default_rng(seed)
    n_lat, n_lon = 60, 80
    values = rng.normal(size=(n_times, n_lat, n_lon))
    values[3, 20:35, 30:50] += 4  # across many chunk edges
    values[4, 0:10, 70:80] += 4  # at the domain's corner
    values[5, 40:60, 0:5] += 4  # either side of the antimeridian...
    values[5, 40:60, 75:80] += 4  # ...when the grid is global
    values[5, 10, 10] += 9  # a lone spike: too small to survive the cleaning
    values[:, 45:50, 40:45] = np.nan  # land
    lon = np.linspace(-180, 180, n_lon, endpoint=False) if wrap_lon else np.linspace(0, 350, n_lon)
    return xr.DataArray(
        values, dims=("time", "lat", "lon"), name="sst",
        coords={"time": pd.date_range("2000-01-01", periods=n_times, freq="MS"),
                "lat": np.linspace(-30, 30, n_lat), "lon": lon},
    )


def brute_nan_median(block, size):
    radius = size // 2
    out = np.full(block.shape, np.nan)
    for t, y, x in np.argwhere(np.isfinite(block)):
        window = block[t, max(0, y - radius): y + radius + 1, max(0, x - radius): x + radius + 1]
        out[t, y, x] = np.nanmedian(window)
    return out


@pytest.mark.parametrize("size", [3, 5])
def test_nan_median_is_the_median_of_valid_neighbours(size):
    rng = np.random.default_rng(1)
    block = rng.normal(size=(2, 30, 40))
    block[:, 5:12, 8:11] = np.nan
    np.testing.assert_array_equal(nan_median(block, size), brute_nan_median(block, size))


def test_nan_gaussian_equals_scipy_away_from_gaps_and_ignores_nan():
    rng = np.random.default_rng(2)
    block = rng.normal(size=(1, 80, 80))
    smooth = nan_gaussian(block, 1.5)
    reference = ndimage.gaussian_filter(block[0], 1.5, mode="constant")
    np.testing.assert_allclose(smooth[0, 10:-10, 10:-10], reference[10:-10, 10:-10], rtol=0, atol=1e-12)
    block[0, 30:40, 30:40] = np.nan
    smooth = nan_gaussian(block, 1.5)
    assert np.isnan(smooth[0, 30:40, 30:40]).all()
    assert np.isfinite(np.delete(smooth[0].ravel(), np.flatnonzero(np.isnan(block[0])))).all()
    # a constant field stays constant next to the gap: missing cells do not dilute the mean
    flat = np.where(np.isnan(block), np.nan, 5.0)
    np.testing.assert_allclose(nan_gaussian(flat, 2.0)[np.isfinite(flat)], 5.0)


@pytest.mark.slow  # 12 s each on 2 cores: ci/run-slow
@pytest.mark.parametrize("wrap_lon", [False, True])
def test_labels_are_identical_for_every_chunking(wrap_lon):
    field = event_field(wrap_lon, n_times=12)  # a year is enough to hold the events and keeps it quick
    whole = region_labels(field).values
    assert whole.max() > 0
    for chunks in CHUNKINGS:
        np.testing.assert_array_equal(region_labels(field.chunk(chunks)).values, whole)


def test_labels_match_scipy_numbering_and_skip_land():
    field = event_field()
    labels = region_labels(field.chunk({"lat": 7, "lon": 9})).values
    for step in range(labels.shape[0]):
        expected, _ = ndimage.label(labels[step] > 0)
        np.testing.assert_array_equal(labels[step], expected)
    assert (labels[:, 45:50, 40:45] == 0).all()
    assert labels[5, 10, 10] == 0  # the lone spike is cleaned away
    assert labels[3, 27, 40] > 0  # the big event is found


def test_a_grid_narrower_than_the_halo_is_labelled_as_one_block():
    field = event_field().isel(lat=slice(40, 46), lon=slice(30, 37))  # 6 x 7 cells; the default halo is 9
    field[3] += 4
    params = RegionParams()
    assert params.halo > max(field.shape[1:])
    whole = region_labels(field).values
    assert whole[3].max() > 0
    np.testing.assert_array_equal(region_labels(field.chunk({"lat": 3, "lon": 4})).values, whole)
    for step in range(whole.shape[0]):
        np.testing.assert_array_equal(whole[step], ndimage.label(whole[step] > 0)[0])


def test_a_region_across_the_antimeridian_is_one_region():
    field = event_field(wrap_lon=True)
    labels = region_labels(field.chunk({"lon": 20})).values
    assert labels[5, 50, 1] > 0 and labels[5, 50, 1] == labels[5, 50, 79]
    unwrapped = region_labels(field, wrap=False).values
    assert unwrapped[5, 50, 1] > 0 and unwrapped[5, 50, 1] != unwrapped[5, 50, 79]


@pytest.mark.slow  # 13 s on 2 cores: ci/run-slow
def test_features_are_the_same_for_every_chunking():
    field = event_field(n_times=12)
    whole = region_features(field)
    assert whole["n_regions"].sum() > 0
    for chunks in CHUNKINGS:
        chunked = region_features(field.chunk(chunks))
        pd.testing.assert_frame_equal(chunked, whole, check_exact=True)  # bit for bit


def test_feature_columns_follow_their_definitions():
    field = event_field()
    table = region_features(field, seed=3)
    labels = region_labels(field).values
    anomaly = ga.features.regions.standardised_anomaly(ga.features.regions.as_field(field)).values
    areas = cell_areas(field)
    for step in range(field.sizes["time"]):
        row = table.iloc[step]
        ids = np.arange(1, labels[step].max() + 1)
        assert row["n_regions"] == ids.size
        if ids.size == 0:
            assert row["total_area"] == 0 and np.isnan(row["largest_mean"])
            continue
        region_area = ndimage.sum(areas, labels[step], ids)
        largest = ids[np.argmax(region_area)]
        inside = labels[step] > 0
        weights = areas[inside]
        values = anomaly[step][inside]
        np.testing.assert_allclose(row["total_area"], region_area.sum(), rtol=1e-10)
        np.testing.assert_allclose(row["largest_area"], region_area.max(), rtol=1e-10)
        in_largest = labels[step] == largest
        np.testing.assert_allclose(row["largest_mean"], np.average(anomaly[step][in_largest], weights=areas[in_largest]),
                                   rtol=1e-10)
        np.testing.assert_allclose(row["spatial_variance"],
                                   np.average((values - np.average(values, weights=weights)) ** 2, weights=weights),
                                   rtol=1e-8, atol=1e-12)
        assert row["largest_share_lo"] <= row["largest_share"] + 1e-12
        assert row["largest_share_hi"] >= row["largest_share_lo"]
    # seeded bootstrap: the same seed, the same intervals
    pd.testing.assert_frame_equal(region_features(field, seed=3), table)


def test_areas_are_in_square_kilometres():
    field = event_field()
    areas = cell_areas(field)
    # a 1 x 1 degree cell at the equator is about 111.2 km on a side
    one_degree = cell_areas(xr.Dataset(coords={"lat": [-0.5, 0.5], "lon": [0.0, 1.0]}))
    np.testing.assert_allclose(one_degree, 111.19**2, rtol=1e-3)
    assert areas.shape == (60, 80) and (areas > 0).all()


def test_per_tile_rows_split_each_region_between_tiles():
    field = event_field()
    whole = region_features(field)
    tiled = region_features(field.chunk({"lat": 13, "lon": 20}), precision=2)
    assert tiled.index.names == ["time", "tile"]
    per_step = tiled["total_area"].groupby(level="time").sum()
    np.testing.assert_allclose(per_step.to_numpy(), whole["total_area"].to_numpy(), rtol=1e-10)
    assert (tiled["n_regions"].groupby(level="time").sum() >= whole["n_regions"]).all()


def test_real_sea_surface_temperature_with_land():
    sst = ga.sample_cube("sst")["surface_temperature"]
    land = np.isnan(sst.values)
    assert land.any()
    labels = region_labels(sst).values
    assert labels.max() > 0 and (labels[land] == 0).all()
    table = region_features(sst, precision=2)
    assert table["n_regions"].sum() > 0
    assert np.isfinite(table.loc[table["n_regions"] > 0, "largest_mean"]).all()
    assert wraps_in_longitude(sst)


def test_distributed_cluster_gives_the_same_table():
    distributed = pytest.importorskip("distributed")
    field = event_field().chunk({"lat": 20, "lon": 20})
    local = region_features(field)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster,
                                                                                         set_as_default=False) as client:
        remote = region_features(field, client=client)
    pd.testing.assert_frame_equal(remote, local, check_exact=True)


def test_baseline_period_standardises_the_field():
    field = event_field()
    own = region_labels(field).values
    baseline = region_labels(field, baseline=("2001-01-01", "2001-12-31")).values
    assert not np.array_equal(own, baseline)  # a different climatology, different regions
    with pytest.raises(GeoanomError, match="baseline"):
        region_labels(field, baseline=("2001-01-01", "2001-01-31"))


@pytest.mark.parametrize("bad", [dict(median_size=4), dict(tail="sideways"), dict(structure=3), dict(sigma=-1)])
def test_bad_parameters_are_one_sentence_errors(bad):
    with pytest.raises(GeoanomError):
        region_labels(event_field(), **bad)


def test_region_params_round_trip_as_keywords():
    params = RegionParams(sigma=2.0, median_size=5, threshold=1.0, structure=2)
    assert RegionParams(**params.to_dict()) == params
    labels = region_labels(event_field(), **params.to_dict())
    assert labels.attrs["geoanom_sigma"] == "2.0"


def _noise_with_discs(n_times, seed, n_lat=40, n_lon=60, radius=3.0, size=8.0):
    """White noise with 0-3 discs of +``size`` sigma per step, far enough apart never to touch."""
    rng = np.random.default_rng(seed)
    values = rng.normal(0.0, 1.0, (n_times, n_lat, n_lon))
    rows, cols = np.mgrid[0:n_lat, 0:n_lon]
    counts = rng.integers(0, 4, n_times)
    for step, count in enumerate(counts):
        centres = []
        while len(centres) < count:
            centre = rng.uniform([radius + 1, radius + 1], [n_lat - radius - 1, n_lon - radius - 1])
            if all(np.hypot(*(centre - other)) > 5 * radius for other in centres):
                centres.append(centre)
        for row, col in centres:
            values[step][np.hypot(rows - row, cols - col) <= radius] += size
    coords = {"time": pd.date_range("2000-01-01", periods=n_times, freq="MS"),
              "lat": ("lat", np.linspace(-20, 20, n_lat), {"standard_name": "latitude", "units": "degrees_north"}),
              "lon": ("lon", np.linspace(100, 160, n_lon), {"standard_name": "longitude", "units": "degrees_east"})}
    return xr.DataArray(values, dims=("time", "lat", "lon"), coords=coords, name="noise"), counts


@pytest.mark.parametrize("n_times", [12, 24, 48])
def test_regions_count_the_discs_placed_on_white_noise(n_times):
    # The field's own record is the baseline: a robust climatology is not pulled
    # towards the discs, so no mirror-image regions appear in the other steps.
    for seed in (0, 1):
        field, counts = _noise_with_discs(n_times, seed)
        found = ga.region_features(field)["n_regions"].to_numpy()
        assert np.mean(found == counts) >= 0.9, (seed, found, counts)
