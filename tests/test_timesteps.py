"""One rule for two stamps that are one step of the record (trial A #3), used by the joining and the append."""

from __future__ import annotations

import cftime
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.timesteps import same_step, step_kind


def months(*dates):
    return pd.DatetimeIndex(list(dates))


@pytest.mark.parametrize("times, expected", [
    (months("2019-01-16", "2019-02-15", "2019-03-16", "2019-03-31", "2019-04-01"), [0, 0, 1, 0]),
    (months("2019-01-01", "2019-02-01", "2019-03-01", "2019-03-16", "2019-05-01"), [0, 0, 1, 0]),  # start and middle
    # nearly a step apart: two steps (a month's start and end stamps cannot be told from a calendar conversion's)
    (months("2019-01-01", "2019-02-01", "2019-03-01", "2019-03-31", "2019-05-01"), [0, 0, 0, 0]),
    (months("2019-01-31", "2019-02-28", "2019-03-31", "2019-04-01", "2019-05-01"), [0, 0, 0, 0]),  # two conventions
    (pd.date_range("2000-01-01", periods=8).insert(2, pd.Timestamp("2000-01-02T12")), [0, 1] + [0] * 6),  # daily
    (pd.date_range("2000-01-01", periods=6, freq="6h").append(pd.DatetimeIndex(["2000-01-02T08"])),
     [0, 0, 0, 0, 0, 1]),  # 6-hourly: under half a step
    (pd.date_range("2000-01-01", periods=6, freq="7D"), [0] * 5),  # weekly steps in one month are not repeats
    (pd.date_range("2002-08-02", periods=6, freq="30D"), [0] * 5),  # every 30 days: 2002-10-01 and 10-31 are two
    (xr.date_range("2000-01-01", periods=4, freq="MS", calendar="360_day", use_cftime=True), [0, 0, 0]),
])
def test_same_step(times, expected):
    assert same_step(times).astype(int).tolist() == expected


def test_a_360_day_month_twice_is_one_step():
    times = xr.date_range("2000-01-01", periods=4, freq="MS", calendar="360_day", use_cftime=True)

    both = xr.CFTimeIndex(list(times) + [cftime.Datetime360Day(2000, 4, 16)])
    assert step_kind(both) == "month" and same_step(both).tolist() == [False, False, False, True]


def result(dates):
    values = np.arange(len(dates) * 4, dtype="float32").reshape(len(dates), 2, 2)
    return xr.Dataset({"score": (("time", "lat", "lon"), values)},
                      coords={"time": pd.DatetimeIndex(dates), "lat": [0.0, 1.0], "lon": [0.0, 1.0]})


@pytest.mark.parametrize("new, repeated", [
    (["2019-03-31"], "the stored 2019-03-16 and 2019-03-31"),
    (["2019-04-01", "2019-04-16"], "2019-04-01 and 2019-04-16"),
])
def test_an_append_of_a_step_already_held_is_refused_before_writing(tmp_path, new, repeated):
    store = ga.write_dataset(result(["2019-01-16", "2019-02-15", "2019-03-16"]), tmp_path / "feed.zarr")
    with pytest.raises(GeoanomError, match=f": {repeated} are both 2019-0[34] of this monthly record, one step "
                                           "delivered twice; append only the steps after it."):
        ga.write_dataset(result(new), store, append=True)
    assert xr.open_zarr(store).sizes["time"] == 3
    ga.write_dataset(result(["2019-04-01"]), store, append=True)  # April at a month start is April
    assert xr.open_zarr(store).sizes["time"] == 4
