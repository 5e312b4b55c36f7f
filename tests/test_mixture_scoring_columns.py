"""The column-blocked fitness kernel gives, bit for bit, what one row at a time gave (a plain-Python oracle)."""

import numpy as np
import pytest

from geoanom.detectors.mixture_scoring import COLUMN_BLOCK, _components


def _row_at_a_time(X, center, scale, chol, projected, means, log_constant, std, allowed, by_distance):
    """The kernel as it was: each row through every component, then its assigned component's distance."""
    n, d = X.shape
    k = len(means)
    terms, peaks, distances = np.empty((n, k)), np.empty(n), np.empty(n)
    for row in range(n):
        z = [(X[row, i] - center[i]) / scale[i] for i in range(d)]
        mahalanobis, top = [], 0
        for c in range(k):
            total = 0.0
            for j in range(d):
                value = -projected[c, j]
                for i in range(d):
                    value += z[i] * chol[c, i, j]
                total += value * value
            mahalanobis.append(total)
            terms[row, c] = log_constant[c] - 0.5 * total
            if terms[row, c] > terms[row, top]:
                top = c
        peaks[row] = terms[row, top]
        terms[row] -= peaks[row]
        best = top
        if by_distance:
            best = -1
            for c in range(k):
                if allowed[c] and (best < 0 or mahalanobis[c] < mahalanobis[best]):
                    best = c
        distance = 0.0
        for i in range(d):
            step = (z[i] - means[best, i]) / std[best, i]
            distance += step * step
        distances[row] = distance
    return terms, peaks, distances


@pytest.mark.parametrize("allowed", [None, [True, False, True, True], [False, False, False, False]])
@pytest.mark.parametrize("n_rows", [1, COLUMN_BLOCK + 37])
def test_same_bits_as_one_row_at_a_time(allowed, n_rows):
    rng = np.random.default_rng(5)
    k, d = 4, 3
    X = rng.normal(size=(n_rows, d)) * 3
    X[::7] = X[0]  # repeated rows and, below, two equal components: ties keep the first
    chol = np.array([np.linalg.cholesky(np.linalg.inv(np.cov(rng.normal(size=(50, d)).T))) for _ in range(k)])
    means = rng.normal(size=(k, d))
    chol[3], means[3] = chol[1], means[1]
    projected = np.einsum("kd,kde->ke", means, chol)
    log_constant = rng.normal(size=k)
    log_constant[3] = log_constant[1]
    std = rng.uniform(0.5, 2.0, size=(k, d))
    center, scale = rng.normal(size=d), rng.uniform(0.5, 2.0, size=d)
    mask = np.ones(k, dtype=np.bool_) if allowed is None else np.array(allowed)
    got = np.empty((n_rows, k)), np.empty(n_rows), np.empty(n_rows)
    _components(X, center, scale, chol, projected, means, log_constant, std, mask, allowed is not None, *got)
    expected = _row_at_a_time(X, center, scale, chol, projected, means, log_constant, std, mask, allowed is not None)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.view(np.uint64), b.view(np.uint64))
