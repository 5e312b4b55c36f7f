"""Region models refined by federated EM and Lloyd rounds over the tiles inside them.

``geoanom.fit(..., federated=True)`` first merges tile models up the geohash
prefix tree (:mod:`geoanom.model.pyramid`): a moment-preserving merge, not
a fit. Then, for a few rounds, every batch of tiles computes on its own
tiles' sketches the sufficient statistics of each enclosing region's model:
for the Gaussian mixture, the E-step's responsibility-weighted counts, sums
and sums of outer products; for K-Means, each cluster's count, sum and sum
of outer products under nearest-centroid assignment. The statistics are
added by a tree reduction and the server takes the M-step (Lloyd step). Only
statistics travel, never observations.

Thresholds are then renewed from the tiles' score distributions: each tile
sends 101 quantiles of its rows' scores under each region model with its
count, and the server applies the family's threshold rule to the
count-weighted pooled quantiles (an approximation of the pooled scores,
exact in the limit of many quantiles).
"""

from __future__ import annotations

from typing import Any

import dask
import numpy as np

from ..detectors import Ensemble
from ..reduction import tree_reduce

FAMILIES = ("gmm", "kmeans")
QUANTILES = np.linspace(0.0, 1.0, 101)
PSEUDO_REPEATS = 2000  # repeats of the quantiles shared out by count: about 200,000 pseudo-scores
EMPTY = 1e-9  # share of the data below which a component or cluster is dropped


def refine_regions(pyramid: dict[str, Ensemble], sketch_batches: list[tuple[Any, dict[int, str]]], rounds: int,
                   split_every: int = 8, scheduler: Any = None) -> dict[str, Ensemble]:
    """Refine the gmm and kmeans models of every region in place; return the pyramid.

    Parameters
    ----------
    pyramid : dict of prefix to Ensemble
        From :func:`geoanom.model.pyramid.build_pyramid`.
    sketch_batches : list of (delayed sketches by tile code, {tile code: tile name})
        Each batch's merged tile sketches, persisted where they were made.
    rounds : int
        EM / Lloyd rounds.
    """
    families = [name for name in FAMILIES if name in next(iter(pyramid.values())).detectors_] if pyramid else []
    if not families:
        return pyramid
    for _ in range(rounds):
        models = _region_models(pyramid, families)
        parts = [dask.delayed(_batch_statistics, pure=True)(sketches, tiles, models)
                 for sketches, tiles in sketch_batches]
        (totals,) = dask.compute(tree_reduce(parts, add_statistics, split_every), scheduler=scheduler)
        for (prefix, family), stats in totals.items():
            _M_STEPS[family](pyramid[prefix].detectors_[family], stats)
    models = _region_models(pyramid, families)
    parts = [dask.delayed(_batch_score_quantiles, pure=True)(sketches, tiles, models)
             for sketches, tiles in sketch_batches]
    (pooled,) = dask.compute(tree_reduce(parts, _concatenate_quantiles, split_every), scheduler=scheduler)
    for (prefix, family), summaries in pooled.items():
        pyramid[prefix].detectors_[family]._set_threshold(_pseudo_scores(summaries))
    return pyramid


def _region_models(pyramid: dict[str, Ensemble], families: list[str]) -> Any:
    """This round's region models as one delayed value: hashed and sent once, not once per batch."""
    return dask.delayed({prefix: {f: ensemble.detectors_[f] for f in families} for prefix, ensemble in pyramid.items()},
                        traverse=False)


def _ancestors(tile: str, models: dict) -> list[str]:
    return [tile[:length] for length in range(len(tile) - 1, 0, -1) if tile[:length] in models]


def _tiles_under_regions(sketches: dict, tiles: dict[int, str], models: dict):
    """(prefix, family, region detector, a tile's sample rows, observations per row, tile count)
    for every tile of a batch and every region model above it."""
    for code, tile in tiles.items():
        sketch = sketches.get(code)
        if sketch is None or sketch.count == 0:
            continue
        rows = sketch.rows
        for prefix in _ancestors(tile, models):
            for family, detector in models[prefix].items():
                yield prefix, family, detector, rows, sketch.count / max(len(rows), 1), float(sketch.count)


def _batch_statistics(sketches: dict, tiles: dict[int, str], models: dict) -> dict:
    out: dict = {}
    for prefix, family, detector, rows, weight, _ in _tiles_under_regions(sketches, tiles, models):
        stats, key = _STATISTICS[family](detector, rows, weight), (prefix, family)
        out[key] = stats if key not in out else tuple(a + b for a, b in zip(out[key], stats))
    return out


def add_statistics(*parts: dict) -> dict:
    """Add sufficient statistics key by key (associative, for the tree)."""
    out: dict = {}
    for part in parts:
        for key, stats in part.items():
            out[key] = stats if key not in out else tuple(a + b for a, b in zip(out[key], stats))
    return out


def _gmm_statistics(detector, rows: np.ndarray, weight: float) -> tuple:
    Z = (rows - detector.center_) / detector.scale_
    projected = Z[None] @ detector._precision_chol - (detector.means_[:, None, :] @ detector._precision_chol)
    log_det = np.log(np.einsum("kii->ki", detector._precision_chol)).sum(axis=1)
    weighted = (np.log(detector.weights_) + log_det - 0.5 * Z.shape[1] * np.log(2 * np.pi))[:, None] \
        - 0.5 * np.einsum("knd,knd->kn", projected, projected)
    peak = weighted.max(axis=0)
    shifted = np.exp(weighted - peak)  # one exp for the likelihood and the responsibilities
    density = shifted.sum(axis=0)
    llk = peak + np.log(density)
    responsibility = shifted / density * weight  # (k, n)
    return (responsibility.sum(axis=1), responsibility @ Z, np.einsum("kn,nd,ne->kde", responsibility, Z, Z, optimize=True),
            float(llk.sum() * weight), float(len(Z) * weight))


def _gmm_m_step(detector, stats: tuple) -> None:
    counts, sums, squares, llk_sum, total = stats
    keep = counts > EMPTY * total
    counts, sums, squares = counts[keep], sums[keep], squares[keep]
    means = sums / counts[:, None]
    eye = np.eye(means.shape[1])
    covariances = squares / counts[:, None, None] - np.einsum("kd,ke->kde", means, means) + detector.reg_covar * eye
    detector._set_components(counts / counts.sum(), means, covariances)
    detector.model_llk_ = llk_sum / total
    detector.n_samples_ = total


def _kmeans_statistics(detector, rows: np.ndarray, weight: float) -> tuple:
    Z = (rows - detector.center_) / detector.scale_
    nearest = np.argmin(((Z[None] - detector.means_[:, None, :]) ** 2).sum(axis=2), axis=0)
    k, d = detector.means_.shape
    counts = np.bincount(nearest, minlength=k) * weight
    sums, squares = np.zeros((k, d)), np.zeros((k, d, d))
    np.add.at(sums, nearest, Z * weight)
    np.add.at(squares, nearest, np.einsum("nd,ne->nde", Z, Z) * weight)
    return counts, sums, squares, 0.0, float(len(Z) * weight)


def _kmeans_m_step(detector, stats: tuple) -> None:
    counts, sums, squares, _, total = stats
    keep = counts > EMPTY * total
    counts, sums, squares = counts[keep], sums[keep], squares[keep]
    means = sums / counts[:, None]
    scatter = squares - counts[:, None, None] * np.einsum("kd,ke->kde", means, means)
    detector._set_clusters(means, counts, scatter)
    detector.n_samples_ = total


_STATISTICS = {"gmm": _gmm_statistics, "kmeans": _kmeans_statistics}
_M_STEPS = {"gmm": _gmm_m_step, "kmeans": _kmeans_m_step}


def _batch_score_quantiles(sketches: dict, tiles: dict[int, str], models: dict) -> dict:
    out: dict = {}
    for prefix, family, detector, rows, _, count in _tiles_under_regions(sketches, tiles, models):
        scores = detector.decision_function(rows)
        out.setdefault((prefix, family), []).append((np.quantile(scores, QUANTILES), count))
    return out


def _concatenate_quantiles(*parts: dict) -> dict:
    out: dict = {}
    for part in parts:
        for key, summaries in part.items():
            out.setdefault(key, []).extend(summaries)
    return out


def _pseudo_scores(summaries: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """A stand-in sample of the pooled scores: each tile's quantiles, repeated in proportion to its count."""
    total = sum(count for _, count in summaries)
    repeats = [max(1, int(round(PSEUDO_REPEATS * count / total))) for _, count in summaries]
    return np.concatenate([np.repeat(quantiles, repeat) for (quantiles, _), repeat in zip(summaries, repeats)])
