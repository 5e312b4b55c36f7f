"""Adaptation (paper section 4.2.2): a lasting change becomes normal over time."""

import numpy as np
import pytest
import xarray as xr

from geoanom.detectors import DPMMDetector, GMMDetector, KMeansDetector
from geoanom.detectors.moments import add_rows

ADAPTIVE = [GMMDetector, KMeansDetector, DPMMDetector]


@pytest.fixture(scope="module")
def training():
    rng = np.random.default_rng(0)
    return np.c_[rng.normal(285.0, 5.0, 4000), rng.normal(0.6, 0.1, 4000)]  # temperature, humidity


@pytest.fixture(scope="module")
def heat_stream():
    """The paper's figure 10: 300,000 copies of one observation, temperature drawn in 330-360 K."""
    rng = np.random.default_rng(1)
    return np.c_[rng.uniform(330.0, 360.0, 300_000), np.full(300_000, 0.6)]


@pytest.mark.parametrize("family", ADAPTIVE)
def test_figure_10_a_lasting_change_becomes_normal(family, training, heat_stream):
    static = family(random_state=0).fit(training)
    assert static.predict(heat_stream).all()  # without adaptation: every copy is anomalous
    adaptive = family(random_state=0).fit(training)
    flags = adaptive.irregularity_adapting(heat_stream, adapt_every=100) > 1
    assert flags[:100].all()  # the first batch is judged by the trained model
    assert flags[-30_000:].mean() == 0  # by the end the change is the new normal
    assert adaptive.n_samples_ == static.n_samples_ + len(heat_stream)


def test_adaptation_is_switchable_and_leaves_a_static_model_untouched(training, heat_stream):
    detector = GMMDetector(random_state=0).fit(training)
    before = detector.to_dict()
    detector.irregularity(heat_stream[:1000])  # scoring alone never adapts
    after = detector.to_dict()
    for key, value in before["state"].items():
        np.testing.assert_array_equal(after["state"][key], value)


def test_batch_update_equals_one_observation_at_a_time():
    rng = np.random.default_rng(2)
    rows = rng.normal(size=(50, 3))
    count, mean, scatter = 10.0, np.zeros(3), np.eye(3) * 10.0
    batch = add_rows(count, mean, scatter, rows)
    for row in rows:
        count, mean, scatter = add_rows(count, mean, scatter, row[None])
    assert batch[0] == count
    np.testing.assert_allclose(batch[1], mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(batch[2], scatter, rtol=1e-10, atol=1e-11)
    # and it is the moment of the pooled data (10 unit-variance points at 0 plus the rows)
    everything_mean = rows.sum(axis=0) / 60
    np.testing.assert_allclose(batch[1], everything_mean, rtol=1e-12)


def test_model_adapts_in_time_order_only_when_asked(tmp_path):
    import geoanom as ga
    from geoanom.testing import synthetic_cube

    cube, _ = synthetic_cube(n_years=8, anomaly_rate=0.0)
    half = cube.sizes["time"] // 2
    warm = cube.isel(time=slice(half, None)).copy()
    warm["tas"] = warm["tas"] + 8.0  # a lasting change: every later year 8 K warmer
    model = ga.fit(cube.isel(time=slice(None, half)), precision=2, detectors="gmm,kmeans,dpmm")
    model.save(tmp_path / "before.npz")

    static = model.score(warm).compute()
    assert float(static["ensemble"].mean()) > 0.9
    untouched = ga.load_model(tmp_path / "before.npz")
    for tile, ensemble in model.ensembles.items():  # adapt=False left the model as it was
        np.testing.assert_array_equal(ensemble.detectors_["gmm"].means_, untouched.ensembles[tile].detectors_["gmm"].means_)

    adapted, adapted_model = model.adapt(warm, adapt_every=50)
    flagged_per_year = adapted["ensemble"].groupby("time.year").mean(...)
    assert float(adapted["ensemble"].isel(time=0).mean()) > 0.9  # the change is anomalous when it comes
    assert float(flagged_per_year.isel(year=0)) > 0.2
    assert float(flagged_per_year.isel(year=-1)) < 0.05  # the warmer climate became normal
    assert adapted["irregularity"].dtype == np.float32
    # the anomalies are the climatology's, adapting or not
    xr.testing.assert_identical(adapted["tas_anomaly"], static["tas_anomaly"])
    changed = adapted_model.ensembles[model.tiles[0]].detectors_["gmm"].means_
    assert not np.array_equal(changed, untouched.ensembles[model.tiles[0]].detectors_["gmm"].means_)


def test_isolation_forest_refreshes_its_trees_from_a_reservoir():
    from geoanom.detectors import IForestDetector

    rng = np.random.default_rng(3)
    train = rng.normal(size=(4000, 2))
    shifted = rng.normal(size=(60_000, 2)) + [8.0, 8.0]  # a lasting move in both features
    static = IForestDetector(random_state=0).fit(train)
    assert static.predict(shifted[:2000]).mean() > 0.99
    adaptive = IForestDetector(random_state=0).fit(train)
    roots_before = adaptive.tree_root_.copy()
    flags = adaptive.irregularity_adapting(shifted, adapt_every=100) > 1
    assert flags[:100].all()
    assert flags[-10_000:].mean() < 0.01
    assert len(adaptive.tree_root_) == len(roots_before)  # as many trees, regrown
    assert adaptive.reservoir_.shape == (256, 2) and adaptive.reservoir_seen_ == 4000 + len(shifted)
    assert adaptive.reservoir_[:, 0].mean() > 6  # the reservoir now holds mostly the new climate
    rebuilt = IForestDetector.from_dict(adaptive.to_dict())
    np.testing.assert_array_equal(rebuilt.native_score(shifted[:500]), adaptive.native_score(shifted[:500]))


def test_adapting_does_not_depend_on_the_time_chunks():
    # batches of adapt_every rows counted from the first step, not from each chunk's: a trial's 18 months scored
    # in one chunk or in chunks of 9, 3 and 1 changed 316-661 of 5,015 flags, and the adapted models
    import geoanom as ga
    from geoanom.testing import synthetic_cube

    cube, _ = synthetic_cube(n_years=4, anomaly_rate=0.0)
    half = cube.sizes["time"] // 2
    warm = cube.isel(time=slice(half, None)).copy()
    warm["tas"] = warm["tas"] + 3.0
    model = ga.fit(cube.isel(time=slice(None, half)), precision=2, detectors="gmm,kmeans")
    whole, whole_model = model.adapt(warm.chunk({"time": -1}), adapt_every=7)
    for steps in (5, 1):
        chunked, chunked_model = model.adapt(warm.chunk({"time": steps}), adapt_every=7)
        xr.testing.assert_identical(chunked["irregularity"], whole["irregularity"])
        for tile, ensemble in whole_model.ensembles.items():
            np.testing.assert_array_equal(chunked_model.ensembles[tile].detectors_["gmm"].means_,
                                          ensemble.detectors_["gmm"].means_)
