"""The one climatology: harmonic, robust, calendar-aware, honest about short records."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import GeoanomWarning, RecordTooShortError
from geoanom.features import Climatology
from geoanom.features.calendar import Design, supported_harmonics
from geoanom.testing import synthetic_cube


def _stacked(cube, name="tas"):
    return cube[name].expand_dims(variable=[name]).transpose("variable", "time", "lat", "lon")


def _cube(values, time):
    n_times, n_lat, n_lon = values.shape
    coords = {"time": time,
              "lat": ("lat", np.linspace(20, 40, n_lat), {"standard_name": "latitude", "units": "degrees_north"}),
              "lon": ("lon", np.linspace(-90, -60, n_lon), {"standard_name": "longitude", "units": "degrees_east"})}
    return xr.Dataset({"tas": (("time", "lat", "lon"), values.astype(np.float32), {"units": "K"})}, coords=coords)


def test_a_sinusoidal_cycle_is_fitted_by_one_harmonic_and_recovered():
    cube, _ = synthetic_cube(n_years=4, anomaly_rate=0.0)
    clim = Climatology.fit(_stacked(cube))
    assert (clim.prefix == 3).all()  # mean + one cos/sin pair: the truth
    lat = cube["lat"].values
    amplitude = 2.0 + 0.3 * (lat - 20.0)
    month = cube["time"].dt.month.values
    truth = (300.0 - 0.6 * (lat[None, :, None] - 20) + 0.05 * cube["lon"].values[None, None, :]
             + amplitude[None, :, None] * np.cos(2 * np.pi * (month - 7) / 12)[:, None, None])
    error = clim.expected(cube["time"])[0] - truth
    assert np.abs(error).mean() < 0.35  # noise 1 K; 48 values per cell
    assert abs(clim.spread.mean() - np.sqrt(1 + 3 / 48)) < 0.05
    assert np.quantile(np.abs(clim.spread - np.sqrt(1 + 3 / 48)), 0.99) < 0.4


def test_per_month_means_win_only_with_enough_years():
    rng = np.random.default_rng(1)
    pattern = np.array([0, 0, 3, 3, 0, 0, -3, -3, 0, 0, 3, 0.0])  # no short harmonic series fits it

    def chosen(n_years):
        time = pd.date_range("2000-01-01", periods=12 * n_years, freq="MS")
        values = 280 + pattern[time.month - 1][:, None, None] + rng.normal(0, 1.0, (time.size, 4, 5))
        return Climatology.fit(_stacked(_cube(values, time))).prefix.max()

    assert chosen(30) == 12  # per-month means: six harmonics on twelve months
    weak = np.array([0, 0, 0.3, 0.3, 0, 0, -0.3, -0.3, 0, 0, 0.3, 0.0])
    time = pd.date_range("2000-01-01", periods=24, freq="MS")
    values = 280 + weak[time.month - 1][:, None, None] + rng.normal(0, 1.0, (24, 4, 5))
    assert Climatology.fit(_stacked(_cube(values, time))).prefix.max() < 12


def test_an_event_inside_the_baseline_moves_neither_the_mean_nor_the_spread():
    cube, _ = synthetic_cube(n_years=2, anomaly_rate=0.0, seed=3)
    clean = Climatology.fit(_stacked(cube))
    hit = cube.copy(deep=True)
    hit["tas"][5, 2:10, 3:12] += 8.0  # an 8-sigma event in one month of the baseline
    robust = Climatology.fit(_stacked(hit))
    shift = np.abs(robust.expected(cube["time"]) - clean.expected(cube["time"]))[0][:, 2:10, 3:12]
    # a per-month mean of two years would move by 4 K; the robust fit barely notices
    assert shift.mean() < 0.1 and np.quantile(shift, 0.95) < 0.3
    widening = np.abs(robust.spread / clean.spread - 1)[:, 0, 2:10, 3:12]
    assert np.median(widening) < 0.05 and np.quantile(widening, 0.95) < 0.2  # a plain SD: +90%
    # the event itself stands out at its full size, and its mirror year does not
    anomaly = robust.standardise(_stacked(hit), training=True).values[0]
    assert np.median(anomaly[5, 2:10, 3:12]) > 5
    assert np.abs(anomaly[17, 2:10, 3:12]).max() < 4


def test_training_anomalies_are_distributed_like_those_of_new_data():
    cube, _ = synthetic_cube(n_years=8, anomaly_rate=0.0, seed=2)
    for months in (24, 36):
        train, test = cube.isel(time=slice(0, months)), cube.isel(time=slice(months, None))
        clim = Climatology.fit(_stacked(train))
        loo = clim.standardise(_stacked(train), training=True).values
        in_sample = clim.standardise(_stacked(train), training=False).values
        new = clim.standardise(_stacked(test)).values
        assert abs(np.std(loo) / np.std(new) - 1) < 0.08, months
        assert np.std(in_sample) < 0.95 * np.std(new)  # what leave-one-out corrects


def test_every_season_gets_an_expected_value_when_training_covers_part_of_the_year():
    cube, _ = synthetic_cube(n_years=1, anomaly_rate=0.0)
    with pytest.warns(GeoanomWarning, match="uncovered"):
        clim = Climatology.fit(_stacked(cube.isel(time=slice(0, 10))))
    assert np.isfinite(clim.expected(cube["time"])).all()
    daily, _ = synthetic_cube(n_years=1, n_lat=4, n_lon=5, anomaly_rate=0.0, frequency="day")
    with pytest.warns(GeoanomWarning, match="too little to fit a seasonal cycle"):
        half = Climatology.fit(_stacked(daily.isel(time=slice(0, 180))))
    assert half.design.n_annual == 0
    assert np.isfinite(half.standardise(_stacked(daily)).values).all()


def test_daily_data_of_300_days_score_every_day_of_the_following_year():
    cube, _ = synthetic_cube(n_years=2, n_lat=6, n_lon=8, anomaly_rate=0.0, frequency="day")
    train = cube.isel(time=slice(0, 300))
    with pytest.warns(GeoanomWarning, match="extrapolated"):
        model = ga.fit(train, detectors="gmm", precision=1)
    result = model.score(cube.isel(time=slice(300, None))).compute()
    assert not result["fused_irregularity"].isnull().all(("lat", "lon")).any()
    assert 0.002 < float(result["anomalous"].mean()) < 0.05


@pytest.mark.parametrize("calendar", ["360_day", "noleap", "standard"])
def test_calendars_keep_the_cycle_in_phase(calendar):
    time = xr.date_range("2001-01-01", periods=3 * 365, freq="D", calendar=calendar, use_cftime=True)
    days_in_year = {"360_day": 360, "noleap": 365, "standard": 365}[calendar]
    phase = np.array([(t.dayofyr - 1) / days_in_year for t in time])
    rng = np.random.default_rng(0)
    values = 10 * np.cos(2 * np.pi * phase)[:, None, None] + rng.normal(0, 0.5, (len(time), 3, 4))
    clim = Climatology.fit(_stacked(_cube(values, time)))
    expected = clim.expected(xr.DataArray(time, dims="time"))[0]
    assert np.abs(expected - 10 * np.cos(2 * np.pi * phase)[:, None, None]).max() < 0.3


def test_annual_data_have_no_seasonal_terms_and_a_trend_on_request():
    cube = ga.sample_cube("north_america").isel(time=slice(0, 100))
    flat = Climatology.fit(_stacked(cube, "air_temperature"))
    assert flat.design.kind == "none" and flat.design.names == ["mean"]
    sloped = Climatology.fit(_stacked(cube, "air_temperature"), trend="linear")
    assert sloped.design.names == ["mean", "trend"]
    later = ga.sample_cube("north_america").isel(time=slice(200, 240))
    drift = Climatology.fit(_stacked(cube, "air_temperature")).standardise(_stacked(later, "air_temperature"))
    # a fixed baseline shows the A1B warming as anomalies; the trend takes part of it out
    assert float(drift.mean()) > 2
    assert float(sloped.standardise(_stacked(later, "air_temperature")).mean()) < float(drift.mean())


def test_a_trend_on_a_short_record_falls_back_to_a_fixed_baseline_and_says_so():
    cube, _ = synthetic_cube(n_years=2, anomaly_rate=0.0)
    with pytest.warns(GeoanomWarning, match="too short to tell a trend"):
        clim = Climatology.fit(_stacked(cube), trend="linear")
    assert not clim.design.trend


def test_a_linear_trend_is_removed_from_the_anomalies():
    cube, _ = synthetic_cube(n_years=10, anomaly_rate=0.0)
    drift = 0.5 * np.arange(cube.sizes["time"]) / 12  # 0.5 K a year
    cube["tas"] = cube["tas"] + drift[:, None, None]
    train, test = cube.isel(time=slice(0, 72)), cube.isel(time=slice(72, None))
    fixed = Climatology.fit(_stacked(train)).standardise(_stacked(test)).values
    trended = Climatology.fit(_stacked(train), trend="linear").standardise(_stacked(test)).values
    assert np.mean(fixed) > 1.5
    assert abs(np.mean(trended)) < 0.15 and abs(np.std(trended) - 1) < 0.15


def test_a_record_too_short_is_refused_in_one_sentence_naming_the_variable_and_minimum():
    cube, _ = synthetic_cube(n_years=1, anomaly_rate=0.0)
    cube.attrs["geoanom_source"] = "tas_short.nc"
    with pytest.raises(RecordTooShortError, match=r"'tas' in 'tas_short.nc' has 1 time step; .* at least 10"):
        ga.fit(cube.isel(time=slice(0, 1)))


def test_the_climatology_is_identical_for_any_chunking():
    cube, _ = synthetic_cube(n_years=3, anomaly_rate=0.0)
    one = Climatology.fit(_stacked(cube).chunk({"time": -1, "lat": -1, "lon": -1}))
    other = Climatology.fit(_stacked(cube).chunk({"time": 5, "lat": 3, "lon": 7}))
    for a, b in zip(one.planes(), other.planes()):
        np.testing.assert_array_equal(a, b)


def test_cells_without_enough_values_are_missing_not_garbage():
    cube, _ = synthetic_cube(n_years=2, anomaly_rate=0.0)
    cube["tas"][:-5, 0, 0] = np.nan  # five valid values
    with pytest.warns(GeoanomWarning, match="1 of 384 cells .* fewer than 10 valid values"):
        clim = Climatology.fit(_stacked(cube))
    assert np.isnan(clim.expected(cube["time"])[0, :, 0, 0]).all()
    assert np.isfinite(clim.expected(cube["time"])[0, :, 1:, 1:]).all()


def test_constant_cells_get_a_floored_spread():
    cube, _ = synthetic_cube(n_years=2, anomaly_rate=0.0)
    cube["tas"][:, 0, 0] = 271.35  # sea ice: a constant cell
    clim = Climatology.fit(_stacked(cube))
    assert clim.spread[:, 0, 0, 0].min() >= 0.05 * np.median(clim.spread) - 1e-12
    assert np.isfinite(clim.standardise(_stacked(cube)).values).all()


def test_harmonics_need_the_phases_to_cover_their_half_period():
    months = np.arange(12) / 12
    assert supported_harmonics(months, 6) == 6
    assert supported_harmonics(months[:6], 6) == 0
    assert supported_harmonics(months[:9], 6) == 1  # Oct-Dec uncovered: a gap of 4 months
    assert Design("month", False, 2000.0, 6, 0).names[-1] == "year_cos6"  # sin(6 x month) is empty


def test_model_anomalies_are_the_climatologys_and_keep_the_grid():
    cube, _ = synthetic_cube(n_years=3, anomaly_rate=0.0)
    model = ga.fit(cube.isel(time=slice(0, 24)), detectors="gmm", precision=1)
    z = model.anomalies(cube.isel(time=slice(24, None)))
    assert z.dims == ("variable", "time", "lat", "lon") and z.attrs["units"] == "1"
    direct = model.climatology.standardise(_stacked(cube.isel(time=slice(24, None))))
    np.testing.assert_array_equal(z.values, direct.values)
    assert abs(float(z.std()) - 1) < 0.1


@pytest.mark.parametrize("kind", ["warm_blob", "step"])
def test_the_ensemble_beats_the_per_cell_z_score_on_coherent_events(kind):
    # Neighbours' anomalies tell a coherent event from noise; a per-cell z cannot.
    from sklearn.metrics import roc_auc_score

    clean, _ = synthetic_cube(n_years=5, n_lat=24, n_lon=32, anomaly_rate=0.0, seed=4)
    cube, truth = ga.testing.inject_events(clean, "tas", kind, start=36, seed=4)
    model = ga.fit(cube.isel(time=slice(0, 36)))
    test = cube.isel(time=slice(36, None))
    labels = truth.isel(time=slice(36, None)).values.ravel()
    fused = model.score(test)["fused_irregularity"].values.ravel()
    z = np.abs(model.anomalies(test).values[0]).ravel()
    assert roc_auc_score(labels, fused) > roc_auc_score(labels, z) + 0.08


def test_detect_trend_linear_fits_and_saves_a_trend(cube_file, tmp_path):
    from geoanom.cli import main

    out, saved = tmp_path / "a.zarr", tmp_path / "model.npz"
    status = main(["detect", str(cube_file), "--var", "tas", "--train-end", "2005", "--out", str(out),
                   "--detectors", "gmm", "--trend", "linear", "--model-out", str(saved)])
    assert status == 0
    model = ga.load_model(saved)
    assert model.climatology.design.trend and model.attrs["trend"] == "linear"
    assert model.attrs["features"] == ["anomalies", "neighbours"]


def test_sub_daily_data_get_a_diurnal_cycle_too():
    time = pd.date_range("2001-01-01", periods=4 * 365 * 2, freq="6h")
    hours, days = time.hour.values, time.day_of_year.values
    rng = np.random.default_rng(5)
    truth = 5 * np.cos(2 * np.pi * (days - 200) / 365.25) + 3 * np.cos(2 * np.pi * (hours - 15) / 24)
    values = truth[:, None, None] + rng.normal(0, 0.5, (time.size, 3, 4))
    clim = Climatology.fit(_stacked(_cube(values, time)))
    assert clim.design.kind == "subdaily" and clim.design.n_diurnal == 2
    assert "day_cos1" in clim.design.names[:clim.prefix.min()]
    expected = clim.expected(xr.DataArray(time, dims="time"))[0]
    assert np.abs(expected - truth[:, None, None]).mean() < 0.2


def test_an_unknown_trend_is_one_sentence():
    cube, _ = synthetic_cube(n_years=2, anomaly_rate=0.0)
    with pytest.raises(ga.GeoanomError, match="trend must be None or 'linear', got 'quadratic'"):
        ga.fit(cube, trend="quadratic")


def test_harmonics_are_chosen_from_at_most_a_few_dozen_cells_of_every_group():
    from geoanom.features.press import PRESS_CELLS, press_sample

    rng = np.random.default_rng(0)
    groups = rng.integers(-1, 7, size=(40, 30))
    groups[groups == 3] = 2  # a group absent, and ungrouped cells (-1) choosing together
    sampled = press_sample(groups, groups.shape)
    for code in np.unique(groups):
        members = groups == code
        assert sampled[members].sum() == min(members.sum(), PRESS_CELLS)
    # spread over the group, not its first cells in grid order
    rows = np.nonzero(sampled & (groups == 0))[0]
    assert rows.min() < 5 and rows.max() > 34
