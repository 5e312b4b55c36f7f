"""Malformed model files are refused in one sentence (ModelFileError), never loaded half-right, never pickled.

Each case damages a real saved model: a tiny model fitted on `synthetic_cube`,
saved as .npz and as .zarr, then edited, cut short or overwritten.
"""

import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest

import geoanom as ga
from geoanom.errors import ModelFileError
from geoanom.federated import FederatedResult
from geoanom.federated.mlp import LayerShapes, init_parameters
from geoanom.model.store import JSON_KEY
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """One fitted model, saved both ways; tests copy the files before damaging them."""
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=8)
    model = ga.fit(cube.sel(time=slice(None, "2001")), precision=1, detectors="gmm,iforest")
    folder = tmp_path_factory.mktemp("models")
    model.save(folder / "model.npz")
    model.save(folder / "model.zarr")
    return folder


@pytest.fixture
def npz(saved, tmp_path):
    return shutil.copy(saved / "model.npz", tmp_path / "model.npz")


@pytest.fixture
def zarr_store(saved, tmp_path):
    return shutil.copytree(saved / "model.zarr", tmp_path / "model.zarr")


def refused(path, *fragments):
    """Loading raises one ModelFileError sentence naming the file, with each fragment and no pickle advice."""
    with pytest.raises(ModelFileError) as caught:
        ga.load_model(path)
    message = str(caught.value)
    assert str(path) in message and message.endswith(".") and "\n" not in message
    assert "pickle" not in message.lower()
    for fragment in fragments:
        assert fragment in message
    return message


def edit_header(path, change, keep_digests=True):
    """Rewrite the JSON part of an .npz model after `change(header)`, the arrays untouched."""
    with np.load(path) as store:
        arrays = {name: store[name] for name in store.files}
    header = json.loads(arrays.pop(JSON_KEY).tobytes().decode())
    change(header)
    if not keep_digests:
        header.pop("digests", None)
    text = json.dumps(header).encode()
    np.savez_compressed(path, **arrays, **{JSON_KEY: np.frombuffer(text, dtype=np.uint8)})


def first_detector(header, family):
    tile = next(iter(header["tree"]["tiles"].values()))
    return tile["ensemble"]["detectors"][family]["state"]


def test_saved_models_load(saved):
    for name in ("model.npz", "model.zarr"):
        assert sorted(ga.load_model(saved / name).ensembles)


def test_random_bytes_are_not_a_model_and_no_pickle_is_suggested(tmp_path):
    path = tmp_path / "model.npz"
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    refused(path, "not an .npz archive")


def test_an_object_array_is_refused_without_reading_it(npz):
    with np.load(npz) as store:
        arrays = {name: store[name] for name in store.files}
    np.savez(npz, **arrays, evil=np.array([{"a": 1}], dtype=object))  # a pickle inside the archive
    refused(npz, "Python objects")


@pytest.mark.parametrize("keep", [0.5, 0.95])
def test_truncated_npz(npz, keep):
    data = npz.read_bytes()
    npz.write_bytes(data[: int(len(data) * keep)])
    refused(npz, "truncated or corrupt")


@pytest.mark.parametrize("edit, fragment", [
    (lambda h: h["tree"].pop("grid"), "missing entry 'grid'"),                      # KeyError before
    (lambda h: h["tree"].update(tiles=["9"]), "malformed"),                         # AttributeError/TypeError
    (lambda h: h["tree"]["grid"].update(tile_names=[]), "out of bounds"),           # IndexError before
    (lambda h: h["tree"]["grid"].update(dims=["lat"]), "malformed"),
    (lambda h: h["tree"]["variables"].clear() or h["tree"].update(variables=7), "malformed"),
    (lambda h: h.update(arrays={"x": "a0"}), "malformed"),
])
def test_edited_json_is_one_sentence(npz, edit, fragment):
    edit_header(npz, edit)
    refused(npz, fragment)


def test_nan_threshold_is_refused_at_load(npz):
    """Before, it loaded and then scored every cell NaN without a word."""
    edit_header(npz, lambda h: first_detector(h, "gmm").update(threshold_=float("nan")))
    refused(npz, "detector gmm", "threshold")


def test_infinite_threshold_is_refused(npz):
    edit_header(npz, lambda h: first_detector(h, "iforest").update(threshold_=math.inf))
    refused(npz, "detector iforest", "threshold")


def test_changed_array_bytes_fail_the_checksum(npz):
    with np.load(npz) as store:
        arrays = {name: store[name].copy() for name in store.files}
    name = max((n for n in arrays if n != JSON_KEY and arrays[n].dtype.kind == "f"), key=lambda n: arrays[n].size)
    arrays[name][0] = np.nan
    np.savez_compressed(npz, **arrays)
    refused(npz, name, "checksum")


def test_nan_in_detector_arrays_is_refused_without_digests(npz):
    """A file without digests (older, or re-digested by hand) is still checked for NaN means."""
    with np.load(npz) as store:
        arrays = {name: store[name].copy() for name in store.files}
    header = json.loads(arrays[JSON_KEY].tobytes().decode())
    reference = first_detector(header, "gmm")["means_"]
    arrays[header["arrays"][reference["__array__"]]][reference["offset"]] = np.nan
    header.pop("digests")
    arrays[JSON_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(npz, **arrays)
    refused(npz, "detector gmm", "means_ holds NaN")


def test_short_array_is_refused(npz):
    with np.load(npz) as store:
        arrays = {name: store[name] for name in store.files}
    header = json.loads(arrays[JSON_KEY].tobytes().decode())
    name = header["arrays"][first_detector(header, "gmm")["means_"]["__array__"]]
    arrays[name] = arrays[name][:1]
    header.pop("digests")
    arrays[JSON_KEY] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
    np.savez_compressed(npz, **arrays)
    refused(npz, name, "shorter than its entries say")


def test_zarr_model_with_a_missing_array(zarr_store):
    victim = sorted(p for p in os.listdir(zarr_store) if p.startswith("a"))[0]
    shutil.rmtree(zarr_store / victim)
    refused(zarr_store)


def test_zarr_model_with_a_lost_chunk_fails_the_checksum(zarr_store):
    """Zarr reads a missing chunk as its fill value; the digest notices."""
    chunks = [p for p in zarr_store.rglob("*") if p.is_file() and not p.name.startswith(".")
              and p.parent != zarr_store and p.name[0].isdigit()]
    assert chunks
    max(chunks, key=lambda p: p.stat().st_size).unlink()
    refused(zarr_store)


def test_zarr_store_without_a_description(zarr_store):
    (zarr_store / ".zmetadata").unlink()
    (zarr_store / ".zattrs").write_text("{}")
    refused(zarr_store, "no model description")


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_npz_is_written_with_the_users_umask(saved, tmp_path, umask):
    model = ga.load_model(saved / "model.npz")
    previous = os.umask(umask)
    try:
        model.save(tmp_path / "m.npz")
    finally:
        os.umask(previous)
    assert os.stat(tmp_path / "m.npz").st_mode & 0o777 == 0o666 & ~umask
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # no temporary left


# -- federated models ------------------------------------------------------------------
@pytest.fixture
def federated(tmp_path):
    shapes = LayerShapes((3, 4, 1))
    history = pd.DataFrame({"round": [1, 2], "loss": [0.5, 0.4], "state": ["running", "max_rounds"]})
    result = FederatedResult(init_parameters(shapes, 0), np.zeros(3), np.ones(3), shapes.sizes,
                             history.set_index("round"), {"audit_head": "ab" * 32})
    path = tmp_path / "fed.npz"
    result.save(path)
    return path


def fed_refused(path, *fragments):
    with pytest.raises(ModelFileError) as caught:
        FederatedResult.load(path)
    message = str(caught.value)
    assert str(path) in message and "pickle" not in message.lower() and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_federated_model_round_trip_and_head(federated):
    loaded = FederatedResult.load(federated)
    assert loaded.audit_head == "ab" * 32 and loaded.parameters.shape == (LayerShapes((3, 4, 1)).size,)
    assert os.stat(federated).st_mode & 0o777 == 0o666 & ~_umask()


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_federated_model_damage(federated, tmp_path):
    federated.write_bytes(np.random.default_rng(1).bytes(1000))
    fed_refused(federated, "not an .npz archive")


def test_federated_model_edited(federated):
    with np.load(federated) as store:
        arrays = {name: store[name] for name in store.files}
    meta = json.loads(arrays["meta"].tobytes().decode())
    meta["sizes"] = [3, 5, 1]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(federated, **arrays)
    fed_refused(federated, "parameters has shape")
    del meta["history"]
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(federated, **arrays)
    fed_refused(federated, "missing entry 'history'")


def test_federated_model_nan_parameters(federated):
    with np.load(federated) as store:
        arrays = {name: store[name].copy() for name in store.files}
    arrays["parameters"][3] = np.nan
    np.savez(federated, **arrays)
    fed_refused(federated, "parameters holds NaN")


def test_zarr_model_left_unfinished_by_a_killed_write_is_refused(zarr_store):
    import zarr

    group = zarr.open_group(zarr_store, mode="r+")
    group.attrs["geoanom_incomplete"] = "true"
    zarr.consolidate_metadata(zarr_store)
    refused(zarr_store, "unfinished output")


# -- arrays of a detector that disagree with each other (edited shapes and values) -----------

FAMILIES = "gmm,kmeans,dpmm,iforest"


@pytest.fixture(scope="module")
def all_families(tmp_path_factory):
    """A model of every detector family, saved, with the scores of the model that saved it."""
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=8, seed=3)
    model = ga.fit(cube.sel(time=slice(None, "2001")), precision=1, detectors=FAMILIES)
    path = tmp_path_factory.mktemp("families") / "model.npz"
    model.save(path)
    return path, cube, model.score(cube)


@pytest.fixture
def families_npz(all_families, tmp_path):
    return shutil.copy(all_families[0], tmp_path / "model.npz")


def edit_array(path, family, key, change):
    """Change the values of one detector array of the first tile in place, digests recomputed as an editor would."""
    from geoanom.model.store import _digest

    with np.load(path) as store:
        arrays = {name: store[name].copy() for name in store.files}
    header = json.loads(arrays.pop(JSON_KEY).tobytes().decode())
    reference = first_detector(header, family)[key]
    name = header["arrays"][reference["__array__"]]
    size = int(np.prod(reference["shape"]))
    part = arrays[name][reference["offset"]:reference["offset"] + size].reshape(reference["shape"])
    change(part)
    arrays[name][reference["offset"]:reference["offset"] + size] = part.ravel()
    header["digests"][name] = _digest(arrays[name])
    text = json.dumps(header).encode()
    np.savez_compressed(path, **arrays, **{JSON_KEY: np.frombuffer(text, dtype=np.uint8)})


def reshape(family, key, new_shape):
    """An edit of the JSON part: one array of the first tile's detector said to have another shape."""
    def change(header):
        reference = first_detector(header, family)[key]
        reference["shape"] = new_shape(reference["shape"])

    return change


def test_every_family_loads_and_scores_bit_identically(all_families):
    path, cube, expected = all_families
    loaded = ga.load_model(path)
    assert set(next(iter(loaded.ensembles.values())).detectors_) == set(FAMILIES.split(","))
    result = loaded.score(cube)
    for name in ("irregularity", "fused_irregularity", "ensemble"):
        np.testing.assert_array_equal(result[name].values, expected[name].values)


@pytest.mark.parametrize("family, key, new_shape, fragment", [
    # one weight too many: it read the next tile's weight and silently changed scores
    ("gmm", "weights_", lambda s: [s[0] + 1], "weights_ has shape"),
    # one covariance too many (the reviewer's [2, 2, 2]): a bare IndexError when scoring
    ("gmm", "covariances_", lambda s: [s[0] + 1, s[1], s[2]], "covariances_ has shape"),
    ("gmm", "means_", lambda s: [s[0], s[1] + 1], "means_ has shape"),
    ("gmm", "scale_", lambda s: [s[0] + 1], "scale_ has shape"),
    ("dpmm", "weights_", lambda s: [s[0] + 1], "weights_ has shape"),
    ("dpmm", "covariances_", lambda s: [s[0], s[1] + 1, s[2] + 1], "covariances_ has shape"),
    ("kmeans", "counts_", lambda s: [s[0] + 1], "counts_ has shape"),
    ("kmeans", "scatter_", lambda s: [s[0] + 1, s[1], s[2]], "scatter_ has shape"),
    ("kmeans", "means_", lambda s: [s[0], s[1] + 1], "means_ has shape"),
    ("iforest", "node_left_", lambda s: [s[0] - 1], "node_left_ has shape"),
    ("iforest", "tree_norm_", lambda s: [s[0] - 1], "tree_norm_ has shape"),
    ("iforest", "reservoir_", lambda s: [s[0], s[1] + 1], "reservoir_ has shape"),
])
def test_edited_shapes_are_refused_at_load(families_npz, family, key, new_shape, fragment):
    edit_header(families_npz, reshape(family, key, new_shape))
    refused(families_npz, f"{family} detector", fragment)


@pytest.mark.parametrize("family, key, change, fragment", [
    ("gmm", "weights_", lambda w: w.__imul__(2.0), "weights_ are not non-negative numbers summing to 1"),
    ("gmm", "covariances_", lambda c: c.__imul__(-1.0), "not positive definite"),
    ("dpmm", "covariances_", lambda c: c.__setitem__((0, 0, -1), c[0, 0, -1] + 1.0), "not symmetric"),
    ("kmeans", "counts_", lambda n: n.__setitem__(0, -5.0), "counts_ holds a negative"),
    ("iforest", "node_feature_", lambda f: f.__setitem__(0, 7), "node_feature_ holds feature 7"),
    ("iforest", "node_left_", lambda n: n.__setitem__(0, 10**6), "node_left_ of node 0 is 1000000, outside its tree"),
    ("iforest", "node_left_", lambda n: n.__setitem__(-1, 0), "outside its tree"),
    ("iforest", "tree_root_", lambda r: r.__setitem__(1, r[0]), "tree_root_ does not start trees at 0"),
])
def test_edited_values_that_disagree_are_refused_at_load(families_npz, family, key, change, fragment):
    edit_array(families_npz, family, key, change)
    refused(families_npz, f"{family} detector", fragment)


def test_detectors_of_one_tile_must_share_their_features(families_npz):
    """An isolation forest told it has one feature more (its reservoir dropped) no longer fits the others."""
    def change(header):
        state = first_detector(header, "iforest")
        state.pop("reservoir_")
        state["n_features_"] += 1

    edit_header(families_npz, change)
    refused(families_npz, "detectors disagree on the number of features", "iforest")
