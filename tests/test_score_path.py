"""The score path's savings change no score: shared read-only forests, thresholds loaded as stored."""

import numpy as np
import pytest

from geoanom.detectors import IForestDetector


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(14)


def test_forest_nodes_are_read_only_and_the_callers_arrays_stay_writable(rng):
    X = rng.normal(size=(500, 2))
    data = IForestDetector(n_estimators=10, random_state=3).fit(X).to_dict()
    state = {name: np.array(value) if isinstance(value, np.ndarray) else value
             for name, value in data["state"].items()}  # writable arrays, as a caller may hold
    detector = IForestDetector.from_dict({**data, "state": state})
    for name in ("node_feature_", "node_threshold_", "node_left_", "node_path_", "tree_root_"):
        assert not getattr(detector, name).flags.writeable, name
        assert state[name].flags.writeable, name  # a read-only view, not the caller's array made read-only
        with pytest.raises(ValueError, match="read-only"):
            getattr(detector, name)[0] = 0
    # updating regrows trees into new arrays: still read-only, and scores change as before
    before = detector.native_score(X)
    detector.update(rng.normal(4.0, 1.0, size=(600, 2)))
    assert not detector.node_left_.flags.writeable
    assert not np.array_equal(detector.native_score(X), before)


def test_float32_thresholds_load_unchanged_and_float64_ones_floored(rng):
    detector = IForestDetector(n_estimators=5, random_state=0).fit(rng.normal(size=(300, 2)))
    data = detector.to_dict()
    assert data["state"]["node_threshold_"].dtype == np.float32
    loaded = IForestDetector.from_dict(data)
    np.testing.assert_array_equal(loaded.node_threshold_, detector.node_threshold_)
    # an old file's float64 threshold becomes the largest float32 not above it
    thresholds = data["state"]["node_threshold_"].astype(np.float64)
    inner = data["state"]["node_left_"] != np.arange(len(thresholds))
    nudged = thresholds.copy()
    nudged[inner] = np.nextafter(thresholds[inner], np.inf)  # just above a float32: floors back to it
    below = thresholds.copy()
    below[inner] = np.nextafter(thresholds[inner], -np.inf)  # just below: floors to the float32 below
    for values, expected in ((nudged, detector.node_threshold_),
                             (below, np.nextafter(detector.node_threshold_, np.float32(-np.inf)))):
        old = IForestDetector.from_dict({**data, "state": {**data["state"], "node_threshold_": values}})
        assert old.node_threshold_.dtype == np.float32
        np.testing.assert_array_equal(old.node_threshold_[inner], expected[inner])


def _trimmed_mean_of_neighbours(block):
    """numpy's trimmed mean (the largest and smallest left out of 3 or more) of each cell's valid neighbours, those
    of the other sign than a cell beyond one spread read as 0, 0 where none has data; where none of the eight is
    valid, of the cells two away. Summed in the kernel's order (row by row): the reference."""
    pad = 2
    padded = np.pad(block, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=np.nan)
    rows, cols = block.shape[2:]

    def ring(distance):
        total, valid = np.zeros(block.shape), np.zeros(block.shape)
        largest, smallest = np.full(block.shape, -np.inf), np.full(block.shape, np.inf)
        for dy in range(-distance, distance + 1):
            for dx in range(-distance, distance + 1):
                if max(abs(dy), abs(dx)) != distance:
                    continue
                shifted = padded[:, :, pad + dy: pad + dy + rows, pad + dx: pad + dx + cols]
                finite = np.isfinite(shifted)
                with np.errstate(invalid="ignore"):
                    other_sign = (np.abs(block) > 1.0) & ~(shifted * block > 0)
                read = np.where(other_sign, 0.0, shifted)
                total += np.where(finite, read, 0.0)
                largest = np.where(finite, np.maximum(largest, read), largest)
                smallest = np.where(finite, np.minimum(smallest, read), smallest)
                valid += finite
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(valid >= 3, (total - largest - smallest) / (valid - 2), total / valid)
        return np.where(valid == 0, 0.0, mean), valid

    mean, valid = ring(1)
    return np.where(valid == 0, ring(2)[0], mean)


@pytest.mark.parametrize("wrap", [False, True])
def test_neighbour_means_equal_numpys_across_chunks_and_the_antimeridian(rng, wrap):
    import dask.array as da

    from geoanom.features.neighbourhood import neighbour_anomaly

    # magnitudes from 1e-30 to 1e30 (sums that round), NaN and inf holes, cells with 0 to 8 valid neighbours
    z = rng.normal(size=(2, 3, 9, 11)) * 10.0 ** rng.integers(-30, 30, size=(2, 3, 9, 11))
    z[rng.random(z.shape) < 0.3] = np.nan
    z[rng.random(z.shape) < 0.02] = np.inf
    z[0, 0, 2:7, 2:7] = np.nan
    z[0, 0, 4, 4] = 1.5
    new = neighbour_anomaly(da.from_array(z, chunks=(2, 2, 4, 5)), wrap=wrap).compute()
    padded = np.concatenate([z[..., -2:], z, z[..., :2]], axis=-1) if wrap else z
    expected = _trimmed_mean_of_neighbours(padded)
    expected = expected[..., 2:-2] if wrap else expected
    assert new.dtype == np.float64
    assert new[0, 0, 4, 4] == 0.0  # nothing within two cells
    np.testing.assert_array_equal(new.view(np.uint64), expected.view(np.uint64))


def test_a_neighbours_spike_is_trimmed_away_and_the_other_sign_read_as_0():
    import dask.array as da

    from geoanom.features.neighbourhood import neighbour_anomaly

    def centre(z):
        return float(neighbour_anomaly(da.from_array(z), wrap=False)[0, 0, 1, 1].compute())

    z = np.full((1, 1, 3, 3), 0.5)
    z[0, 0, 0, 0], z[0, 0, 2, 2] = 8.0, np.nan  # one spike and one hole among the centre's neighbours
    assert centre(z) == 0.5
    z[0, 0, 1, 1] = 2.0  # a cell beyond one spread: a neighbour of the other sign (another event) is no evidence
    z[0, 0, 0, 1] = -8.0
    assert centre(z) == 0.5  # 8 0 0.5 ... : -8 read as 0, then 8 and that 0 trimmed away
    z[0, 0, 0, 2] = z[0, 0, 1, 0] = -8.0
    assert centre(z) == pytest.approx(0.3)  # 8 0 0 0 0.5 0.5 0.5: 8 and a 0 trimmed, 1.5 / 5 left
    z[0, 0, 1, 1] = 0.5  # inside one spread the cell's sign may be noise: every neighbour is read
    assert centre(z) == pytest.approx((-8.0 * 2 + 0.5 * 3) / 5)



@pytest.fixture(scope="module")
def holed(fitted_model, opened_cube):
    """The test cube with a hole of NaN, in blocks that cut through tiles, and its computed result."""
    cube = opened_cube.copy()
    tas = cube["tas"].values.copy()
    tas[3:9, 1:6, 2:9] = np.nan
    cube["tas"] = cube["tas"].copy(data=tas)
    cube = cube.chunk({"time": 9, "lat": 7, "lon": 10})
    return cube, fitted_model.score(cube).compute()


def test_fused_scores_and_votes_equal_the_old_formulas_bit_for_bit(holed):
    import xarray as xr

    from geoanom.detectors.fusion import fuse

    result = holed[1]
    irr = result["irregularity"]
    old_fused = xr.apply_ufunc(fuse, irr, input_core_dims=[["detector"]], output_dtypes=[np.float32],
                               kwargs={"families": [str(name) for name in irr["detector"].values], "axis": -1})
    old_fused = old_fused.where(irr.notnull().all("detector")).astype(np.float32).values
    fused = result["fused_irregularity"].values
    assert fused.dtype == np.float32 and np.isnan(fused).any() and (fused > 1).any()
    np.testing.assert_array_equal(fused.view(np.uint32), old_fused.view(np.uint32))
    assert result["fused_irregularity"].dims == irr.dims[1:]
    votes = result["votes"]
    assert votes.dtype == np.int8
    np.testing.assert_array_equal(votes.values, (irr > 1.0).sum("detector").astype(np.int8).values)


@pytest.mark.parametrize("slab_bytes", [1, 100, 2**30])
def test_fusing_by_slabs_of_time_steps_gives_the_same_bits(rng, monkeypatch, slab_bytes):
    from geoanom.detectors.fusion import fuse
    from geoanom.model import result as result_module

    irr = rng.lognormal(0.0, 1.5, size=(4, 11, 3, 5)).astype(np.float32)
    irr[:, 2, 1] = np.nan
    irr[1, 7, 0, 4] = np.nan
    monkeypatch.setattr(result_module, "FUSE_SLAB_BYTES", slab_bytes)
    families = ("gmm", "kmeans", "dpmm", "event")
    fused = result_module.fused_block(irr, families)
    expected = np.asarray(fuse(irr, families, axis=0), dtype=np.float32)
    expected[np.isnan(irr).any(axis=0)] = np.nan
    assert fused.dtype == np.float32 and np.isnan(fused).sum() == 5 + 1
    np.testing.assert_array_equal(fused.view(np.uint32), expected.view(np.uint32))
    np.testing.assert_array_equal(result_module.fused_block(irr[:, 0, 0, 0], families), expected[0, 0, 0])  # no time


def test_scores_equal_each_tiles_ensemble_on_the_pipelines_feature_vectors(fitted_model, holed):
    from geoanom.features.pipeline import feature_cube, stack_variables
    from geoanom.features.regions import RegionParams

    cube, result = holed
    irr = result["irregularity"].values
    values = stack_variables(cube, fitted_model.variables)
    sets = tuple(fitted_model.attrs["features"])
    vectors = feature_cube(values, fitted_model.climatology, sets,
                           RegionParams(**(fitted_model.attrs.get("region_params") or {}))).compute()
    codes = fitted_model.tile_codes
    checked = 0
    for code, name in enumerate(fitted_model.tile_names):
        ensemble = fitted_model.ensembles.get(str(name))
        ys, xs = np.nonzero(codes == code)
        if ensemble is None or len(ys) == 0:
            continue
        rows = vectors[:, :, ys, xs].reshape(vectors.shape[0], -1).T  # time after time, the tile's cells
        valid = np.isfinite(rows).all(axis=1)
        expected = np.full((irr.shape[0], len(rows)), np.nan, dtype=np.float32)
        expected[:, valid] = ensemble.irregularity(rows[valid])
        got = irr[:, :, ys, xs].reshape(irr.shape[0], -1)
        np.testing.assert_array_equal(got.view(np.uint32), expected.view(np.uint32))
        checked += 1
    assert checked == len(fitted_model.ensembles)
    assert np.isnan(irr).any()


def test_scoring_in_parts_changes_no_score_and_keeps_the_cubes_chunks(fitted_model, opened_cube, monkeypatch):
    from geoanom.model import parts

    def score_tasks(result):
        graph = dict(result["irregularity"].data.__dask_graph__())
        return sum(str(key[0]).startswith("score_block") for key in graph if isinstance(key, tuple))

    cube = opened_cube.chunk({"time": 48, "lat": 16, "lon": 12})
    whole = fitted_model.score(cube, consensus="neighbours")
    monkeypatch.setattr(parts, "MIN_PART_OBSERVATIONS", 1)  # the one rule (parts.part_chunks) reads it at each call
    parted = fitted_model.score(cube, consensus="neighbours")
    assert score_tasks(parted) > 3 * 2 >= score_tasks(whole)
    for name in whole.data_vars:
        assert parted[name].chunks == whole[name].chunks, name
        a, b = whole[name].values, parted[name].values
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a.view(f"u{a.itemsize}"), b.view(f"u{b.itemsize}"), err_msg=name)
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


def test_each_time_block_is_scored_before_the_next_ones_features(fitted_model, opened_cube, tmp_path):
    """Writing a result, dask scores a time block before making the later blocks' features: not all held at once."""
    import dask
    from dask.callbacks import Callback

    from geoanom.io import write_dataset

    started: list[tuple[str, int]] = []

    class Started(Callback):
        def _pretask(self, key, dsk, state):
            name = str(key[0]).rsplit("-", 1)[0] if isinstance(key, tuple) else ""
            if name in ("block_features", "score_block"):  # keys (name, feature, time, y, x)
                started.append((name, key[2]))

    with Started(), dask.config.set(scheduler="synchronous"):
        write_dataset(fitted_model.score(opened_cube.chunk({"time": 24})), tmp_path / "scores.zarr")
    first_score = started.index(next(item for item in started if item[0] == "score_block"))
    assert sum(name == "block_features" for name, _ in started) == 6
    # before the first score, the features of one time block only (before: of all six)
    assert sum(name == "block_features" for name, _ in started[:first_score]) == 1, started
