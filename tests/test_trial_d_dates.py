"""Trial D, finding 13b: a day the input's calendar lacks is refused naming the option and the date, not by pandas.

``--train-end 2003-02-30`` said "cannot do slice indexing on DatetimeIndex with
these indexers [2003-02-30] of type str"; a 360_day input has that day.
"""

import numpy as np
import pytest
import xarray as xr

from geoanom.cli.dates import calendar_date
from geoanom.errors import OptionError
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def monthly():
    return synthetic_cube(n_years=4, n_lat=4, n_lon=4, seed=2)[0]


def test_february_30_of_a_standard_calendar_is_refused_in_one_sentence(monthly, tmp_path, refused):
    path = tmp_path / "standard.nc"
    monthly.to_netcdf(path)
    for option in ("--train-end", "--train-start"):
        dates = ("--train-end", "2003-02-30") if option == "--train-end" else ("--train-start", "2000-02-30",
                                                                               "--train-end", "2001")
        run = refused("detect", path, "--var", "tas", *dates, "--out", tmp_path / "o.nc")
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2 and len(lines) == 1, run.stderr
        assert lines[0].startswith(f"geoanom: error: {option} {dates[1]} is not a date of the input's ")
        assert lines[0].endswith(f"calendar: February {dates[1][:4]} has {29 if dates[1][:4] == '2000' else 28} days.")
        assert "slice indexing" not in run.stderr and not (tmp_path / "o.nc").exists()


def test_february_30_of_a_360_day_calendar_is_a_date(monthly, tmp_path, refused):
    time = xr.date_range("2000-01-01", periods=monthly.sizes["time"], freq="MS", calendar="360_day", use_cftime=True)
    path = tmp_path / "360_day.nc"
    monthly.assign_coords(time=time).to_netcdf(path)
    run = refused("detect", path, "--var", "tas", "--train-end", "2001-02-30", "--detectors", "gmm",
                  "--precision", "1", "--out", tmp_path / "o.nc")
    assert run.returncode == 0, run.stderr
    assert "trained 2000-01-01 to 2001-02-01" in run.stdout


@pytest.mark.parametrize("calendar, text, refused_with", [
    ("noleap", "2004-02-29", "February 2004 has 28 days"),
    ("standard", "2004-02-29", None),
    ("all_leap", "2003-02-29", None),
    ("julian", "1900-02-29", None),
    ("proleptic_gregorian", "1900-02-29", "February 1900 has 28 days"),
    ("standard", "2003-04-31", "April 2003 has 30 days"),
    ("standard", "2003-04", None),
    ("standard", "Jan 2003", None),
])
def test_each_calendar_decides_its_own_days(calendar, text, refused_with):
    if refused_with is None:
        calendar_date("--train-end", text, calendar)
    else:
        with pytest.raises(OptionError, match=f"^--train-end {text} is not a date of the input's {calendar} calendar: "
                                              f"{refused_with}.$"):
            calendar_date("--train-end", text, calendar)


def test_the_selection_is_unchanged_for_a_valid_date(monthly):
    from geoanom.cli.commands import select_training

    np.testing.assert_array_equal(select_training(monthly, None, "2001-02-28")["time"].values,
                                  monthly["time"].values[:14])
