"""A cell's or an event region's values through time, against what the model expected, with flags.

:func:`event_timeseries` draws the observations of one grid cell, or the
mean over the cells of one event of the catalogue, against the expected
value and spread of the model's climatology (the one definition, see
:mod:`geoanom.features.climatology`), with the flagged steps marked, and
below it the fused irregularity against the detectors' threshold, 1.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..errors import GeoanomError, VariableNotFoundError
from ..formatting import degrees, iso_date
from .events import event_footprint, spatial_slices
from .explain import decimal_years, nearest_cell, variable_index
from .layout import saved
from .nearest import nearest_description

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import AnomalyModel

BAND_SPREADS = 2.0  # the expected value +- this many spreads is shaded: about 95% of normal observations
MAD_TO_SD = 1.4826  # a normal variable's standard deviation over its median absolute deviation
MIN_QUIET_STEPS = 10  # fewer steps outside the marked ones cannot tell how much a region's mean varies


@dataclass(frozen=True)
class Region:
    """The cells a series is drawn for, the steps it marks and how its title names it."""

    mask: np.ndarray  # (rows, cols) bool over the model's grid
    flagged: np.ndarray  # time values of the result to mark
    name: str
    flag_label: str


@dataclass(frozen=True)
class Series:
    """A region's mean observation, expected value and spread (over the cube's steps), and its peak fused score.

    ``spread`` is that of what is drawn: a cell's own, or the spread of the
    region's mean (:func:`regional_spread`), which ``band`` describes.
    """

    time: xr.DataArray
    observed: np.ndarray
    expected: np.ndarray
    spread: np.ndarray
    scored_time: xr.DataArray
    fused: np.ndarray
    band: str


def event_timeseries(model: "AnomalyModel", cube: xr.Dataset, result: xr.Dataset, *,
                     cell: tuple[float, float] | None = None, event: int | None = None, labels: Any = None,
                     variable: str | None = None, ax: "Axes | None" = None,
                     path: str | os.PathLike | None = None) -> "Figure":
    """A cell's or an event region's values against the expected value and spread, with flagged points marked.

    Give ``cell=(lat, lon)`` for the grid cell nearest to a point (see
    :func:`~geoanom.plot.nearest_cell`): its observations, and the steps
    the ensemble flags there. Or give ``event=`` and the label cube
    ``labels`` for the cells an event of the catalogue ever covers: their
    mean observation at each step (over the cells with data), and the
    steps the event lasts. Either is drawn over the cube's time steps
    against the expected value of the model's climatology and a band of
    plus or minus two spreads. For a cell the spread is the climatology's.
    For a region it is the spread of the region's mean, which is smaller
    than a cell's by how little its cells move together (about
    ``1 / sqrt(n)`` for ``n`` independent cells, the same for cells that
    move as one): the climatology has each cell's spread but not how cells
    vary together, so it is measured on the data, as the robust spread
    (median absolute departure) of the mean's departure from its expected
    value, over the steps the event does not cover, in units of the cells'
    mean spread (see :func:`regional_spread`); the legend gives it. A lower panel shows the fused
    irregularity (for a region, its peak over the cells) against the
    detectors' threshold, 1.

    Parameters
    ----------
    model : AnomalyModel
        The fitted model that scored ``result``.
    cube : xarray.Dataset
        The data on the model's grid, with the model's variables; every step
        of it is drawn (it may reach further back than the result).
    result : xarray.Dataset
        ``model.score(cube)`` or part of it (or a stored copy).
    cell : (float, float), optional
        A point (lat, lon), in degrees.
    event : int, optional
        An event id of ``labels`` (the ``event`` column of
        ``geoanom.queries.events(result)``).
    labels : xarray.DataArray or array-like (time, *spatial), optional
        The event label cube of ``result`` (``geoanom.queries.event_labels``); needed with ``event``.
    variable : str, optional
        The variable drawn (default: the model's first).
    ax : matplotlib.axes.Axes, optional
        Draw the values panel into these axes (without the irregularity panel).
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    GeoanomError
        Neither or both of ``cell`` and ``event``, an event without labels or
        not in them, a point outside the grid, an unknown variable, or a
        cube or result on another grid.

    Examples
    --------
    >>> fig = event_timeseries(model, cube, result, cell=(25.0, -80.0))  # doctest: +SKIP
    >>> fig = event_timeseries(model, cube, result, event=3, labels=event_labels(result),
    ...                        path="event3.png")  # doctest: +SKIP
    """
    from ..model.score import check_same_grid

    index = variable_index(model, variable)
    name = model.variables[index]
    if name not in cube.data_vars:
        raise VariableNotFoundError(f"the cube has no variable '{name}' of the model; it has "
                                    f"{', '.join(map(str, cube.data_vars)) or 'none'}.")
    check_same_grid(model, cube)
    if "ensemble" not in result or tuple(result["ensemble"].shape[-2:]) != model.labels.shape:
        raise GeoanomError(f"the result is not a score of the model's grid {model.labels.shape}; "
                           "pass model.score(cube).")
    region = _region(model, result, cell, event, labels, name)
    series = _series(model, cube, result, region, index)
    fig, ax = _draw(series, region, ax)
    units = cube[name].attrs.get("units", "")
    ax.set_ylabel(f"{name} ({units})" if units else name)
    period = f"{iso_date(model.attrs.get('training_start', '?'))} to {iso_date(model.attrs.get('training_end', '?'))}"
    band = f" and \u00b1 {BAND_SPREADS:g} spreads" if region.mask.sum() == 1 else ""  # a region's: see the legend
    ax.set_title(f"{name}{f' ({units})' if units else ''}, {region.name}\nexpected value{band}: "
                          f"the model's climatology of {period}; "
                          f"{region.flagged.size} steps marked", fontsize="medium")
    return saved(fig, path)


def _region(model: "AnomalyModel", result: xr.Dataset, cell: tuple[float, float] | None, event: int | None,
            labels: Any, name: str) -> Region:
    """The cells to draw and the steps to mark: one cell and its ensemble flags, or an event and its steps."""
    if (cell is None) == (event is None):
        raise GeoanomError("give either cell=(lat, lon) or event=<id> (with labels=), not "
                           f"{'both' if cell is not None else 'neither'}.")
    if cell is not None:
        lat, lon = cell
        row, col = nearest_cell(model, float(lat), float(lon), name)
        mask = np.zeros(model.labels.shape, dtype=bool)
        mask[row, col] = True
        dims = model.labels.dims
        flags = result["ensemble"].isel({dims[0]: row, dims[1]: col}).values.astype(bool)
        centre_lat, centre_lon = (float(np.asarray(c)[row, col]) for c in _centres(model))
        nearest = nearest_description(model.labels, float(lat), float(lon), row, col)
        where = (f"{degrees(centre_lat, 'N', 'S', digits=2)} {degrees(centre_lon, 'E', 'W', digits=2)}, tile "
                 f"{model.labels.values[row, col]} ({nearest})")
        return Region(mask, result["time"].values[flags], where, f"flagged by the ensemble ({int(flags.sum())})")
    if labels is None:
        raise GeoanomError(f"event {event} needs the label cube: pass labels=event_labels(result).")
    footprint = event_footprint(result, labels, event)
    tiles = sorted(set(np.asarray(model.labels.values)[footprint.union].tolist()))
    where = (f"mean of the {int(footprint.union.sum())} cells of event {footprint.event} "
             f"(tile{'s' * (len(tiles) > 1)} {', '.join(tiles[:6])}{', ...' * (len(tiles) > 6)})")
    return Region(footprint.union, footprint.times, where, f"steps of event {footprint.event} ({footprint.steps.size})")


def _centres(model: "AnomalyModel") -> tuple[np.ndarray, np.ndarray]:
    from ..grid import cell_centres

    return tuple(c.values for c in cell_centres(model.labels))


def _series(model: "AnomalyModel", cube: xr.Dataset, result: xr.Dataset, region: Region, index: int) -> Series:
    """Read the region's block of the cube and result, and average over its cells."""
    import dask

    rows, cols = spatial_slices(region.mask)
    dims = model.labels.dims
    where = {dims[0]: rows, dims[1]: cols}
    observed, fused = dask.compute(cube[model.variables[index]].isel(where), result["fused_irregularity"].isel(where))
    mask = region.mask[rows, cols]
    climatology = model.climatology.block(rows, cols)
    expected = climatology.expected(observed["time"])[index]
    spread = climatology.spread_at(observed["time"])[index]
    values = np.where(mask, np.asarray(observed.values, dtype=float), np.nan)
    valid = np.isfinite(values)  # the expected value and spread of the same cells as the mean observation
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # steps without data are NaN
        mean = np.nanmean(values, axis=(1, 2))
        mean_expected = np.nanmean(np.where(valid, expected, np.nan), axis=(1, 2))
        mean_spread = np.nanmean(np.where(valid, spread, np.nan), axis=(1, 2))
        peak = np.nanmax(np.where(mask, fused.values, np.nan), axis=(1, 2))
    n_cells = int(mask.sum())
    if n_cells == 1:
        band = f"expected \u00b1 {BAND_SPREADS:g} spreads"
        return Series(observed["time"], mean, mean_expected, mean_spread, fused["time"], peak, band)
    quiet = ~np.isin(observed["time"].values, region.flagged)
    factor, n_quiet = regional_spread(mean, mean_expected, mean_spread, quiet)
    if n_quiet < MIN_QUIET_STEPS:  # too few steps to measure: a cell's spread, the widest the mean's can be
        band = (f"expected \u00b1 {BAND_SPREADS:g} spreads of one cell (too few steps outside the event, "
                f"{n_quiet}, to measure the {n_cells}-cell mean's)")
    else:
        band = (f"expected \u00b1 {BAND_SPREADS:g} spreads of the {n_cells}-cell mean: {factor:.2f} of a cell's, "
                f"its robust spread over the {n_quiet} steps outside the event")
    return Series(observed["time"], mean, mean_expected, factor * mean_spread, fused["time"], peak, band)


def regional_spread(mean: np.ndarray, expected: np.ndarray, spread: np.ndarray,
                    quiet: np.ndarray) -> tuple[float, int]:
    """How much a region's mean varies, as a share of its cells' mean spread, and the steps that tell.

    The climatology knows each cell's spread but not how cells vary
    together, and a mean of ``n`` cells varies from ``1 / sqrt(n)`` of a
    cell's spread (independent cells) to all of it (cells moving as one).
    So it is measured: the departure of the mean from its expected value,
    in units of the cells' mean spread at that step (the spread's seasonal
    shape is kept), over the ``quiet`` steps (those the event does not
    cover); its median absolute value, scaled to a standard deviation, is
    robust to the other anomalies among them. A mean that is mostly exactly
    its expected value (discrete data) uses the root mean square instead.
    Fewer than :data:`MIN_QUIET_STEPS` usable steps give 1 (a cell's spread).

    Parameters
    ----------
    mean, expected, spread : numpy.ndarray (time,)
        The region's mean observation, the mean of its cells' expected
        values and the mean of their spreads, at each step.
    quiet : numpy.ndarray of bool (time,)
        Steps to measure on.

    Returns
    -------
    (float, int)
        The factor to multiply the cells' mean spread by, and the number of steps used.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> cells = rng.normal(size=(400, 25))  # 25 independent cells of spread 1
    >>> factor, steps = regional_spread(cells.mean(axis=1), np.zeros(400), np.ones(400), np.ones(400, bool))
    >>> round(factor, 1), steps  # about 1 / sqrt(25)
    (0.2, 400)
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        departure = (mean - expected) / spread
    usable = departure[quiet & np.isfinite(departure)]
    if usable.size < MIN_QUIET_STEPS:
        return 1.0, int(usable.size)
    factor = MAD_TO_SD * float(np.median(np.abs(usable)))
    if factor == 0.0:
        factor = float(np.sqrt(np.mean(usable ** 2)))
    return factor, int(usable.size)


def _draw(series: Series, region: Region, ax: "Axes | None") -> tuple["Figure", "Axes"]:
    """The values panel (and, on a new figure, the irregularity panel below it); the figure and values axes."""
    from matplotlib.figure import Figure

    if ax is None:
        fig = Figure(figsize=(10, 6.5), layout="constrained")
        ax, lower = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        fig, lower = ax.figure, None
    years = decimal_years(series.time)
    marked = np.isin(series.time.values, region.flagged)
    if marked.sum() != region.flagged.size:
        raise GeoanomError("the result has marked time steps that are not in the cube; pass the cube it scored.")
    low, high = series.expected - BAND_SPREADS * series.spread, series.expected + BAND_SPREADS * series.spread
    ax.fill_between(years, low, high, color="tab:blue", alpha=0.2, linewidth=0, label=series.band, gid="band")
    ax.plot(years, series.expected, color="tab:blue", linewidth=1.5, label="expected value", gid="expected")
    ax.plot(years, series.observed, color="black", linewidth=0.7, marker=".", markersize=3, label="observations",
            gid="observations")
    ax.plot(years[marked], series.observed[marked], linestyle="none", marker="o", markersize=6,
            markerfacecolor="red", markeredgecolor="darkred", label=region.flag_label, gid="flagged")
    ax.legend(loc="best", fontsize="small")
    if lower is None:
        ax.set_xlabel("year")
        return fig, ax
    scored_years = decimal_years(series.scored_time)
    lower.semilogy(scored_years, series.fused, color="0.3", linewidth=0.8, marker=".", markersize=3, gid="fused")
    lower.axhline(1.0, color="red", linestyle="--", linewidth=0.8, label="detector thresholds")
    in_flags = np.isin(series.scored_time.values, region.flagged)
    lower.plot(scored_years[in_flags], series.fused[in_flags], linestyle="none", marker="o", markersize=5,
               markerfacecolor="red", markeredgecolor="darkred")
    lower.set(ylabel="fused irregularity" if region.mask.sum() == 1 else "peak fused irregularity", xlabel="year")
    lower.legend(loc="upper left", fontsize="small")
    return fig, ax
