"""Rows for federated training from a cube: each observation's features and its client."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import xarray as xr

from ..errors import GeoanomError
from ..features import Climatology, RegionParams
from ..features.vectors import block_features, context_features, feature_names
from ..model.inputs import source_name, stack_variables
from ..tiling import spatial_dims, tile_labels, wraps_in_longitude


@dataclasses.dataclass(frozen=True)
class CubeRows:
    """Observations of a cube as rows for :func:`geoanom.federated.train`.

    Attributes
    ----------
    features : ndarray (n_rows, 4)
        Value, standardised anomaly, denoised anomaly, log10(1 + km^2 of its region).
    clients : ndarray (n_rows,) of str
        The client holding each row.
    names : list of str
        The feature names.
    time_index, cell_index : ndarray (n_rows,) of int
        Each row's time step and flat (row-major) grid cell in the cube.
    """

    features: np.ndarray
    clients: np.ndarray
    names: list[str]
    time_index: np.ndarray
    cell_index: np.ndarray

    def pick(self, grid: xr.DataArray | np.ndarray) -> np.ndarray:
        """Each row's value in an array over the cube's time steps and grid, e.g. a mask of known events.

        Parameters
        ----------
        grid : DataArray or ndarray (time, *spatial)
            On the cube's grid; a DataArray is put in (time, *spatial) order first.

        Returns
        -------
        ndarray (n_rows,)
        """
        if isinstance(grid, xr.DataArray):
            grid = grid.transpose("time", *spatial_dims(grid))
        values = np.asarray(grid)
        return values.reshape(values.shape[0], -1)[self.time_index, self.cell_index]


def cube_rows(cube: xr.Dataset, variable: str, clients: str | xr.DataArray = "tile", *,
              precision: int | None = None, regions: RegionParams | None = None) -> CubeRows:
    """Every valid observation of one variable as a feature row, with the client that holds it.

    Each observation (time, cell) becomes a row of [value, standardised
    anomaly, denoised anomaly, log10(1 + area of its anomalous region)], the
    per-observation features of :mod:`geoanom.features.neighbourhood`, and
    belongs to the client of its cell. Used by ``geoanom federate``.

    Parameters
    ----------
    cube : xarray.Dataset
    variable : str
    clients : "tile" or DataArray over the grid
        "tile": each cell's geohash tile (``precision``, chosen when None);
        a DataArray: each cell's client (same lat/lon as the cube; cells
        without a client, NaN or empty, are left out).
    precision : int, optional
    regions : RegionParams, optional

    Returns
    -------
    CubeRows
    """
    values = stack_variables(cube, [variable])
    climatology = Climatology.fit(values, source=source_name(cube))
    # every row was part of the climatology's fit: leave-one-out anomalies
    sets = ("values", "regions")
    context = context_features(values, climatology, sets, regions or RegionParams(), wraps_in_longitude(values),
                               training=True)
    features = block_features(values.values, np.asarray(context), sets,
                              climatology.time_terms(values["time"], training=True), climatology)
    cell_clients = np.asarray(_cell_clients(cube, clients, precision)).astype(str)
    rows = features.reshape(features.shape[0], -1).T
    owner = np.broadcast_to(cell_clients, features.shape[1:]).ravel()
    keep = np.isfinite(rows).all(axis=1) & (owner != "") & (owner != "nan")
    if not keep.any():
        raise GeoanomError(f"no observation of '{variable}' in {source_name(cube)} has both data and a client.")
    time_index, cell_index = np.divmod(np.flatnonzero(keep), cell_clients.size)
    return CubeRows(rows[keep], owner[keep], feature_names([variable], sets),
                    time_index, cell_index)


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
