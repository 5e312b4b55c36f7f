"""The background feature: the mean anomaly of a ring of cells 3 to 7 cells away, exact across chunks."""

import dask.array as da
import numpy as np
import pytest

import geoanom as ga
from geoanom.features.neighbourhood import background_anomaly
from geoanom.features.vectors import check_feature_sets, feature_names
from geoanom.testing import synthetic_cube


def brute_force_ring(z: np.ndarray, wrap: bool) -> np.ndarray:
    """Each cell's ring mean by looping over the ring's cells (NaN skipped, 0 when none)."""
    out = np.zeros(z.shape)
    ny, nx = z.shape[-2:]
    for i in range(ny):
        for j in range(nx):
            cells = [(a, b % nx if wrap else b) for a in range(i - 7, i + 8) for b in range(j - 7, j + 8)
                     if max(abs(a - i), abs(b - j)) > 2 and 0 <= a < ny and (wrap or 0 <= b < nx)]
            values = np.stack([z[..., a, b] for a, b in cells], axis=-1)
            counts = np.isfinite(values).sum(axis=-1)
            out[..., i, j] = np.where(counts > 0, np.nansum(values, axis=-1) / np.maximum(counts, 1), 0.0)
    return out


@pytest.mark.parametrize("chunks, wrap", [((1, 1, 8, 9), False), ((1, 2, 30, 40), False), ((1, 1, 7, 11), True)])
def test_ring_mean_is_exact_across_chunks_and_the_antimeridian(chunks, wrap):
    rng = np.random.default_rng(0)
    z = rng.normal(size=(1, 2, 30, 40))
    z[0, 1, 3:9, 4:20] = np.nan  # land
    z[0, 0, :, 35:] = np.nan
    ring = background_anomaly(da.from_array(z, chunks=chunks), wrap).compute()
    np.testing.assert_allclose(ring, brute_force_ring(z, wrap), rtol=1e-10, atol=1e-12)


def test_background_is_a_feature_set_after_the_neighbours():
    assert check_feature_sets(["background", "anomalies", "neighbours"]) == ("anomalies", "neighbours", "background")
    assert feature_names(["sst"], ("anomalies", "neighbours", "background")) == [
        "sst_anomaly", "sst_neighbours", "sst_background"]


def test_a_model_scores_the_background_it_was_fitted_with():
    cube, _ = synthetic_cube(n_years=3, n_lat=12, n_lon=16, seed=1, frequency="month")
    model = ga.fit(cube, detectors="gmm,event")
    rows = model.features(cube, tile=sorted(model.ensembles)[0], time=slice(None, "2000-01"))
    ring = brute_force_ring(model.anomalies(cube).isel(time=slice(0, 1)).values[0], wrap=False)[0]
    lat, lon = cube["lat"].values, cube["lon"].values
    expected = [ring[np.argmin(np.abs(lat - a)), np.argmin(np.abs(lon - b))] for a, b in zip(rows["lat"], rows["lon"])]
    np.testing.assert_allclose(rows["tas_background"], expected, rtol=1e-6, atol=1e-9)
    assert np.abs(expected).max() > 0  # a real ring, not the zero of an empty one


def test_the_event_family_reads_the_background_by_default_and_the_others_do_not():
    cube, _ = synthetic_cube(n_years=3, n_lat=10, n_lon=12, seed=2, frequency="month")
    event = ga.fit(cube, detectors="event")
    mixed = ga.fit(cube, detectors="gmm,kmeans,event")
    plain = ga.fit(cube, detectors="gmm,kmeans")
    assert event.attrs["features"] == mixed.attrs["features"] == ["anomalies", "neighbours", "background"]
    assert plain.attrs["features"] == ["anomalies", "neighbours"]
    ensemble = next(iter(mixed.ensembles.values()))
    assert ensemble.detectors_["event"].background and ensemble.detectors_["event"].n_features_in_ == 3
    assert ensemble.detectors_["gmm"].n_features_in_ == ensemble.detectors_["kmeans"].n_features_in_ == 2
    # the plain families of the mixed model are the plain model's: the ring does not reach them
    tile = next(iter(plain.ensembles))
    mixed_gmm = next(e for t, e in mixed.ensembles.items() if t == tile).detectors_["gmm"]
    np.testing.assert_allclose(mixed_gmm.means_, plain.ensembles[tile].detectors_["gmm"].means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mixed.score(cube)["irregularity"].sel(detector="gmm").values,
                               plain.score(cube)["irregularity"].sel(detector="gmm").values, rtol=1e-6)


def test_a_mixed_model_round_trips_through_its_file(tmp_path):
    cube, _ = synthetic_cube(n_years=3, n_lat=10, n_lon=12, seed=4, frequency="month")
    model = ga.fit(cube, detectors="gmm,iforest,event")
    model.save(tmp_path / "model.npz")
    loaded = ga.load_model(tmp_path / "model.npz")
    ensemble = next(iter(loaded.ensembles.values()))
    assert ensemble.family_columns("gmm").tolist() == [0, 1] and ensemble.family_columns("event") is None
    np.testing.assert_array_equal(loaded.score(cube)["fused_irregularity"].values,
                                  model.score(cube)["fused_irregularity"].values)


def test_detect_with_the_event_family_fits_its_background(cube_file, tmp_path):
    from geoanom.cli import main

    saved = tmp_path / "model.npz"
    status = main(["detect", str(cube_file), "--var", "tas", "--train-end", "2005", "--out", str(tmp_path / "a.zarr"),
                   "--detectors", "event", "--model-out", str(saved)])
    assert status == 0
    assert ga.load_model(saved).attrs["features"] == ["anomalies", "neighbours", "background"]


@pytest.mark.parametrize("columns, fragment", [([0, 1, 2], "has 2 features, but the ensemble gives it 3"),
                                               ([0, 7], "gives it 2 of 3")])
def test_a_model_file_whose_columns_disagree_is_refused(tmp_path, columns, fragment):
    import json

    from geoanom.errors import GeoanomError
    from geoanom.model.store import JSON_KEY

    cube, _ = synthetic_cube(n_years=3, n_lat=10, n_lon=12, seed=4, frequency="month")
    path = tmp_path / "model.npz"
    ga.fit(cube, detectors="gmm,event").save(path)
    with np.load(path) as store:
        arrays = {name: store[name] for name in store.files}
    header = json.loads(arrays.pop(JSON_KEY).tobytes().decode())
    next(iter(header["tree"]["tiles"].values()))["ensemble"]["columns"]["gmm"] = columns
    arrays[JSON_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(path, **arrays)
    with pytest.raises(GeoanomError) as caught:
        ga.load_model(path)
    assert str(path) in str(caught.value) and fragment in str(caught.value)


def test_the_ring_gives_the_other_families_no_halo_around_an_event():
    from scipy import ndimage

    clean, _ = synthetic_cube(n_years=5, n_lat=16, n_lon=24, anomaly_rate=0.0, seed=6, frequency="month")
    cube, truth = ga.testing.inject_events(clean, "tas", "warm_blob", start=36, seed=6)
    model = ga.fit(cube.isel(time=slice(0, 36)), detectors="gmm,kmeans,event")
    flags = model.score(cube.isel(time=slice(36, None)))["anomalous"].transpose("detector", "time", "lat", "lon")
    events = truth.isel(time=slice(36, None)).transpose("time", "lat", "lon").values
    near = ndimage.binary_dilation(events, structure=np.ones((1, 15, 15))) & ~events  # normal cells the ring reaches
    assert near.sum() > 500
    for family in ("gmm", "kmeans", "event"):
        assert float(flags.sel(detector=family).values[near].mean()) < 0.04, family
    assert float(flags.sel(detector="event").values[events].mean()) > 0.3  # and the events themselves are found


def test_a_background_no_family_reads_is_left_out_with_a_warning():
    from geoanom.errors import GeoanomWarning

    cube, _ = synthetic_cube(n_years=3, n_lat=8, n_lon=10, seed=5, frequency="month")
    with pytest.warns(GeoanomWarning, match="background feature set is read only by the event family"):
        model = ga.fit(cube, detectors="gmm", features=("anomalies", "neighbours", "background"))
    assert model.attrs["features"] == ["anomalies", "neighbours"]
    assert next(iter(model.ensembles.values())).detectors_["gmm"].n_features_in_ == 2


@pytest.mark.parametrize("features", [("background",), ("neighbours",), ("neighbours", "background")])
@pytest.mark.parametrize("detectors", ["gmm", "event"])
def test_features_without_the_cell_itself_are_refused(features, detectors):
    # background alone made gmm judge each cell by its ring only ('surface_temperature_background')
    from geoanom.errors import GeoanomError

    cube, _ = synthetic_cube(n_years=2, n_lat=8, n_lon=10, seed=5, frequency="month")
    with pytest.raises(GeoanomError, match="not the cell itself.*add 'anomalies'"):
        ga.fit(cube, detectors=detectors, features=features)
