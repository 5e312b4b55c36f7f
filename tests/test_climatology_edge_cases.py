"""The climatology on records real files hold but noise-free synthetic tests never do.

- Cells that repeat one year to the last digit (a lake or sea-ice field filled
  from a climatology: OSTIA's Lake Victoria), constant cells, and constant cells
  with one spike: the robust scale is rounding (~1e-7 K), so the bisquare
  weights dropped every value of a month that differed by a hundredth of a
  kelvin, and only the ridge held that month's fit: expected values of -160 K.
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import GeoanomWarning, RecordTooShortError
from geoanom.features.climatology import Climatology
from geoanom.features.pipeline import stack_variables
from geoanom.testing import synthetic_cube
from geoanom.tiling import tile_codes, tile_labels

TRAINING = 33  # 2006-04 .. 2008-12, as the new user's --train-end 2008-12


def _cube(x: np.ndarray) -> xr.DataArray:
    """(variable, time, lat, lon) monthly values from April 2006, as the OSTIA sample."""
    n, ny, nx = x.shape
    time = pd.date_range("2006-04-01", periods=n, freq="MS") + pd.Timedelta(days=15)
    return xr.DataArray(x[None].astype("float32"), dims=("variable", "time", "lat", "lon"),
                        coords={"variable": ["sst"], "time": time, "lat": np.arange(ny), "lon": np.arange(nx)})


def _ostia():
    sample = pytest.importorskip("iris_sample_data")
    return ga.open_cube(str(Path(sample.__file__).parent / "sample_data" / "ostia_monthly.nc"))


def _fit_and_score(values: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    """Expected values and anomalies (time, lat, lon) of a climatology fitted on the first ``TRAINING`` steps."""
    clim = Climatology.fit(values.isel(time=slice(0, TRAINING)))
    training = np.arange(values.sizes["time"]) < TRAINING
    return clim.expected(values["time"])[0], clim.standardise(values, training=training).values[0]


def test_cells_that_repeat_or_stand_still_get_their_own_values_and_no_anomaly():
    rng = np.random.default_rng(0)
    n = 54
    season = (299 + rng.uniform(-1, 1, 12))[(np.arange(n) + 3) % 12]
    x = season[:, None, None] + rng.normal(0, 0.5, (n, 6, 8))  # noisy neighbours set the field's spread
    x[:, 0, 0] = season
    x[22, 0, 0] += 0.012  # one training February a hundredth of a kelvin off: -162 K expected before
    x[:, 0, 1] = 280.0  # exactly constant
    x[:, 0, 2] = 280.0
    x[22, 0, 2] += 5.0  # constant but one training spike: -152 K expected in its month before
    x[:, 0, 3] = season
    x[22, 0, 3] += 5.0  # repeating, one training spike
    expected, z = _fit_and_score(_cube(x))
    x = x.astype("float32")
    spike = np.zeros(n, dtype=bool)
    spike[22] = True
    for j in range(4):
        assert np.abs(expected[:, 0, j] - x[:, 0, j])[~spike].max() < 0.01, j
    np.testing.assert_allclose(expected[22, 0, 2:4], x[10, 0, 2:4], atol=1e-3)  # the other February
    # as a per-cell z-score says: nothing anomalous but the spikes, which are
    assert np.abs(z[:, 0, :2]).max() < 1.0
    assert np.abs(z[~spike, 0, 2:4]).max() < 1.0
    # the constant cell holds a point mass: its spread is the plain one, which its own spike widens (z 4.1)
    assert (z[22, 0, 2:4] > 4).all() and z[22, 0, 3] > 10
    zscore = (x[:, 0, 2:4] - x[:TRAINING, 0, 2:4].mean(0)) / x[:TRAINING, 0, 2:4].std(0)
    assert (np.abs(zscore[22]) > 4).all() and (np.abs(zscore[~spike]) < 1.5).all()


def test_lake_victoria_in_the_ostia_sample_keeps_its_februaries():
    """The new user's file: five lake cells repeat one year but for one February (about 0.007 K off)."""
    cube = _ostia()
    values = stack_variables(cube, ["surface_temperature"]).load()
    x = values.values[0]
    lake = (np.abs(x[12:] - x[:-12]) < 0.05).all(axis=0)  # cells repeating one year to 0.05 K (land: NaN)
    assert lake.sum() == 5
    # the tiles choose their harmonics, as in ``geoanom detect``: the lake's tile takes one mean per month
    codes, _ = tile_codes(tile_labels(cube))
    clim = Climatology.fit(values.isel(time=slice(0, TRAINING)), groups=codes)
    training = np.arange(values.sizes["time"]) < TRAINING
    expected = clim.expected(values["time"])[0][:, lake]
    z = clim.standardise(values, training=training).values[0][:, lake]
    # before: February expected 136.17 K against 299.75 K observed, anomalies +7375
    assert np.abs(expected - x[:, lake]).max() < 0.02
    assert np.abs(z).max() < 1.0


def test_nans_that_shorten_the_record_warn_as_a_short_time_axis_does():
    """OSTIA with its first 23 steps NaN everywhere: training to 2008-12 holds values only from 2008-03."""
    cube = _ostia()
    values = stack_variables(cube, ["surface_temperature"]).isel(time=slice(0, TRAINING)).load()
    blanked = values.copy(data=values.values.copy())
    blanked[:, :23] = np.nan
    # the same months as a time axis that starts in March 2008: Jan and Feb never seen
    with pytest.warns(GeoanomWarning, match="uncovered") as short_axis:
        by_dates = Climatology.fit(values.isel(time=slice(23, None)))
    with pytest.warns(GeoanomWarning, match=r"\(values only from 2008-03-16.*to 2008-12-16.*\) leaves 25% of the "
                                            "year uncovered") as by_nans:
        by_values = Climatology.fit(blanked)  # before: no warning, and per-month means it cannot support
    assert by_values.design.n_annual == by_dates.design.n_annual == 2
    assert len(by_nans) == len(short_axis)
    np.testing.assert_array_equal(by_values.prefix, by_dates.prefix)
    np.testing.assert_allclose(by_values.expected(values["time"]), by_dates.expected(values["time"]), rtol=1e-9)


def test_too_few_steps_holding_values_are_refused_as_too_few_steps_are():
    cube, _ = synthetic_cube(n_years=2, n_lat=3, n_lon=4, anomaly_rate=0.0)
    values = stack_variables(cube, None).load()
    values[:, 6:] = np.nan  # 24 steps, 6 holding values
    with pytest.raises(RecordTooShortError, match="6 time steps holding any value"):
        Climatology.fit(values)


def test_a_trend_needs_three_years_of_values_not_of_dates():
    cube, _ = synthetic_cube(n_years=4, n_lat=3, n_lon=4, anomaly_rate=0.0)
    values = stack_variables(cube, None).load()
    values[:, :24] = np.nan  # four years of dates, two of values
    with pytest.warns(GeoanomWarning, match="too short to tell a trend"):
        clim = Climatology.fit(values, trend="linear")
    assert not clim.design.trend


@pytest.mark.parametrize("frequency", ["month", "day"])
def test_three_full_years_are_enough_for_a_trend(frequency):
    # 36 months span 2.92 years from the first stamp to the last, and 2000-2002's days 2.997: both cover three
    cube, _ = synthetic_cube(n_years=4, n_lat=3, n_lon=4, anomaly_rate=0.0, frequency=frequency)
    cube = cube.sel(time=slice("2000-01-01", "2002-12-31"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeoanomWarning)
        clim = Climatology.fit(stack_variables(cube, None).load(), trend="linear")
    assert clim.design.trend
    shorter = stack_variables(cube, None).load().isel(time=slice(1, None))  # one step fewer: refused, saying how long
    with pytest.warns(GeoanomWarning, match=r"covers 2\.9\d years, too short to tell a trend"):
        assert not Climatology.fit(shorter, trend="linear").design.trend


def test_monthly_values_with_every_other_month_nan_stay_monthly():
    cube, _ = synthetic_cube(n_years=4, n_lat=3, n_lon=4, anomaly_rate=0.0)
    values = stack_variables(cube, None).load()
    values[:, 1::2] = np.nan  # values in six months of the year, every other one: three harmonics at the most
    with pytest.warns(GeoanomWarning, match="leaves 17% of the year uncovered"):
        clim = Climatology.fit(values)
    assert clim.design.kind == "month" and clim.design.n_annual == 3


def test_a_cell_whose_own_values_miss_part_of_the_year_fits_only_what_they_support():
    """Per-month means chosen for the field; one cell never seen in January or February while training."""
    rng = np.random.default_rng(1)
    n = 54
    season = (299 + 3 * rng.uniform(-1, 1, 12))[(np.arange(n) + 3) % 12]
    x = season[:, None, None] + rng.normal(0, 0.2, (n, 4, 5))
    months = (np.arange(n) + 3) % 12 + 1
    unseen = (months <= 2) & (np.arange(n) < TRAINING)
    x[unseen, 0, 0] = np.nan
    with pytest.warns(GeoanomWarning, match="1 of 20 cells .* leave more of the year uncovered than the training "
                                            "period does \\(up to 25%\\)"):
        clim = Climatology.fit(_cube(x).isel(time=slice(0, TRAINING)))
    assert clim.prefix[0, 0, 0] == 5 and (clim.prefix[0].ravel()[1:] == 12).all()  # two harmonics: a 3-month gap
    expected = clim.expected(_cube(x)["time"])[0]
    # before: only the ridge held January and February, expected 163 K below the values
    assert np.abs(expected - x)[(months <= 2) & ~unseen, 0, 0].max() < 4.0  # extrapolated, not held by the ridge
    assert (expected[:, 0, 0] > 290).all()


def test_cells_with_too_few_values_are_counted_in_a_warning_and_left_unscored():
    # they became NaN without a word, where the README promised a refusal
    cube, _ = synthetic_cube(n_years=3, n_lat=8, n_lon=10, seed=1, frequency="month")
    values = cube["tas"].values.copy()
    values[5:, 0:2, 0:3] = np.nan  # six cells with five training values
    values[:, 7, 9] = np.nan  # a cell without any: not counted
    cube["tas"].values[:] = values
    with pytest.warns(GeoanomWarning, match=r"6 of 79 cells of 'tas' .* fewer than 10 valid values"):
        model = ga.fit(cube.isel(time=slice(0, 24)), detectors="gmm")
    fused = model.score(cube)["fused_irregularity"].values
    assert np.isnan(fused[:, 0:2, 0:3]).all() and np.isfinite(fused[:, 2:7]).all()


def test_zero_inflated_precipitation_gets_a_spread_and_a_warning():
    # 70% dry days: the robust spread collapsed onto the zeros, an ordinary wet day was 10 spreads and 23% of the
    # observations lay beyond 3 (a plain per-cell z-score: under 3%)
    rng = np.random.default_rng(0)
    shape = (3 * 365, 6, 8)
    rain = np.where(rng.random(shape) < 0.3, rng.gamma(0.8, 6.0, shape), 0.0)
    time = pd.date_range("2001-01-01", periods=shape[0], freq="D")
    values = xr.DataArray(rain[None].astype("float32"), dims=("variable", "time", "lat", "lon"),
                          coords={"variable": ["pr"], "time": time, "lat": np.arange(6.0), "lon": np.arange(8.0)})
    train = values.isel(time=slice(0, 730))
    with pytest.warns(GeoanomWarning, match="48 cells of 'pr' .* hold one value"):
        clim = Climatology.fit(train)
    z = clim.standardise(values.isel(time=slice(730, None))).values
    assert 0.005 < np.mean(np.abs(z) > 3) < 0.06
    assert np.median(z[rain[None, 730:] > 0]) < 2


@pytest.mark.parametrize("persistence, warned", [(0.98, True), (0.9, False), (0.0, False)])
def test_daily_anomalies_that_persist_beyond_the_correction_are_warned_of(persistence, warned):
    # the fit counts independent values to first order (tests/test_persistence.py): at 0.98 and 3 years, 6.8% of
    # clean days were flagged for a contamination of 1%; at 0.9, 1.8-2.1%
    rng = np.random.default_rng(0)
    time = pd.date_range("2000-01-01", periods=730, freq="D")
    noise = rng.standard_normal((730, 4, 5))
    for t in range(1, 730):
        noise[t] = persistence * noise[t - 1] + np.sqrt(1 - persistence**2) * noise[t]
    values = 280 + 5 * np.cos(2 * np.pi * time.day_of_year.to_numpy() / 365.25)[:, None, None] + noise
    cube = xr.Dataset({"tas": (("time", "lat", "lon"), values)},
                      coords={"time": time, "lat": np.arange(4.0), "lon": np.arange(5.0)})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Climatology.fit(stack_variables(cube, None).load())
    messages = [str(w.message) for w in caught if issubclass(w.category, GeoanomWarning)]
    assert any("persist from one step to the next" in m for m in messages) == warned


def test_cells_open_half_the_year_get_the_seasonal_cycle_of_the_months_they_hold():
    # sea ice from December to May: was one mean, so a normal June read -1.1 spreads and August +1.0
    rng = np.random.default_rng(12)
    time = pd.date_range("2001-01-15", periods=180, freq="MS") + pd.Timedelta(days=14)
    month = time.month.to_numpy()
    values = 1.0 + 2.0 * np.cos(2 * np.pi * (month - 8.5) / 12)[:, None, None] + 0.3 * rng.standard_normal((180, 4, 6))
    values[np.ix_(~np.isin(month, [6, 7, 8, 9, 10, 11]), np.arange(2, 4), np.arange(6))] = np.nan  # the ice half
    cube = xr.Dataset({"sst": (("time", "lat", "lon"), values)},
                      coords={"time": time, "lat": [60.0, 61.0, 62.0, 63.0], "lon": np.arange(6.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeoanomWarning)  # the ice half leaves more of the year uncovered: said
        clim = Climatology.fit(stack_variables(cube.isel(time=slice(None, 120)), None).load())
    anomaly = clim.standardise(stack_variables(cube.isel(time=slice(120, None)), None).load()).values[0][:, 2:]
    by_month = [np.nanmean(anomaly[month[120:] == m]) for m in range(6, 12)]
    assert np.abs(by_month).max() < 0.3
    assert 0.7 < np.nanstd(anomaly) < 1.3  # was 0.45: the cycle counted as spread
