"""dask-jobqueue clusters on a real Slurm: the same results as a local run, through lost and replaced jobs.

Run with ``pytest -m slurm -rs`` on a machine where ``ci/slurm-up`` (as root)
started a single-node Slurm; elsewhere every test here skips, saying why.
Each job is one single-threaded worker of 2 GB.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest
import xarray as xr

import geoanom as ga
from geoanom.cluster import jobqueue
from geoanom.testing import synthetic_cube

pytestmark = pytest.mark.slurm

OPTIONS = dict(precision=2, detectors=["gmm", "kmeans"])
CHUNKS = {"time": 24, "lat": 8, "lon": 12}


def slurm_missing() -> str | None:
    """Why no Slurm can run jobs here, or None when a node is up."""
    if os.environ.get("GEOANOM_NO_SLURM"):  # .ci/run: ci/slurm-up's own reason
        return f"no Slurm here: {os.environ['GEOANOM_NO_SLURM']}"
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "no Slurm here: sbatch/sinfo are not on PATH (start one with `sudo ci/slurm-up`)"
    try:
        states = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "no Slurm here: sinfo did not answer in 20 s"
    if states.returncode != 0 or not {"idle", "mix", "alloc"} & set(states.stdout.split()):
        said = (states.stdout or states.stderr).strip() or "nothing"
        return f"no Slurm node is up: sinfo says {said!r} (start one with `sudo ci/slurm-up`)"
    try:
        import dask_jobqueue  # noqa: F401
    except ImportError:
        return "dask-jobqueue is not installed"
    return None


@pytest.fixture(scope="module")
def slurm():
    reason = slurm_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def cube_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("slurm") / "tas.nc"
    synthetic_cube(n_years=8, n_lat=16, n_lon=24)[0].to_netcdf(path)
    return path


@pytest.fixture(scope="module")
def cube(cube_path):
    return ga.open_cube(cube_path, chunks=CHUNKS)


@pytest.fixture(scope="module")
def local(cube):
    """The local run every cluster run must equal."""
    return ga.fit(training_of(cube), **OPTIONS).score(cube).compute()


def training_of(cube):
    return cube.isel(time=slice(None, 60))


def cluster(tmp_path, jobs=1, adapt=None):
    """A Slurm cluster of single-threaded 2 GB jobs, logs in tmp_path."""
    return jobqueue("slurm", jobs, adapt=adapt, cores=1, memory="2GB", walltime="00:10:00",
                               log_directory=str(tmp_path / "logs"))


class Canceller(threading.Thread):
    """Cancels Slurm jobs (scancel) once the cluster is running tasks; records when it did."""

    def __init__(self, client, batch, every_job=False):
        super().__init__(daemon=True)
        self.client, self.batch, self.every_job = client, batch, every_job
        self.cancelled: list[str] = []
        self.answer = None  # scancel's
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.2):
            if any(self.client.processing().values()):  # some worker runs tasks: the computation is under way
                jobs = sorted(running_jobs() & self.ours())
                self.cancelled = jobs if self.every_job else jobs[:1]
                self.answer = subprocess.run(["scancel", *self.cancelled], capture_output=True, text=True)
                return

    def ours(self) -> set[str]:
        return {str(job.job_id) for job in self.batch.workers.values() if getattr(job, "job_id", None)}

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.join()
        assert self.answer is not None and self.answer.returncode == 0, self.answer



def running_jobs() -> set[str]:
    listed = subprocess.run(["squeue", "-h", "-t", "R", "-o", "%i"], capture_output=True, text=True, check=True)
    return set(listed.stdout.split())


def test_the_python_api_on_a_slurm_cluster_equals_a_local_run(slurm, cube, local, tmp_path):
    from distributed import Client

    with cluster(tmp_path, jobs=2) as batch, Client(batch) as client:
        assert "export MALLOC_MMAP_THRESHOLD_=33554432" in batch.job_script()
        model = ga.fit(training_of(cube), client=client, **OPTIONS)
        remote = model.score(cube, client=client).compute()
        workers = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(workers) == 2 and all(count > 0 for count in workers.values())  # both jobs worked
    xr.testing.assert_identical(remote, local)


def test_a_job_cancelled_mid_fit_and_mid_score_changes_nothing(slurm, cube, local, tmp_path):
    from distributed import Client

    with cluster(tmp_path, jobs=2) as batch, Client(batch) as client:
        client.wait_for_workers(2, timeout=120)
        with Canceller(client, batch) as during_fit:
            model = ga.fit(training_of(cube), client=client, **OPTIONS)
        assert len(during_fit.cancelled) == 1, "no job was cancelled during the fit"
        client.wait_for_workers(2, timeout=120)  # the cluster replaced the cancelled job
        with Canceller(client, batch) as during_score:
            remote = model.score(cube, client=client).compute()
        assert len(during_score.cancelled) == 1, "no job was cancelled during the score"
        assert not (set(during_fit.cancelled) | set(during_score.cancelled)) & running_jobs()
    xr.testing.assert_identical(remote, local)


def test_an_adaptive_cluster_fits_and_scores_from_0_jobs_and_survives_every_job_replaced(slurm, cube, local, tmp_path):
    from distributed import Client

    with cluster(tmp_path, adapt=(0, 2)) as batch, Client(batch) as client:
        assert not client.scheduler_info()["workers"]  # nothing runs until there is work
        model = ga.fit(training_of(cube), client=client, **OPTIONS)
        idle = time.monotonic()
        while client.scheduler_info()["workers"] and time.monotonic() - idle < 60:
            time.sleep(0.5)
        assert not client.scheduler_info()["workers"], "the idle cluster did not scale down to 0 jobs"
        # scoring at 0 workers submits work that brings jobs back (a scatter would time out here)
        with Canceller(client, batch, every_job=True) as during_score:  # as if every job hit its walltime
            remote = model.score(cube, client=client).compute()
        assert len(during_score.cancelled) >= 1, "no job was cancelled during the score"
    xr.testing.assert_identical(remote, local)


def test_geoanom_detect_on_slurm_jobs_equals_a_local_run(slurm, cube_path, tmp_path):
    common = [sys.executable, "-m", "geoanom.cli", "detect", str(cube_path), "--var", "tas", "--train-end", "2004",
              "--precision", "2", "--detectors", "gmm,kmeans"]
    here = subprocess.run([*common, "--out", str(tmp_path / "local.zarr")], capture_output=True, text=True,
                          timeout=300)
    assert here.returncode == 0, here.stderr
    start = time.monotonic()
    there = subprocess.run([*common, "--out", str(tmp_path / "slurm.zarr"), "--cluster", "slurm", "--jobs", "2",
                            "--cluster-option", "cores=1", "--cluster-option", "memory=2GB",
                            "--cluster-option", f"log-directory={tmp_path / 'logs'}"],
                           capture_output=True, text=True, timeout=300)
    assert there.returncode == 0, there.stderr
    # progress of the fit and the score, counted by the cluster's scheduler
    assert re.search(r"fitting \d+ tiles: done, [\d,]+ tasks in", there.stderr), there.stderr
    assert re.search(r"scoring and writing \S+: done, [\d,]+ tasks in", there.stderr), there.stderr
    xr.testing.assert_identical(xr.open_zarr(tmp_path / "slurm.zarr").load(),
                                xr.open_zarr(tmp_path / "local.zarr").load())
    assert len(list((tmp_path / "logs").glob("*.out"))) == 2  # two jobs ran
    assert time.monotonic() - start < 240
