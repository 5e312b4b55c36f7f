"""What a score returns: the dataset of each family's irregularity, flags, votes, fused score and anomalies.

:func:`result_dataset` assembles it lazily from the scored irregularities
(:mod:`geoanom.model.score`); :func:`tile_names` decodes the tiles a result
stores as CF flag codes.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import dask.array as da
import numpy as np
import xarray as xr

from .._version import __version__
from ..detectors.fusion import fuse, majority
from ..errors import GeoanomError
from ..features.pipeline import joined_blocks
from ..formatting import iso_date
from ..grid import spatial_dims
from ..io.fill_values import FILL_ATTR
from ..queries.event_stats import result_tiles

# The flags' codes, in the type the flags are written in (NetCDF stores a boolean as int8): CF wants them alike.
_FLAGS = np.array([0, 1], dtype=np.int8)

if TYPE_CHECKING:  # the model imports the score, which imports this module
    from .core import AnomalyModel

# Bytes of irregularity fused at a time (see fused_block).
FUSE_SLAB_BYTES = 4 * 2**20


def _fused(irregularity: xr.DataArray) -> xr.DataArray:
    """Fused irregularity over the detector axis, NaN where any family's is NaN: one task per block.

    Each block is fused over its first (detector) axis as scored, not a
    transposed copy, and its NaN put back in the same task: the same bits
    as ``apply_ufunc(fuse, ...)`` then ``where(notnull().all("detector"))``
    (``tests/test_score_path.py``), with a third of the block-sized float32
    temporaries and tasks.
    """
    data = irregularity.data
    families = tuple(str(name) for name in irregularity["detector"].values)
    if isinstance(data, da.Array):
        index = "dtyxuvw"[:data.ndim]  # the detector axis, contracted, as a list of blocks (concatenate=True copied it)
        fused = da.blockwise(functools.partial(_fused_of_blocks, families=families), index[1:], data.rechunk({0: -1}),
                             index, concatenate=False, dtype=np.float32,
                             meta=np.empty((0,) * (data.ndim - 1), dtype=np.float32))
    else:
        fused = fused_block(np.asarray(data), families)
    return irregularity.isel(detector=0, drop=True).copy(data=fused)


def _fused_of_blocks(blocks: list, families: tuple[str, ...]) -> np.ndarray:
    return fused_block(joined_blocks(blocks), families)


def fused_block(irregularity: np.ndarray, families: Sequence[str]) -> np.ndarray:
    """:func:`fuse` over axis 0 of one block (one entry per name of ``families``), NaN wherever a family's
    irregularity is NaN (float32).

    Fused a slab of time steps at a time: :func:`fuse`'s two block-sized
    temporaries (67 MB for an 8 MiB block of four families) shrink to a
    slab's, and each value is the same mean of the same terms.
    """
    if irregularity.ndim < 2:
        return _fused_slab(irregularity, families)
    out = np.empty(irregularity.shape[1:], dtype=np.float32)
    step = max(1, FUSE_SLAB_BYTES // max(irregularity[:, :1].nbytes, 1))
    for start in range(0, irregularity.shape[1], step):
        out[start:start + step] = _fused_slab(irregularity[:, start:start + step], families)
    return out


def _fused_slab(irregularity: np.ndarray, families: Sequence[str]) -> np.ndarray:
    fused = np.asarray(fuse(irregularity, families, axis=0), dtype=np.float32)
    fused[np.isnan(irregularity).any(axis=0)] = np.nan
    return fused


def result_dataset(model: "AnomalyModel", values: xr.DataArray, irregularity: da.Array, tile: str | None,
                   units: dict[str, str], anomalies: xr.DataArray, fills: dict[str, float]) -> xr.Dataset:
    """The result of a score: flags, votes and fused scores from ``irregularity``, and the variables' ``anomalies``.

    ``units`` and ``fills`` (the undeclared fill values open_cube took for
    missing) are the scored variables', carried into their anomalies' attributes.
    """
    dims = ("detector", "time") + spatial_dims(values)
    coords = {name: coord for name, coord in values.coords.items() if name != "variable"}
    # variable-length strings: Zarr v3 specifies them, not numpy's fixed-length ones
    coords["detector"] = np.array(list(model.detectors), dtype=object)
    irr = xr.DataArray(irregularity, dims=dims, coords=coords)
    anomalous = irr > 1.0
    votes = anomalous.sum("detector", dtype=np.int8)  # counted in int8: no int64 block before the cast
    provenance = model.provenance(scored_by=tile)
    out = xr.Dataset(
        {
            "irregularity": irr.assign_attrs(
                long_name="degree of irregularity per detector family (anomalous above 1)",
                units="1", comment="native score divided by the family's threshold", **provenance,
            ),
            "anomalous": anomalous.assign_attrs(
                long_name="anomaly flag per detector family", flag_values=_FLAGS,
                flag_meanings="normal anomalous", **provenance,
            ),
            "votes": votes.assign_attrs(
                long_name="number of detector families flagging the observation", units="1", **provenance,
            ),
            "ensemble": majority(votes, len(model.detectors)).assign_attrs(
                long_name="majority anomaly flag of the ensemble", flag_values=_FLAGS,
                flag_meanings="normal anomalous", **provenance,
            ),
            "fused_irregularity": _fused(irr).assign_attrs(
                long_name="geometric mean irregularity of the detector families, each view counted once "
                "(floored at 0.01)", units="1", **provenance,
            ),
            **_anomalies(model, anomalies, units, fills, provenance),
            "tile": _tile_flags(model, provenance),
        }
    )
    out.attrs.update(
        Conventions="CF-1.8",
        title="geoanom anomaly scores",
        source=f"geoanom {__version__}",
        history=f"scored with geoanom {__version__}; model fitted on {iso_date(model.attrs.get('training_start'))} "
        f"to {iso_date(model.attrs.get('training_end'))}",
    )
    return out


def _anomalies(model: "AnomalyModel", anomalies: xr.DataArray, units: dict[str, str], fills: dict[str, float],
               provenance: dict[str, str]) -> dict[str, xr.DataArray]:
    """``<variable>_anomaly``: the signed standardised anomaly of each variable (warm or cold, wet or dry).

    The same numbers as :meth:`AnomalyModel.anomalies` (the model's climatology's
    ``standardise``), float32 like the scores.
    """
    anomaly = anomalies.astype(np.float32)
    out = {}
    for name in model.variables:
        attrs = dict(long_name=f"standardised anomaly of {name} from the model's climatology", units="1",
                     comment="observation minus expected value, in spreads of the cell; positive above expected",
                     geoanom_variable=name, **provenance)
        if units.get(name):
            attrs["geoanom_variable_units"] = units[name]
        if name in fills:
            attrs[FILL_ATTR] = fills[name]  # the value of the scored file taken for missing (its anomaly is NaN)
        out[f"{name}_anomaly"] = anomaly.sel(variable=name, drop=True).assign_attrs(attrs)
    return out


def _tile_flags(model: "AnomalyModel", provenance: dict[str, str]) -> xr.DataArray:
    """Each cell's tile as CF flag-coded integers: codes index the geohashes in ``flag_meanings``.

    Zarr v3 specifies no fixed-length string type, and integer flags are
    smaller too; :func:`tile_names` decodes them.
    """
    codes = np.asarray(model.tile_codes, dtype=np.int32)
    labels = model.labels.reset_coords(drop=True)
    return xr.DataArray(codes, dims=labels.dims, coords=labels.coords).assign_attrs(
        long_name="geohash tile of the cell", flag_values=np.arange(len(model.tile_names), dtype=np.int32),
        flag_meanings=" ".join(str(name) for name in model.tile_names),
        geoanom_precision=str(model.precision), **{k: v for k, v in provenance.items() if k != "geoanom_precision"},
    )


def tile_names(result: xr.Dataset | xr.DataArray) -> xr.DataArray:
    """The geohash tile of every cell of a result, as text.

    A result stores ``tile`` as CF flag-coded integers (``flag_values``,
    ``flag_meanings``); this decodes them. Results stored as text by older
    versions are returned as they are.

    Parameters
    ----------
    result : xarray.Dataset or xarray.DataArray
        Output of :meth:`AnomalyModel.score` (or a stored copy), or its
        ``tile`` variable.

    Returns
    -------
    xarray.DataArray
        Geohash strings over the result's spatial dimensions.

    Raises
    ------
    GeoanomError
        The result has no ``tile`` variable, or its codes are not described
        by its ``flag_values`` and ``flag_meanings``.

    Examples
    --------
    >>> result = model.score(cube)  # doctest: +SKIP
    >>> (tile_names(result) == "dj").sum().item()  # doctest: +SKIP
    16
    """
    if isinstance(result, xr.DataArray):
        result = xr.Dataset({"tile": result})
    elif "tile" not in result:
        raise GeoanomError("the result has no 'tile' variable; pass the output of model.score.")
    codes, names = result_tiles(result)
    tile = result["tile"]
    return xr.DataArray(names[codes], dims=tile.dims, coords=tile.coords, name="tile")
