"""Checking a cube and stacking its variables for fitting and scoring."""

from __future__ import annotations

from typing import Sequence

import dask.array as da
import xarray as xr

from ..errors import CoordinateError, NoDataError, VariableNotFoundError
from ..tiling import spatial_dims


def source_name(cube: xr.Dataset) -> str:
    """How to name the cube in an error message: its file, or 'the cube'."""
    source = cube.attrs.get("geoanom_source")
    return f"'{source}'" if source else "the cube"


def default_variables(cube: xr.Dataset) -> list[str]:
    """Data variables that span time and both spatial dimensions."""
    dims = set(spatial_dims(cube)) | {"time"}
    return [str(name) for name, var in cube.data_vars.items() if dims <= set(var.dims)]


def stack_variables(cube: xr.Dataset, variables: Sequence[str] | str | None = None) -> xr.DataArray:
    """The selected variables as one dask-backed array (variable, time, *spatial).

    The variable axis is a single chunk, so every block holds whole feature
    vectors. A DataArray is taken as a one-variable cube.
    """
    if isinstance(cube, xr.DataArray):
        cube = cube.to_dataset(name=cube.name or "values")
    if "time" not in cube.dims:
        raise CoordinateError(f"{source_name(cube)} has no time dimension; open it with geoanom.open_cube.")
    dims = spatial_dims(cube)
    if isinstance(variables, str):
        variables = [variables]
    variables = list(variables) if variables else default_variables(cube)
    known = default_variables(cube)
    for name in variables:
        if name not in known:
            raise VariableNotFoundError(
                f"variable '{name}' is not in {source_name(cube)}; known variables: {', '.join(known) or 'none'}."
            )
    if not variables:
        raise NoDataError(f"{source_name(cube)} has no variable over time, latitude and longitude.")
    stacked = cube[variables].to_array("variable").transpose("variable", "time", *dims)
    stacked = stacked.astype("float32" if all(cube[v].dtype.itemsize <= 4 for v in variables) else "float64")
    if not isinstance(stacked.data, da.Array):
        stacked = stacked.chunk()
    return stacked.chunk({"variable": -1})
