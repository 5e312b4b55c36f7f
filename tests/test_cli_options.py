"""The command's conventions: --version, -q, -v, fast --help, labelled progress, no stray warnings or files."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings

import dask.array as da
import pytest
import xarray as xr

import geoanom
from geoanom.errors import GeoanomWarning
from geoanom.progress import ProgressLine, progress

HEAVY = ("optuna", "tqdm", "sklearn", "matplotlib", "distributed", "scipy", "xarray")


def detect(cube_file, out, *more):
    return ["detect", str(cube_file), "--var", "tas", "--train-end", "2005", "--precision", "2",
            "--detectors", "gmm", "--out", str(out), *map(str, more)]


def test_the_command_imports_no_heavy_package():
    """--help answers at once only if the command's modules import none of these (3.6 s before)."""
    code = ("import sys, geoanom.cli; from geoanom.cli import build_parser; build_parser(); "
            f"print([m for m in {HEAVY!r} if m in sys.modules])")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_import_geoanom_is_lazy_and_complete():
    code = ("import sys, geoanom as ga; lazy = 'sklearn' not in sys.modules and 'xarray' not in sys.modules; "
            "ga.fit; print(lazy, ga.fit.__module__, 'tqdm' in sys.modules)")
    printed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # tqdm (brought by optuna) warns in Jupyter: neither import nor fit may load it
    assert printed.stdout.split() == ["True", "geoanom.model.fit", "False"], printed.stdout
    assert printed.stderr == ""
    assert [name for name in geoanom.__all__ if not hasattr(geoanom, name)] == []
    assert set(geoanom.__all__) <= set(dir(geoanom))


def test_an_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'fitt'"):
        geoanom.fitt  # noqa: B018


def test_region_option_defaults_are_region_params_defaults():
    from geoanom.cli import REGION_DEFAULTS
    from geoanom.features import RegionParams

    assert {name: getattr(RegionParams(), name) for name in REGION_DEFAULTS} == REGION_DEFAULTS


def test_version(capsys):
    from geoanom.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"geoanom {geoanom.__version__}"


def test_quiet_prints_nothing_but_writes(cube_file, tmp_path, refused):
    process = refused("-q", *detect(cube_file, tmp_path / "o.zarr"))  # -q before the command; after: below
    assert process.returncode == 0, process.stderr
    assert process.stdout == "" and process.stderr == ""
    assert xr.open_zarr(tmp_path / "o.zarr")["irregularity"].sizes["time"] == 144


def test_quiet_still_shows_errors_and_not_with_verbose(tmp_path, refused):
    process = refused("-q", "info", tmp_path / "missing.nc")
    assert process.returncode == 2 and "missing.nc" in process.stderr
    process = refused("-q", "info", "-v", tmp_path / "missing.nc")
    assert process.returncode == 2 and "either -q or -v" in process.stderr


def test_a_normal_run_labels_its_progress_plainly_and_writes_no_extra_table(cube_file, tmp_path, refused):
    """Standard error is not a terminal here: plain lines, no carriage returns; and no table not asked for."""
    process = refused(*detect(cube_file, tmp_path / "o.zarr"))
    assert process.returncode == 0, process.stderr
    assert "\r" not in process.stderr
    labels = [line.split(":")[0] for line in process.stderr.splitlines()]
    assert "fitting 24 tiles" in labels and f"scoring and writing {tmp_path / 'o.zarr'}" in labels
    assert "tiles skipped" not in process.stdout  # none on this cube
    assert "trained 2000-01-01 to 2005-12-01" in process.stdout  # ISO dates, no nanoseconds
    assert sorted(p.name for p in tmp_path.iterdir()) == ["o.zarr"]


def test_verbose_says_the_precision_and_stage_times(cube_file, tmp_path, refused):
    process = refused(*detect(cube_file, tmp_path / "o.zarr"), "-v", "--top-tiles", tmp_path / "top.csv")
    assert process.returncode == 0, process.stderr
    assert "tiles: precision 2" in process.stdout and "opening the input: " in process.stdout
    assert "training 2000-01-01 to 2005-12-01 (72 steps); computing on this machine's threads" in process.stdout
    assert len((tmp_path / "top.csv").read_text().splitlines()) == 11  # a header and ten tiles


def test_no_third_party_warning_in_a_normal_run(cube_file, tmp_path):
    """Warnings of geoanom's own (GeoanomWarning) are deliberate; any other would reach the user."""
    from geoanom.cli import main

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = main(detect(cube_file, tmp_path / "o.nc", "--plot", tmp_path / "map.png", "--model-out",
                             tmp_path / "m.zarr", "-q"))
    assert status == 0 and (tmp_path / "map.png").exists()
    foreign = [f"{w.category.__name__}: {w.message} ({w.filename}:{w.lineno})" for w in caught
               if not issubclass(w.category, GeoanomWarning)]
    assert foreign == []


def test_skipped_tiles_are_listed_with_their_reasons(tmp_path, refused):
    """A tile whose cells hold data at only a few time steps is skipped; the run says which and why."""
    import geoanom as ga
    from geoanom.testing import synthetic_cube

    cube, _ = synthetic_cube()  # every tile holds enough at precision 2 (see the test above)
    labels = ga.tile_labels(cube, 2)
    sparse = str(labels.values[0, 0])
    corner = (cube["lat"] == cube["lat"][0]) & (cube["lon"] == cube["lon"][0])
    keep = (labels != sparse) | (corner & (cube["time"] < cube["time"][30]))  # that tile: one cell, 30 steps
    cube["tas"] = cube["tas"].where(keep)
    path = tmp_path / "sparse.nc"
    cube.to_netcdf(path)
    process = refused("detect", path, "--var", "tas", "--train-end", "2005", "--precision", "2",
                      "--detectors", "gmm", "--out", tmp_path / "o.zarr")
    assert process.returncode == 0, process.stderr
    assert "1 tile skipped (its cells score NaN):" in process.stdout
    reason = next(line for line in process.stdout.splitlines() if line.startswith(f"  {sparse}: "))
    assert "valid observations" in reason and "100 needed" in reason


def read_all(master: int) -> str:
    """What a pseudo-terminal received up to its last newline: one read may return only part of it."""
    import select

    drawn = b""
    while not drawn.endswith(b"\n") and select.select([master], [], [], 2.0)[0]:
        drawn += os.read(master, 10_000)
    return drawn.decode()


def test_progress_on_a_terminal_is_a_bar_and_in_a_log_plain_lines():
    master, slave = os.openpty()
    with os.fdopen(slave, "w") as terminal:
        line = ProgressLine("fitting 3 tiles", stream=terminal)
        line.step(4)
        for done in range(1, 5):
            line.update(done)
        line.close()
        terminal.flush()
        drawn = read_all(master)
    os.close(master)
    assert "\rfitting 3 tiles [" in drawn and "100%" in drawn and drawn.endswith("\n")

    log = io.StringIO()
    line = ProgressLine("fitting 3 tiles", stream=log, quiet=0)
    line.step(10)
    for done in range(1, 11):
        line.update(done)
    line.close()
    lines = log.getvalue().splitlines()
    assert "\r" not in log.getvalue() and len(lines) == 11  # every tenth, then the closing line
    assert lines[4] == lines[4].split(":")[0] + ": 50% of 10 tasks, " + lines[4].rsplit(", ", 1)[1]
    assert lines[-1].startswith("fitting 3 tiles: done, 10 tasks in ")


def test_progress_follows_a_distributed_scheduler():
    distributed = pytest.importorskip("distributed")
    log = io.StringIO()
    with distributed.Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0") as client:
        with progress("summing on a cluster", client, stream=log):
            total = da.ones((200, 200), chunks=20).sum().compute()
    assert total == 40_000
    tasks = int(log.getvalue().splitlines()[-1].split("done, ")[1].split(" tasks")[0])
    assert tasks >= 100  # the 100 blocks at least, seen through the scheduler's task states


def test_a_failed_computation_ends_without_a_done_line():
    def refuse_zero(block):
        if block.size and not block.all():
            raise ZeroDivisionError("a zero")
        return block

    log = io.StringIO()
    with pytest.raises(ZeroDivisionError):
        with progress("dividing", stream=log, every=0):
            da.from_array([1, 0], chunks=1).map_blocks(refuse_zero, dtype=int).compute()
    assert log.getvalue() == ""  # the error itself says what happened


def test_cluster_kinds_of_the_command_are_the_jobqueue_classes():
    from geoanom.cli import CLUSTER_KINDS
    from geoanom.cluster import JOBQUEUE_CLASSES

    assert CLUSTER_KINDS == tuple(JOBQUEUE_CLASSES)


@pytest.mark.parametrize("more, fragment", [
    (["--jobs", "2"], "--jobs and --cluster-option need --cluster"),
    (["--cluster-option", "cores=2"], "--jobs and --cluster-option need --cluster"),
    (["--cluster", "slurm", "--jobs", "3:1"], "got 3:1"),
    (["--cluster", "slurm", "--jobs", "two"], "--jobs takes N or MIN:MAX"),
    (["--cluster", "slurm", "--cluster-option", "cores"], "--cluster-option takes KEY=VALUE, got 'cores'"),
    (["--scheduler-file", "nowhere.json"], "no scheduler file at 'nowhere.json'"),
])
def test_cluster_options_are_refused_in_one_sentence_before_any_work(cube_file, tmp_path, refused, more, fragment):
    process = refused(*detect(cube_file, tmp_path / "o.zarr", *more))
    assert process.returncode == 2
    assert process.stderr.count("\n") == 1 and fragment in process.stderr, process.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_a_batch_system_missing_here_is_named_with_its_command(cube_file, tmp_path, refused, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no bsub (nor any other batch command) on PATH
    process = refused(*detect(cube_file, tmp_path / "o.zarr", "--cluster", "lsf", "--jobs", "2"))
    assert process.returncode == 2
    assert "cannot submit lsf jobs from this machine: the command 'bsub' is not on PATH" in process.stderr


def test_cluster_options_are_typed_like_jobqueue_settings():
    from geoanom.cluster import parse_cluster_options

    options = parse_cluster_options("slurm", ["cores=4", "memory=16GB", "walltime=01:00:00", "nanny=false",
                                              "job-extra-directives=--exclusive", "worker_extra_args=--lifetime",
                                              "worker-extra-args=55m", "account=climate"])
    assert options == {"cores": 4, "memory": "16GB", "walltime": "01:00:00", "nanny": False,
                       "job_extra_directives": ["--exclusive"], "worker_extra_args": ["--lifetime", "55m"],
                       "account": "climate"}


def test_progress_on_a_cluster_says_how_many_workers_and_when_a_job_goes():
    log = io.StringIO()
    line = ProgressLine("fitting 3 tiles", stream=log, quiet=0)
    line.step(10)
    line.update(0, workers=0)  # an adaptive cluster still waiting for its first job
    line.update(5, workers=2)
    line.update(5, workers=1)  # no new tenth done, but a job went: a line says so
    lines = log.getvalue().splitlines()
    assert [text.split(", ")[0] for text in lines] == ["fitting 3 tiles: 0% of 10 tasks on 0 workers",
                                                       "fitting 3 tiles: 50% of 10 tasks on 2 workers",
                                                       "fitting 3 tiles: 50% of 10 tasks on 1 worker"]


@pytest.mark.parametrize("kind, jobs, adapt, fragment", [
    ("torque", 1, None, "unknown cluster kind 'torque': choose one of slurm, pbs, sge, lsf."),
    ("slurm", 0, None, "a cluster needs at least 1 job, got 0."),
    ("slurm", 1, (2, 1), "got 2:1."),
])
def test_a_jobqueue_cluster_refuses_a_bad_kind_or_count_in_one_sentence(kind, jobs, adapt, fragment):
    from geoanom.cluster import jobqueue
    from geoanom.errors import GeoanomError

    with pytest.raises(GeoanomError, match=fragment.replace("(", r"\(")) as refused:
        jobqueue(kind, jobs, adapt=adapt)
    assert str(refused.value).count(". ") == 0 and str(refused.value).endswith(".")


def test_a_scheduler_file_connects_to_the_scheduler_that_wrote_it(tmp_path):
    distributed = pytest.importorskip("distributed")
    from geoanom.cluster import connect

    path = tmp_path / "scheduler.json"
    with distributed.LocalCluster(n_workers=1, processes=False, dashboard_address=":0",
                                  scheduler_kwargs={"scheduler_file": str(path)}) as cluster:
        with connect(scheduler_file=path) as client:
            assert client.scheduler.address == cluster.scheduler_address
            assert client.submit(sum, [1, 2]).result() == 3


def test_federate_lost_worker_options_default_to_the_librarys_and_reach_it(refused, cube_file, tmp_path):
    from geoanom.cli import build_parser
    from geoanom.federated.options import RoundOptions

    args = build_parser().parse_args(["federate", "x.nc", "--var", "tas", "--out", "o"])
    assert (args.on_lost_worker, args.max_retries) == (RoundOptions().on_lost_worker, RoundOptions().max_retries)
    run = refused("federate", cube_file, "--var", "tas", "--out", tmp_path / "fed", "--max-retries", "-1")
    assert run.returncode == 2 and "max_retries" in run.stderr and "Traceback" not in run.stderr

