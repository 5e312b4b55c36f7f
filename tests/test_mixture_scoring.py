"""The mixtures' fitness scores do not depend on how the rows are cut into calls or blocks."""

import numpy as np
import pytest

from geoanom.detectors import mixture_scoring
from geoanom.detectors.mixture_scoring import fitness_scores


@pytest.fixture(scope="module")
def mixture():
    rng = np.random.default_rng(11)
    d, k = 2, 6
    factors = rng.normal(size=(k, d, d))
    covariances = factors @ np.swapaxes(factors, 1, 2) + 0.3 * np.eye(d)
    precision_chol = np.stack([np.linalg.inv(np.linalg.cholesky(c)).T for c in covariances])
    weights = rng.dirichlet(np.ones(k))
    log_det = np.log(np.einsum("kii->ki", precision_chol)).sum(axis=1)
    return {"center": np.array([0.5, -1.0]), "scale": np.array([1.5, 0.7]), "precision_chol": precision_chol,
            "means": rng.normal(size=(k, d)) * 2, "log_constant": np.log(weights) + log_det - np.log(2 * np.pi),
            "component_std": np.sqrt(np.einsum("kii->ki", covariances)), "model_llk": -3.1}


@pytest.mark.parametrize("allowed", [None, np.array([True, True, False, True, False, True])])
def test_scores_are_the_same_bits_whatever_the_cut(mixture, allowed):
    """Rows scored in one call, in calls of any size and in blocks of any size give the same bits.

    numpy's exp and log (which the scores go through) must give a value the
    same bits wherever it sits in an array: in a vector lane or in the tail.
    """
    X = np.random.default_rng(2).normal(size=(3001, 2)) * 3
    whole = fitness_scores(X, allowed=allowed, **mixture)
    for size in (1, 7, 16, 17, 250, 1000):
        parts = [fitness_scores(X[i : i + size], allowed=allowed, **mixture) for i in range(0, len(X), size)]
        assert np.array_equal(np.concatenate(parts), whole), size
    for rows in (5, 64, 333):
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(mixture_scoring, "FITNESS_BLOCK", rows)
            assert np.array_equal(fitness_scores(X, allowed=allowed, **mixture), whole), rows


def test_scores_of_an_empty_sample(mixture):
    assert fitness_scores(np.empty((0, 2)), allowed=None, **mixture).shape == (0,)
