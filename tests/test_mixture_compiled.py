"""The compiled EM against the batched numpy passes it replaced (a test oracle): the same mixtures to rounding."""

import numpy as np
import pytest
from reference_kernels import em_reference

from geoanom.detectors import mixture
from geoanom.detectors.mixture import fit_mixtures


def _tiles(n_tiles=8, seed=1):
    rng = np.random.default_rng(seed)
    tiles = []
    for i in range(n_tiles):
        n = 200 + 97 * i  # ragged sizes: the padding must not count
        one = rng.normal([0, 0, 0], 1.0, (int(n * 0.6), 3))
        two = rng.normal([4, 1, -2], 0.5, (n - len(one), 3))
        X = np.concatenate([one, two]) if i % 2 == 0 else rng.standard_t(3, size=(n, 3))
        tiles.append((X - X.mean(axis=0)) / X.std(axis=0))
    return tiles


@pytest.mark.parametrize("max_iter", [200, 3])  # 3: tiles stopped before converging renew their likelihood
def test_compiled_em_equals_the_numpy_passes(monkeypatch, max_iter):
    tiles = _tiles()
    compiled = fit_mixtures(tiles, (1, 2, 3), max_iter=max_iter)
    calls = []
    monkeypatch.setattr(mixture, "_em_compiled", lambda *args: calls.append(1) or em_reference(*args))
    reference = fit_mixtures(tiles, (1, 2, 3), max_iter=max_iter)
    assert len(calls) == 3  # the oracle ran in the kernel's place, once per candidate size
    assert [len(f.weights) for f in compiled] == [len(f.weights) for f in reference]
    for new, old in zip(compiled, reference):
        for name in ("weights", "means", "covariances"):
            np.testing.assert_allclose(getattr(new, name), getattr(old, name), rtol=1e-12, atol=1e-12)
        assert new.mean_llk == pytest.approx(old.mean_llk, rel=1e-12, abs=1e-12)
        assert new.bic == pytest.approx(old.bic, rel=1e-12)


def test_compiled_em_refuses_a_covariance_that_is_not_positive_definite():
    X = np.zeros((1, 4, 1))  # constant values, no regularisation: a zero variance
    initial = np.ones((1, 1, 4))
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        mixture._em_compiled(X, np.array([4]), initial, 0.0, 10, 1e-3)
