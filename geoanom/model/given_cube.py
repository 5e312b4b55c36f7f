"""The cube a model is given to score: its variables, checked, on the model's own coordinates.

Every method of :class:`~geoanom.model.core.AnomalyModel` that reads a cube
(``score``, ``adapt``, ``features``, ``anomalies``) takes it through
:func:`given_cube` first: open_cube's names, checks and fill handling
(:func:`geoanom.io.read.as_cube`), then the model's own latitudes and
longitudes where the cube's are its grid up to rounding
(:func:`on_model_grid`). A grid of another shape, or further off, is left
to the grid check (:func:`geoanom.model.score.check_same_grid`).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from ..errors import CoordinateError, GeoanomError
from ..io.read import as_cube

# Scored coordinates within this share of a grid cell of the model's are its grid (float32 copies, 1e-4 jitter):
# far below any real change of grid, far above float64 rounding.
SAME_GRID = 1e-3


def given_cube(cube: xr.Dataset | xr.DataArray, variables: list[str], labels: xr.DataArray) -> xr.Dataset:
    """The model's ``variables`` of a cube to score, with open_cube's names, checks and fill handling, on its grid.

    Cheap on a cube from open_cube (see :func:`geoanom.io.read.as_cube`);
    ``labels`` is the model's tile of every cell, whose coordinates are the
    model's grid (see :func:`on_model_grid`). Anything but an xarray object
    raises GeoanomError.

    Examples
    --------
    >>> cube = given_cube(ga.open_cube("tas_2010.nc"), model.variables, model.labels)  # doctest: +SKIP
    """
    if not isinstance(cube, (xr.Dataset, xr.DataArray)):
        raise GeoanomError(f"a model scores an xarray Dataset or DataArray with time and two spatial dimensions "
                           f"(as from geoanom.open_cube), not a {type(cube).__module__}.{type(cube).__name__}.")
    return on_model_grid(as_cube(cube, variables), labels)


def on_model_grid(cube: xr.Dataset, labels: xr.DataArray) -> xr.Dataset:
    """The cube with the model's own lat/lon where its coordinates are the model's grid up to rounding.

    Coordinates within :data:`SAME_GRID` of a cell (or float32's rounding) of the model's are taken as
    its grid and replaced by the model's exactly, so the result does not join two sets of coordinates
    (float32 lat/lon against a float64 model's gave 22 x 43 interleaved cells for 12 x 24); ones further
    off, but close enough for the grid check's tolerance, are refused. Other shapes or larger differences
    are the grid check's (:func:`~geoanom.model.score.check_same_grid`).

    Examples
    --------
    >>> jittered = cube.assign_coords(lat=cube["lat"].astype("float32"))  # doctest: +SKIP
    >>> bool((on_model_grid(jittered, model.labels)["lat"] == model.labels["lat"]).all())  # doctest: +SKIP
    True
    """
    spacing = [np.abs(np.diff(labels[name].values, axis=axis)) for name in ("lat", "lon")
               for axis in range(labels[name].ndim)]
    steps = np.concatenate([step[np.isfinite(step) & (step > 0)].ravel() for step in spacing])
    replaced = {}
    for name in ("lat", "lon"):
        expected, found = labels[name].values, cube[name].values
        if expected.shape != found.shape or np.array_equal(expected, found, equal_nan=True):
            continue
        gap = np.abs(found.astype(np.float64) - expected)
        if name == "lon":
            gap = np.abs((gap + 180.0) % 360.0 - 180.0)
        largest = float(np.nanmax(gap, initial=0.0))
        rounding = 2.0 * float(np.spacing(np.float32(np.nanmax(np.abs(expected), initial=1.0))))
        cell = float(steps.min()) if steps.size else 1.0
        if largest <= max(SAME_GRID * cell, rounding):
            replaced[name] = cube[name].copy(data=expected.copy())
        elif np.allclose(expected, found, atol=1e-6, equal_nan=True):  # what the grid check would let through
            source = cube.attrs.get("geoanom_source")
            raise CoordinateError(
                f"{name} of {f'{source!r}' if source else 'the dataset'} differs from the model's by up to "
                f"{largest:.3g} degrees, {largest / cell:.2g} of a cell, more than the {SAME_GRID:g} of a cell "
                "taken as the same grid; score data on the grid the model was fitted on.")
    return cube.assign_coords(replaced) if replaced else cube
