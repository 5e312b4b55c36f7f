"""Consensus queries: do other tiles' ensembles also flag an observation?

The reference paper's section 3.4 submits a questionable observation to the
other detector instances that match a criterion and lets their
classifications confirm it or not. Here the instances are other tiles'
ensembles, chosen by one of three criteria (a *consensus spec*):

``"neighbours"``
    the (up to) 8 geohash neighbours of the observation's tile that have a model;
``"similar"``
    the ``SIMILAR_K`` = 5 tiles whose fitted distributions are closest to the
    tile's own (see :mod:`geoanom.queries.similarity`);
``"region:PREFIX"``
    every other tile with a model under the geohash ``PREFIX``, for the
    observations of the tiles under it (NaN elsewhere).

Each partner scores the observation's own feature vector, and the consensus
is the share of partners whose ensemble flags it by the same strict majority
as the ``ensemble`` variable. The cost is one extra ensemble scoring per
partner and observation: up to 8 (neighbours), 5 (similar) or the region's
tiles minus one times the cost of the score itself.

These functions take plain data (tile names, distance matrices, fitted
ensembles by tile code); :meth:`geoanom.AnomalyModel.score` calls them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..detectors.fusion import majority
from ..errors import GeoanomError
from ..geohash import neighbours
from ..tiling import group_cells

SIMILAR_K = 5
MODES = ("neighbours", "similar", "region")


@dataclass(frozen=True)
class ConsensusSpec:
    """A parsed consensus criterion: ``mode`` is one of ``MODES``; ``prefix`` is the region's geohash."""

    mode: str
    prefix: str = ""

    def __str__(self) -> str:
        return f"region:{self.prefix}" if self.mode == "region" else self.mode


def parse_consensus(spec: str) -> ConsensusSpec:
    """Read a consensus spec: ``"neighbours"``, ``"similar"`` or ``"region:PREFIX"``.

    Raises
    ------
    GeoanomError
        For anything else, in one sentence quoting the spec.

    Examples
    --------
    >>> parse_consensus("region:dj")
    ConsensusSpec(mode='region', prefix='dj')
    >>> str(parse_consensus("neighbours"))
    'neighbours'
    """
    text = str(spec).strip()
    mode, _, prefix = text.partition(":")
    if mode in ("neighbours", "similar") and not prefix:
        return ConsensusSpec(mode)
    if mode == "region" and prefix:
        return ConsensusSpec("region", prefix.lower())
    raise GeoanomError(f"consensus '{spec}' is not one of 'neighbours', 'similar' or 'region:PREFIX' "
                       "(a geohash such as 'region:dj').")


def neighbour_partners(names: Sequence[str], fitted: Collection[str]) -> dict[str, list[str]]:
    """For each tile, its geohash neighbours (of the 8) that have a model; tiles with none are left out.

    Examples
    --------
    >>> neighbour_partners(["dj", "dn", "9g"], {"dn", "9g"})  # dn is north of dj; 9g touches neither
    {'dj': ['dn']}
    """
    around = neighbours(np.asarray(names, dtype=str))
    out = {}
    for i, name in enumerate(names):
        found = sorted({str(ring[i]) for ring in around.values()} & set(fitted) - {name})
        if found:
            out[str(name)] = found
    return out


def similar_partners(fitted: Sequence[str], distances: np.ndarray, k: int = SIMILAR_K) -> dict[str, list[str]]:
    """For each fitted tile, the ``k`` others nearest by ``distances`` (a square matrix in the order of ``fitted``).

    Ties go to the tile first in ``fitted``.

    Examples
    --------
    >>> import numpy as np
    >>> similar_partners(["a", "b", "c"], np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]]), k=1)
    {'a': ['b'], 'b': ['a'], 'c': ['a']}
    """
    distances = np.array(distances, dtype=np.float64)
    np.fill_diagonal(distances, np.inf)  # never one's own partner
    k = min(k, len(fitted) - 1)
    order = np.argsort(distances, axis=1, kind="stable")[:, :k]
    return {str(name): [str(fitted[j]) for j in row] for name, row in zip(fitted, order) if k > 0}


def region_partners(prefix: str, fitted: Collection[str], precision: int) -> dict[str, list[str]]:
    """For each tile under ``prefix`` (fitted or not), every other fitted tile under it.

    Raises
    ------
    GeoanomError
        If the prefix is not shorter than the tiles, or holds no fitted tile.

    Examples
    --------
    >>> region_partners("d", {"dj", "dn", "9g"}, 2)
    {'dj': ['dn'], 'dn': ['dj']}
    """
    if not 1 <= len(prefix) < precision:
        lengths = "1 character" if precision == 2 else f"1 to {precision - 1} characters"
        shorter = ("its tiles have 1 character, so it has no coarser region" if precision == 1 else
                   f"regions are geohashes shorter than its tiles ({precision} characters), so of {lengths}")
        raise GeoanomError(f"consensus region '{prefix}' is not a region of this model: {shorter}.")
    inside = sorted(name for name in fitted if name.startswith(prefix))
    if not inside:
        starts = sorted({name[:len(prefix)] for name in fitted})
        raise GeoanomError(f"consensus region '{prefix}' holds no fitted tile; fitted tiles start with "
                           f"{', '.join(starts[:20])}.")
    return {name: [other for other in inside if other != name] for name in inside}


def consensus_share(features: np.ndarray, codes: np.ndarray, ensembles: Mapping[int, object],
                    partners: Mapping[int, Sequence[int]]) -> np.ndarray:
    """Share (time, *spatial) of each cell's partner ensembles flagging its feature vector; NaN without partners.

    Parameters
    ----------
    features : (feature, time, *spatial) array
    codes : (*spatial) int array
        Tile code of every cell.
    ensembles : mapping of tile code to fitted Ensemble
        At least every partner named in ``partners``.
    partners : mapping of tile code to sequence of tile codes
        The tiles asked about each tile's observations.

    Examples
    --------
    >>> import numpy as np
    >>> from geoanom.detectors import Ensemble
    >>> X = np.random.default_rng(0).normal(size=(300, 1))
    >>> models = {1: Ensemble(("gmm", "kmeans"), random_state=0).fit(X)}
    >>> features = np.array([[[0.0, 9.0]]])  # one feature, one time, two cells of tile 0
    >>> consensus_share(features, np.array([0, 0]), models, {0: [1]}).tolist()
    [[0.0, 1.0]]
    """
    n_features, n_times = features.shape[:2]
    flat = features.reshape(n_features, n_times, -1)
    out = np.full((n_times, flat.shape[2]), np.nan, dtype=np.float32)
    for code, cells in group_cells(np.asarray(codes)):
        asked = [ensembles[p] for p in partners.get(int(code), ())]
        if not asked:
            continue
        rows = flat[:, :, cells].reshape(n_features, -1).T
        valid = np.isfinite(rows).all(axis=1)
        share = np.full(len(rows), np.nan, dtype=np.float32)
        if valid.any():
            share[valid] = np.mean([_flags(ensemble, rows[valid]) for ensemble in asked], axis=0)
        out[:, cells] = share.reshape(n_times, len(cells))
    return out.reshape(features.shape[1:])


def _flags(ensemble, rows: np.ndarray) -> np.ndarray:
    """The ensemble's strict-majority flag of each row, as the ``ensemble`` output variable defines it."""
    irregularity = ensemble.irregularity(rows)
    return majority((irregularity > 1.0).sum(axis=0), irregularity.shape[0])
