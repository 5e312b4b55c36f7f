"""The one feature pipeline: a cube's variables stacked, then every observation's feature vector, lazily.

Fitting (:func:`geoanom.fit`), scoring (:meth:`geoanom.AnomalyModel.score`)
and the federated rows (:func:`geoanom.federated.cube_rows`) all take their
features from :func:`feature_cube`, so an observation gets the same vector
wherever it is used. What a vector holds is defined in
:mod:`geoanom.features.vectors`; this module lays it over a chunked cube:

1. :func:`stack_variables`: the chosen variables as one dask array
   (variable, time, *spatial), with the variable axis in one chunk;
2. :func:`feature_cube`: the values' standardised anomalies
   (:meth:`Climatology.standardise`), computed once, and from them the
   grid-wide context features (neighbours, regions); then one dask task per
   block of the values joins them into the block's vectors
   (:func:`~geoanom.features.vectors.block_features`). A block that holds
   the whole grid makes its neighbours and background itself, in that task.

Nothing is computed here: the result is a dask array chunked like the cube.
"""

from __future__ import annotations

import warnings
from typing import Sequence

import dask.array as da
import numpy as np
import xarray as xr

from ..errors import CoordinateError, GeoanomWarning, NoDataError, VariableNotFoundError
from ..grid import spatial_dims, wraps_in_longitude
from ..io.levels import LEVEL_ADVICE, variable_levels
from ..io.safety import INTEGER_SOURCE
from ..resident import resident_array
from .climatology import Climatology
from .regions import RegionParams
from .vectors import IN_BLOCK_SETS, block_features, context_features, feature_names

__all__ = ["default_variables", "feature_cube", "gridded_variables", "joined_blocks", "source_name", "stack_variables"]


def source_name(cube: xr.Dataset) -> str:
    """How to name the cube in an error message: its file, or 'the cube'.

    Examples
    --------
    >>> source_name(xr.Dataset(attrs={"geoanom_source": "tas.nc"}))
    "'tas.nc'"
    """
    source = cube.attrs.get("geoanom_source")
    return f"'{source}'" if source else "the cube"


def gridded_variables(cube: xr.Dataset) -> list[str]:
    """Data variables that span time and both spatial dimensions: those a model can take.

    Examples
    --------
    >>> gridded_variables(cube)  # doctest: +SKIP
    ['tas', 'tas_qc']
    """
    dims = set(spatial_dims(cube)) | {"time"}
    return [str(name) for name, var in cube.data_vars.items() if dims <= set(var.dims)]


def default_variables(cube: xr.Dataset) -> list[str]:
    """The gridded variables a model takes when none are named: measurements, not flags or codes.

    Integer and boolean variables (quality flags, masks, category codes;
    packed measurements are floats once decoded) and CF flag variables
    (``flag_values``, ``flag_masks``) are left out: their anomalies in
    spreads mean nothing (a QC flag's 1 was 59 spreads). Named, they are
    modelled. When every gridded variable is such a one, all are taken.

    Examples
    --------
    >>> default_variables(cube)  # doctest: +SKIP
    ['tas']
    """
    gridded = gridded_variables(cube)
    measured = [name for name in gridded if _is_measurement(cube[name])]
    return measured or gridded


def _is_measurement(variable: xr.DataArray) -> bool:
    """A float variable, not read from integers by :func:`geoanom.open_cube`, and not a CF flag."""
    return (variable.dtype.kind == "f" and INTEGER_SOURCE not in variable.encoding
            and not {"flag_values", "flag_masks"} & set(variable.attrs))


def stack_variables(cube: xr.Dataset | xr.DataArray, variables: Sequence[str] | str | None = None) -> xr.DataArray:
    """The selected variables as one dask-backed array (variable, time, *spatial).

    The variable axis is a single chunk, so every block holds whole feature
    vectors. A DataArray is taken as a one-variable cube.

    Parameters
    ----------
    cube : xarray.Dataset or xarray.DataArray
        With a time dimension and two spatial ones.
    variables : str or sequence of str, optional
        By default every variable over time and space.

    Returns
    -------
    xarray.DataArray
        float32 if every variable is at most 4 bytes wide, else float64.

    Raises
    ------
    CoordinateError, VariableNotFoundError, NoDataError
        No time dimension; an unknown variable; no variable over time and space.

    Examples
    --------
    >>> stack_variables(cube, "tas").dims  # doctest: +SKIP
    ('variable', 'time', 'lat', 'lon')
    """
    if isinstance(cube, xr.DataArray):
        cube = cube.to_dataset(name=cube.name or "values")
    if "time" not in cube.dims:
        raise CoordinateError(f"{source_name(cube)} has no time dimension; open it with geoanom.open_cube.")
    dims = spatial_dims(cube)
    if isinstance(variables, str):
        variables = [variables]
    known = gridded_variables(cube)
    if not variables:
        variables = default_variables(cube)
        if left_out := [name for name in known if name not in variables]:
            warnings.warn(f"{', '.join(left_out)} in {source_name(cube)} {'is' if len(left_out) == 1 else 'are'} left "
                          "out of the model: integer, boolean or CF flag variables are flags or codes, not "
                          "measurements; name the variables to model (variables=, --var) to include them.",
                          GeoanomWarning, stacklevel=3)
    variables = list(variables)
    for name in variables:
        if name not in known:
            raise VariableNotFoundError(
                f"variable '{name}' is not in {source_name(cube)}; known variables: {', '.join(known) or 'none'}."
            )
    if not variables:
        raise NoDataError(f"{source_name(cube)} has no variable over time, latitude and longitude.")
    for name in variables:  # open_cube chooses a level; a dataset opened otherwise may still have its levels
        if extra := variable_levels(cube, name, dims):
            described = ", ".join(str(axis) if axis else f"'{dim}' of size {cube.sizes[dim]}"
                                  for dim, axis in extra.items())
            raise CoordinateError(f"variable '{name}' in {source_name(cube)} has dimensions beyond time and the grid "
                                  f"({described}); {LEVEL_ADVICE}, or select one with .sel() first.")
    stacked = cube[variables].to_array("variable").transpose("variable", "time", *dims)
    stacked = stacked.astype("float32" if all(cube[v].dtype.itemsize <= 4 for v in variables) else "float64")
    if not isinstance(stacked.data, da.Array):
        stacked = stacked.chunk()
    return stacked.chunk({"variable": -1})


def feature_cube(values: xr.DataArray, climatology: Climatology, feature_sets: Sequence[str],
                 regions: RegionParams | None = None, *, training: bool = False,
                 anomalies: xr.DataArray | None = None) -> da.Array:
    """Every observation's feature vector (feature, time, *spatial), lazily, chunked like ``values``.

    Parameters
    ----------
    values : xarray.DataArray (variable, time, *spatial)
        From :func:`stack_variables`, on the climatology's grid.
    climatology : Climatology
    feature_sets : sequence of str
        As from :func:`~geoanom.features.vectors.check_feature_sets`; the
        features come in the order of
        :func:`~geoanom.features.vectors.feature_names`.
    regions : RegionParams, optional
        How the ``"regions"`` set finds regions; the defaults when None.
    training : bool, default False
        The values are the climatology's own training data: their anomalies
        are taken leave-one-out, so an observation does not set its own
        yardstick.
    anomalies : xarray.DataArray, optional
        ``climatology.standardise(values, training)``, when the caller needs
        it too (scoring writes it): one graph then computes it once.

    Returns
    -------
    dask.array.Array, float64
        NaN wherever a variable of the observation is NaN.

    Examples
    --------
    >>> features = feature_cube(values, clim, ("anomalies", "neighbours"))  # doctest: +SKIP
    >>> features.shape[0] == len(feature_names(["tas"], ("anomalies", "neighbours")))  # doctest: +SKIP
    True
    """
    if anomalies is None:
        anomalies = climatology.standardise(values, training)
    data, anomaly = values.data, anomalies.data
    wrap = wraps_in_longitude(values)
    # Blocks that hold the whole grid (one spatial chunk, the common case) make their neighbours and background
    # themselves, straight into their vectors: no halo (map_overlap copied each block with its periodic columns),
    # no concatenation of the context, no copy of it into the vectors. Blocks that split space need the halo.
    whole = all(len(chunks) == 1 for chunks in data.chunks[2:]) and anomaly.chunks[2:] == data.chunks[2:]
    in_block = tuple(name for name in IN_BLOCK_SETS if name in feature_sets) if whole else ()
    on_grid = tuple(name for name in feature_sets if name not in in_block)
    # how the neighbours held now stand for all of them (None: a model saved before it, missing ones left out)
    relation = climatology.neighbour_relation if "neighbours" in feature_sets else None
    if relation is not None:  # (2, variable, y, x) as (2 * variable, y, x): one contracted axis, one list of blocks
        relation = np.asarray(relation, dtype=np.float64)
        relation = resident_array(relation.reshape((-1,) + relation.shape[2:]), chunks=(-1,) + data.chunks[2:])
    context = context_features(values, anomaly, on_grid, regions or RegionParams(), wrap,
                               None if relation is None or "neighbours" not in on_grid
                               else relation.reshape((2, -1) + relation.shape[1:]))
    context_args = (context, "ctyx") if context is not None else (None, None)
    relation_args = (relation, "ryx") if relation is not None and "neighbours" in in_block else (None, None)
    n_features = len(feature_names([str(name) for name in values["variable"].values], feature_sets))
    # the variable and context axes, contracted, come as lists of blocks (concatenate=True copied even one block)
    return da.blockwise(
        _block_features, "ftyx", data, "vtyx", anomaly, "vtyx", *context_args, *relation_args,
        tuple(feature_sets), None, in_block, None, wrap, None,
        new_axes={"f": n_features}, concatenate=False, dtype=np.float64, meta=np.empty((0, 0, 0, 0)),
    )


def _block_features(values, anomalies, context, relation, feature_sets, in_block, wrap) -> np.ndarray:
    """:func:`block_features` of the lists of blocks ``da.blockwise(concatenate=False)`` gives a task."""
    if relation is not None:
        relation = joined_blocks(relation)
        relation = relation.reshape((2, -1) + relation.shape[1:])
    return block_features(joined_blocks(values), joined_blocks(anomalies),
                          None if context is None else joined_blocks(context), feature_sets, in_block, wrap, relation)


def joined_blocks(blocks: list | np.ndarray) -> np.ndarray:
    """One array from the blocks a task gets along its one contracted axis, the first (``concatenate=False``).

    A lone block is returned as it is: dask's ``concatenate=True`` copies
    even that one into a new array (630 MB of copies, 0.26 s of CPU, in the
    ``gmm`` fit + score of ``benchmarks/throughput.py``'s monthly cube).

    Examples
    --------
    >>> block = np.zeros((1, 2, 3))
    >>> joined_blocks([block]) is block
    True
    >>> joined_blocks([block, block]).shape
    (2, 2, 3)
    """
    if not isinstance(blocks, list):
        return blocks
    return blocks[0] if len(blocks) == 1 else np.concatenate(blocks, axis=0)
