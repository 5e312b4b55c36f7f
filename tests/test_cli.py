"""The geoanom command, run as a user runs it: in a subprocess."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geoanom.testing import synthetic_cube


def geoanom(*args, cwd=None):
    """Run ``geoanom ARGS`` and return the completed process."""
    return subprocess.run(
        [sys.executable, "-m", "geoanom.cli", *map(str, args)],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )


def assert_user_error(process, *fragments):
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert "Traceback" not in process.stderr
    assert lines[0].startswith("geoanom: error: ")
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("command", [[], ["demo"], ["detect"], ["info"], ["regions"], ["federate"]])
def test_help(command):
    process = geoanom(*command, "--help")
    assert process.returncode == 0
    assert "usage: geoanom" in process.stdout


def test_detect_scores_the_whole_input(cube_file, tmp_path):
    out = tmp_path / "scores.zarr"
    process = geoanom("detect", cube_file, "--var", "tas", "--train-end", "2005-12", "--precision", "2",
                      "--out", out, "--plot", tmp_path / "map.png", "--model-out", tmp_path / "model.npz")
    assert process.returncode == 0, process.stderr
    result = xr.open_zarr(out)
    assert result.sizes["time"] == 144
    assert result["irregularity"].attrs["geoanom_training_period"] == "2000-01-01 to 2005-12-01"  # ISO, no ns
    assert (tmp_path / "map.png").stat().st_size > 0
    assert (tmp_path / "model.npz").stat().st_size > 0
    assert list(tmp_path.glob(".*tmp*")) == []


@pytest.mark.slow  # over 8 s on 2 cores; ci/run-slow runs it
def test_detect_to_netcdf_on_a_local_cluster(cube_file, tmp_path):
    out = tmp_path / "scores.nc"
    process = geoanom("detect", cube_file, "--var", "tas", "--train-end", "2005", "--precision", "2",
                      "--detectors", "gmm", "--workers", "2", "--out", out)
    assert process.returncode == 0, process.stderr
    with xr.open_dataset(out) as result:
        assert list(result.detector.values) == ["gmm"]
        assert np.isfinite(result["irregularity"]).all()


def test_info(cube_file):
    process = geoanom("info", cube_file)
    assert process.returncode == 0, process.stderr
    assert "tas" in process.stdout and "calendar" in process.stdout
    assert "precision 2:" in process.stdout


def test_missing_file(tmp_path, refused):
    assert_user_error(refused("info", tmp_path / "nothing.nc"), "nothing.nc")


def test_corrupt_file(tmp_path, refused):
    bad = tmp_path / "bad.nc"
    bad.write_text("this is not netcdf")
    assert_user_error(refused("detect", bad, "--var", "tas", "--train-end", "2000", "--out", tmp_path / "o.zarr"),
                      "bad.nc")


def test_unknown_variable_lists_known_ones(cube_file, tmp_path, refused):
    process = refused("detect", cube_file, "--var", "pr", "--train-end", "2005", "--out", tmp_path / "o.zarr")
    assert_user_error(process, "'pr'", "tas")


def test_no_latitude(tmp_path, refused):
    path = tmp_path / "nolat.nc"
    xr.Dataset({"v": (("time", "a", "b"), np.zeros((3, 2, 2)))},
               coords={"time": pd.date_range("2000", periods=3)}).to_netcdf(path)
    assert_user_error(refused("info", path), "nolat.nc", "latitude")


def test_training_period_outside_the_data(cube_file, tmp_path, refused):
    process = refused("detect", cube_file, "--var", "tas", "--train-end", "1900", "--out", tmp_path / "o.zarr")
    assert_user_error(process, "training period", "2000-01-01")


def test_nothing_left_after_nans(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=2, n_lat=4, n_lon=4)
    cube["tas"][:] = np.nan
    path = tmp_path / "empty.nc"
    cube.to_netcdf(path)
    process = refused("detect", path, "--var", "tas", "--train-end", "2000-12", "--out", tmp_path / "o.zarr")
    assert_user_error(process, "valid observations")


@pytest.mark.slow  # over 8 s; run by ci/run-slow
def test_detect_federated_saves_adapted_tile_models(cube_file, tmp_path):
    import geoanom as ga

    common = ("detect", cube_file, "--var", "tas", "--train-end", "2005", "--precision", "2", "--detectors",
              "gmm,kmeans")
    local = geoanom(*common, "--out", tmp_path / "l.zarr", "--model-out", tmp_path / "local.npz")
    federated = geoanom(*common, "--federated", "--federated-rounds", "2", "--out", tmp_path / "f.zarr",
                        "--model-out", tmp_path / "federated.npz")
    assert local.returncode == 0 and federated.returncode == 0, local.stderr + federated.stderr
    local_model, federated_model = (ga.load_model(tmp_path / name) for name in ("local.npz", "federated.npz"))
    assert federated_model.attrs["federated_rounds"] == 2 and federated_model.attrs["federated_relevance"] == 16.0
    tile = local_model.tiles[0]
    assert not np.allclose(federated_model.ensembles[tile].detectors_["gmm"].means_,
                           local_model.ensembles[tile].detectors_["gmm"].means_)
    refused = geoanom(*common, "--federated", "--federated-relevance", "-1", "--out", tmp_path / "x.zarr")
    assert_user_error(refused, "federated_relevance")


def test_unknown_detector(cube_file, tmp_path, refused):
    process = refused("detect", cube_file, "--var", "tas", "--train-end", "2005", "--detectors", "svm",
                      "--out", tmp_path / "o.zarr")
    assert_user_error(process, "svm")


def test_failed_run_leaves_existing_output_intact(cube_file, tmp_path):
    out = tmp_path / "scores.zarr"
    ok = geoanom("detect", cube_file, "--var", "tas", "--train-end", "2005", "--precision", "2",
                 "--detectors", "gmm", "--out", out)
    assert ok.returncode == 0, ok.stderr
    before = xr.open_zarr(out).load()
    failed = geoanom("detect", cube_file, "--var", "tas", "--train-end", "1900", "--out", out)
    assert failed.returncode == 2
    xr.testing.assert_identical(xr.open_zarr(out).load(), before)


@pytest.mark.slow  # over 8 s; run by ci/run-slow
def test_detect_on_a_running_scheduler(cube_file, tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=":0") as cluster:
        out = tmp_path / "scores.zarr"
        process = geoanom("detect", cube_file, "--var", "tas", "--train-end", "2005", "--precision", "2",
                          "--detectors", "gmm", "--scheduler", cluster.scheduler_address, "--out", out)
        assert process.returncode == 0, process.stderr
        with distributed.Client(cluster) as client:
            # the work ran on the cluster's worker
            assert all(count > 0 for count in client.run(lambda dask_worker: dask_worker.state.executed_count).values())
    assert np.isfinite(xr.open_zarr(out)["irregularity"]).all()


@pytest.mark.slow  # over 8 s; run by ci/run-slow
def test_unreachable_scheduler(cube_file, tmp_path):
    process = geoanom("detect", cube_file, "--var", "tas", "--train-end", "2005",
                      "--scheduler", "tcp://127.0.0.1:9", "--out", tmp_path / "o.zarr")
    assert_user_error(process, "tcp://127.0.0.1:9")


def test_bad_output_and_precision_are_refused_before_any_work(cube_file, tmp_path, refused):
    process = refused("detect", cube_file, "--var", "tas", "--train-end", "2005", "--out", tmp_path / "o.txt")
    assert_user_error(process, "o.txt", ".zarr or .nc")
    process = refused("detect", cube_file, "--var", "tas", "--train-end", "2005", "--precision", "13",
                      "--out", tmp_path / "o.zarr")
    assert_user_error(process, "precision", "13")
    a_file = tmp_path / "taken"
    a_file.write_text("")
    assert_user_error(refused("demo", "--out", a_file), "taken")


def test_regions_writes_the_table_and_labels(cube_file, tmp_path):
    table_path, labels_path = tmp_path / "regions.csv", tmp_path / "labels.nc"
    process = geoanom("regions", cube_file, "--var", "tas", "--precision", "2", "--threshold", "1.0",
                      "--out", table_path, "--labels-out", labels_path)
    assert process.returncode == 0, process.stderr
    table = pd.read_csv(table_path)
    assert {"time", "tile", "n_regions", "largest_share_lo"} <= set(table.columns)
    labels = xr.open_dataset(labels_path)["region"]
    assert labels.dims == ("time", "lat", "lon") and int(labels.max()) > 0


def test_regions_refuses_a_bad_table_name(cube_file, tmp_path, refused):
    assert_user_error(refused("regions", cube_file, "--var", "tas", "--out", tmp_path / "t.xlsx"), "t.xlsx")


@pytest.mark.slow  # over 8 s on 2 cores; ci/run-slow runs it
def test_federate_with_privacy_writes_model_history_and_curve(cube_file, tmp_path):
    from geoanom.federated import FederatedResult, verify_audit

    out, log = tmp_path / "fed", tmp_path / "audit.jsonl"
    process = geoanom("federate", cube_file, "--var", "tas", "--precision", "2", "--rounds", "4", "--epsilon", "3",
                      "--signed", "--audit-log", log, "--out", out)
    assert process.returncode == 0, process.stderr
    history = pd.read_csv(out / "history.csv")
    assert len(history) == 4 and history["epsilon"].iloc[-1] <= 3.0 + 1e-9
    assert (out / "learning_curve.png").stat().st_size > 10_000
    result = FederatedResult.load(out / "model.npz")
    assert result.epsilon == pytest.approx(history["epsilon"].iloc[-1]) and result.config["signed"]
    assert verify_audit(log, result.audit_head)
    head = (out / "audit_head.txt").read_text().strip()  # the head kept apart from the log, and shown
    assert head == result.audit_head and f"audit chain head: {head}" in process.stdout


def test_federate_with_a_client_grid_file(cube_file, tmp_path):
    cube = xr.open_dataset(cube_file)
    owner = xr.DataArray(np.where(cube["lon"].values < -80, "west", "east")[None, :].repeat(cube.sizes["lat"], 0),
                         dims=("lat", "lon"), coords={"lat": cube["lat"], "lon": cube["lon"]}, name="institution")
    owner.to_netcdf(tmp_path / "clients.nc")
    process = geoanom("federate", cube_file, "--var", "tas", "--clients", tmp_path / "clients.nc", "--rounds", "2",
                      "--out", tmp_path / "fed")
    assert process.returncode == 0, process.stderr
    assert "of 2 clients" in process.stdout


def test_federate_refuses_a_client_grid_of_the_wrong_shape(cube_file, tmp_path, refused):
    xr.DataArray(np.zeros((3, 3)), dims=("lat", "lon"), name="institution").to_netcdf(tmp_path / "bad.nc")
    assert_user_error(refused("federate", cube_file, "--var", "tas", "--clients", tmp_path / "bad.nc",
                              "--out", tmp_path / "fed"), "institution", "shape")


def test_federate_refuses_bad_options_before_reading_data(tmp_path, refused):
    process = refused("federate", tmp_path / "missing.nc", "--var", "tas", "--aggregator", "bogus",
                      "--out", tmp_path / "fed")
    assert_user_error(process, "bogus")  # not the missing file: options are checked first
    for option, value, fragment in (("--epsilon", "-1", "target epsilon"), ("--delta", "2", "delta")):
        process = refused("federate", tmp_path / "missing.nc", "--var", "tas", "--epsilon", "1", option, value,
                          "--out", tmp_path / "fed")
        assert_user_error(process, fragment)
