"""Tile models merged up the geohash prefix tree: the model of every coarser region.

A geohash's prefix is the cell that contains it, so the tiles of precision p
group by their first p - 1 characters into the tiles of precision p - 1, and
so on up to single characters. Each level is built from the one below by a
tree reduction of :meth:`geoanom.Ensemble.merge` (``split_every`` children at
a time), so a region's model is the sample-weighted merge of every tile
model inside it and no tile's data are needed.
"""

from __future__ import annotations

import functools
from typing import Any

import dask

from ..detectors import Ensemble
from ..reduction import tree_reduce


def build_pyramid(ensembles: dict[str, Ensemble], precision: int, split_every: int = 8,
                  client: Any = None) -> dict[str, Ensemble]:
    """The merged ensemble of every geohash prefix shorter than ``precision`` that holds a fitted tile.

    Parameters
    ----------
    ensembles : dict of str to Ensemble
        The fitted tiles, all of length ``precision``.
    precision : int
    split_every : int, default 8
        Fan-in of each merge tree.
    client : distributed.Client, optional
        Where to compute; dask's current scheduler by default.

    Returns
    -------
    dict of str to Ensemble, keyed by prefix (lengths precision - 1 down to 1).
    """
    level = {tile: dask.delayed(ensemble, traverse=False) for tile, ensemble in ensembles.items()}
    pyramid: dict[str, Any] = {}
    for length in range(precision - 1, 0, -1):
        children: dict[str, list] = {}
        for name, ensemble in level.items():
            children.setdefault(name[:length], []).append(ensemble)
        level = {prefix: tree_reduce(parts, merge_ensembles, split_every) if len(parts) > 1
                 else dask.delayed(merge_ensembles, pure=True)(parts[0])  # a copy, never the child itself
                 for prefix, parts in sorted(children.items())}
        pyramid.update(level)
    (computed,) = dask.compute(pyramid, scheduler=client)
    return computed


def merge_ensembles(*ensembles: Ensemble) -> Ensemble:
    """Merge ensembles of neighbouring tiles into one (associative, for the tree).

    K-Means merges keep every cluster; the merged model is compressed back
    to the largest cluster count among its parts, so a region's model is no
    bigger than a tile's.
    """
    if len(ensembles) == 1:  # a region of one child is a copy, never the child itself
        return Ensemble.from_dict(ensembles[0].to_dict())
    merged = functools.reduce(Ensemble.merge, ensembles)
    if "kmeans" in merged.detectors_:
        largest = max(len(e.detectors_["kmeans"].means_) for e in ensembles)
        merged.detectors_["kmeans"].compress(largest)
    return merged
