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

from geoanom.features import Climatology


def daily_rain(dry_share: float, n_years: int = 3, seed: int = 0) -> xr.DataArray:
    """Daily rain (variable, time, lat, lon) wetter in summer: ``dry_share`` of days dry on average."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-01-01", periods=365 * n_years, freq="D")
    summer = 0.5 + 0.5 * np.cos(2 * np.pi * (time.dayofyear.to_numpy() - 200) / 365.25)  # 0 in winter, 1 in summer
    wet_chance = (1 - dry_share) * (0.4 + 1.2 * summer)
    wet = rng.random((time.size, 4, 5)) < wet_chance[:, None, None]
    rain = np.where(wet, rng.gamma(0.8, 8.0, wet.shape), 0.0)
    return xr.DataArray(rain[None].astype("float32"), dims=("variable", "time", "lat", "lon"),
                        coords={"variable": ["pr"], "time": time, "lat": np.arange(4.0), "lon": np.arange(5.0)})


@pytest.mark.parametrize("dry_share", [0.55, 0.85, 0.95])
def test_the_expected_rain_is_its_mean_and_follows_the_season(dry_share):
    rain = daily_rain(dry_share)
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
