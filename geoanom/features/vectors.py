"""What each observation's feature vector holds: the feature sets, their names, and one block's vectors.

Feature sets, per variable, in this order:

``"values"``
    the value and its standardised anomaly (the reference paper's setup).
    Needed to judge cells by another tile's model (Florida by Hudson Bay's),
    since the anomaly of a cell is always taken from its own climatology.
``"anomalies"``
    the standardised anomaly alone (dropped when ``"values"`` is chosen,
    which holds it).
``"neighbours"``
    the trimmed mean anomaly of the cell's eight neighbours at the same time
    step, their largest and smallest left out, those of the other sign than
    a cell beyond one spread read as 0; the cells two away where none of the
    eight has a climatology (:func:`~geoanom.features.neighbourhood.neighbour_anomaly`).
    A coherent event raises it; noise, a lone spike or an event of the other
    sign beside the cell does not. In a step with gaps the mean over the
    neighbours holding data stands for the mean over all of them, from the
    climatology's ``neighbour_relation``: a model of full fields judges a
    cloudy month as a full one.
``"background"``
    the mean anomaly of a ring of cells 3 to 7 cells away
    (:func:`~geoanom.features.neighbourhood.background_anomaly`): the
    large-scale state of the cell's region, against which the ``event``
    family judges the cell and its neighbours.
``"regions"``
    the denoised anomaly and the log area of the anomalous region around the
    cell (:func:`~geoanom.features.neighbourhood.region_context`).

The default, ``("anomalies", "neighbours")``, judges each observation by
how far it is from its cell's expected value and by whether its neighbours
agree. The raw value is left out because, within a tile, it varies with the
season and from cell to cell for reasons that have nothing to do with an
event: as a feature it made every family rank observations worse than the
anomaly alone (``benchmarks/accuracy.py``).

``"background"`` is for the ``event`` family, which conditions on it: with
it, that family's mean ROC AUC on the real SST rises from 0.765 to 0.846 and
on the warming North America record from 0.649 to 0.781, and its false alarms
there fall from 6.0% to 3.5% and from 51% to 23%. A model with the ``event``
family gets it by default (:func:`geoanom.model.family_inputs.default_features`), and
only that family reads it (:class:`geoanom.detectors.Ensemble`'s
``columns``): the other families would score it as one more coordinate, so
the cells around an event, whose ring it reaches, would be flagged too
(on ``tests/test_background.py``'s cube, one run with the columns switched
off: 71% of the normal cells within 7 cells of a blob for ``gmm`` reading
the ring; the test keeps it under 4%). Asked for without the ``event``
family, it is left out with a warning.

:func:`geoanom.features.pipeline.feature_cube` lays :func:`block_features` and
:func:`context_features` over a chunked cube, for fitting, scoring and the
federated rows alike.
"""

from __future__ import annotations

from typing import Sequence

import dask.array as da
import numpy as np
import xarray as xr
from numba import njit

from ..errors import GeoanomError
from .neighbourhood import (
    background_anomaly,
    background_anomaly_block,
    neighbour_anomaly,
    neighbour_anomaly_block,
    region_context,
)
from .regions import RegionParams

FEATURE_SETS = ("values", "anomalies", "neighbours", "background", "regions")
DEFAULT_FEATURES = ("anomalies", "neighbours")
CONTEXT_SETS = ("neighbours", "background", "regions")  # computed over the grid (dask), not cell by cell
AROUND_THE_CELL = ("neighbours", "background")  # sets without the cell's own value (regions smooth it in)
IN_BLOCK_SETS = ("neighbours", "background")  # context sets a block holding the whole grid computes by itself


def check_feature_sets(features: Sequence[str] | str) -> tuple[str, ...]:
    """The chosen feature sets, in canonical order; raise on an unknown name.

    Examples
    --------
    >>> check_feature_sets("neighbours,anomalies".split(","))
    ('anomalies', 'neighbours')
    >>> check_feature_sets("background")
    Traceback (most recent call last):
    geoanom.errors.GeoanomError: features background describe only the cells around each cell, ...
    """
    chosen = [features] if isinstance(features, str) else list(features)
    unknown = sorted(set(chosen) - set(FEATURE_SETS))
    if unknown or not chosen:
        raise GeoanomError(f"features must be a non-empty choice of {', '.join(FEATURE_SETS)}; "
                           f"got {', '.join(map(str, unknown or chosen)) or 'nothing'}.")
    if set(chosen) <= set(AROUND_THE_CELL):
        raise GeoanomError(f"features {', '.join(chosen)} describe only the cells around each cell, not the cell "
                           "itself, so no cell could be judged anomalous; add 'anomalies' (the default is "
                           f"{','.join(DEFAULT_FEATURES)}).")
    if "values" in chosen:  # the values set holds the anomalies
        chosen = [name for name in chosen if name != "anomalies"]
    return tuple(name for name in FEATURE_SETS if name in chosen)


def feature_names(variables: Sequence[str], feature_sets: Sequence[str] = ("values",)) -> list[str]:
    """Names of the feature vector's entries for the given variables and feature sets.

    Examples
    --------
    >>> feature_names(["sst"])
    ['sst', 'sst_anomaly']
    >>> feature_names(["sst"], ("anomalies", "neighbours"))
    ['sst_anomaly', 'sst_neighbours']
    """
    names: list[str] = []
    if "values" in feature_sets:
        names += list(variables)
    if "values" in feature_sets or "anomalies" in feature_sets:
        names += [f"{name}_anomaly" for name in variables]
    if "neighbours" in feature_sets:
        names += [f"{name}_neighbours" for name in variables]
    if "background" in feature_sets:
        names += [f"{name}_background" for name in variables]
    if "regions" in feature_sets:
        names += [f"{name}_smoothed" for name in variables] + [f"{name}_region_area" for name in variables]
    return names


def context_features(values: xr.DataArray, anomalies: da.Array, feature_sets: Sequence[str],
                     params: RegionParams, wrap: bool,
                     relation: da.Array | np.ndarray | None = None) -> da.Array | None:
    """The grid-wide features (feature, time, y, x) of the chosen sets, chunked like ``values``; None if none.

    ``anomalies`` are the values' standardised anomalies (variable, time, y, x),
    from the climatology the features are for; ``relation`` (2, variable, y, x)
    its :attr:`~geoanom.features.Climatology.neighbour_relation`, for the neighbours.

    Examples
    --------
    >>> z = clim.standardise(values).data  # doctest: +SKIP
    >>> extra = context_features(values, z, ("anomalies", "neighbours"), RegionParams(), False)  # doctest: +SKIP
    """
    if not set(feature_sets) & set(CONTEXT_SETS):
        return None
    parts = []
    if "neighbours" in feature_sets:
        parts.append(neighbour_anomaly(anomalies, wrap, relation))
    if "background" in feature_sets:
        parts.append(background_anomaly(anomalies, wrap))
    if "regions" in feature_sets:
        parts.append(region_context(anomalies, values, params, wrap))
    return da.concatenate(parts, axis=0).rechunk((-1,) + values.data.chunks[1:])


def block_features(values: np.ndarray, anomalies: np.ndarray, context: np.ndarray | None,
                   feature_sets: Sequence[str], in_block: Sequence[str] = (), wrap: bool = False,
                   relation: np.ndarray | None = None) -> np.ndarray:
    """Feature cube (feature, time, *spatial) of one block, in the order of :func:`feature_names`.

    Parameters
    ----------
    values, anomalies : ndarray (variable, time, *spatial)
        The block's values and their standardised anomalies.
    context : ndarray (feature, time, *spatial) or None
        The block of :func:`context_features` for the context sets not in ``in_block``.
    feature_sets : sequence of str
    in_block : sequence of str, default ()
        Context sets (of ``IN_BLOCK_SETS``) computed here from ``anomalies``,
        written straight into the output: the block holds the whole grid.
    wrap : bool, default False
        The grid wraps in longitude (for ``in_block``).
    relation : ndarray (2, variable, *spatial), optional
        The climatology's neighbour relation, for ``"neighbours"`` in
        ``in_block`` (:func:`~geoanom.features.neighbourhood.neighbour_anomaly`).

    Examples
    --------
    >>> import numpy as np
    >>> block_features(np.ones((1, 2, 3, 3)), np.zeros((1, 2, 3, 3)), None, ("values",)).shape
    (2, 2, 3, 3)
    >>> block_features(np.ones((1, 2, 3, 3)), np.zeros((1, 2, 3, 3)), None, ("anomalies", "neighbours"),
    ...                in_block=("neighbours",)).shape
    (2, 2, 3, 3)
    """
    n_vars = values.shape[0]
    rows = {name: (2 if name == "regions" else 1) * n_vars for name in FEATURE_SETS if name in feature_sets}
    if "values" in rows:  # the values set holds the anomalies
        rows["anomalies"] = n_vars
    # written into one output: no block-sized temporary besides it (24 -> 16 bytes per observation
    # for the default features, benchmarks/pipeline_memory.py); the sets computed here go straight into it
    out = np.empty((sum(rows.values()),) + values.shape[1:], dtype=np.float64)
    start, first_context, taken = 0, None, 0
    for name in FEATURE_SETS:
        if name not in rows:
            continue
        part = out[start:start + rows[name]]
        if name in CONTEXT_SETS and first_context is None:
            first_context = start
        if name == "values":
            part[...] = values
        elif name == "anomalies":
            part[...] = anomalies
        elif name == "neighbours" and name in in_block:
            neighbour_anomaly_block(anomalies, wrap, out=part, relation=relation)
        elif name == "background" and name in in_block:
            part[...] = background_anomaly_block(anomalies, wrap)
        else:  # computed over the grid (context_features)
            part[...] = context[taken:taken + rows[name]]
            taken += rows[name]
        start += rows[name]
    if first_context is not None:
        # a grid-wide feature is NaN only where the value is: keep NaN input NaN
        _nan_where_missing(values, out, first_context)
    return out


# One pass, no block-sized masks (numpy: isfinite, all, invert): the same cells as ~np.isfinite(values).all(axis=0).
@njit(cache=True, nogil=True)
def _nan_where_missing(values, out, first):  # pragma: no cover - compiled
    """NaN in ``out[first:]`` wherever a variable of ``values`` (variable, time, y, x) is not finite."""
    n_vars, n_times, n_rows, n_cols = values.shape
    for t in range(n_times):
        for i in range(n_rows):
            for j in range(n_cols):
                for v in range(n_vars):
                    if not np.isfinite(values[v, t, i, j]):
                        for f in range(first, out.shape[0]):
                            out[f, t, i, j] = np.nan
                        break
