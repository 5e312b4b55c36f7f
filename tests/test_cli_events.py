"""The command line's anomaly queries: ``geoanom events`` and ``detect --consensus/--events`` and their pictures.

Real files: the synthetic cube's NetCDF file (``cube_file``) is scored once
by ``geoanom detect`` in this process; its Zarr result is then queried.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.image import imread

import geoanom as ga

DETECT = ("--var", "tas", "--train-end", "2005", "--precision", "2", "--detectors", "gmm,kmeans")


def assert_refused(process, *fragments):
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoanom: error: "), process.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_picture(path):
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 100 and np.ptp(image[..., :3]) > 0  # drawn, not blank


@pytest.fixture(scope="module")
def detected(cube_file, tmp_path_factory):
    """``geoanom detect`` with consensus, the event catalogue and every query picture."""
    from geoanom.cli import main

    folder = tmp_path_factory.mktemp("detected")
    tile = str(ga.tile_labels(xr.open_dataset(cube_file), 2).values[0, 0])
    status = main(["detect", str(cube_file), *DETECT, "--out", str(folder / "r.zarr"), "--consensus", "neighbours",
                   "--events", str(folder / "events.csv"), "--event-map", str(folder / "map.png"),
                   "--event-series", str(folder / "series.png"), "--scatter", tile,
                   "--shares", str(folder / "shares.png")])
    assert status == 0
    return folder, tile


def test_detect_writes_consensus_the_catalogue_and_its_pictures(detected):
    folder, tile = detected
    with xr.open_zarr(folder / "r.zarr") as result:
        consensus = result["consensus"].values
        assert result["consensus"].attrs["geoanom_consensus"] == "neighbours"
        table = ga.events(result)
    assert np.nanmin(consensus) >= 0 and np.nanmax(consensus) <= 1 and np.isfinite(consensus).any()
    written = pd.read_csv(folder / "events.csv")
    assert len(written) == len(table) > 0
    np.testing.assert_array_equal(written["cells"], table["cells"])
    np.testing.assert_allclose(written["consensus"], table["consensus"], rtol=1e-6)
    for picture in ("map.png", "series.png", "shares.png", f"r.{tile}.scatter.png"):
        assert_picture(folder / picture)


def test_events_command_matches_the_library(detected, refused, tmp_path):
    folder, _ = detected
    out, labels_out = tmp_path / "events.csv", tmp_path / "labels.nc"
    run = refused("events", folder / "r.zarr", "--out", out, "--labels-out", labels_out, "--min-cells", 3,
                  "--connectivity", 2, "--map", tmp_path / "map.png", "--event", 1, "--shares", tmp_path / "s.png")
    assert run.returncode == 0, run.stderr
    with xr.open_zarr(folder / "r.zarr") as result:
        labels = ga.event_labels(result, connectivity=2, min_cells=3).values
        table = ga.events(result, connectivity=2, min_cells=3)
    written = pd.read_csv(out)
    assert written["cells"].min() >= 3
    np.testing.assert_array_equal(written["event"], table["event"])
    np.testing.assert_array_equal(written["duration"], table["duration"])
    with xr.open_dataset(labels_out) as stored:
        np.testing.assert_array_equal(stored["event"].values, labels)
    assert f"{len(table):,} events" in run.stdout
    assert_picture(tmp_path / "map.png")


@pytest.mark.parametrize("args, fragments", [
    (("--event", 1), ("--event needs --map",)),
    (("--map", "{tmp}/m.png", "--event", 10**6), ("--event 1000000", "has no such event", "ids run from 1")),
    (("--out", "{tmp}/e.txt"), ("--out",)),
])
def test_events_command_refuses_in_one_sentence(detected, refused, tmp_path, args, fragments):
    folder, _ = detected
    given = [str(a).format(tmp=tmp_path) for a in args]
    out = [] if "--out" in given else ["--out", tmp_path / "e.csv"]
    assert_refused(refused("-q", "events", folder / "r.zarr", *out, *given), *fragments)
    assert not (tmp_path / "e.csv").exists()


def test_events_refuses_what_is_not_a_result(cube_file, refused, tmp_path):
    assert_refused(refused("events", cube_file, "--out", tmp_path / "e.csv"), "is not a geoanom result")
    assert_refused(refused("events", tmp_path / "nope.zarr", "--out", tmp_path / "e.csv"), "does not exist")


@pytest.mark.parametrize("args, fragments", [
    (("--consensus", "sideways"), ("consensus 'sideways'",)),
    (("--event-map", "{tmp}/m.png"), ("--event-map needs --events",)),
    (("--event-series", "{tmp}/m.png"), ("--event-series needs --events",)),
])
def test_detect_refuses_query_options_before_any_work(cube_file, refused, tmp_path, args, fragments):
    given = [str(a).format(tmp=tmp_path) for a in args]
    assert_refused(refused("detect", cube_file, *DETECT, "--out", tmp_path / "r.zarr", *given), *fragments)
    assert not (tmp_path / "r.zarr").exists()


def test_an_unfinished_result_is_refused(detected, refused, tmp_path):
    import shutil

    import zarr

    folder, _ = detected
    copy = tmp_path / "unfinished.zarr"
    shutil.copytree(folder / "r.zarr", copy)
    zarr.open_group(str(copy), mode="r+").attrs["geoanom_incomplete"] = "true"  # as a killed write leaves it
    assert_refused(refused("events", copy, "--out", tmp_path / "e.csv"),
                   "unfinished output of an interrupted geoanom write, not a result; write it again")
    assert not (tmp_path / "e.csv").exists()
