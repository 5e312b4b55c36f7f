"""Zero-inflated variables: the expected value of daily rain is its mean and seasonal cycle, not the dry day's 0.

Before, the robust fit of a cell with 85% dry days put its expected value
at 0.02 times its mean and lost its seasonal cycle (95% dry: 0.0004 times),
so ``--explain`` and ``ga.plot.cell`` drew the expected value at 0 under
the rain; a sea-ice cell at the freezing point but for a few spikes keeps
its robust one (``tests/test_climatology_edge_cases.py``).
"""

import warnings

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom.features import Climatology


def daily_rain(dry_share: float, n_years: int = 3, seed: int = 0, drizzle: float = 0.0) -> xr.DataArray:
    """Daily rain (variable, time, lat, lon) wetter in summer: ``dry_share`` of days dry on average, with up to
    ``drizzle`` mm on a dry day (model and reanalysis rain is seldom exactly 0)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-01-01", periods=365 * n_years, freq="D")
    summer = 0.5 + 0.5 * np.cos(2 * np.pi * (time.dayofyear.to_numpy() - 200) / 365.25)  # 0 in winter, 1 in summer
    wet_chance = (1 - dry_share) * (0.4 + 1.2 * summer)
    wet = rng.random((time.size, 4, 5)) < wet_chance[:, None, None]
    rain = np.where(wet, rng.gamma(0.8, 8.0, wet.shape), drizzle * rng.random(wet.shape))
    return xr.DataArray(rain[None].astype("float32"), dims=("variable", "time", "lat", "lon"),
                        coords={"variable": ["pr"], "time": time, "lat": np.arange(4.0), "lon": np.arange(5.0)})


@pytest.mark.parametrize("dry_share, drizzle", [(0.4, 0.0), (0.55, 0.0), (0.85, 0.0), (0.95, 0.0), (0.85, 0.01)])
def test_the_expected_rain_is_its_mean_and_follows_the_season(dry_share, drizzle):
    # 40% dry days in a strong wet season were not searched (the wet season's spread is not small), and drizzle of
    # 0-0.01 mm on dry days hid the mass: the expected value was 0.05 times the mean, an ordinary wet day 27 spreads
    rain = daily_rain(dry_share, drizzle=drizzle)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        climatology = Climatology.fit(rain)
    expected = climatology.expected(rain["time"])[0]
    values = rain.values[0]
    assert abs(expected.mean() / values.mean() - 1) < 0.1, (expected.mean(), values.mean())
    month = rain["time"].dt.month.values
    summer, winter = np.isin(month, [6, 7, 8]), np.isin(month, [12, 1, 2])
    data_ratio = values[summer].mean() / values[winter].mean()
    model_ratio = expected[summer].mean() / expected[winter].mean()
    assert abs(np.log(model_ratio / data_ratio)) < np.log(1.3), (model_ratio, data_ratio)


def test_open_months_beside_frozen_ones_keep_their_own_spread():
    # frozen at -1.8 C from December to April: May's and November's spreads were pulled towards the frozen months'
    # (0.31 K against 0.56 K) and 23-27% of their clean values lay beyond 2.576
    rng = np.random.default_rng(5)
    time = pd.date_range("2001-01-16", periods=12 * 12, freq="MS") + pd.Timedelta(days=14)
    month = time.month.to_numpy()
    season = -np.cos(2 * np.pi * (month - 2) / 12)
    values = 3 + 3 * season[:, None, None] + 0.6 * rng.standard_normal((time.size, 6, 8))
    values = np.where(np.isin(month, [12, 1, 2, 3, 4])[:, None, None], -1.8, values)
    data = xr.DataArray(values[None].astype("float32"), dims=("variable", "time", "lat", "lon"),
                        coords={"variable": ["sst"], "time": time, "lat": np.arange(6.0), "lon": np.arange(8.0)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        climatology = Climatology.fit(data.isel(time=slice(0, 120)))
    anomaly = climatology.standardise(data.isel(time=slice(120, None))).values[0]
    held_month = month[120:]
    for open_month in (5, 11):
        assert np.mean(np.abs(anomaly[held_month == open_month]) > 2.576) < 0.06, open_month
    assert np.abs(anomaly[held_month == 2]).max() < 2.576  # a frozen February is no anomaly



def test_the_expected_rain_is_never_below_the_dry_days(tmp_path):
    # least squares' seasonal cycle went below the dry season's 0 (14.7% of cell-days, down to -1 mm/day)
    rain = daily_rain(0.9, n_years=4, seed=2)
    winter = rain["time"].dt.month.isin([1, 2, 3]).values[None, :, None, None]
    dry_season = rain.copy(data=np.where(winter, 0.0, rain.values))
    cube = dry_season[0].drop_vars("variable").to_dataset(name="pr")
    cube["pr"].attrs["units"] = "mm/day"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = ga.fit(cube.isel(time=slice(0, 3 * 365)), detectors="gmm")
    expected = model.climatology.expected(cube["time"])
    assert np.nanmin(expected) >= 0.0
    unbounded = Climatology(*[getattr(model.climatology, f) for f in ("design", "coefficients", "spread",
                            "spread_weight", "prefix", "weight_scale", "leverage_scale", "gram_inverse")])
    assert np.nanmin(unbounded.expected(cube["time"])) < 0  # the bound is what holds it
    model.save(tmp_path / "rain.npz")
    loaded = ga.load_model(tmp_path / "rain.npz")
    np.testing.assert_array_equal(loaded.climatology.lower_bound, model.climatology.lower_bound)
    scored = [m.score(cube.isel(time=slice(3 * 365, None)))["pr_anomaly"].values for m in (model, loaded)]
    np.testing.assert_array_equal(*scored)
