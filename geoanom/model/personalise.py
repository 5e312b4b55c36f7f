"""Tile models informed by all tiles: each tile's components shrunk towards its region's federated model.

After :mod:`geoanom.model.federated_regions` has refined the region models
(every tile inside a region contributes to it, by sufficient statistics only),
each tile's gmm and kmeans models are adapted with the smallest enclosing
region's model as a prior: maximum a posteriori adaptation of Gaussian
components (Reynolds, Quatieri and Dunn 2000, "Speaker verification using
adapted Gaussian mixture models"), but of the tile's *own* components. For a
component (or cluster) k of the tile, with n_k of the tile's rows, mean m_k
and second moment M_k, and the region component j nearest to it (most likely
to have produced m_k), with mean mu_j and second moment P_j in the tile's
units::

    alpha_k = n_k / (n_k + relevance)
    mean    = alpha_k m_k + (1 - alpha_k) mu_j
    moment  = alpha_k M_k + (1 - alpha_k) P_j

A tile with many observations keeps its own model (alpha near 1); a tile
with few borrows the shape of its region's data (its own and its
neighbours': the prior is not leave-one-out). The tile keeps its components and
weights: it is not given the region's other components, which would make
an observation normal in one tile because it is normal somewhere else in
the region. Thresholds and the GMM's reference likelihood are then renewed
on the tile's own sample, by the family's usual rule. Other families
(dpmm, iforest) stay local. Nothing here is by hand for want of a library:
scikit-learn has no MAP adaptation of a fitted mixture.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from ..detectors import Ensemble

FAMILIES = ("gmm", "kmeans")
DEFAULT_RELEVANCE = 16.0  # Reynolds et al.'s relevance factor


def personalise_tiles(ensembles: dict[str, Ensemble], pyramid: dict[str, Ensemble],
                      sketch_batches: list[tuple[Any, dict[int, str]]], relevance: float = DEFAULT_RELEVANCE,
                      scheduler: Any = None) -> dict[str, Ensemble]:
    """New tile ensembles whose gmm and kmeans are adapted towards their region's model.

    Parameters
    ----------
    ensembles : dict of str to Ensemble
        The tiles' own fitted models; not modified.
    pyramid : dict of prefix to Ensemble
        The region models, after :func:`~geoanom.model.federated_regions.refine_regions`.
    sketch_batches : list of (delayed sketches by tile code, {tile code: tile name})
        Each batch's tile sketches: a tile's sample renews its thresholds.
    relevance : float, default 16
        Prior weight in rows; 0 keeps every tile's own model.
    scheduler : optional
        Where to compute; each batch is one task where its sketches are.

    Returns
    -------
    dict of str to Ensemble
    """
    if relevance == 0:
        return dict(ensembles)
    parts = []
    for sketches, tiles in sketch_batches:
        batch = {tile: ensembles[tile] for tile in tiles.values() if tile in ensembles}
        if batch:
            priors = {tile: _enclosing(tile, pyramid) for tile in batch}
            parts.append(dask.delayed(_personalise_batch, pure=True)(sketches, tiles, batch, priors, relevance))
    out: dict[str, Ensemble] = {}
    for batch in dask.compute(*parts, scheduler=scheduler):
        out.update(batch)
    return out


def _enclosing(tile: str, pyramid: dict[str, Ensemble]) -> Ensemble | None:
    """The smallest region model holding the tile, or None."""
    for length in range(len(tile) - 1, 0, -1):
        if tile[:length] in pyramid:
            return pyramid[tile[:length]]
    return None


def _personalise_batch(sketches: dict, tiles: dict[int, str], batch: dict[str, Ensemble],
                       priors: dict[str, Ensemble | None], relevance: float) -> dict[str, Ensemble]:
    code_of = {tile: code for code, tile in tiles.items()}
    out = {}
    for tile, ensemble in batch.items():
        adapted = Ensemble.from_dict(ensemble.to_dict())
        adapted.n_observations_ = ensemble.n_observations_  # set on every tile by fit
        prior, sketch = priors[tile], sketches.get(code_of[tile])
        if prior is not None and sketch is not None and relevance > 0:
            for family in FAMILIES:
                if family in adapted.detectors_ and family in prior.detectors_:
                    _ADAPT[family](adapted.detectors_[family], prior.detectors_[family], sketch.rows,
                                   sketch.count, relevance)
        out[tile] = adapted
    return out


def _in_units_of(tile, region, means: np.ndarray, covariances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Region component means and covariances expressed in the tile detector's standardised units."""
    ratio = region.scale_ / tile.scale_
    return (region.center_ + region.scale_ * means - tile.center_) / tile.scale_, covariances * np.outer(ratio, ratio)


def _nearest_prior(means: np.ndarray, prior_means: np.ndarray, prior_covariances: np.ndarray,
                   prior_weights: np.ndarray) -> np.ndarray:
    """For each tile component, the prior component most likely to have produced its mean."""
    offsets = means[:, None, :] - prior_means[None]  # (k, j, d)
    solved = np.linalg.solve(prior_covariances[None], offsets[..., None])[..., 0]
    _, log_det = np.linalg.slogdet(prior_covariances)
    log_density = np.log(prior_weights)[None] - 0.5 * (log_det[None] + np.einsum("kjd,kjd->kj", offsets, solved))
    return np.argmax(log_density, axis=1)


def _shrink(counts: np.ndarray, means: np.ndarray, covariances: np.ndarray, prior_means: np.ndarray,
            prior_covariances: np.ndarray, relevance: float) -> tuple[np.ndarray, np.ndarray]:
    """MAP-adapted means and covariances: the module docstring's formulas."""
    alpha = (counts / (counts + relevance))[:, None]
    moment = covariances + np.einsum("kd,ke->kde", means, means)
    prior_moment = prior_covariances + np.einsum("kd,ke->kde", prior_means, prior_means)
    adapted_means = alpha * means + (1 - alpha) * prior_means
    adapted_moment = alpha[..., None] * moment + (1 - alpha[..., None]) * prior_moment
    return adapted_means, adapted_moment - np.einsum("kd,ke->kde", adapted_means, adapted_means)


def _adapt_gmm(tile, region, rows: np.ndarray, n_observations: int, relevance: float) -> None:
    prior_means, prior_covariances = _in_units_of(tile, region, region.means_, region.covariances_)
    nearest = _nearest_prior(tile.means_, prior_means, prior_covariances, region.weights_)
    counts = tile.weights_ * n_observations
    means, covariances = _shrink(counts, tile.means_, tile.covariances_, prior_means[nearest],
                                 prior_covariances[nearest], relevance)
    # both covariances already hold the EM's reg_covar: so does their mixture
    tile._set_components(tile.weights_, means, covariances)
    llk, _ = tile._log_likelihood((rows - tile.center_) / tile.scale_)
    tile.model_llk_ = float(llk.mean())
    tile._set_threshold(tile.decision_function(rows))


def _adapt_kmeans(tile, region, rows: np.ndarray, n_observations: int, relevance: float) -> None:
    region_covariances = region.scatter_ / np.maximum(region.counts_, 1.0)[:, None, None]
    prior_means, prior_covariances = _in_units_of(tile, region, region.means_, region_covariances)
    regularised = prior_covariances + region.reg_covar * np.eye(prior_means.shape[1])
    nearest = _nearest_prior(tile.means_, prior_means, regularised, region.counts_ / region.counts_.sum())
    # the clusters' counts are of the detector's subsample; alpha uses all the tile's observations
    sample_counts = tile.counts_
    counts = sample_counts / sample_counts.sum() * n_observations
    own_covariances = tile.scatter_ / np.maximum(sample_counts, 1.0)[:, None, None]
    means, covariances = _shrink(counts, tile.means_, own_covariances, prior_means[nearest],
                                 prior_covariances[nearest], relevance)
    tile._set_clusters(means, sample_counts, covariances * sample_counts[:, None, None])
    tile._set_threshold(tile.decision_function(rows))


_ADAPT = {"gmm": _adapt_gmm, "kmeans": _adapt_kmeans}


def region_share(detector, n_observations: int, relevance: float) -> float:
    """How much of an adapted tile model came from its region: the mean of 1 - alpha_k over its components,
    weighted by their shares of the tile's observations (0: all its own, 1: all the region's)."""
    shares = detector.weights_ if detector.family == "gmm" else detector.counts_ / detector.counts_.sum()
    counts = shares * n_observations
    return float(np.sum(shares * relevance / (counts + relevance))) if relevance > 0 else 0.0
