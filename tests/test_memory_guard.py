"""Workers too small for the work are refused before anything is submitted, in one sentence.

On a real dask LocalCluster whose workers have a memory limit: dask would
otherwise pause them at 80% of it and the run would stall without a word.
"""

from __future__ import annotations

import json
from pathlib import Path

import dask
import pytest
from distributed import Client, LocalCluster

import geoanom as ga
from geoanom.cluster import WORKER_ENVIRONMENT
from geoanom.detectors import DEFAULT_DETECTORS
from geoanom.errors import GeoanomError, WorkerMemoryError
from geoanom.features.pipeline import stack_variables
from geoanom.io import write_dataset
from geoanom.memory import (
    BASE_BYTES,
    MODEL_BYTES_PER_TILE,
    largest_chunk,
    most_tiles_in_a_block,
    task_bytes,
    worker_bytes,
)
from geoanom.model.score import check_score_memory
from geoanom.tiling import tile_codes, tile_labels


@pytest.fixture(scope="module")
def fitted():
    cube = ga.sample_cube("north_america")
    return cube, ga.fit(cube.isel(time=slice(0, 60)), precision=2, detectors="gmm,iforest")


def client_with(memory_limit: str, threads: int = 2) -> Client:
    cluster = LocalCluster(n_workers=1, threads_per_worker=threads, processes=False, memory_limit=memory_limit,
                           dashboard_address=":0")
    return Client(cluster)


def test_small_workers_are_refused_with_the_size_needed(fitted):
    cube, model = fitted
    big_chunks = cube.chunk({"time": -1, "lat": -1, "lon": -1})
    tiles = most_tiles_in_a_block(model.tile_codes, ((cube.sizes["lat"],), (cube.sizes["lon"],)))
    needed = worker_bytes(2, task_bytes(cube["air_temperature"].size, tiles, model.detectors))
    small = cube.chunk({"time": 10})
    needed_small = worker_bytes(2, task_bytes(largest_chunk(small["air_temperature"].chunks), tiles, model.detectors))
    assert needed > needed_small > BASE_BYTES
    with client_with(f"{int((needed + needed_small) / 2 / 0.8)}B") as client:
        with pytest.raises(WorkerMemoryError, match=r"scoring this cube needs about .* per worker \(2 threads.*"
                           r"give workers at least") as caught:
            ga.AnomalyModel.score(model, big_chunks, client=client)
        assert isinstance(caught.value, GeoanomError) and "\n" not in str(caught.value)
        # the same cube in smaller chunks passes the check on the same workers (not computed here: an
        # in-process worker measures the whole test process against its limit, and would pause)
        check_score_memory(model, small, client)


def test_workers_with_room_or_without_a_limit_are_not_refused(fitted):
    cube, model = fitted
    expected = model.score(cube)["fused_irregularity"].compute()
    for limit in ("0", "4GB"):  # no limit: nothing to check; room enough: scored as without a cluster
        with client_with(limit) as client:
            assert model.score(cube, client=client)["fused_irregularity"].compute().equals(expected)


def test_the_largest_block_counts_every_variable_and_dimension():
    assert largest_chunk(((1, 1), (10, 5), (3,), (4, 2))) == 1 * 10 * 3 * 4
    assert largest_chunk(((2,), (10,), (3,), (4,))) == 240


def test_a_fit_on_workers_too_small_is_refused_before_any_work():
    cube = ga.sample_cube("sst").chunk({"time": -1})
    with client_with("200MB") as client:
        with pytest.raises(WorkerMemoryError, match=r"fitting .*ostia_monthly.nc. needs about .* but its workers have 200 MB"):
            ga.fit(cube.isel(time=slice(0, 36)), client=client)
        assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.tasks)) == 0  # nothing submitted


def test_a_worker_holds_models_once_and_a_chunk_per_thread():
    task = task_bytes(2_000_000, 100, ["gmm", "iforest"], phase="score")
    assert worker_bytes(2, task) - worker_bytes(1, task) == task.per_thread > 0
    assert task.shared >= 100 * MODEL_BYTES_PER_TILE["iforest"]  # the forests of the block's tiles, once
    assert worker_bytes(1, task) == BASE_BYTES + int(task)
    # more observations, tiles or families never need less
    for bigger in (task_bytes(4_000_000, 100, ["gmm", "iforest"], phase="score"),
                   task_bytes(2_000_000, 200, ["gmm", "iforest"], phase="score"),
                   task_bytes(2_000_000, 100, ["gmm", "iforest", "kmeans"], phase="score")):
        assert worker_bytes(2, bigger) > worker_bytes(2, task)


def test_without_a_phase_the_estimate_covers_both():
    for observations, tiles, names in ((10**6, 729, DEFAULT_DETECTORS), (4 * 10**6, 20, ("gmm",)),
                                       (10**5, 5000, ("kmeans", "event"))):
        either = task_bytes(observations, tiles, names)
        for threads in (1, 2, 8):
            assert worker_bytes(threads, either) >= max(
                worker_bytes(threads, task_bytes(observations, tiles, names, phase)) for phase in ("fit", "score"))
    with pytest.raises(ValueError, match="phase"):
        task_bytes(10, 1, ["gmm"], phase="detect")


def test_the_estimate_bounds_every_measured_worker_peak():
    """benchmarks/results/worker_memory.json: each worker's VmHWM on a LocalCluster, fit and score apart."""
    report = json.loads((Path(__file__).resolve().parent.parent / "benchmarks" / "results" / "worker_memory.json")
                        .read_text())
    rows = [row for row in report["results"] if row.get("ok") and row["phase"] in ("fit", "score")]
    assert {row["families"] for row in rows} == {"all", "gmm"} and {row["threads"] for row in rows} == {1, 2}
    for row in rows:
        given = row["predicted_inputs"]
        task = task_bytes(given["chunk_observations"], given["tiles_in_a_block"], given["detectors"], row["phase"])
        measured = max(row["worker_peak_mb"].values()) * 2**20
        assert measured <= worker_bytes(row["threads"], task), row


@pytest.mark.slow
def test_a_real_workers_peak_stays_below_the_estimate(tmp_path):
    """A worker process fits and scores the sample cube (as `geoanom detect`); its VmHWM is below the estimate."""
    def peak_bytes() -> int:  # nested: sent to the worker by value
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

    cube = ga.sample_cube("north_america")
    train = cube.isel(time=slice(0, 60))
    with dask.config.set(WORKER_ENVIRONMENT):
        cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True, memory_limit=0,
                               dashboard_address=":0")
    with cluster, Client(cluster) as client:
        model = ga.fit(train, precision=2, detectors="gmm,iforest", client=client)
        write_dataset(model.score(cube, client=client), tmp_path / "scored.zarr", warn_flags=False)
        peak = max(client.run(peak_bytes).values())
    estimates = []
    for phase, part, codes in (("fit", train, tile_codes(tile_labels(train, 2))[0]), ("score", cube, model.tile_codes)):
        values = stack_variables(part, model.variables)
        chunks = values.chunks or tuple((size,) for size in values.shape)
        task = task_bytes(largest_chunk(chunks), most_tiles_in_a_block(codes, chunks[-2:]), model.detectors, phase)
        estimates.append(worker_bytes(2, task))
    assert BASE_BYTES < peak <= max(estimates), (peak // 2**20, [e // 2**20 for e in estimates])


class _Workers:
    """A client's scheduler_info alone: workers of one size (check_workers reads nothing else)."""

    def __init__(self, threads: int):
        self.threads = threads

    def scheduler_info(self):
        return {"workers": {"w": {"memory_limit": 200e6, "nthreads": self.threads}}}


def test_a_worker_of_one_thread_is_not_told_to_use_fewer_threads():
    from geoanom.memory import check_workers

    task = task_bytes(50_000_000, 100, ["gmm"], phase="fit")
    with pytest.raises(WorkerMemoryError, match=r"per worker \(1 thread, holding .* give workers at least .* of its "
                                                r"memory\), or smaller chunks \(open_cube\(\.\.\., chunks=\.\.\.\)\)\.$"):
        check_workers(_Workers(1), task, "fitting this cube")  # was "(1 threads, each holding", "fewer threads each"
    with pytest.raises(WorkerMemoryError, match=r"per worker \(2 threads, each holding .*, fewer threads each, or "):
        check_workers(_Workers(2), task, "fitting this cube")
