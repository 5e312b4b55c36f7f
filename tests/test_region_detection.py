"""Region features in use: tuning per client, and feeding the detector ensemble."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.features import RegionParams, region_labels, tune_region_params
from geoanom.features.tuning import temporal_agreement
from geoanom.testing import blob_cube


@pytest.fixture(scope="module")
def blobs():
    """Blobs and spikes; the first half (training) holds neither."""
    cube, events = blob_cube(seed=1)
    half = cube.sizes["time"] // 2
    return cube.isel(time=slice(None, half)), cube.isel(time=slice(half, None)), events.isel(time=slice(half, None))


def fused_auc(model, test, events):
    scores = model.score(test)["fused_irregularity"].values.ravel()
    return roc_auc_score(events.values.ravel(), scores)


@pytest.mark.slow  # over 8 s; run by ci/run-slow
def test_region_features_raise_the_ensembles_auc_over_values_alone(blobs):
    train, test, events = blobs
    values_only = ga.fit(train, precision=2, features="values")
    with_regions = ga.fit(train, precision=2, features=["values", "regions"])
    default = ga.fit(train, precision=2)  # anomalies and neighbours
    auc_values, auc_regions = fused_auc(values_only, test, events), fused_auc(with_regions, test, events)
    # spikes look like anomalies cell by cell; only the spatial context tells events from noise
    assert auc_regions >= 0.93 and auc_regions - auc_values >= 0.15, (auc_values, auc_regions)
    assert fused_auc(default, test, events) - auc_values >= 0.15
    assert with_regions.attrs["feature_names"] == ["tas", "tas_anomaly", "tas_smoothed", "tas_region_area"]


def test_a_region_model_saves_and_scores_the_same(blobs, tmp_path):
    train, test, _ = blobs
    params = RegionParams(sigma=1.5, threshold=1.0)
    model = ga.fit(train, precision=2, features="regions", regions=params, detectors=["gmm", "kmeans"])
    model.save(tmp_path / "model.npz")
    loaded = ga.load_model(tmp_path / "model.npz")
    assert RegionParams(**loaded.attrs["region_params"]) == params
    np.testing.assert_array_equal(loaded.score(test)["irregularity"].values, model.score(test)["irregularity"].values)


def test_adaptive_scoring_uses_the_region_features(blobs):
    train, test, events = blobs
    model = ga.fit(train, precision=2, features=["values", "regions"], detectors=["gmm"])
    lazy = model.score(test)["irregularity"].values
    eager = model.adapt(test, adapt_every=10**9)[0]["irregularity"].values  # never adapts
    np.testing.assert_allclose(eager, lazy, rtol=1e-5)


def test_unknown_feature_set_is_refused(blobs):
    with pytest.raises(GeoanomError, match="features"):
        ga.fit(blobs[0], features=["values", "texture"])


def test_tuning_with_labels_is_deterministic_and_finds_the_events(blobs):
    cube, events = blob_cube(seed=2)
    first = tune_region_params(cube["tas"], events, n_trials=12, seed=5)
    again = tune_region_params(cube["tas"], events, n_trials=12, seed=5)
    assert first.params == again.params and first.score == again.score
    assert first.objective == "cell ROC AUC" and first.score > 0.9
    assert len(first.trials) == 12 and first.score == first.trials["value"].max()


def test_tuning_per_client_uses_only_that_clients_data():
    cube, events = blob_cube(seed=3)
    west = cube["tas"].isel(lon=slice(None, 24))
    tuned = tune_region_params(west, events.isel(lon=slice(None, 24)), n_trials=8, seed=0)
    assert tuned.score > 0.85
    with pytest.raises(GeoanomError, match="shaped like"):
        tune_region_params(west, events, n_trials=2)  # the other client's labels do not fit


def test_tuning_without_labels_maximises_temporal_agreement():
    cube, _ = blob_cube(seed=4)
    tuned = tune_region_params(cube["tas"], n_trials=8, seed=0)
    assert tuned.objective.startswith("temporal agreement") and -1 <= tuned.score <= 1
    # the reported score is the criterion of the chosen parameters, recomputed from their mask
    mask = region_labels(cube["tas"], **tuned.params.to_dict()).values > 0
    assert tuned.score == pytest.approx(temporal_agreement(mask, np.isfinite(cube["tas"].values)))
    assert tuned.trials["value"].nunique() > 1  # the parameters really changed the criterion


def test_tuning_on_time_step_labels_and_with_a_callable():
    cube, events = blob_cube(seed=5)
    per_step = events.any(["lat", "lon"]).values
    tuned = tune_region_params(cube["tas"], per_step, n_trials=6, seed=0)
    assert tuned.objective.startswith("time-step") and tuned.score > 0.8
    fewest = tune_region_params(cube["tas"], lambda table: -table["n_regions"].sum(), n_trials=6, seed=0)
    assert fewest.objective == "callable" and fewest.score <= 0


def test_temporal_agreement_is_cohens_kappa():
    rng = np.random.default_rng(0)
    persistent = np.repeat(rng.random((1, 40, 40)) < 0.2, 6, axis=0)
    assert temporal_agreement(persistent) == pytest.approx(1.0)
    noise = rng.random((6, 40, 40)) < 0.2
    assert abs(temporal_agreement(noise)) < 0.05
    assert temporal_agreement(np.zeros((4, 5, 5), dtype=bool)) == 0.0


def test_tuning_runs_on_the_worker_that_holds_a_clients_data():
    distributed = pytest.importorskip("distributed")
    cube, events = blob_cube(seed=6)
    field, truth = cube["tas"].load(), events.values
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        home = sorted(client.scheduler_info()["workers"])[1]
        [data] = client.scatter([field], workers=[home])
        tuned = client.submit(tune_region_params, data, truth, n_trials=6, seed=1, workers=[home],
                              allow_other_workers=False)
        remote = tuned.result()
        assert client.who_has([data])[data.key] == (home,)  # the data never left its worker
    local = tune_region_params(field, truth, n_trials=6, seed=1)
    assert remote.params == local.params and remote.score == pytest.approx(local.score)
