"""Fitting and scoring cubes end to end on real files."""

import re

import cftime
import dask.array as da
import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import roc_auc_score

import geoanom as ga
from geoanom.errors import GeoanomError, ModelFileError, NoDataError, TileError, VariableNotFoundError
from geoanom.model.result import tile_names
from geoanom.testing import synthetic_cube


def _second_half(cube):
    return cube.isel(time=slice(cube.sizes["time"] // 2, None))


def test_injected_anomalies_are_recovered(fitted_model, opened_cube, cube_and_labels):
    result = fitted_model.score(_second_half(opened_cube)).compute()
    labels = _second_half(cube_and_labels[1]).values.ravel()
    auc = roc_auc_score(labels, result["fused_irregularity"].values.ravel())
    assert auc >= 0.95
    for detector in fitted_model.detectors:
        assert roc_auc_score(labels, result["irregularity"].sel(detector=detector).values.ravel()) >= 0.95
    flagged = result["ensemble"].values.ravel()
    assert flagged[labels].mean() > 0.8  # recall of the majority flag
    assert flagged[~labels].mean() < 0.03  # false-alarm rate


def test_result_layout_is_lazy_typed_and_documented(fitted_model, opened_cube):
    result = fitted_model.score(opened_cube)
    assert isinstance(result["irregularity"].data, da.Array)
    assert result["irregularity"].dims == ("detector", "time", "lat", "lon")
    assert result["irregularity"].dtype == np.float32
    assert result["anomalous"].dtype == bool and result["ensemble"].dtype == bool
    assert result["votes"].dims == ("time", "lat", "lon")
    assert list(result["detector"].values) == ["gmm", "kmeans", "dpmm", "iforest", "event"]
    assert result["tile"].dims == ("lat", "lon")
    for name, var in result.data_vars.items():
        assert "long_name" in var.attrs, name
        assert var.attrs["geoanom_precision"] == "2", name
    assert result.attrs["Conventions"].startswith("CF")
    computed = result.compute()
    np.testing.assert_array_equal(computed["anomalous"], computed["irregularity"] > 1)
    np.testing.assert_array_equal(computed["votes"], computed["anomalous"].sum("detector"))
    np.testing.assert_array_equal(computed["ensemble"], computed["votes"] >= 3)


def test_nan_input_stays_nan_and_is_never_anomalous(fitted_model, opened_cube):
    cube = opened_cube.isel(time=slice(-12, None)).copy()
    cube["tas"] = cube["tas"].where(~((cube.lat > 30) & (cube.lon < -80)))
    result = fitted_model.score(cube).compute()
    hole = cube["tas"].isnull()
    assert hole.any()
    assert result["irregularity"].where(hole).isnull().all()
    assert not result["anomalous"].where(hole, False).any()
    assert not result["ensemble"].where(hole, False).any()
    assert (result["irregularity"].notnull() | hole).all()


def test_tiles_with_too_little_data_are_skipped_not_fatal(opened_cube):
    cube = opened_cube.isel(time=slice(None, 72)).copy()
    cube["tas"] = cube["tas"].where(cube.lat < 40)
    model = ga.fit(cube, precision=2, detectors="gmm")
    assert model.skipped
    assert all("no valid observations" in reason for reason in model.skipped.values())
    assert set(model.skipped).isdisjoint(model.tiles)
    result = model.score(opened_cube.isel(time=slice(-3, None))).compute()
    skipped_cells = tile_names(result).isin(list(model.skipped))
    assert result["irregularity"].where(skipped_cells).isnull().all()
    with pytest.raises(TileError, match="was skipped"):
        model.score(opened_cube, tile=next(iter(model.skipped)))


def test_all_nan_training_is_one_clear_error(opened_cube):
    cube = opened_cube.isel(time=slice(None, 24)) * np.nan
    with pytest.raises(NoDataError, match="valid observations"):
        ga.fit(cube, precision=2)


def test_scoring_with_one_tiles_model(fitted_model, opened_cube):
    cube = _second_half(opened_cube)
    tile = fitted_model.tiles[0]
    own = fitted_model.score(cube).compute()
    with pytest.warns(ga.GeoanomWarning, match="anomalies from its own climatology, not its values"):
        by_one = fitted_model.score(cube, tile=tile).compute()
    mine = tile_names(own) == tile
    xr.testing.assert_equal(by_one["irregularity"].where(mine), own["irregularity"].where(mine))
    assert by_one["irregularity"].notnull().all()
    assert by_one["irregularity"].attrs["geoanom_scored_by_tile"] == tile
    with pytest.raises(TileError, match="tile 'zz' has no model"):
        fitted_model.score(cube, tile="zz")


def test_chunking_does_not_change_the_model(cube_file, opened_cube):
    training = opened_cube.isel(time=slice(None, 72))
    whole = ga.fit(training, precision=2, detectors="gmm")
    chunked_cube = ga.open_cube(cube_file, chunks={"time": 10, "lat": 5, "lon": 7})
    chunked = ga.fit(chunked_cube.isel(time=slice(None, 72)), precision=2, detectors="gmm", split_every=2)
    assert chunked.tiles == whole.tiles
    a = whole.score(opened_cube).irregularity.values
    b = chunked.score(chunked_cube).irregularity.values
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("suffix", [".npz", ".zarr"])
def test_save_and_load_give_identical_scores(fitted_model, opened_cube, tmp_path, suffix):
    path = tmp_path / f"model{suffix}"
    fitted_model.save(path)
    loaded = ga.load_model(path)
    assert loaded.tiles == fitted_model.tiles and loaded.detectors == fitted_model.detectors
    cube = opened_cube.isel(time=slice(-24, None))
    xr.testing.assert_identical(loaded.score(cube).compute(), fitted_model.score(cube).compute())
    if suffix == ".npz":  # plain arrays: readable without pickle
        with np.load(path, allow_pickle=False) as stored:
            assert all(stored[name].dtype != object for name in stored.files)


def test_loading_a_bad_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(ModelFileError, match="does not exist"):
        ga.load_model(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_text("not a model")
    with pytest.raises(ModelFileError, match="cannot read model"):
        ga.load_model(bad)


def test_scoring_another_grid_is_refused(fitted_model, opened_cube):
    other, _ = synthetic_cube(n_years=2, n_lat=5, n_lon=5)
    with pytest.raises(GeoanomError, match="differs from the model's"):
        fitted_model.score(other)
    # the same shape, shifted half a degree: the message says how (it showed two equal shapes)
    shifted = opened_cube.assign_coords(lat=opened_cube["lat"] + 0.5)
    with pytest.raises(GeoanomError, match=r"lat is shifted by \+0.5 throughout .*; score data on the grid"):
        fitted_model.score(shifted)
    # the same cells in another convention (a file opened with xarray alone) are put in open_cube's order first
    wrapped = opened_cube.assign_coords(lon=opened_cube["lon"] % 360)
    expected = fitted_model.score(opened_cube)["irregularity"].values
    np.testing.assert_array_equal(fitted_model.score(wrapped)["irregularity"].values, expected)
    np.testing.assert_array_equal(fitted_model.score(opened_cube.isel(lat=slice(None, None, -1)))["irregularity"].values,
                                  expected)


def test_unknown_variable_lists_the_known_ones(opened_cube):
    with pytest.raises(VariableNotFoundError, match="known variables: tas"):
        ga.fit(opened_cube, variables=["pr"])


def test_360_day_calendar_and_curvilinear_grid(tmp_path):
    rng = np.random.default_rng(0)
    times = [cftime.Datetime360Day(2000 + m // 12, m % 12 + 1, 16) for m in range(120)]
    y, x = np.meshgrid(np.arange(12), np.arange(10), indexing="ij")
    lat = 40 + 0.8 * y + 0.1 * x  # a rotated, curvilinear grid
    lon = -30 + 0.9 * x - 0.2 * y
    values = 290 - 0.5 * lat + 3 * np.cos(2 * np.pi * np.arange(120) / 12)[:, None, None]
    values = values + rng.normal(0, 0.5, (120, 12, 10))
    ds = xr.Dataset(
        {"thetao": (("time", "y", "x"), values.astype("float32"), {"units": "degC"})},
        coords={
            "time": times,
            "nav_lat": (("y", "x"), lat, {"standard_name": "latitude", "units": "degrees_north"}),
            "nav_lon": (("y", "x"), lon, {"standard_name": "longitude", "units": "degrees_east"}),
        },
    )
    path = tmp_path / "ocean.nc"
    ds.to_netcdf(path)
    cube = ga.open_cube(path)
    assert isinstance(cube.time.values[0], cftime.Datetime360Day)
    model = ga.fit(cube.isel(time=slice(None, 60)))
    assert not model.skipped
    assert model.climatology.design.kind == "month"
    result = model.score(cube.isel(time=slice(60, None))).compute()
    assert result["irregularity"].dims == ("detector", "time", "y", "x")
    assert isinstance(result.time.values[0], cftime.Datetime360Day)
    assert result["irregularity"].notnull().all()
    assert result["ensemble"].mean() < 0.1


def test_sst_sample_with_land(tmp_path):
    cube = ga.sample_cube("sst")
    model = ga.fit(cube.isel(time=slice(None, 36)), detectors="gmm")
    result = model.score(cube.isel(time=slice(36, None))).compute()
    land = cube["surface_temperature"].isel(time=slice(36, None)).isnull()
    assert land.any() and (~land).any()
    assert result["irregularity"].where(land).isnull().all()
    assert result["irregularity"].notnull().where(~land).mean() > 0.9
    assert any("NaN" in reason for reason in model.skipped.values())


def test_a_dataarray_is_a_one_variable_cube(opened_cube):
    model = ga.fit(opened_cube["tas"].isel(time=slice(None, 72)), precision=2, detectors="gmm")
    assert model.variables == ["tas"]
    from_array = model.score(opened_cube["tas"].isel(time=slice(-12, None))).compute()
    from_dataset = model.score(opened_cube.isel(time=slice(-12, None))).compute()
    xr.testing.assert_equal(from_array["irregularity"], from_dataset["irregularity"])


def test_tiles_too_small_for_the_record_are_refused_with_the_way_out():
    cube, _ = synthetic_cube(n_years=3, anomaly_rate=0.0)
    training = cube.isel(time=slice(0, 36))
    with pytest.raises(NoDataError, match=r"precision 3 has \d+ valid observations to fit \(the fullest has 36\); "
                       r"precision (\d) would hold enough") as refusal:
        ga.fit(training, precision=3)
    suggested = int(re.search(r"precision (\d) would", str(refusal.value)).group(1))
    assert ga.fit(training, precision=suggested, detectors="gmm").ensembles  # the way out works


def test_a_single_cell_too_short_for_any_precision_says_so():
    cube, _ = synthetic_cube(n_years=1, anomaly_rate=0.0)
    one_cell = cube.isel(lat=slice(0, 1), lon=slice(0, 1), time=slice(0, 12))
    with pytest.raises(NoDataError, match=r"the fullest has 12\), and no coarser precision would hold enough; "
                       "choose a longer training period"):
        ga.fit(one_cell, precision=2)


def _warmer(cube, kelvin=8.0):
    warm = _second_half(cube).copy()
    warm["tas"] = warm["tas"] + kelvin  # a lasting change: every later step warmer
    return warm


def test_a_lazy_result_means_the_same_after_an_adaptive_score(fitted_model, opened_cube):
    warm = _warmer(opened_cube)
    computed_first = fitted_model.score(warm)["ensemble"].values
    lazy = fitted_model.score(warm)
    gmm_means = {tile: e.detectors_["gmm"].means_.copy() for tile, e in fitted_model.ensembles.items()}
    adapted_result, adapted = fitted_model.adapt(warm, adapt_every=50)
    computed_after = lazy["ensemble"].values
    np.testing.assert_array_equal(computed_after, computed_first)
    assert computed_first[-12:].mean() > 0.9 and adapted_result["ensemble"].values[-12:].mean() < 0.2
    # the model is untouched; the adapted copy moved, and scores the same period as normal now
    for tile, ensemble in fitted_model.ensembles.items():
        np.testing.assert_array_equal(ensemble.detectors_["gmm"].means_, gmm_means[tile])
    assert adapted is not fitted_model and adapted.tiles == fitted_model.tiles
    assert not np.array_equal(adapted.ensembles[adapted.tiles[0]].detectors_["gmm"].means_, gmm_means[adapted.tiles[0]])
    assert adapted.score(warm)["ensemble"].values[-12:].mean() < computed_first[-12:].mean()


def test_a_lazy_result_holds_the_models_as_they_were_when_it_was_made(fitted_model, opened_cube):
    model = fitted_model.copy()
    warm = _warmer(opened_cube)
    before = model.score(warm)["fused_irregularity"].values
    lazy = model.score(warm)
    shifted = np.random.default_rng(0).normal(size=(2000, len(model.attrs["feature_names"]))) + 8.0
    for ensemble in model.ensembles.values():  # the detectors' own, in-place adaptation
        ensemble.irregularity_adapting(shifted, 50)
    np.testing.assert_array_equal(lazy["fused_irregularity"].values, before)
    assert not np.allclose(model.score(warm)["fused_irregularity"].values, before, equal_nan=True)


def test_adapting_with_a_region_model_leaves_the_regions_as_they_were(fitted_model, opened_cube):
    warm = _warmer(opened_cube)
    prefix = fitted_model.tiles[0][:1]
    region_means = fitted_model.region(prefix).detectors_["gmm"].means_.copy()
    with pytest.warns(ga.GeoanomWarning, match="not its values"):
        _, adapted = fitted_model.adapt(warm, tile=prefix, adapt_every=50)
    np.testing.assert_array_equal(fitted_model.region(prefix).detectors_["gmm"].means_, region_means)
    assert not np.array_equal(adapted.region(prefix).detectors_["gmm"].means_, region_means)
    assert adapted.region_models.keys() == fitted_model.region_models.keys()


def test_the_model_keeps_the_calendar_as_the_file_names_it(tmp_path):
    cube, _ = synthetic_cube(n_years=2, n_lat=4, n_lon=5)
    cube["time"].encoding["calendar"] = "gregorian"  # xarray alone would report proleptic_gregorian
    cube.to_netcdf(tmp_path / "gregorian.nc")
    model = ga.fit(ga.open_cube(tmp_path / "gregorian.nc"), precision=1, detectors="gmm")
    assert model.attrs["calendar"] == "gregorian"


def test_variables_with_different_coverage_warn_and_name_the_reason():
    # sst missing on "land" where tas has values: those cells went unscored, and their tiles were skipped as
    # "every cell is NaN" although tas was valid in every cell
    from geoanom.errors import GeoanomWarning

    cube, _ = synthetic_cube(n_years=3, n_lat=8, n_lon=10, seed=1, frequency="month")
    cube["sst"] = cube["tas"] + 1.0
    cube["sst"][:, :, :4] = np.nan
    with pytest.warns(GeoanomWarning, match=r"32 of 80 cells of .* lack sst while holding another of sst, tas"):
        model = ga.fit(cube.isel(time=slice(0, 24)), variables=["sst", "tas"], detectors="gmm", precision=2)
    reasons = set(model.skipped.values())
    assert "no valid observations (no cell holds all of sst, tas at once in the training period)" in reasons
    assert not any("every cell is NaN" in reason for reason in reasons)


@pytest.mark.parametrize("adapt_every", [0, -5, 2.5, True])
def test_adapt_refuses_a_speed_that_is_not_a_positive_count(fitted_model, opened_cube, adapt_every):
    # -5 switched detection off without a word (every fused irregularity under 0.01)
    with pytest.raises(GeoanomError, match="adapt_every must be a whole number"):
        fitted_model.adapt(opened_cube.isel(time=slice(0, 3)), adapt_every=adapt_every)


def test_scoring_an_empty_time_selection_says_so(fitted_model, opened_cube):
    with pytest.raises(GeoanomError, match="no time step to score"):  # was a ZeroDivisionError
        fitted_model.score(opened_cube.isel(time=slice(0, 0)))


def test_fit_on_a_plain_array_points_to_the_detectors():
    with pytest.raises(GeoanomError, match=r"not a numpy.ndarray; for rows of plain features use geoanom.Ensemble"):
        ga.fit(np.zeros((10, 4, 4)))


def test_flags_and_codes_are_left_out_unless_named(tmp_path):
    # an int8 QC flag was modelled beside tas by default: its 1s were anomalies of 59 spreads
    from geoanom.errors import GeoanomWarning

    cube, _ = synthetic_cube(n_years=3, n_lat=8, n_lon=10, seed=2, frequency="month")
    rng = np.random.default_rng(0)
    cube["tas_qc"] = cube["tas"].copy(data=(rng.random(cube["tas"].shape) < 0.01).astype("int8"))
    cube["land"] = cube["tas"].copy(data=(rng.random(cube["tas"].shape) < 0.5).astype("float32"))
    cube["land"].attrs.update(flag_values=[0, 1], flag_meanings="sea land")
    cube.to_netcdf(tmp_path / "with_flags.nc")
    opened = ga.open_cube(tmp_path / "with_flags.nc")
    with pytest.warns(GeoanomWarning, match="tas_qc, land in .* are left out of the model"):
        model = ga.fit(opened, detectors="gmm", precision=2)
    assert model.variables == ["tas"]
    assert ga.fit(opened, variables=["tas", "tas_qc"], detectors="gmm", precision=2).variables == ["tas", "tas_qc"]
