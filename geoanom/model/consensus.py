"""The model's anomaly queries: how alike its tiles are, and which tiles a consensus asks.

The arithmetic lives in :mod:`geoanom.queries` (plain arrays and ensembles);
this module feeds it the model's tiles. :class:`~geoanom.AnomalyModel` exposes
:func:`tile_distances`, :func:`similar_tiles` and :func:`consensus_partners`
as methods, and :func:`geoanom.model.score.score_cube` adds the ``consensus``
variable with :func:`consensus_variable`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import GeoanomError, TileError
from ..geohash import decode
from ..queries.consensus import SIMILAR_K, neighbour_partners, parse_consensus, region_partners, similar_partners
from ..queries.similarity import bhattacharyya_distances, ensemble_moments, hellinger
from ..tiling import known_tiles

if TYPE_CHECKING:  # the model imports this module
    from .core import AnomalyModel

DISTANCE_NAME = "Bhattacharyya distance between the tiles' moment-matched Gaussian feature distributions"


def tile_moments(model: "AnomalyModel") -> tuple[list[str], np.ndarray, np.ndarray]:
    """The fitted tiles (sorted) and their features' means (n, d) and covariances (n, d, d), in data units.

    The features are those the describing family reads (see
    :func:`~geoanom.queries.similarity.ensemble_moments`): with the default
    five families, a tile's (anomaly, neighbours), not the background ring
    only the event family reads.
    """
    tiles = model.tiles
    moments = [ensemble_moments(model.ensembles[tile], f"tile '{tile}'") for tile in tiles]
    n_features = moments[0][0].size if moments else len(model.attrs.get("feature_names") or [])
    means = np.array([mean for mean, _ in moments]).reshape(len(tiles), n_features)
    covariances = np.array([cov for _, cov in moments]).reshape(len(tiles), n_features, n_features)
    return tiles, means, covariances


def tile_distances(model: "AnomalyModel") -> xr.DataArray:
    """See :meth:`AnomalyModel.tile_distances`."""
    tiles, means, covariances = tile_moments(model)
    lat, lon = decode(tiles) if tiles else (np.empty(0), np.empty(0))
    coords = {"tile": tiles, "other_tile": tiles, "tile_lat": ("tile", lat), "tile_lon": ("tile", lon)}
    return xr.DataArray(bhattacharyya_distances(means, covariances), dims=("tile", "other_tile"), coords=coords,
                        name="tile_distance").assign_attrs(
        long_name=DISTANCE_NAME, units="1",
        comment="symmetric, 0 for identical distributions; Hellinger distance = sqrt(1 - exp(-distance))",
        **model.provenance())


def similar_tiles(model: "AnomalyModel", tile: str, k: int = SIMILAR_K) -> pd.DataFrame:
    """See :meth:`AnomalyModel.similar_tiles`."""
    if tile not in model.ensembles:
        reason = model.skipped.get(tile)
        detail = f"it was skipped: {reason}" if reason else known_tiles(model.tiles)
        raise TileError(f"tile '{tile}' has no model to compare; {detail}.")
    if int(k) < 1:
        raise GeoanomError(f"k={k} similar tiles: ask for at least one.")
    tiles, means, covariances = tile_moments(model)
    own = tiles.index(tile)
    distance = bhattacharyya_distances(means[own:own + 1], covariances[own:own + 1], means, covariances)[0]
    others = np.array([i for i in np.argsort(distance, kind="stable") if i != own][:int(k)], dtype=int)
    names = [tiles[i] for i in others]
    lat, lon = decode(names) if names else (np.empty(0), np.empty(0))
    return pd.DataFrame({"tile": names, "distance": distance[others], "hellinger": hellinger(distance[others]),
                         "lat": lat, "lon": lon}, index=pd.RangeIndex(1, len(names) + 1, name="rank"))


def consensus_partners(model: "AnomalyModel", consensus: str) -> dict[str, list[str]]:
    """See :meth:`AnomalyModel.consensus_partners`."""
    spec = parse_consensus(consensus)
    if spec.mode == "neighbours":
        return neighbour_partners([str(name) for name in model.tile_names], model.ensembles)
    if spec.mode == "similar":
        distances = tile_distances(model)
        return similar_partners(list(distances["tile"].values), distances.values, SIMILAR_K)
    return region_partners(spec.prefix, model.ensembles, model.precision)


def consensus_request(model: "AnomalyModel", consensus: str, tile: str | None) -> tuple[dict[str, list[str]], str]:
    """The partners and the spec's canonical text that :func:`~geoanom.model.score.score_cube` needs for a consensus."""
    if tile is not None:
        raise TileError(f"consensus='{consensus}' asks each tile's partners and cannot be combined with "
                        f"tile='{tile}' (one model for every cell); score with one or the other.")
    return consensus_partners(model, consensus), str(parse_consensus(consensus))


def partners_by_code(model: "AnomalyModel", partners: dict[str, list[str]]) -> dict[int, list[int]]:
    """Partners by tile code (the order of the model's ``tile_names``); tiles off the grid are dropped."""
    index = {str(name): code for code, name in enumerate(model.tile_names)}
    return {index[tile]: [index[other] for other in others if other in index]
            for tile, others in partners.items() if tile in index}


def consensus_variable(model: "AnomalyModel", ensemble: xr.DataArray, share: da.Array, spec: str) -> xr.DataArray:
    """The ``consensus`` output variable: the partners' share, on the grid of ``ensemble``, with its attributes."""
    return xr.DataArray(share, dims=ensemble.dims, coords=ensemble.coords).assign_attrs(
        long_name="share of the other tiles' ensembles also flagging the observation", units="1",
        valid_range=np.array([0.0, 1.0], dtype=np.float32), geoanom_consensus=spec,
        comment=f"consensus='{spec}': each partner tile's ensemble scores the observation's own feature vector "
        "(strict majority, as 'ensemble'); NaN where the tile has no partner with a model",
        **model.provenance(),
    )
