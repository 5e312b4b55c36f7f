"""Rows for federated training from a cube: each observation's features and its client.

The features come from the same pipeline as fitting and scoring
(:func:`geoanom.features.pipeline.feature_cube`), block by block: only the
rows kept ever meet in memory, never the whole cube.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import dask
import numpy as np
import xarray as xr

from ..errors import GeoanomError
from ..features import Climatology, RegionParams
from ..features.pipeline import feature_cube, source_name, stack_variables
from ..features.vectors import feature_names
from ..grid import spatial_dims
from ..io.read import as_cube
from ..tiling import tile_labels


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
        In time order, then cell order.

    Examples
    --------
    >>> rows = cube_rows(cube, "tas", precision=2)  # doctest: +SKIP
    >>> rows.names  # doctest: +SKIP
    ['tas', 'tas_anomaly', 'tas_smoothed', 'tas_region_area']
    """
    cube = as_cube(cube, variable)  # data not from open_cube get its names, checks and fill handling, as for a fit
    values = stack_variables(cube, [variable])
    cell_clients = np.asarray(_cell_clients(cube, clients, precision)).astype(str)
    has_client = (cell_clients != "") & (cell_clients != "nan")
    climatology = Climatology.fit(values, source=source_name(cube))
    # every row was part of the climatology's fit: leave-one-out anomalies
    sets = ("values", "regions")
    features = feature_cube(values, climatology, sets, regions, training=True)
    parts = dask.compute(*_block_rows(features, has_client))
    time_index, cell_index = (np.concatenate([part[i] for part in parts]) for i in (1, 2))
    if not time_index.size:
        raise GeoanomError(f"no observation of '{variable}' in {source_name(cube)} has both data and a client.")
    # in time order, then cell order, whatever the chunks
    order = np.lexsort((cell_index, time_index))
    rows = np.concatenate([part[0] for part in parts])[order]
    time_index, cell_index = time_index[order], cell_index[order]
    return CubeRows(rows, cell_clients.ravel()[cell_index], feature_names([variable], sets), time_index, cell_index)


def _block_rows(features, has_client: np.ndarray) -> list:
    """One delayed (rows, time index, flat cell index) per block of the feature cube: its valid rows with a client."""
    starts = [np.concatenate([[0], np.cumsum(chunks)]) for chunks in features.chunks[1:]]
    n_cols = has_client.shape[1]
    out = []
    for (ti, yi, xi), block in np.ndenumerate(features.to_delayed()[0]):
        rows, cols = (slice(start[i], start[i + 1]) for start, i in zip(starts[1:], (yi, xi)))
        cells = np.arange(rows.start, rows.stop)[:, None] * n_cols + np.arange(cols.start, cols.stop)
        out.append(dask.delayed(_rows_of_block, pure=True)(block, starts[0][ti], cells, has_client[rows, cols]))
    return out


def _rows_of_block(features: np.ndarray, first_step: int, cells: np.ndarray,
                   has_client: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = features.reshape(features.shape[0], -1).T  # (time, cell) order
    keep = np.isfinite(rows).all(axis=1) & np.tile(has_client.ravel(), features.shape[1])
    step, cell = np.divmod(np.flatnonzero(keep), cells.size)
    return rows[keep], step + first_step, cells.ravel()[cell]


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
