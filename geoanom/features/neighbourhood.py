"""Features of each observation's neighbourhood at its time step, for the detector ensemble.

``neighbours`` (:func:`neighbour_anomaly`)
    the trimmed mean anomaly of the cell's eight neighbours (the largest
    and smallest left out), those of the other sign than a cell beyond one
    spread read as 0: high around a coherent event, near zero beside a lone
    spike, and no evidence of an event at the cell from an event of the
    other sign beside it. In a step with gaps, the mean over the neighbours
    holding data stands for the mean over all that held data in training
    (the climatology's ``neighbour_relation``), so a model of full fields
    judges a cloudy month as it judges a full one.
``background`` (:func:`background_anomaly`)
    the mean standardised anomaly of a ring of cells around the neighbours
    (up to seven cells away, beyond two): the large-scale state the cell's
    region shares (a warm year, El Nino, a warming climate), which the event
    family judges the cell and its neighbours against.
``regions`` (:func:`region_context`), per variable:
    ``{variable}_smoothed``, the denoised standardised anomaly (Gaussian then
    median filter), and ``{variable}_region_area``, log10(1 + area in km^2)
    of the anomalous region containing the cell, 0 outside any region.

The anomalies come from the model's own climatology, so training and
scoring see the same features.
"""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr
from numba import njit

from ..grid import cell_areas
from .region_stats import region_parts
from .regions import RegionParams, denoise, region_mask
from .ring import ring_mean
from .stitching import block_slices, label_regions

# the ring of the background: cells at most BACKGROUND_OUTER and more than BACKGROUND_INNER cells away
# (Chebyshev distance), so it leaves out the cell, its neighbours and theirs, which an event shares
BACKGROUND_OUTER, BACKGROUND_INNER = 7, 2
# the neighbours read the next ring out (two cells away) where the eight hold no data
NEIGHBOUR_HALO = 2
# a cell's own sign says which way an event there would move its neighbours only beyond this many spreads: inside
# it (two thirds of normal values) the sign is as likely noise, and every neighbour is read
SIGN_TRUSTED = 1.0


def neighbour_anomaly(anomalies: da.Array, wrap: bool, relation: da.Array | np.ndarray | None = None) -> da.Array:
    """The neighbours' evidence of an event at each cell (variable, time, y, x): their trimmed mean anomaly.

    An event at a cell shifts its anomaly ``z`` by ``delta`` and its
    neighbours' by ``alpha * delta``, ``0 <= alpha <= 1``
    (:mod:`geoanom.detectors.event`), never the other way. So where the
    cell's own sign is clear (``|z|`` beyond ``SIGN_TRUSTED``, one spread) a
    neighbour of the other sign is no evidence of an event there and reads
    as 0; the feature is the trimmed mean of the neighbours (the largest
    and smallest left out, of three or more). With every neighbour read as
    it is, a 3 x 3 cold blob of -5 spreads on the SST gave its warm
    neighbours a joint (z, n) no normal cell has: the ensemble flagged 75%
    of the 32 cells around it and ``ga.events`` reported one *warm* event
    of 56 cells; now 38% of them (warm El Nino cells of 1-2.3 spreads with
    warm neighbours) and one cold event of 44. The trim keeps one
    neighbour's spike from marking the cell (41% of a +8 spike's normal
    neighbours flagged with a plain mean). Inside one spread the cell's
    sign is as likely noise, and a weak event's neighbours must still
    count: leaving the other sign out there, or leaving such neighbours
    out rather than reading them as 0, cost 0.04-0.09 of fused ROC AUC on
    the white-noise blobs and a fifth of the mean average precision of
    ``benchmarks/accuracy.py``; this rule costs 0.002 and 0.006 of them.

    Where none of the eight ever holds data (without ``relation``: holds
    data now), the cells two away are read instead: a mean over no
    neighbour was 0, a point far off the ridge ``n ~ z`` of a smooth field,
    and half such cells were flagged. The result is exact across chunk
    edges (a two-cell halo) and across the antimeridian when ``wrap``.

    ``relation`` (2, variable, y, x), the climatology's
    :attr:`~geoanom.features.Climatology.neighbour_relation`, makes a mean
    over the neighbours that hold data now stand for the mean over those
    that held data in training
    (:mod:`geoanom.features.neighbour_relation`): with ``k`` of its ``K``
    neighbours with a climatology holding data, a cell's mean ``m``
    becomes ``b z + s (m - b z)``, ``b z`` the mean of a neighbour given
    the cell's own anomaly in training (``b``, the slope: about 0 in white
    noise, near 1 in a smooth field) and ``s`` the ratio of the spreads of
    a mean over ``K`` and over ``k`` departures from it (correlated
    ``rho``: ``s = sqrt(k / K)`` for independent ones, 1 for identical
    ones); with none held (``k = 0``), ``b z``: no evidence either way. A
    model fitted on full fields then sees in a gappy month what it learnt:
    without it the noisier mean over fewer neighbours (or the ring two
    away) flagged 11% of normal white noise with 30% of its cells kept at
    random, 0.9% whole; now 0.8%. Reading a missing neighbour as ``b z``
    instead (``s = k / K``) flagged 0.4%, but the evidence of the
    neighbours held was diluted: a blob's ROC AUC there fell from 0.81 to
    0.74. ``rho`` may be below 0 (down to ``-1/8``): a smooth field's
    opposite neighbours depart from ``b z`` in opposite directions;
    clipped at 0, its 30% kept month flagged 2.1 times the full one's
    share. Neighbours without a climatology (land, beyond the grid) are
    left out as before, so a cell with all of its neighbours holding data
    is as it was, to the bit. Without ``relation`` (a model saved before
    it), missing neighbours are left out.

    Parameters
    ----------
    anomalies : dask.array.Array (variable, time, y, x)
        Standardised anomalies.
    wrap : bool
        The grid wraps in longitude.
    relation : array (2, variable, y, x), optional
        Each cell's slope and correlation, NaN where it has no climatology.

    Returns
    -------
    dask.array.Array (variable, time, y, x), float64

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> z = np.array([[[[1.0, -3.0, 2.0], [-3.0, 2.0, 1.5], [-3.0, 1.0, 0.5]]]])  # a warm cell beside a cold event
    >>> float(neighbour_anomaly(da.from_array(z, chunks=(1, 1, 2, 2)), wrap=False)[0, 0, 1, 1].compute())  # the -3s read 0
    0.6666666666666666
    >>> z = np.full((1, 1, 3, 3), 0.5); z[0, 0, 0, 0] = 8.0  # a spike beside the centre
    >>> float(neighbour_anomaly(da.from_array(z), wrap=False)[0, 0, 1, 1].compute())
    0.5
    >>> z = np.full((1, 1, 3, 3), 0.5); z[0, 0, 1, 1] = 2.0  # five neighbours missing now, held data in training
    >>> z[0, 0, :, 2] = z[0, 0, 0, 1] = z[0, 0, 2, 1] = np.nan
    >>> float(neighbour_anomaly(da.from_array(z), wrap=False)[0, 0, 1, 1].compute())  # the three left
    0.5
    >>> relation = np.stack([np.full((1, 3, 3), 0.5), np.zeros((1, 3, 3))])  # b = 0.5, independent departures
    >>> round(float(neighbour_anomaly(da.from_array(z), wrap=False, relation=relation)[0, 0, 1, 1].compute()), 4)
    0.6938
    """
    if relation is None:
        return _with_halo(anomalies, _neighbour_trimmed_mean, NEIGHBOUR_HALO, wrap)
    # slope and correlation with the same halo as the anomalies (a neighbour's slope says whether it had a
    # climatology), each as one time step
    relation = da.asarray(relation, chunks=(-1, -1) + anomalies.chunks[2:]).astype(np.float64)
    return _with_halo(anomalies, _neighbour_trimmed_mean, NEIGHBOUR_HALO, wrap, relation[0][:, None],
                      relation[1][:, None])


def background_anomaly(anomalies: da.Array, wrap: bool) -> da.Array:
    """Mean anomaly of each cell's background ring (variable, time, y, x), over the ring's cells with data.

    The ring holds the cells 3 to 7 cells away (``BACKGROUND_INNER``,
    ``BACKGROUND_OUTER``); a cell whose ring has no data gets 0. Exact across
    chunk edges and, when ``wrap``, across the antimeridian (for grids at
    least 15 cells round).

    Examples
    --------
    >>> import dask.array as da, numpy as np
    >>> z = np.zeros((1, 1, 15, 15)); z[0, 0, 0, :] = 1.0
    >>> ring = background_anomaly(da.from_array(z, chunks=(1, 1, 8, 8)), wrap=False).compute()
    >>> round(float(ring[0, 0, 7, 7]), 4)  # 15 of the ring's 200 cells hold 1
    0.075
    """
    return _with_halo(anomalies, _ring_mean, BACKGROUND_OUTER, wrap)


def neighbour_anomaly_block(anomalies: np.ndarray, wrap: bool, out: np.ndarray | None = None,
                            relation: np.ndarray | None = None) -> np.ndarray:
    """:func:`neighbour_anomaly` of a block that holds the whole grid (variable, time, y, x), into ``out``.

    The same values to the bit as the chunked version, without its halo:
    the grid's edges have no cells beyond them, and with ``wrap`` the first
    and last columns are each other's neighbours. ``out`` (float64, the
    block's shape) saves an array where the caller has one to fill;
    ``relation`` (2, variable, y, x) as for :func:`neighbour_anomaly`.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.arange(9.0).reshape(1, 1, 3, 3)
    >>> float(neighbour_anomaly_block(z, wrap=False)[0, 0, 1, 1])  # the mean of 1 2 3 5 6 7
    4.0
    >>> round(float(neighbour_anomaly_block(z, wrap=True)[0, 0, 1, 0]), 4)  # 2 0 1, 5 4, 8 6 7 less 0 and 8
    4.1667
    """
    if out is None:
        out = np.empty(anomalies.shape, dtype=np.float64)
    slope, correlation = (None, None) if relation is None else relation
    _trimmed_mean_of_neighbours(anomalies, out, wrap, _plane_argument(slope), _plane_argument(correlation))
    return out


def background_anomaly_block(anomalies: np.ndarray, wrap: bool) -> np.ndarray:
    """:func:`background_anomaly` of a block that holds the whole grid (variable, time, y, x).

    The same values to the bit as the chunked version: with ``wrap`` the
    block is padded by the periodic columns its halo held, then trimmed.

    Examples
    --------
    >>> import numpy as np
    >>> z = np.zeros((1, 1, 15, 15)); z[0, 0, 0, :] = 1.0
    >>> round(float(background_anomaly_block(z, wrap=False)[0, 0, 7, 7]), 4)
    0.075
    """
    depth = min(BACKGROUND_OUTER, anomalies.shape[3] - 1) if wrap else 0
    if depth == 0:
        return _ring_mean(anomalies)
    padded = np.concatenate([anomalies[..., -depth:], anomalies, anomalies[..., :depth]], axis=3)
    return _ring_mean(padded)[..., depth:-depth]


def _with_halo(anomalies: da.Array, function, halo: int, wrap: bool, *planes: da.Array) -> da.Array:
    """``function`` over each block of spatial planes with a ``halo``-cell overlap (periodic in x when ``wrap``);
    ``planes`` (variable, 1, y, x), chunked like the anomalies in space, come with the same halo."""
    depth = {0: 0, 1: 0, 2: min(halo, anomalies.shape[2] - 1), 3: min(halo, anomalies.shape[3] - 1)}
    boundary = {0: "none", 1: "none", 2: "none", 3: "periodic" if wrap else "none"}
    if any(min(anomalies.chunks[axis]) < depth[axis] for axis in (2, 3)):  # map_overlap needs chunks >= halo
        chunks = {axis: max(2 * depth[axis], max(anomalies.chunks[axis])) for axis in (2, 3)}
        anomalies = anomalies.rechunk(chunks)
        planes = tuple(plane.rechunk(chunks) for plane in planes)
    if not planes:
        return anomalies.map_overlap(function, depth=depth, boundary=boundary, dtype=np.float64)
    planes = tuple(plane.rechunk({2: anomalies.chunks[2], 3: anomalies.chunks[3]}) for plane in planes)
    return da.map_overlap(function, anomalies, *planes, depth=depth, boundary=boundary, dtype=np.float64)


def _neighbour_trimmed_mean(block: np.ndarray, slope: np.ndarray | None = None,
                            correlation: np.ndarray | None = None) -> np.ndarray:
    """:func:`neighbour_anomaly` of one block of a halo'd array (float64): its edges have no cells beyond them.
    ``slope`` and ``correlation`` (variable, 1, y, x) are the block's, with the same halo."""
    out = np.empty(block.shape, dtype=np.float64)
    planes = (_plane_argument(None if plane is None else plane[:, 0]) for plane in (slope, correlation))
    _trimmed_mean_of_neighbours(block, out, False, *planes)
    return out


def _plane_argument(plane: np.ndarray | None) -> np.ndarray:
    """A plane for the compiled pass: C-ordered float64 (variable, y, x), or empty for none."""
    return np.empty((0, 0, 0)) if plane is None else np.ascontiguousarray(plane, dtype=np.float64)


# One compiled pass, the GIL released. A cell away from the block's edges takes its eight neighbours unrolled, in the
# loop's order (the same sums): 2x fewer cycles than the bounds and the centre test. With ``wrap`` the block is the
# whole grid: the first and last columns take each other's cells, in the order a block padded by map_overlap's
# periodic halo (``min(NEIGHBOUR_HALO, n_cols - 1)`` columns) gave, so the sums are the same to the bit without the
# padded copy (and, as that halo did, a grid narrower than the stencil counts a column twice). ``slope`` and
# ``correlation`` (variable, y, x; empty: none) say how a mean over the neighbours held now stands for the mean
# over those with a climatology (:func:`neighbour_anomaly`); a cell with all of them is as it was, to the bit.
@njit(cache=True, nogil=True)
def _trimmed_mean_of_neighbours(block, out, wrap, slope, correlation):  # pragma: no cover - compiled
    n_vars, n_times, n_rows, n_cols = block.shape
    reach = min(NEIGHBOUR_HALO, n_cols - 1) if wrap else NEIGHBOUR_HALO  # the columns a periodic halo held
    wrap = wrap and n_cols > 1  # one column round: no halo, as map_overlap's depth min(halo, n_cols - 1)
    known = slope.shape[0] > 0
    for v in range(n_vars):
        for t in range(n_times):
            for i in range(n_rows):
                inner_row = 0 < i < n_rows - 1
                for j in range(n_cols):
                    c = np.float64(block[v, t, i, j])
                    # the valid neighbours' count, sum, largest and smallest
                    s = (0, 0.0, -np.inf, np.inf)
                    if inner_row and 0 < j < n_cols - 1:
                        for jj in range(j - 1, j + 2):
                            s = _with_neighbour(np.float64(block[v, t, i - 1, jj]), c, s)
                        s = _with_neighbour(np.float64(block[v, t, i, j - 1]), c, s)
                        s = _with_neighbour(np.float64(block[v, t, i, j + 1]), c, s)
                        for jj in range(j - 1, j + 2):
                            s = _with_neighbour(np.float64(block[v, t, i + 1, jj]), c, s)
                    else:
                        s = _ring_of(block, v, t, i, j, 1, wrap, reach, c)
                    # the neighbours missing now that have a climatology (counted only where some are missing:
                    # a full field runs the loop above alone, as fast as without them)
                    missing = _missing_known(block, slope, v, t, i, j, wrap, reach) if known and s[0] < 8 else 0
                    if s[0] == 0 and missing == 0:  # no neighbour holds data, ever: the next ring out is the nearest
                        s = _ring_of(block, v, t, i, j, 2, wrap, reach, c)
                    count, total, largest, smallest = s
                    if count == 0:  # nothing within two cells: no evidence either way
                        mean = 0.0
                    elif count < 3:
                        mean = total / count
                    else:
                        mean = (total - largest - smallest) / (count - 2)
                    if missing:
                        mean = _stood_in(mean, count, missing, c, slope[v, i, j], correlation[v, i, j])
                    out[v, t, i, j] = mean


@njit(cache=True, nogil=True, inline="always")
def _stood_in(mean, held, missing, centre, slope, correlation):  # pragma: no cover - compiled
    """The mean of ``held`` neighbours as the mean of ``held + missing`` would be: its departure from the ridge
    ``slope * centre`` scaled to the spread of the whole set's (residuals of the given correlation)."""
    ridge = slope * centre
    if held == 0:
        return ridge
    whole = held + missing
    scale = np.sqrt((1.0 + (whole - 1) * correlation) / whole * held / (1.0 + (held - 1) * correlation))
    return ridge + scale * (mean - ridge)


@njit(cache=True, nogil=True)
def _ring_columns(j, step, n_cols, wrap, reach):  # pragma: no cover - compiled
    """The column ``step`` away from ``j`` (across the periodic halo's columns when ``wrap``), or -1 beyond."""
    if wrap:
        if not -reach <= j + step < n_cols + reach:  # beyond the periodic halo's columns
            return -1
        return (j + step) % n_cols
    jj = j + step
    return jj if 0 <= jj < n_cols else -1


@njit(cache=True, nogil=True)
def _ring_of(block, v, t, i, j, distance, wrap, reach, centre):  # pragma: no cover - compiled
    """The tally of :func:`_with_neighbour` over the cells exactly ``distance`` away (Chebyshev), row by row."""
    n_rows, n_cols = block.shape[2], block.shape[3]
    s = (0, 0.0, -np.inf, np.inf)
    for ii in range(max(i - distance, 0), min(i + distance + 1, n_rows)):
        for step in range(-distance, distance + 1):
            if max(abs(ii - i), abs(step)) != distance:
                continue
            jj = _ring_columns(j, step, n_cols, wrap, reach)
            if jj >= 0:
                s = _with_neighbour(np.float64(block[v, t, ii, jj]), centre, s)
    return s


@njit(cache=True, nogil=True)
def _missing_known(block, slope, v, t, i, j, wrap, reach):  # pragma: no cover - compiled
    """How many of the eight neighbours are missing at this step and have a climatology (a finite slope)."""
    n_rows, n_cols = block.shape[2], block.shape[3]
    missing = 0
    for ii in range(max(i - 1, 0), min(i + 2, n_rows)):
        for step in range(-1, 2):
            if ii == i and step == 0:
                continue
            jj = _ring_columns(j, step, n_cols, wrap, reach)
            if jj >= 0 and not np.isfinite(block[v, t, ii, jj]) and np.isfinite(slope[v, ii, jj]):
                missing += 1
    return missing


@njit(cache=True, nogil=True, inline="always")
def _with_neighbour(value, centre, s):  # pragma: no cover - compiled
    """A finite neighbour counted and taken into the sum, largest and smallest: as 0 when the centre is beyond
    ``SIGN_TRUSTED`` spreads and the neighbour is not of its sign."""
    count, total, largest, smallest = s
    if not np.isfinite(value):
        return s
    if abs(centre) > SIGN_TRUSTED and not value * centre > 0.0:  # the other sign: no evidence of an event here
        value = 0.0
    return count + 1, total + value, max(largest, value), min(smallest, value)


def _ring_mean(block: np.ndarray) -> np.ndarray:
    """The mean of each cell's valid ring cells (float64), 0 where it has none (:mod:`geoanom.features.ring`)."""
    return ring_mean(block, BACKGROUND_INNER, BACKGROUND_OUTER)


def region_context(anomalies: da.Array, values: xr.DataArray, params: RegionParams, wrap: bool) -> da.Array:
    """Region features (2 * n_variables, time, y, x), chunked like ``values`` (variable, time, y, x):
    every variable's denoised anomaly, then every variable's log10(1 + km^2) region area.

    Examples
    --------
    >>> context = region_context(clim.standardise(values).data, values, RegionParams(), False)  # doctest: +SKIP
    """
    chunks = values.data.chunks[1:]
    areas = cell_areas(values)
    smoothed, region_areas = [], []
    for index in range(values.sizes["variable"]):
        anomaly = anomalies[index]
        smoothed.append(denoise(anomaly, params, wrap).rechunk(chunks))
        labels = label_regions(region_mask(anomaly, params, wrap), params.structure, wrap)
        parts = region_parts(labels, anomaly.rechunk(labels.chunks), areas, np.zeros(areas.shape, dtype=np.int32))
        region_areas.append(_cell_region_area(labels, parts).rechunk(chunks))
    return da.stack(smoothed + region_areas).rechunk({0: -1})


def _cell_region_area(labels: da.Array, parts) -> da.Array:
    """log10(1 + area) of each cell's region, 0 outside regions."""
    lookup = dask.delayed(_area_lookup, pure=True)(parts)
    blocks = [
        dask.delayed(_area_block, pure=True)(block, where[0].start, lookup)
        for block, where in zip(labels.to_delayed(optimize_graph=False).ravel(), block_slices(labels.chunks))
    ]
    shapes = [tuple(part.stop - part.start for part in where) for where in block_slices(labels.chunks)]
    arrays = np.empty(labels.numblocks, dtype=object)
    for position, (block, shape) in zip(np.ndindex(*labels.numblocks), zip(blocks, shapes)):
        arrays[position] = da.from_delayed(block, shape, dtype=np.float64)
    return da.block(arrays.tolist())


def _area_lookup(parts: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (time << 32 | label) keys and log10(1 + area) of each region."""
    area = parts["area"].groupby(level=["time", "label"]).sum()
    keys = (area.index.get_level_values("time").to_numpy(np.int64) << 32) | area.index.get_level_values("label")
    order = np.argsort(keys)
    return keys[order], np.log10(1.0 + area.to_numpy()[order])


def _area_block(labels: np.ndarray, time_offset: int, lookup: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    keys, log_areas = lookup
    out = np.zeros(labels.shape, dtype=np.float64)
    t, y, x = np.nonzero(labels)
    wanted = ((t + time_offset).astype(np.int64) << 32) | labels[t, y, x]
    out[t, y, x] = log_areas[np.searchsorted(keys, wanted)]
    return out
