"""The vector walk (AVX-512) gives the scalar walk's scores bit for bit."""

import numpy as np
import pytest
from test_isolation_walk import _forest, compact_walk

from geoanom.detectors import IForestDetector, isolation_walk
from geoanom.detectors.isolation_walk import GROUP, SIMD_BLOCK, WALK_BLOCK, forest_depth


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(22)


@pytest.mark.skipif(not isolation_walk.simd_available(), reason="the vector walk needs AVX-512")
@pytest.mark.parametrize("n_features", [1, 2, 3, 4, 5])
def test_vector_walk_gives_the_scalar_walks_bits(rng, n_features, monkeypatch):
    # depths 0 to 8 (every case of the vector walk), rows not a multiple of 4 vectors, NaN and ties;
    # 5 features and 9-level trees take the scalar walk
    forests = [_forest(rng, n_features, max_samples=size, n_estimators=12) for size in (2, 7, 40, 256, 512)]
    forests.append(IForestDetector(n_estimators=3, random_state=0).fit(np.ones((40, n_features))))
    for detector in forests:
        state = detector.to_dict()["state"]
        for n_rows in (1, 15, 16, 17, 64 + 33, WALK_BLOCK + 3 * GROUP + 7, SIMD_BLOCK + 70):
            X = rng.normal(scale=2.0, size=(n_rows, n_features))
            X[0, 0] = np.nan
            X[-1, -1] = state["node_threshold_"][0]
            vector = forest_depth(X, state)
            monkeypatch.setattr(isolation_walk, "USE_SIMD", False)
            scalar = forest_depth(X, state)
            monkeypatch.setattr(isolation_walk, "USE_SIMD", True)
            np.testing.assert_array_equal(vector.view(np.uint64), scalar.view(np.uint64))
            if n_rows < 200:
                X[0, 0] = 0.0
                np.testing.assert_array_equal(forest_depth(X, state), compact_walk(state, X))


def test_vector_walk_is_off_when_numba_compiles_for_another_processor_or_not_at_all(monkeypatch):
    monkeypatch.setattr(isolation_walk.numba.config, "CPU_NAME", "generic")
    monkeypatch.setattr(isolation_walk.numba.config, "CPU_FEATURES", "")
    assert not isolation_walk.simd_available()
    monkeypatch.setattr(isolation_walk.numba.config, "CPU_FEATURES", "+avx2,+avx512f")
    assert isolation_walk.simd_available()
    monkeypatch.setattr(isolation_walk.numba.config, "DISABLE_JIT", True)
    assert not isolation_walk.simd_available()
