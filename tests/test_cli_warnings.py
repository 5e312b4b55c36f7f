"""What the command says besides errors: warnings as one line, ±inf counted over the whole input,
in-sample scores, the --level advice, ISO dates in the regions table, a plural that fits.

Inputs are real files written here; the commands run in this process (the ``refused`` fixture).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geoanom.testing import synthetic_cube

ARGS = ("--var", "tas", "--train-end", "2002", "--precision", "1", "--detectors", "gmm")


@pytest.fixture
def inf_file(tmp_path):
    """A small cube with 1 inf in the training period and 5 in the scored period."""
    cube, _ = synthetic_cube(n_years=4, n_lat=4, n_lon=6)
    values = cube["tas"].values
    values[2, 1, 1] = np.inf
    values[-1, 0, :4] = -np.inf
    values[-2, 3, 3] = np.inf
    path = tmp_path / "inf.nc"
    cube.to_netcdf(path)
    return path


INFINITE = "geoanom: warning: tas holds 6 infinite values in {}; they are treated as missing."
IN_SAMPLE = ("geoanom: warning: the training period covers the whole input (2000-01-01 to 2002-12-01), so every "
             "score is in-sample; end it earlier with --train-end to score unseen data.")


def warnings_of(stderr):
    return [line for line in stderr.splitlines() if "warning" in line.lower()]


@pytest.mark.parametrize("quiet", [[], ["-q"]])
def test_infinite_values_of_the_whole_input_are_one_warning_line(inf_file, tmp_path, refused, quiet):
    run = refused("detect", inf_file, *ARGS, "--out", tmp_path / "r.zarr", *quiet)
    assert run.returncode == 0, run.stderr
    assert warnings_of(run.stderr) == [INFINITE.format(inf_file)]
    assert "GeoanomWarning" not in run.stderr and ".py:" not in run.stderr


def test_regions_reports_infinite_values(inf_file, tmp_path, refused):
    run = refused("regions", inf_file, "--var", "tas", "--out", tmp_path / "r.csv")
    assert run.returncode == 0, run.stderr
    assert warnings_of(run.stderr) == [INFINITE.format(inf_file)]


def test_a_training_period_past_the_data_warns_that_scores_are_in_sample(tmp_path, refused):
    path = tmp_path / "tas.nc"
    synthetic_cube(n_years=3, n_lat=4, n_lon=6)[0].to_netcdf(path)
    for end in ("2100", "3000"):  # 3000 lies beyond what nanosecond times can hold
        run = refused("detect", path, "--var", "tas", "--train-end", end, "--precision", "1", "--detectors", "gmm",
                      "--out", tmp_path / "r.nc", "-q")
        assert run.returncode == 0, run.stderr
        assert warnings_of(run.stderr) == [IN_SAMPLE]


def test_regions_table_dates_are_iso(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=2, n_lat=4, n_lon=6)
    cube = cube.assign_coords(time=cube["time"] + pd.Timedelta(hours=12))
    cube.to_netcdf(tmp_path / "noon.nc")
    run = refused("regions", tmp_path / "noon.nc", "--var", "tas", "--precision", "1", "--out", tmp_path / "r.csv")
    assert run.returncode == 0, run.stderr
    times = pd.read_csv(tmp_path / "r.csv")["time"]
    assert times.iloc[0] == "2000-01-01T12:00"
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT12:00", time) for time in times)


def test_the_level_refusal_names_the_option(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=1, n_lat=4, n_lon=6)
    levels = xr.concat([cube["tas"], cube["tas"] - 5], dim=pd.Index([1000.0, 850.0], name="plev"))
    levels["plev"].attrs.update(units="hPa", standard_name="air_pressure", positive="down", axis="Z")
    levels.transpose("time", "plev", "lat", "lon").to_dataset().to_netcdf(tmp_path / "ta.nc")
    run = refused("detect", tmp_path / "ta.nc", *ARGS, "--out", tmp_path / "r.nc")
    assert run.returncode == 2
    assert "has 2 levels" in run.stderr and "give --level VALUE to choose one" in run.stderr
    assert "level=" not in run.stderr


def test_federate_counts_one_client_in_the_singular(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=2, n_lat=4, n_lon=6)
    cube.to_netcdf(tmp_path / "tas.nc")
    xr.DataArray(np.ones((4, 6), dtype=np.int32), dims=("lat", "lon"), coords={"lat": cube["lat"], "lon": cube["lon"]},
                 name="client").to_netcdf(tmp_path / "clients.nc")
    run = refused("federate", tmp_path / "tas.nc", "--var", "tas", "--clients", tmp_path / "clients.nc",
                  "--rounds", "1", "--out", tmp_path / "fed")
    assert "observations of 1 client;" in run.stdout, run.stdout + run.stderr


SHARE = re.compile(r"geoanom: warning: \S+r\.zarr: the ensemble flags (\d+)% of the scored observations "
                   r"\(from (\d+)% in the first tenth of the time steps to (\d+)% in the last\)")


SCORE_SHARE = re.compile(r"geoanom: warning: \S+late_r\.zarr: the ensemble flags (\d+)% of the scored observations")


def test_a_scored_period_far_outside_the_training_climate_warns_with_the_flagged_share(tmp_path, refused):
    # A1B North America: 2000-2099 against the 1860-1959 climate is the warming, flagged almost everywhere late
    import geoanom as ga

    path = tmp_path / "na.nc"
    cube = ga.sample_cube("north_america").isel(lat=slice(0, 12), lon=slice(0, 12))
    both = xr.concat([cube.sel(time=slice(None, "1959")), cube.sel(time=slice("2000", None))], "time")
    both.to_netcdf(path)
    run = refused("detect", path, "--var", "air_temperature", "--train-end", "1959", "--detectors", "gmm", "--precision", "1",
                  "--out", tmp_path / "r.zarr", "--model-out", tmp_path / "model.npz")
    assert run.returncode == 0, run.stderr
    found = [SHARE.search(line) for line in warnings_of(run.stderr)]
    match = next(m for m in found if m)
    share, first, last = (int(group) for group in match.groups())
    assert share > 10 and last > first and "--trend linear" in run.stderr
    # the share of the 100 years outside the training period: the 100 in-sample years would halve it
    assert "in the last) of the 100 time steps outside the training period (1860-06-01 to 1959-06-01)," in match.string
    # a saved model scoring the late years alone says the same, of those years only
    late = tmp_path / "late.nc"
    both.isel(time=slice(-50, None)).to_netcdf(late)
    run = refused("score", tmp_path / "model.npz", late, "--out", tmp_path / "late_r.zarr")
    assert run.returncode == 0, run.stderr
    match = next(m for m in map(SCORE_SHARE.search, warnings_of(run.stderr)) if m)
    assert int(match.group(1)) > share


def test_a_stationary_record_gives_no_flagged_share_warning(tmp_path, refused):
    path = tmp_path / "tas.nc"
    synthetic_cube(n_years=6, n_lat=6, n_lon=8, anomaly_rate=0.0)[0].to_netcdf(path)
    run = refused("detect", path, "--var", "tas", "--train-end", "2002", "--precision", "1", "--detectors", "gmm",
                  "--out", tmp_path / "r.zarr")
    assert run.returncode == 0, run.stderr
    assert not any(SHARE.search(line) for line in warnings_of(run.stderr))
