"""Gaussian mixtures for many small samples at once: batched EM with BIC selection.

A model of a cube holds hundreds or thousands of tiles, each a few thousand
observations in a handful of dimensions. Fitted one by one with
scikit-learn's ``GaussianMixture``, the cost is per-call overhead (checks,
k-means initialisation, Python loops), not arithmetic; scikit-learn has no
batched form. Here every array carries a leading tile axis, so one EM loop in
numpy fits all the tiles of a batch together. The algorithm is scikit-learn's
(full covariances, ``reg_covar`` on the diagonal, stopping when the mean
log-likelihood gains less than ``tol``), initialised from a split of each
sample along its first principal axis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class MixtureFit:
    """One fitted mixture: parameters, mean log-likelihood and BIC."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    mean_llk: float
    bic: float


def fit_mixtures(
    samples: Sequence[np.ndarray],
    n_components: Sequence[int] = (1, 2, 3),
    *,
    reg_covar: float = 1e-4,
    max_iter: int = 200,
    tol: float = 1e-3,
) -> list[MixtureFit]:
    """Fit a Gaussian mixture to each sample, choosing its size by BIC.

    Parameters
    ----------
    samples : sequence of ndarray (n_i, n_features)
        One sample per problem; the sizes may differ, the feature count not.
    n_components : sequence of int
        Candidate numbers of components.
    reg_covar, max_iter, tol : float, int, float
        As in scikit-learn's ``GaussianMixture``.

    Returns
    -------
    list of MixtureFit
        The lowest-BIC mixture of every sample.
    """
    X, mask = _pad(samples)
    counts = mask.sum(axis=1)
    best: list[MixtureFit | None] = [None] * len(samples)
    for k in sorted(set(n_components)):
        usable = counts >= 2 * k
        if not usable.any():
            continue
        weights, means, covs, mean_llk = _em(X[usable], mask[usable], k, reg_covar, max_iter, tol)
        n_features = X.shape[2]
        n_parameters = k * n_features * (n_features + 3) / 2 + k - 1
        bic = -2 * mean_llk * counts[usable] + n_parameters * np.log(counts[usable])
        for i, index in enumerate(np.flatnonzero(usable)):
            if best[index] is None or bic[i] < best[index].bic:
                best[index] = MixtureFit(weights[i], means[i], covs[i], float(mean_llk[i]), float(bic[i]))
    if any(fit is None for fit in best):
        raise ValueError("every sample needs at least two observations per mixture component")
    return best  # type: ignore[return-value]


def _pad(samples: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stack samples into (n_samples, max_n, n_features) with a validity mask."""
    longest = max(len(sample) for sample in samples)
    n_features = samples[0].shape[1]
    X = np.zeros((len(samples), longest, n_features))
    mask = np.zeros((len(samples), longest))
    for i, sample in enumerate(samples):
        X[i, : len(sample)] = sample
        mask[i, : len(sample)] = 1.0
    return X, mask


def _em(X, mask, k, reg_covar, max_iter, tol):
    """Batched EM; returns weights (T, k), means (T, k, d), covariances (T, k, d, d), mean llk (T,).

    Each sample stops on its own convergence, exactly as it would alone, so a
    tile's mixture does not depend on which tiles share its batch.
    Responsibilities are laid out (T, k, n) so reductions run over the long
    observation axis.
    """
    counts = mask.sum(axis=1)
    Xt = np.ascontiguousarray(np.swapaxes(X, 1, 2))[:, None]  # (T, 1, d, n)
    weights, means, covs = _m_step(Xt, _initial_responsibilities(X, mask, k), counts, reg_covar)
    previous = np.full(len(X), -np.inf)
    active = np.arange(len(X))
    for _ in range(max_iter):
        resp, mean_llk = _e_step(Xt[active], mask[active], weights[active], means[active], covs[active])
        converged = np.abs(mean_llk - previous[active]) < tol
        previous[active] = mean_llk
        active, resp = active[~converged], resp[~converged]
        if not active.size:
            break
        weights[active], means[active], covs[active] = _m_step(Xt[active], resp, counts[active], reg_covar)
    _, mean_llk = _e_step(Xt, mask, weights, means, covs)
    return weights, means, covs, mean_llk


def _initial_responsibilities(X, mask, k):
    """Hard split of each sample into k equal parts along its first principal axis; (T, k, n)."""
    counts = mask.sum(axis=1)
    centred = (X - (X * mask[..., None]).sum(axis=1, keepdims=True) / counts[:, None, None]) * mask[..., None]
    scatter = np.swapaxes(centred, 1, 2) @ centred
    axis = np.linalg.eigh(scatter)[1][:, :, -1]
    projection = np.einsum("tnd,td->tn", centred, axis)
    projection[mask == 0] = np.inf  # padding sorts last
    order = np.argsort(projection, axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(X.shape[1])[None, :], axis=1)
    group = np.minimum((rank * k) // np.maximum(counts[:, None], 1).astype(int), k - 1)
    return (group[:, None, :] == np.arange(k)[None, :, None]) * mask[:, None, :]


def _m_step(Xt, resp, counts, reg_covar):
    """Weights (T, k), means (T, k, d), covariances (T, k, d, d) from responsibilities (T, k, n)."""
    totals = resp.sum(axis=2) + 10 * np.finfo(float).eps
    weights = totals / counts[:, None]
    weighted = Xt * resp[:, :, None, :]  # (T, k, d, n)
    means = weighted.sum(axis=3) / totals[..., None]
    second = weighted @ np.swapaxes(Xt, 2, 3) / totals[..., None, None]
    covs = second - means[..., :, None] * means[..., None, :]
    covs += reg_covar * np.eye(Xt.shape[2])
    return weights, means, covs


def _e_step(Xt, mask, weights, means, covs):
    """Responsibilities (T, k, n) and the mean log-likelihood of each sample."""
    chol = np.linalg.cholesky(covs)
    inverse = np.linalg.inv(chol)  # whitening: |inverse @ (x - mean)|^2 is the Mahalanobis distance
    projected = inverse @ Xt - (inverse @ means[..., None])  # (T, k, d, n)
    log_det = np.log(np.diagonal(chol, axis1=2, axis2=3)).sum(axis=2)
    n_features = Xt.shape[2]
    constant = np.log(weights) - log_det - 0.5 * n_features * np.log(2 * np.pi)
    log_prob = constant[..., None] - 0.5 * np.square(projected).sum(axis=2)  # (T, k, n)
    peak = log_prob.max(axis=1, keepdims=True)
    joint = np.exp(log_prob - peak)
    total = joint.sum(axis=1, keepdims=True)
    llk = (peak + np.log(total))[:, 0]
    mean_llk = (llk * mask).sum(axis=1) / mask.sum(axis=1)
    return joint / total * mask[:, None, :], mean_llk
