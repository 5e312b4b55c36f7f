"""Bad option values are refused in one sentence before any work: before the input is opened, or, when the
input's grid decides, right after it is opened and before the fit.

The commands run in this process (the ``refused`` fixture) on the synthetic
cube's NetCDF file; ``geoanom.open_cube``, ``geoanom.load_model`` and
``geoanom.fit`` are spied on, so a test sees which of them a refusal came
after, not only that it came.
"""

from __future__ import annotations

import pytest
import xarray as xr
from test_cli_outputs import assert_refused  # exit 2, one line "geoanom: error: ...", no traceback

import geoanom as ga
from geoanom.geohash import ALPHABET

DETECT = ("--var", "tas", "--train-end", "2005", "--precision", "2", "--detectors", "gmm")


@pytest.fixture
def calls(monkeypatch):
    """The names of the spied functions called, in order; each still does its work when called."""
    called: list[str] = []
    for name in ("open_cube", "load_model", "fit"):
        real = getattr(ga, name)

        def spy(*args, _real=real, _name=name, **kwargs):
            called.append(_name)
            return _real(*args, **kwargs)

        monkeypatch.setattr(ga, name, spy)
    return called


def detect(cube_file, tmp_path, *more):
    return ("detect", cube_file, *DETECT, "--out", tmp_path / "r.zarr", *(str(m).format(tmp=tmp_path) for m in more))


@pytest.mark.parametrize("more, fragments", [
    (("--min-cells", 0, "--events", "{tmp}/e.csv"), ("--min-cells must be a whole number of at least 1, got 0",)),
    (("--min-cells", -3, "--events", "{tmp}/e.csv"), ("--min-cells", "got -3")),
    (("--min-cells", 5), ("--min-cells needs --events CSV: the catalogue it shapes",)),
    (("--flag", "gmm", "--bridge-gaps"), ("--flag and --bridge-gaps need --events CSV: the catalogue they shape",)),
    (("--scatter", "zz!"), ("--scatter zz!", "is not a geohash", "'!'")),
    (("--scatter", "9G"), ("--scatter 9G", "geohashes are lower case")),
    (("--scatter", "dj5"), ("--scatter dj5", "the tiles have 2 characters (--precision 2)")),
    (("--consensus", "neighbors"), ("--consensus neighbors", "is not one of 'neighbours', 'similar'")),
    (("--consensus", "region:ai"), ("--consensus region:ai", "'ai' is not a geohash")),
    (("--consensus", "region:dj"), ("--consensus region:dj", "shorter than its tiles (2 characters)")),
    (("--plot", "{tmp}/m.png", "--plot-time", "20x0"), ("--plot-time 20x0 is not a date",)),
    (("--train-start", "abc"), ("--train-start abc is not a date",)),
    (("--train-end", "2005-13"), ("--train-end 2005-13 is not a date",)),
    (("--train-start", "2005-02", "--train-end", "2005-01"), ("--train-start 2005-02 is after --train-end 2005-01",)),
    (("--explain", "abc"), ("--explain takes LAT,LON", "'abc'")),
    (("--explain=95,0",), ("--explain 95,0", "latitude must be in [-90, 90]")),
    (("--flag", "kmeans", "--events", "{tmp}/e.csv"), ("--flag kmeans: no kmeans model is fitted (--detectors gmm)",)),
    (("--flag", "nonsense", "--events", "{tmp}/e.csv"), ("--flag nonsense: it is not a flag of the result",
                                                          "ensemble", "gmm")),
    (("--detectors", "gmm,foo"), ("--detectors gmm,foo: unknown detector 'foo'",)),
    (("--features", "anomalies,foo"), ("--features anomalies,foo", "got foo")),
    (("--precision", 0), ("--precision must be a geohash precision from 1 to 12, got 0",)),
    (("--precision", 13), ("--precision", "got 13")),
    (("--federated", "--federated-rounds", 0), ("--federated-rounds: federated_rounds must be a whole number of "
                                                "at least 1, got 0",)),
    (("--federated", "--federated-relevance", -1), ("--federated-relevance: federated_relevance", "got -1")),
    (("--federated", "--federated-relevance", "nan"), ("--federated-relevance", "must be a finite number", "got nan")),
    (("--federated-rounds", 3), ("--federated-rounds needs --federated: without it every tile keeps its own model",)),
    (("--workers", 0), ("--workers must be a whole number of at least 1, got 0",)),
    (("--level", "nan"), ("--level must be a finite number, got nan",)),
])
def test_detect_refuses_a_bad_value_before_opening_the_input(cube_file, tmp_path, refused, calls, more, fragments):
    assert_refused(refused(*detect(cube_file, tmp_path, *more)), *fragments)
    assert calls == []  # neither opened nor fitted
    assert list(tmp_path.iterdir()) == []  # nothing written, no folder made


def test_the_form_is_checked_before_the_input_exists(tmp_path, refused, calls):
    """A missing input is found when it is opened: an option's refusal comes first."""
    process = refused("detect", tmp_path / "missing.nc", *DETECT, "--out", tmp_path / "r.zarr", "--min-cells", 0)
    assert_refused(process, "--min-cells")


@pytest.mark.parametrize("given, expected", [
    (("--flag", "gmm", "--connectivity", 2, "--min-cells", 3, "--bridge-gaps"),
     {"flag": "anomalous_gmm", "connectivity": 2, "min_cells": 3, "bridge_gaps": True}),
    ((), {"flag": "ensemble", "connectivity": 1, "min_cells": 1, "bridge_gaps": False}),  # geoanom events' defaults
])
def test_event_options_given_with_events_reach_the_catalogue(cube_file, tmp_path, refused, monkeypatch, given,
                                                             expected):
    import geoanom.queries

    seen = {}
    real = geoanom.queries.event_labels

    def event_labels(result, **kwargs):
        seen.update(kwargs)
        return real(result, **kwargs)

    monkeypatch.setattr(geoanom.queries, "event_labels", event_labels)
    process = refused("-q", *detect(cube_file, tmp_path, "--events", tmp_path / "e.csv", *given))
    assert process.returncode == 0, process.stderr
    assert seen == expected


def first_letters(cube_file) -> set[str]:
    with xr.open_dataset(cube_file) as cube:
        return {str(tile)[0] for tile in ga.tile_labels(cube, 2).values.ravel()}


def test_a_region_with_no_tile_of_the_input_is_refused_before_the_fit(cube_file, tmp_path, refused, calls):
    empty = next(char for char in ALPHABET if char not in first_letters(cube_file))
    process = refused(*detect(cube_file, tmp_path, "--consensus", f"region:{empty}"))
    assert_refused(process, f"--consensus region:{empty}", f"consensus region '{empty}' holds no")
    assert calls == ["open_cube"]
    assert not (tmp_path / "r.zarr").exists()


@pytest.mark.parametrize("more, fragments", [
    (("--scatter", "zz"), ("--scatter zz: the input has no tile of that name at precision 2", "its tiles:")),
    (("--explain=-60,100",), ("--explain -60,100", "outside the grid")),
    (("--plot", "{tmp}/m.png", "--plot-time", "1850"), ("--plot-time 1850", "runs from 2000-01-01")),
    (("--train-end", "1850"), ("--train-end 1850", "selects no data")),
])
def test_what_the_grid_decides_is_refused_after_opening_and_before_the_fit(cube_file, tmp_path, refused, calls,
                                                                            more, fragments):
    assert_refused(refused(*detect(cube_file, tmp_path, *more)), *fragments)
    assert calls == ["open_cube"]  # opened (coordinates only), never fitted
    assert list(tmp_path.iterdir()) == []


def test_a_scatter_tile_the_fit_skips_is_refused_before_anything_is_written(tmp_path, refused, calls):
    from geoanom.testing import synthetic_cube

    cube, _ = synthetic_cube()
    labels = ga.tile_labels(cube, 2)
    sparse = str(labels.values[0, 0])
    cube["tas"] = cube["tas"].where(labels != sparse)  # the input holds the tile, but no data in it
    path = tmp_path / "sparse.nc"
    cube.to_netcdf(path)
    process = refused("-q", "detect", path, *DETECT, "--out", tmp_path / "r.zarr", "--scatter", sparse)
    # trial A #15: the reason the fit gave, not 'no fitted tile of that name'
    assert_refused(process, f"--scatter {sparse}: the fit skipped that tile (", "so it has no model to draw")
    assert "no fitted tile of that name" not in process.stderr
    assert calls == ["open_cube", "fit"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sparse.nc"]  # the result was not written first


def test_a_refused_run_leaves_existing_outputs_as_they_were(cube_file, tmp_path, refused, calls):
    out, events = tmp_path / "r.nc", tmp_path / "e.csv"
    out.write_bytes(b"an earlier result")
    events.write_text("an earlier catalogue\n")
    process = refused("detect", cube_file, *DETECT, "--out", out, "--events", events, "--min-cells", 0)
    assert_refused(process, "--min-cells")
    assert out.read_bytes() == b"an earlier result" and events.read_text() == "an earlier catalogue\n"
    assert calls == []


def test_outputs_in_missing_folders_are_written_there(cube_file, tmp_path, refused):
    """A parent that can be made is made, for every output (--plot's and --top-tiles' failed after the fit)."""
    new = tmp_path / "new" / "folder"
    process = refused(*detect(cube_file, tmp_path, "--plot", new / "m.png", "--top-tiles", new / "t.csv",
                              "--model-out", new / "m.npz", "--events", new / "e.csv"))
    assert process.returncode == 0, process.stderr
    assert {path.name for path in new.iterdir()} == {"m.png", "t.csv", "m.npz", "e.csv"}


def test_federate_makes_the_audit_log_folder_before_training(cube_file, tmp_path, refused, monkeypatch):
    """The log is written from the first round on: its missing folder was refused as 'Cannot create audit log'."""
    import geoanom.federated
    from geoanom.errors import GeoanomError

    log = tmp_path / "logs" / "new" / "audit.jsonl"
    seen = []

    def train(*args, **kwargs):  # what training would find, without the training
        seen.append(log.parent.is_dir())
        raise GeoanomError("stopped before training.")

    monkeypatch.setattr(geoanom.federated, "train", train)
    process = refused("-q", "federate", cube_file, "--var", "tas", "--precision", 1, "--audit-log", log,
                      "--out", tmp_path / "fed")
    assert_refused(process, "stopped before training")
    assert seen == [True]


REGIONS = ("--var", "tas")


@pytest.mark.parametrize("more, fragments", [
    (("--sigma", -1), ("--sigma must be a finite number of at least 0, got -1",)),
    (("--sigma", "nan"), ("--sigma", "got nan")),
    (("--threshold", -1), ("--threshold", "got -1")),
    (("--median-size", 0), ("--median-size must be a positive odd number of cells, got 0",)),
    (("--median-size", 4), ("--median-size", "got 4")),
    (("--tune", -1), ("--tune must be a whole number of at least 0, got -1",)),  # was a traceback from optuna
    (("--precision", 0), ("--precision", "got 0")),
])
def test_regions_refuses_a_bad_value_before_opening_the_input(cube_file, tmp_path, refused, calls, more, fragments):
    assert_refused(refused("regions", cube_file, *REGIONS, "--out", tmp_path / "r.csv", *more), *fragments)
    assert calls == []
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("more, fragments", [
    (("--epsilon", 1, "--clip", 0), ("--clip must be a finite number above 0, got 0",)),
    (("--clip", 0.5), ("--clip needs --epsilon: without a privacy budget no update is clipped or noised",)),
    (("--delta", 1e-6, "--clip", 2), ("--delta and --clip need --epsilon",)),
    (("--max-retries", -1), ("--max-retries -1: max_retries must be a whole number of at least 0",)),
    (("--precision", 13), ("--precision", "got 13")),
    (("--workers", 0), ("--workers", "got 0")),
    (("--jobs", 2), ("--jobs and --cluster-option need --cluster",)),
    (("--cluster", "slurm", "--jobs", "two"), ("--jobs takes N or MIN:MAX",)),
    (("--cluster", "slurm", "--jobs", "0:2"), ("--jobs 0:2", "give --jobs N, or MIN:MAX with MIN at least 1")),
    (("--clients", "{tmp}/no-grid.nc"), ("cannot read the client grid", "no-grid.nc")),
    (("--aggregator", "krum(x)"), ("--aggregator krum(x): the argument of krum(...) must be an integer",)),
    (("--epsilon", -1), ("--epsilon -1 --delta 1e-05: the target epsilon must be a positive finite number",)),
    (("--epsilon", 1, "--delta", 2), ("--epsilon 1 --delta 2: delta must be in (0, 1)",)),
])
def test_federate_refuses_a_bad_value_before_reading_any_data(cube_file, tmp_path, refused, calls, more, fragments):
    given = [str(m).format(tmp=tmp_path) for m in more]
    assert_refused(refused("federate", cube_file, "--var", "tas", "--out", tmp_path / "f", *given), *fragments)
    assert calls == []
    assert list(tmp_path.iterdir()) == []


def test_score_refuses_cluster_options_before_loading_the_model(cube_file, tmp_path, refused, calls):
    process = refused("score", tmp_path / "no-model.npz", cube_file, "--out", tmp_path / "s.zarr", "--jobs", 3)
    assert_refused(process, "--jobs and --cluster-option need --cluster")  # not the missing model
    process = refused("score", tmp_path / "no-model.npz", cube_file, "--out", tmp_path / "s.zarr", "--level", "inf")
    assert_refused(process, "--level must be a finite number, got inf")
    assert calls == []


@pytest.mark.parametrize("more, fragments", [
    (("--min-cells", 0), ("--min-cells must be a whole number of at least 1, got 0",)),
    (("--event", 0, "--map", "{tmp}/m.png"), ("--event must be a whole number of at least 1, got 0",)),
])
def test_events_refuses_a_bad_value_before_opening_the_result(tmp_path, refused, more, fragments):
    given = [str(m).format(tmp=tmp_path) for m in more]
    process = refused("events", tmp_path / "no-result.zarr", "--out", tmp_path / "e.csv", *given)
    assert_refused(process, *fragments)  # not "does not exist": the result was never looked at
    assert list(tmp_path.iterdir()) == []


def test_demo_refuses_an_unknown_detector_before_making_its_folder(tmp_path, refused):
    assert_refused(refused("demo", "--detectors", "gmm,foo", "--out", tmp_path / "demo"), "--detectors gmm,foo",
                   "unknown detector 'foo'")
    assert not (tmp_path / "demo").exists()


@pytest.fixture(scope="module")
def result_file(cube_file, tmp_path_factory):
    """A result written by ``geoanom detect`` (gmm only, 24 tiles: about 1 s)."""
    from geoanom.cli import main

    out = tmp_path_factory.mktemp("result") / "r.zarr"
    assert main(["-q", "detect", str(cube_file), *DETECT, "--out", str(out)]) == 0
    return out


def failing_midway(monkeypatch, owner, method):
    """Make ``owner.method`` write a few bytes to its path, then fail as a full disk does."""
    import errno

    def write_then_fail(self, path, *args, **kwargs):
        with open(path, "w") as handle:
            handle.write("half")
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(owner, method, write_then_fail)


def test_a_picture_that_fails_midway_leaves_the_earlier_one(result_file, tmp_path, refused, monkeypatch):
    from matplotlib.figure import Figure

    shares = tmp_path / "shares.png"
    shares.write_bytes(b"an earlier picture")
    failing_midway(monkeypatch, Figure, "savefig")
    process = refused("-q", "events", result_file, "--out", tmp_path / "e.csv", "--shares", shares)
    assert_refused(process, f"cannot write '{shares}': the disk is full")  # the path given, not the temporary
    assert shares.read_bytes() == b"an earlier picture"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["e.csv", "shares.png"]  # no temporary left


def test_a_table_that_fails_midway_leaves_the_earlier_one(result_file, tmp_path, refused, monkeypatch):
    import pandas as pd

    events = tmp_path / "e.csv"
    events.write_text("an earlier catalogue\n")
    failing_midway(monkeypatch, pd.DataFrame, "to_csv")
    assert_refused(refused("-q", "events", result_file, "--out", events), f"cannot write '{events}': the disk is full")
    assert events.read_text() == "an earlier catalogue\n"
    assert [path.name for path in tmp_path.iterdir()] == ["e.csv"]


def test_a_table_written_whole_replaces_the_earlier_one_with_the_usual_permissions(result_file, tmp_path, refused):
    import os

    events = tmp_path / "e.csv"
    events.write_text("an earlier catalogue\n")
    os.chmod(events, 0o644)
    assert refused("events", result_file, "--out", events).returncode == 0
    assert events.read_text().startswith("event,")
    umask = os.umask(0)
    os.umask(umask)
    assert events.stat().st_mode & 0o777 == 0o666 & ~umask  # as a plain open makes it, not mkstemp's 0600
