"""A real multi-process dask cluster gives exactly the single-process answer."""

import warnings

import numpy as np
import pytest
import xarray as xr

import geoanom as ga


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    with distributed.Client(cluster) as client:
        yield client
    cluster.close()


def test_cluster_result_equals_single_process(client, cube_file):
    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    training = cube.isel(time=slice(None, 72))
    local_model = ga.fit(training, precision=2)
    local = local_model.score(cube).compute(scheduler="sync")

    cluster_model = ga.fit(training, precision=2, client=client)
    with warnings.catch_warnings():  # the models travel in the graph: distributed warns of its size
        warnings.filterwarnings("ignore", message="Sending large graph")
        cluster = cluster_model.score(cube).compute()  # on the client, dask's default once created
    # with the client, the climatology and the tile models are on the workers already: the graph holds their keys
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Sending large graph")
        resident = cluster_model.score(cube, client=client).compute()
    xr.testing.assert_identical(resident, cluster)

    assert cluster_model.tiles == local_model.tiles
    xr.testing.assert_identical(cluster, local)
    # the work really ran on both worker processes
    processing = client.run(lambda dask_worker: dask_worker.state.executed_count)
    assert len(processing) == 2 and all(count > 0 for count in processing.values())
    assert np.isfinite(cluster["irregularity"]).all()


def test_federated_region_rounds_run_on_the_cluster(client, cube_file):
    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    training = cube.isel(time=slice(None, 72))
    options = dict(precision=2, detectors=["gmm", "kmeans"], federated=True, federated_rounds=2)
    local = ga.fit(training, **options)
    remote = ga.fit(training, client=client, **options)
    assert local.region_models.keys() == remote.region_models.keys() and local.region_models
    for prefix in local.region_models:
        for family in ("gmm", "kmeans"):
            np.testing.assert_allclose(remote.region(prefix).detectors_[family].means_,
                                       local.region(prefix).detectors_[family].means_, rtol=1e-10, atol=1e-12)
    # and the tiles adapted towards them, on the cluster, match the local run
    assert remote.tiles == local.tiles
    for tile in local.tiles:
        for family in ("gmm", "kmeans"):
            adapted, own = remote.ensembles[tile].detectors_[family], local.ensembles[tile].detectors_[family]
            np.testing.assert_allclose(adapted.means_, own.means_, rtol=1e-10, atol=1e-12)
            assert adapted.native_threshold_ == pytest.approx(own.native_threshold_, rel=1e-9)


def test_the_climatology_is_sent_to_the_workers_once_not_in_every_graph(client, cube_file):
    import pickle

    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    model = ga.fit(cube.isel(time=slice(None, 72)), precision=2, detectors="gmm", client=client)
    on_cluster, anywhere = model.score(cube, client=client), model.score(cube)

    def graph_bytes(result):
        return len(pickle.dumps(dict(result["fused_irregularity"].data.__dask_graph__())))

    # without a client the graph carries the planes; with one, they are on the workers already
    assert graph_bytes(anywhere) - graph_bytes(on_cluster) > 0.95 * model.climatology.planes().nbytes
    xr.testing.assert_identical(on_cluster.compute(), anywhere.compute(scheduler="sync"))


def _block_payloads(graph: dict) -> list:
    """Each block's {tile code: models or partners}: held in the graph as data, or as futures a task gathers."""
    from distributed import Future

    from geoanom.model.score import _holder

    payloads = []
    for value in graph.values():
        value = getattr(value, "value", value)  # dask wraps literals in DataNode
        if isinstance(value, np.ndarray) and value.dtype == object and isinstance(value[0, 0], dict):
            payloads.append(value[0, 0])
        elif isinstance(value, tuple) and value and value[0] is _holder:
            assert all(isinstance(future, Future) for future in value[1].values())  # keys, not models
            payloads.append({code: future.result() for code, future in value[1].items()})
    return payloads


def test_each_block_carries_only_the_models_of_its_own_tiles(client, cube_file):
    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    model = ga.fit(cube.isel(time=slice(None, 72)), precision=2, detectors="gmm")
    result = model.score(cube, client=client)
    payloads = _block_payloads(dict(result["irregularity"].data.__dask_graph__()))
    n_blocks = len(cube.chunks["lat"]) * len(cube.chunks["lon"])
    assert len(payloads) == n_blocks > 1
    # every tile's model is somewhere, no block holds them all, and each holds exactly the tiles in it
    codes = model.tile_codes
    assert set().union(*payloads) == {code for code, name in enumerate(model.tile_names) if name in model.ensembles}
    assert max(len(payload) for payload in payloads) < len(model.ensembles)
    lat_starts = np.cumsum((0,) + cube.chunks["lat"])
    lon_starts = np.cumsum((0,) + cube.chunks["lon"])
    expected = [set(np.unique(codes[lat_starts[y]:lat_starts[y + 1], lon_starts[x]:lon_starts[x + 1]]).tolist())
                for y in range(len(cube.chunks["lat"])) for x in range(len(cube.chunks["lon"]))]
    assert sorted(map(sorted, expected)) == sorted(sorted(payload) for payload in payloads)
    xr.testing.assert_identical(result.compute(), model.score(cube).compute(scheduler="sync"))


def test_a_consensus_block_carries_only_its_tiles_and_their_partners(client, cube_file):
    from geoanom.detectors import Ensemble

    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    model = ga.fit(cube.isel(time=slice(None, 72)), precision=2, detectors="gmm")
    result = model.score(cube, client=client, consensus="neighbours")
    payloads = [p for p in _block_payloads(dict(result["consensus"].data.__dask_graph__())) if p]
    models = [p for p in payloads if all(isinstance(value, Ensemble) for value in p.values())]
    asked = [p for p in payloads if all(isinstance(value, list) for value in p.values())]
    n_blocks = len(cube.chunks["lat"]) * len(cube.chunks["lon"])
    assert len(models) == len(asked) == n_blocks > 1
    # each block holds its own tiles' models and their neighbours' models, never the whole model
    index = {str(name): code for code, name in enumerate(model.tile_names)}
    partners = {index[tile]: sorted(index[other] for other in others)
                for tile, others in model.consensus_partners("neighbours").items()}
    lat_starts, lon_starts = np.cumsum((0,) + cube.chunks["lat"]), np.cumsum((0,) + cube.chunks["lon"])
    expected = []
    for y in range(len(cube.chunks["lat"])):
        for x in range(len(cube.chunks["lon"])):
            own = set(np.unique(model.tile_codes[lat_starts[y]:lat_starts[y + 1], lon_starts[x]:lon_starts[x + 1]]).tolist())
            expected.append(sorted(own.union(*(partners.get(code, []) for code in own))))
    assert sorted(expected) == sorted(sorted(p) for p in models)
    assert max(len(p) for p in models) < len(model.ensembles)
    assert all(p == {code: partners[code] for code in p} for p in asked)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message="Sending large graph")
        on_cluster = result.compute()
    xr.testing.assert_identical(on_cluster, model.score(cube, consensus="neighbours").compute(scheduler="sync"))
    assert on_cluster["consensus"].notnull().any()


def test_the_tile_models_are_sent_to_the_cluster_once_not_in_the_graph(client, cube_file):
    import gc
    import pickle
    import time

    from distributed import Future

    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    model = ga.fit(cube.isel(time=slice(None, 72)), precision=2, detectors=["gmm", "iforest"])
    on_cluster, anywhere = model.score(cube, client=client), model.score(cube)

    def graph(result):
        return dict(result["fused_irregularity"].data.__dask_graph__())

    model_bytes = sum(len(pickle.dumps(ensemble)) for ensemble in model.ensembles.values())
    # the threaded graph carries every model; the cluster's carries none of them, only a key per tile
    assert len(pickle.dumps(graph(anywhere))) - len(pickle.dumps(graph(on_cluster))) > 0.9 * model_bytes
    futures = {future.key for value in graph(on_cluster).values() if isinstance(value, tuple)
               for future in (value[1].values() if isinstance(value[1], dict) else ()) if isinstance(future, Future)}
    assert len(futures) == len(model.ensembles) > 1  # each tile's models sent once
    # the lazy result keeps its models on the cluster, and means the same, however late it is computed
    expected = anywhere.compute(scheduler="threads")
    del anywhere
    gc.collect()
    known = sorted(futures)

    def on_scheduler(dask_scheduler, keys=known):
        return sum(key in dask_scheduler.tasks for key in keys)

    assert client.run_on_scheduler(on_scheduler) == len(futures)
    xr.testing.assert_identical(on_cluster.compute(), expected)
    del on_cluster
    gc.collect()
    for _ in range(50):  # and lets them go with it (the release reaches the scheduler a moment later)
        if not client.run_on_scheduler(on_scheduler):
            break
        time.sleep(0.1)
    assert client.run_on_scheduler(on_scheduler) == 0


def test_a_lazy_cluster_result_holds_the_models_as_they_were_when_it_was_made(client, cube_file):
    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    model = ga.fit(cube.isel(time=slice(None, 72)), precision=2, detectors=["gmm", "iforest"])
    before = model.score(cube)["fused_irregularity"].values
    lazy = model.score(cube, client=client)
    shifted = np.random.default_rng(0).normal(size=(2000, len(model.attrs["feature_names"]))) + 8.0
    for ensemble in model.ensembles.values():  # the detectors' own, in-place adaptation
        ensemble.irregularity_adapting(shifted, 50)
    np.testing.assert_array_equal(lazy["fused_irregularity"].values, before)
    assert not np.allclose(model.score(cube)["fused_irregularity"].values, before, equal_nan=True)


def test_tile_models_on_a_lost_worker_are_made_again(client, cube_file):
    from distributed import Future, wait

    cube = ga.open_cube(cube_file, chunks={"time": 36, "lat": 8, "lon": 12})
    model = ga.fit(cube.isel(time=slice(None, 72)), precision=2, detectors="gmm")
    result = model.score(cube, client=client)
    futures = [future for value in dict(result["fused_irregularity"].data.__dask_graph__()).values()
               if isinstance(value, tuple) and isinstance(value[-1], dict)
               for future in value[-1].values() if isinstance(future, Future)]
    wait(futures)
    holders = {worker for workers in client.who_has(futures).values() for worker in workers}
    assert holders
    # a worker lost (a Slurm job at its walltime): its tile models are tasks, not scattered data, so they are rebuilt
    client.restart_workers([sorted(holders)[0]])
    xr.testing.assert_identical(result.compute(), model.score(cube).compute(scheduler="sync"))
