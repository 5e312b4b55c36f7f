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
the region. The GMM's reference likelihood is then renewed on the tile's own
sample, and the thresholds by the family's usual rule, on the scores the fit
would use: in-sample for large tiles, out of fold for tiles of fewer than
``CROSSFIT_BELOW`` rows (:mod:`geoanom.detectors.crossfit`): each fold is
scored by the family fitted on the other folds and adapted towards the same
region, so the threshold knows what the adaptation does to a new
observation. Renewed in-sample, the adapted models flagged far more new
normal data than the tiles' own (``benchmarks/federated_false_alarms.py``,
clean data, by the majority: tiles of 24-96 rows 2.29% against 0.87%, of
120-360 rows 0.99% against 0.46%; gmm and kmeans 2-7%); out of fold, 0.91%
and 0.52%. Other families
(dpmm, iforest) stay local. The adaptation itself is the detectors'
``adapt_towards`` (:mod:`geoanom.detectors.moments`); this module only
orchestrates.
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from ..detectors import Ensemble
from ..geohash import enclosing

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
    regions = enclosing(tile, pyramid)
    return pyramid[regions[0]] if regions else None


def _personalise_batch(sketches: dict, tiles: dict[int, str], batch: dict[str, Ensemble],
                       priors: dict[str, Ensemble | None], relevance: float) -> dict[str, Ensemble]:
    code_of = {tile: code for code, tile in tiles.items()}
    out = {}
    small: list[tuple[str, str, Any, np.ndarray, float]] = []  # adapted families whose threshold is chosen out of fold
    for tile, ensemble in batch.items():
        adapted = Ensemble.from_dict(ensemble.to_dict())  # a copy: the tile's own model is kept as it was
        prior, sketch = priors[tile], sketches.get(code_of[tile])
        if prior is not None and sketch is not None and relevance > 0:
            families = [family for family in FAMILIES if family in adapted.detectors_ and family in prior.detectors_]
            adapted = adapted.with_detectors({
                family: adapted.detectors_[family].adapt_towards(
                    prior.detectors_[family], adapted.family_rows(family, sketch.rows), sketch.count, relevance)
                for family in families})
            small += [(tile, family, prior.detectors_[family], adapted.family_rows(family, sketch.rows),
                       float(sketch.count)) for family in families if _out_of_fold(len(sketch.rows))]
        adapted.n_observations_ = ensemble.n_observations_  # set on every tile by fit
        out[tile] = adapted
    for family in FAMILIES:
        jobs = [(tile, region, rows, count) for tile, name, region, rows, count in small if name == family]
        if jobs:
            _renew_out_of_fold([out[tile].detectors_[family] for tile, *_ in jobs], *zip(*[job[1:] for job in jobs]),
                               relevance)
    return out


def _out_of_fold(n_rows: int) -> bool:
    """Whether a tile of ``n_rows`` sample rows has its thresholds chosen out of fold (as fit does)."""
    from ..detectors import crossfit  # read at the call, as fit reads them

    return crossfit.CROSSFIT_ABOVE <= n_rows < crossfit.CROSSFIT_BELOW


def _renew_out_of_fold(adapted: list[Any], regions: tuple[Any, ...], samples: tuple[np.ndarray, ...],
                       counts: tuple[float, ...], relevance: float) -> None:
    """Renew the thresholds of adapted detectors of one family from out-of-fold scores of their tiles' rows.

    Each tile's rows are dealt into folds as fit deals them (same seed); a
    fold is scored by the family fitted on the other folds (one batched fit
    for the whole batch of tiles) and adapted towards the tile's region with
    the observations those rows stand for, as the tile's model was.
    """
    from ..detectors import crossfit

    family = type(adapted[0])
    params = {key: value for key, value in adapted[0].get_params().items() if key != "random_state"}
    seeds = [detector.random_state for detector in adapted]
    folds = [crossfit.fold_of_rows(len(rows), seed, crossfit.N_FOLDS) for rows, seed in zip(samples, seeds)]
    jobs = [(i, k) for i in range(len(adapted)) for k in range(crossfit.N_FOLDS)]
    fold_models = family.fit_many([samples[i][folds[i] != k] for i, k in jobs], [seeds[i] for i, _ in jobs], **params)
    held_out: list[list[np.ndarray]] = [[] for _ in adapted]
    for (i, k), model in zip(jobs, fold_models):
        train = folds[i] != k
        fold = model.adapt_towards(regions[i], samples[i][train], counts[i] * train.mean(), relevance)
        held_out[i].append(fold.native_score(samples[i][~train]))
    for detector, scores in zip(adapted, held_out):
        detector.renew_threshold(np.concatenate(scores), held_out=True)


def region_share(detector, n_observations: int, relevance: float) -> float:
    """How much of an adapted tile model came from its region: the mean of 1 - alpha_k over its components,
    weighted by their shares of the tile's observations (0: all its own, 1: all the region's).

    Examples
    --------
    >>> import numpy as np
    >>> from geoanom.detectors import KMeansDetector
    >>> detector = KMeansDetector(random_state=0).fit(np.random.default_rng(0).normal(size=(100, 2)))
    >>> region_share(detector, 16, 16.0) == 0.5 or len(detector.counts_) > 1
    True
    """
    shares = detector.weights_ if detector.family == "gmm" else detector.counts_ / detector.counts_.sum()
    counts = shares * n_observations
    return float(np.sum(shares * relevance / (counts + relevance))) if relevance > 0 else 0.0
