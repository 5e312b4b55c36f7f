"""Messages as the command line says them: its options named, not Python's; places called what they are."""

import warnings

import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.cli import build_parser
from geoanom.errors import GeoanomError, GeoanomWarning
from geoanom.flagged import flag_counts, reopened, warn_flagged_share
from geoanom.plot import nearest_grid_cell
from geoanom.reporting import command_line_advice
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    folder = tmp_path_factory.mktemp("messages")
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=6, seed=6)
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm,kmeans", precision=1)
    result = model.score(cube).compute()
    result.to_zarr(folder / "result.zarr")
    return folder, model, result


def test_a_point_on_land_is_not_called_outside_the_grid():
    grid = xr.Dataset(coords={"lat": np.arange(10.0, 20.0), "lon": np.arange(30.0, 40.0)})
    usable = np.ones((10, 10), dtype=bool)
    usable[2:8, 2:8] = False  # an island of 6 x 6 cells without data
    with pytest.raises(GeoanomError) as refused:
        nearest_grid_cell(grid, 15.0, 35.0, usable)
    message = str(refused.value)
    assert "outside the grid" not in message
    assert message.startswith("the point 15, 35 is on a cell without data (land, or no valid training values) at "
                              "15.00, 35.00: the nearest cell with data (")
    with pytest.raises(GeoanomError, match="the point 15, 80 is outside the grid"):
        nearest_grid_cell(grid, 15.0, 80.0, usable)


def test_events_take_a_detectors_name_as_flag(written, refused):
    folder, model, result = written
    process = refused("events", folder / "result.zarr", "--out", folder / "gmm.csv", "--flag", "gmm")
    assert process.returncode == 0, process.stderr
    ensemble = refused("events", folder / "result.zarr", "--out", folder / "ensemble.csv")
    assert ensemble.returncode == 0, ensemble.stderr
    assert (folder / "gmm.csv").read_text() != (folder / "ensemble.csv").read_text()


@pytest.mark.parametrize("flag, fragment", [
    ("anomalous", "--flag anomalous holds one flag per detector: give a detector's name instead; "
                  "the result's flags: ensemble; or a detector's name for its own flags: gmm, kmeans."),
    ("nope", "--flag nope is not a flag of the result; the result's flags: ensemble; or a detector's name"),
])
def test_a_bad_flag_is_refused_naming_the_option(written, refused, flag, fragment):
    folder = written[0]
    process = refused("events", folder / "result.zarr", "--out", folder / "x.csv", "--flag", flag)
    assert process.returncode == 2
    assert fragment in process.stderr
    assert "flag=" not in process.stderr and "result.sel" not in process.stderr


def test_the_many_flags_warning_gives_the_command_lines_option_first(written):
    folder, model, result = written
    flagged = result.assign(ensemble=result["ensemble"] | True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warn_flagged_share(flagged, "result.zarr", command_line_advice(model))
    [warning] = [w for w in caught if issubclass(w.category, GeoanomWarning)]
    assert "fit with --trend linear, or score adaptively in Python (model.adapt)" in str(warning.message)


def test_writing_a_result_that_flags_nearly_everything_warns_in_python(written, tmp_path):
    # a Jupyter user scoring a shifted period got a result flagging 100% and no word (only the command warned)
    _, _, result = written
    flagged = result.assign(ensemble=result["ensemble"] | True)
    with pytest.warns(GeoanomWarning, match="flags 100% of the scored observations.*trend='linear'"):
        ga.write_dataset(flagged, tmp_path / "flagged.zarr")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeoanomWarning)
        ga.write_dataset(result, tmp_path / "normal.zarr")  # about 1% flagged: nothing to say
        ga.write_dataset(flagged, tmp_path / "quiet.zarr", warn_flags=False)


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("resume", [False, True])
def test_the_flags_counted_while_writing_are_the_flags_written(written, tmp_path, lazy, resume):
    # write_dataset counts the flags in the computation that writes them (resume: reads them back): the warning's
    # three shares must be those of the store written, of the 24 steps outside the training period
    _, _, result = written
    times = result["time"]
    early = (times >= times[24]) & (times < times[32])
    flagged = result.assign(ensemble=result["ensemble"] | early)  # every scored cell of the first third after training
    path = tmp_path / "flagged.zarr"
    with pytest.warns(GeoanomWarning, match="left the training climate") as caught:
        ga.write_dataset(flagged.chunk({"time": 5}) if lazy else flagged, path, resume=resume)
    with reopened(path) as stored:
        flagged_cells, scored = (np.asarray(c, dtype=float)[24:] for c in flag_counts(stored))
    tenth = scored.size // 10
    shares = [flagged_cells.sum() / scored.sum(), flagged_cells[:tenth].sum() / scored[:tenth].sum(),
              flagged_cells[-tenth:].sum() / scored[-tenth:].sum()]
    assert shares[1] == 1.0 and shares[2] < 0.1  # the case: all flagged early, few late
    [message] = [str(w.message) for w in caught if "left the training climate" in str(w.message)]
    assert (f"flags {shares[0]:.0%} of the scored observations (from {shares[1]:.0%} in the first tenth of the time "
            f"steps to {shares[2]:.0%} in the last) of the 24 time steps outside the training period (2000-01-01 "
            "to 2001-12-01)") in message


def shares(result, steps=slice(None)):
    """The ensemble's flagged share of the scored observations of ``steps``."""
    flagged, scored = (np.asarray(c, dtype=float)[steps] for c in flag_counts(result))
    return flagged.sum() / scored.sum()


def test_the_flagged_share_is_judged_on_the_steps_outside_training(written, tmp_path):
    # a real fit on the first 24 of 48 months; the first 3 unseen months flagged everywhere: 12% of the unseen
    # steps' observations, 7% of all (the 24 in-sample steps say nothing about leaving the training climate)
    _, _, result = written
    times = result["time"]
    flagged = result.assign(ensemble=result["ensemble"] | ((times >= times[24]) & (times < times[27])))
    unseen, everything = shares(flagged, slice(24, None)), shares(flagged)
    assert unseen > 0.1 > everything
    with pytest.warns(GeoanomWarning, match="left the training climate") as caught:
        ga.write_dataset(flagged, tmp_path / "unseen.zarr")
    [message] = [str(w.message) for w in caught if "left the training climate" in str(w.message)]
    assert (f"unseen.zarr: the ensemble flags {unseen:.0%} of the scored observations (from 100% in the first "
            "tenth of the time steps to ") in message
    assert "in the last) of the 24 time steps outside the training period (2000-01-01 to 2001-12-01), where" in message
    with pytest.warns(GeoanomWarning, match=f"flags {unseen:.0%} of the scored observations .* outside the training"):
        warn_flagged_share(flagged, "result.zarr", command_line_advice(written[1]))  # the command line's judge


def test_a_hindcast_is_judged_on_the_steps_before_training(tmp_path):
    # a model of the last 24 of 48 months scoring all 48: the 24 before it are as unseen as steps after would be
    # (a trial's 1961-1990 hindcast, 45% flagged, 22.6% of everything, said nothing)
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=6, seed=6)
    model = ga.fit(cube.isel(time=slice(24, None)), detectors="gmm,kmeans", precision=1)
    result = model.score(cube).compute()
    times = result["time"]
    flagged = result.assign(ensemble=result["ensemble"] | (times < times[3]))  # the first 3 hindcast months
    unseen, everything = shares(flagged, slice(None, 24)), shares(flagged)
    assert unseen > 0.1 > everything
    with pytest.warns(GeoanomWarning, match="left the training climate") as caught:
        ga.write_dataset(flagged, tmp_path / "hindcast.zarr")
    [message] = [str(w.message) for w in caught if "left the training climate" in str(w.message)]
    assert f"flags {unseen:.0%} of the scored observations" in message
    assert "of the 24 time steps outside the training period (2002-01-01 to 2003-12-01)" in message


def test_a_result_of_training_steps_alone_is_judged_on_them_all(written, tmp_path):
    _, _, result = written
    training = result.isel(time=slice(None, 24))
    times = training["time"]
    flagged = training.assign(ensemble=training["ensemble"] | (times < times[3]))  # 3 of 24 steps: 12.5%+
    share = shares(flagged)
    assert share > 0.1
    with pytest.warns(GeoanomWarning, match="left the training climate") as caught:
        ga.write_dataset(flagged, tmp_path / "in_sample.zarr")
    [message] = [str(w.message) for w in caught if "left the training climate" in str(w.message)]
    assert f"flags {share:.0%} of the scored observations (from 100% in the first tenth" in message
    assert "outside the training period" not in message
    with warnings.catch_warnings():
        warnings.simplefilter("error", GeoanomWarning)
        ga.write_dataset(training, tmp_path / "normal.zarr")  # about 1% flagged: nothing to say


def test_every_regions_option_has_help():
    subparsers = next(action for action in build_parser()._actions if action.dest == "command"
                      or getattr(action, "choices", None) and "regions" in action.choices)
    regions = subparsers.choices["regions"]
    for action in regions._actions:
        assert action.help, f"regions {action.option_strings} has no help"
    assert "upper" in next(a.help for a in regions._actions if "--tail" in a.option_strings)
