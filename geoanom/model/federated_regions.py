"""Region models refined by federated EM and Lloyd rounds over the tiles inside them.

``geoanom.fit(..., federated=True)`` first merges tile models up the geohash
prefix tree (:mod:`geoanom.model.pyramid`): a moment-preserving merge, not
a fit. Then, for a few rounds, every batch of tiles computes on its own
tiles' sketches the sufficient statistics of each enclosing region's model
(the detectors' ``sufficient_statistics``: for the Gaussian mixture, the
E-step's responsibility-weighted counts, sums and sums of outer products;
for K-Means, each cluster's count, sum and sum of outer products under
nearest-centroid assignment). The statistics are added by a tree reduction
and the server takes the detectors' ``m_step`` (EM's M-step, Lloyd's
update). Only statistics travel, never observations. This module only
orchestrates: the algorithms are the detectors'.

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
from ..geohash import enclosing
from ..reduction import tree_reduce

FAMILIES = ("gmm", "kmeans")
QUANTILES = np.linspace(0.0, 1.0, 101)
PSEUDO_REPEATS = 2000  # repeats of the quantiles shared out by count: about 200,000 pseudo-scores


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
            pyramid[prefix].detectors_[family].m_step(stats)
    models = _region_models(pyramid, families)
    parts = [dask.delayed(_batch_score_quantiles, pure=True)(sketches, tiles, models)
             for sketches, tiles in sketch_batches]
    (pooled,) = dask.compute(tree_reduce(parts, _concatenate_quantiles, split_every), scheduler=scheduler)
    for (prefix, family), summaries in pooled.items():
        pyramid[prefix].detectors_[family].renew_threshold(_pseudo_scores(summaries))
    return pyramid


def _region_models(pyramid: dict[str, Ensemble], families: list[str]) -> Any:
    """This round's region models as one delayed value: hashed and sent once, not once per batch."""
    return dask.delayed({prefix: {f: (ensemble.detectors_[f], ensemble.family_columns(f)) for f in families}
                         for prefix, ensemble in pyramid.items()}, traverse=False)


def _tiles_under_regions(sketches: dict, tiles: dict[int, str], models: dict):
    """(prefix, family, region detector, a tile's sample rows, observations per row, tile count)
    for every tile of a batch and every region model above it."""
    for code, tile in tiles.items():
        sketch = sketches.get(code)
        if sketch is None or sketch.count == 0:
            continue
        rows = sketch.rows
        for prefix in enclosing(tile, models):
            for family, (detector, columns) in models[prefix].items():
                read = rows if columns is None else rows[:, columns]  # the columns the family reads
                yield prefix, family, detector, read, sketch.count / max(len(rows), 1), float(sketch.count)


def _batch_statistics(sketches: dict, tiles: dict[int, str], models: dict) -> dict:
    out: dict = {}
    for prefix, family, detector, rows, weight, _ in _tiles_under_regions(sketches, tiles, models):
        stats, key = detector.sufficient_statistics(rows, weight), (prefix, family)
        out[key] = stats if key not in out else out[key] + stats
    return out


def add_statistics(*parts: dict) -> dict:
    """Add sufficient statistics key by key (associative, for the tree).

    Examples
    --------
    >>> add_statistics({"a": 1.0}, {"a": 2.0, "b": 3.0})
    {'a': 3.0, 'b': 3.0}
    """
    out: dict = {}
    for part in parts:
        for key, stats in part.items():
            out[key] = stats if key not in out else out[key] + stats
    return out


def _batch_score_quantiles(sketches: dict, tiles: dict[int, str], models: dict) -> dict:
    out: dict = {}
    for prefix, family, detector, rows, _, count in _tiles_under_regions(sketches, tiles, models):
        scores = detector.native_score(rows)
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
