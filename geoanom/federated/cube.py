"""Rows for federated training from a cube: each observation's features and its client.

Used by ``geoanom federate``: each observation (time, cell) becomes a row of
[value, standardised anomaly, denoised anomaly, log10(1 + area of its
anomalous region)], the per-observation features of
:mod:`geoanom.features.neighbourhood`, and belongs to the client of its cell:
its geohash tile, or the client a grid file assigns it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..errors import GeoanomError
from ..features import Climatology, RegionParams, feature_names, observation_features, season_index, season_kind
from ..features.neighbourhood import neighbourhood_features, region_feature_names
from ..model.inputs import source_name, stack_variables
from ..tiling import spatial_dims, tile_labels, wraps_in_longitude


def cube_rows(cube: xr.Dataset, variable: str, clients: str | xr.DataArray = "tile", *,
              precision: int | None = None, regions: RegionParams | None = None
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Feature rows, the client of each row, and the feature names, for one variable of a cube.

    Parameters
    ----------
    cube : xarray.Dataset
    variable : str
    clients : "tile" or DataArray over the grid
        "tile": each cell's geohash tile (``precision``, chosen when None);
        a DataArray: each cell's client (same lat/lon as the cube; cells
        without a client, NaN or empty, are left out).
    regions : RegionParams, optional

    Returns
    -------
    rows : ndarray (n_rows, 4)
    client_ids : ndarray (n_rows,) of str
    names : list of str
    """
    values = stack_variables(cube, [variable])
    climatology = Climatology.from_values(values, season_kind(values["time"]))
    seasons = season_index(values["time"], climatology.kind)
    own = observation_features(values.values, seasons, climatology)
    region = neighbourhood_features(values, climatology, regions or RegionParams(), wraps_in_longitude(values))
    features = np.concatenate([own, np.asarray(region)], axis=0)
    cell_clients = np.asarray(_cell_clients(cube, clients, precision)).astype(str)
    rows = features.reshape(features.shape[0], -1).T
    owner = np.broadcast_to(cell_clients, features.shape[1:]).ravel()
    keep = np.isfinite(rows).all(axis=1) & (owner != "") & (owner != "nan")
    if not keep.any():
        raise GeoanomError(f"no observation of '{variable}' in {source_name(cube)} has both data and a client.")
    return rows[keep], owner[keep], feature_names([variable]) + region_feature_names([variable])


def _cell_clients(cube: xr.Dataset, clients: str | xr.DataArray, precision: int | None) -> Any:
    if isinstance(clients, str):
        if clients != "tile":
            raise GeoanomError(f"clients must be 'tile' or a grid of client ids, got {clients!r}.")
        return tile_labels(cube, precision).values
    grid = clients.squeeze(drop=True)
    expected = tuple(cube.sizes[dim] for dim in spatial_dims(cube))
    if grid.shape != expected:
        raise GeoanomError(f"the client grid '{clients.name}' has shape {grid.shape}, not the cube's {expected}.")
    return grid.values
