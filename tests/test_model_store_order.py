"""A model saves to the same arrays in the same order however its fit was chunked (tiles stored by name)."""

import json
import warnings

import numpy as np

import geoanom as ga
from geoanom.model.store import model_to_tree, pack
from geoanom.testing import synthetic_cube


def test_fit_chunking_does_not_change_the_saved_model():
    cube, _ = synthetic_cube(n_years=2, n_lat=8, n_lon=12, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        whole, chunked = (ga.fit(c, precision=2, detectors="kmeans") for c in (cube, cube.chunk(time=5, lat=3, lon=5)))
    assert list(whole.ensembles) != list(chunked.ensembles)  # the fit's order follows the chunks...
    (header_a, arrays_a), (header_b, arrays_b) = (pack(model_to_tree(m)) for m in (whole, chunked))
    assert json.dumps(header_a) == json.dumps(header_b)  # ...the file's does not
    assert list(arrays_a) == list(arrays_b)
    assert all(np.array_equal(arrays_a[name], arrays_b[name]) for name in arrays_a)
    assert list(model_to_tree(whole)["tiles"]) == sorted(whole.ensembles)
