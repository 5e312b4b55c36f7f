"""A spread that follows the season: each month's robust spread judged on its own scale, not the whole year's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

import geoanom as ga


def seasonal_cube(low: float, high: float, n_years: int = 20, seed: int = 8) -> xr.Dataset:
    """Gaussian monthly values whose spread runs from ``low`` in February to ``high`` in August."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("1991-01-16", periods=12 * n_years, freq="MS") + pd.Timedelta(days=15)
    month = time.month.to_numpy()
    season = np.cos(2 * np.pi * (month - 8) / 12)
    spread = low + (high - low) * (0.5 + 0.5 * season)
    values = 280.0 + 5.0 * season[:, None, None] + spread[:, None, None] * rng.standard_normal((time.size, 8, 10))
    data = xr.DataArray(values.astype(np.float32), dims=("time", "lat", "lon"), attrs={"units": "K"},
                        coords={"time": time, "lat": np.arange(8.0), "lon": np.arange(10.0) + 10.0})
    return xr.Dataset({"v": data})


def test_the_quiet_season_keeps_its_own_spread_and_the_variable_one_its_own():
    cube = seasonal_cube(0.2, 2.0)
    train, test = cube.isel(time=slice(None, 120)), cube.isel(time=slice(120, None))
    model = ga.fit(train, detectors="gmm")
    anomaly = model.score(test)["v_anomaly"].values
    month = test["time"].dt.month.to_numpy()
    august = np.abs(anomaly[month == 8])
    # judged on the whole year's scale, August's large residuals were weighted out: 14% of clean August values
    # lay beyond 2.576 spreads (1% for a Gaussian); now about 2%
    assert (august > 2.576).mean() < 0.04
    event = test["v"].copy()
    february = np.flatnonzero(month == 2)[5]
    event[february, 2:5, 2:5] += 5 * 0.2  # +5 of February's own spreads
    seen = model.score(test.assign(v=event))["v_anomaly"].values[february, 2:5, 2:5]
    # February's spread was set by the summer's: the event read 1.35 spreads; now about 2.6
    assert seen.mean() > 2.2


def quiet_february(others: float, n_years: int, shape: tuple[int, int], seed: int,
                   event: tuple[int, float] | None = None) -> xr.DataArray:
    """Monthly values (variable, time, lat, lon) whose February's spread is 0.2 and every other month's ``others``;
    ``event``: (step, size) added to the first half of the grid's rows and columns."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2001-01-16", periods=12 * n_years, freq="MS") + pd.Timedelta(days=14)
    month = time.month.to_numpy()
    spread = np.where(month == 2, 0.2, others)
    values = 285.0 + 10 * np.cos(2 * np.pi * (month - 7) / 12)[:, None, None] + spread[:, None, None] * \
        rng.standard_normal((time.size,) + shape)
    if event is not None:
        values[event[0], :shape[0] // 2, :shape[1] // 2] += event[1]
    data = xr.DataArray(values[None].astype(np.float32), dims=("variable", "time", "lat", "lon"), attrs={"units": "K"},
                        coords={"variable": ["v"], "time": time, "lat": np.arange(float(shape[0])),
                                "lon": np.arange(float(shape[1])) + 10.0})
    return data


def test_a_month_far_quieter_than_its_neighbours_keeps_its_own_spread():
    # February 10 times quieter than the rest: pooled over the three months, its spread was its neighbours' (clean
    # anomalies' std 0.20, a +5-spread event read 0.6) and January's and March's spreads took its quiet (3.3% beyond
    # 2.576); now 0.76, 2.5 and 1.0-1.2%
    values = quiet_february(2.0, 15, (12, 16), seed=0)
    climatology = ga.Climatology.fit(values.isel(time=slice(None, 120)))
    held_back = values.isel(time=slice(120, None))
    anomaly = climatology.standardise(held_back).values[0]
    held_month = held_back["time"].dt.month.values
    assert np.std(anomaly[held_month == 2]) > 0.6
    for neighbour in (1, 3):
        assert np.mean(np.abs(anomaly[held_month == neighbour]) > 2.576) < 0.025
    event = held_back.copy()
    event[0, held_month == 2] += 5 * 0.2
    assert np.median(climatology.standardise(event).values[0][held_month == 2]) > 2.0


def test_six_years_judge_a_quiet_month_alone_even_with_an_event_in_it():
    # counted as robust weights (under 1), six years read 5.4 values and fell back to the three-month window, and a
    # month's fixed point started from the record's weights kept an event of 8 of its spreads (1.6 of the record's):
    # a +5-spread February event read 1-1.2 spreads; now about 2.9
    values = quiet_february(1.0, 8, (10, 12), seed=3, event=(13, 8 * 0.2))  # 8 spreads in a training February
    climatology = ga.Climatology.fit(values.isel(time=slice(None, 72)))
    event = values.isel(time=slice(72, None)).copy()
    held_month = event["time"].dt.month.values
    event[0, held_month == 2] += 5 * 0.2
    read = climatology.standardise(event).values[0][held_month == 2]
    assert np.median(read[:, :5, :6]) > 2.0 and np.median(read[:, 5:, 6:]) > 2.0


def test_daily_spreads_do_not_step_from_one_month_to_the_next():
    # a day's spread was its calendar month's: it jumped by up to 33% overnight where the true spread changed by 1%
    rng = np.random.default_rng(4)
    time = pd.date_range("2001-01-01", periods=3 * 365, freq="D")
    true_spread = 1.0 + 0.5 * np.cos(2 * np.pi * time.day_of_year.to_numpy() / 365.25)
    values = 280 + true_spread[:, None, None] * rng.standard_normal((time.size, 4, 5))
    data = xr.DataArray(values[None], dims=("variable", "time", "lat", "lon"),
                        coords={"variable": ["v"], "time": time, "lat": np.arange(4.0), "lon": np.arange(5.0)})
    climatology = ga.Climatology.fit(data)
    days = xr.DataArray(pd.date_range("2004-01-01", periods=365, freq="D"), dims="time")
    spread = climatology.spread_at(days)[0]  # (time, lat, lon)
    overnight = np.abs(np.diff(spread, axis=0)) / spread[:-1]
    months = climatology.spread[:, 0]
    steps = np.abs(np.diff(months, axis=0)) / months[:-1]
    assert overnight.max() < 0.25 * steps.max()  # about a month's change spread over its days
    # at a month's middle its own spread, and in between the two months'
    middle = np.flatnonzero((days.dt.month == 1) & (days.dt.day == 16))[0]
    np.testing.assert_allclose(spread[middle], months[0])
