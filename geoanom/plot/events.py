"""An event's footprint through time, on a map: the cells of one event of the catalogue, step by step.

An event is a connected set of flagged cells in (time, lat, lon), numbered
in a label cube (``geoanom.queries.event_labels``: int over the result's
time and spatial dimensions, 0 = no event). :func:`event_map` draws one
event: the cells it covers, filled by the step at which each first joined
it, and the outline of its footprint at every step, coloured by step, over
coastlines. Cells are the grid's own quadrilaterals
(:mod:`geoanom.plot.cells`), so regular, global and curvilinear grids draw
alike, and the map is centred on the event, across the antimeridian too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from ..errors import GeoanomError
from ..formatting import iso_date
from ..grid import wraps_in_longitude
from .cells import MapCells, draw_cells, frame_west, map_cells, outline_cells, set_extent, to_frame
from .coastlines import draw_coastlines
from .layout import map_layout, saved

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MAX_DATE_TICKS = 12  # more step labels than this on the colour bar would overlap
WINDOW_CELLS = 4  # the map shows at least this many cells around the event
WINDOW_SHARE = 0.2  # and this share of the event's size on each side
STEP_COLOURS = "viridis"


@dataclass(frozen=True)
class Footprint:
    """Where and when one event is.

    Attributes
    ----------
    event : int
        The event's id in the label cube.
    steps : ndarray of int
        Indices of the time steps the event covers, ascending.
    times : ndarray
        Their time values.
    mask : ndarray of bool (steps, rows, cols)
        The event's cells at each of those steps.
    sub_daily : bool
        The result's steps are less than a day apart.
    """

    event: int
    steps: np.ndarray
    times: np.ndarray
    mask: np.ndarray
    sub_daily: bool = False

    @property
    def union(self) -> np.ndarray:
        """Cells the event covers at any step (rows, cols)."""
        return self.mask.any(axis=0)

    @property
    def first_step(self) -> np.ndarray:
        """Position (0 = the event's first step) at which each cell joins the event; NaN outside it."""
        first = np.argmax(self.mask, axis=0).astype(float)
        return np.where(self.union, first, np.nan)

    def rolled(self, shift: int) -> "Footprint":
        """The same footprint with the grid's columns rolled by ``shift`` (see :func:`seam_shift`)."""
        return Footprint(self.event, self.steps, self.times, np.roll(self.mask, shift, axis=2), self.sub_daily)

    def dates(self) -> list[str]:
        """ISO dates of the event's steps (with the hour when steps are less than a day apart)."""
        return [iso_date(t, with_time=self.sub_daily) for t in self.times]


def event_footprint(result: xr.Dataset, labels: Any, event: int) -> Footprint:
    """The time steps and cells of one event of a label cube, in memory.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`AnomalyModel.score` the labels were computed from.
    labels : xarray.DataArray or array-like (time, *spatial)
        Event ids, 0 = no event (e.g. ``geoanom.queries.event_labels(result)``);
        lazy arrays are computed once, here.
    event : int
        The event's id.

    Raises
    ------
    GeoanomError
        Labels of another shape than the result, or an event id not in them.

    Examples
    --------
    >>> footprint = event_footprint(result, event_labels(result), 3)  # doctest: +SKIP
    >>> footprint.dates()  # doctest: +SKIP
    ['2007-01-16', '2007-02-15']
    """
    import dask

    labels = checked_labels(result, labels)
    if isinstance(event, bool) or not isinstance(event, (int, np.integer)) or event < 1:
        raise GeoanomError(f"event must be a positive integer id from the label cube, got {event!r}.")
    hits, highest = dask.compute((labels == event).data, labels.max().data)  # one pass over a lazy cube
    hits = np.asarray(hits, dtype=bool)
    steps = np.flatnonzero(hits.any(axis=(1, 2)))
    if steps.size == 0:
        raise GeoanomError(f"event {int(event)} is not in the label cube: its ids run from 1 to "
                           f"{int(highest)}." if int(highest) > 0 else
                           f"event {int(event)} is not in the label cube: it holds no event.")
    return Footprint(int(event), steps, result["time"].values[steps], hits[steps], _sub_daily(result["time"]))


def _sub_daily(times: xr.DataArray) -> bool:
    """True when time steps are less than a day apart (dates then give the hour)."""
    import pandas as pd

    if times.size < 2:
        return False
    steps = pd.to_timedelta(np.asarray(times.diff("time").values))
    return bool(np.nanmedian(np.abs(steps / pd.Timedelta(days=1))) < 1)


def checked_labels(result: xr.Dataset, labels: Any) -> xr.DataArray:
    """``labels`` as a DataArray on the result's (time, *spatial) dimensions; raise if its shape differs."""
    if "ensemble" not in result or "time" not in result.dims:
        raise GeoanomError("the result has no 'ensemble' flags over time; pass the output of model.score.")
    template = result["ensemble"]
    if isinstance(labels, xr.DataArray):
        labels = labels.transpose(*template.dims) if set(labels.dims) == set(template.dims) else labels
        if labels.dims != template.dims or labels.shape != template.shape:
            raise GeoanomError(f"the label cube {dict(labels.sizes)} is not on the result's grid "
                               f"{dict(template.sizes)}; pass event_labels(result) of this result.")
        return labels
    if tuple(np.shape(labels)) != template.shape:
        raise GeoanomError(f"the label cube's shape {tuple(np.shape(labels))} is not the result's "
                           f"{template.shape} (time, *spatial); pass event_labels(result) of this result.")
    return xr.DataArray(labels, dims=template.dims, coords=template.coords)


def event_map(result: xr.Dataset, labels: Any, event: int, *, ax: "Axes | None" = None,
              fill: bool = True, path: str | os.PathLike | None = None) -> "Figure":
    """A map of one event's footprint through time, with coastlines.

    Each cell of the event is filled with the colour of the step at which it
    first joined the event, and the event's outline at every step is drawn
    in that step's colour (one line collection per step, ``gid``
    ``"event-step-<i>"``); cells with data are light grey, cells without
    (land on an ocean grid) white. The map is centred on the event, in the
    longitude frame where it is contiguous (an event across the
    antimeridian is drawn in one piece), with a margin of a few cells.

    Parameters
    ----------
    result : xarray.Dataset
        Output of :meth:`AnomalyModel.score` (or a stored copy).
    labels : xarray.DataArray or array-like (time, *spatial)
        The event label cube of ``result`` (0 = no event), e.g.
        ``geoanom.queries.event_labels(result)``.
    event : int
        The event to draw: an id of the label cube (the ``event`` column of
        ``geoanom.queries.events(result)``).
    ax : matplotlib.axes.Axes, optional
        Draw into these axes instead of a new figure.
    fill : bool, default True
        Fill the cells by the step of first occurrence (else outlines only).
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    GeoanomError
        Not a scored result, labels of another grid, or an unknown event id.

    Examples
    --------
    >>> import geoanom as ga
    >>> from geoanom.queries import event_labels, events  # doctest: +SKIP
    >>> labels = event_labels(result)  # doctest: +SKIP
    >>> biggest = events(result).sort_values("cells").event.iloc[-1]  # doctest: +SKIP
    >>> fig = event_map(result, labels, biggest, path="event.png")  # doctest: +SKIP
    """
    from matplotlib.cm import ScalarMappable

    footprint = event_footprint(result, labels, event)
    title = _title(result, footprint)
    cells, shift = _event_cells(result, footprint)
    footprint = footprint.rolled(shift)
    window = around(cells, footprint.union)
    if ax is None:
        layout = map_layout(window, 1)
        fig = layout.figure()
        ax = fig.subplots()
    else:
        fig, layout = ax.figure, None
    valid = np.roll(result["fused_irregularity"].isel(time=footprint.steps).notnull().any("time").values, shift, 1)
    draw_cells(ax, cells, np.where(valid, 0.0, np.nan), cmap=_grey(), zorder=0)
    cmap, norm = _draw_steps(ax, cells, footprint, fill)
    set_extent(ax, window)
    draw_coastlines(ax, cells)
    ax.set(xlabel="longitude", ylabel="latitude", title=title)
    bar = fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label="time step of the event", shrink=0.8)
    _date_ticks(bar, footprint.dates())
    if layout is not None:
        layout.shape(ax)
    return saved(fig, path)


def _event_cells(result: xr.Dataset, footprint: Footprint) -> tuple[MapCells, int]:
    """The grid's cells in the longitude frame where the event is contiguous, and the columns they were rolled by.

    On a global grid the columns are rolled so that the event does not touch
    the arrays' first or last column: its outline is one piece, with no edge
    along the seam.
    """
    cells = map_cells(result["tile"])
    union = footprint.union & cells.drawable
    if not union.any():
        raise GeoanomError(f"event {footprint.event} has no cell that can be drawn on a map.")
    cells = reframed(cells, frame_west(cells.lon[union]))
    shift = seam_shift(union) if wraps_in_longitude(result["tile"]) else 0
    return rolled(cells, shift), shift


def _draw_steps(ax: "Axes", cells: MapCells, footprint: Footprint, fill: bool):
    """The cells filled by their first step (if ``fill``) and one outline per step; returns the colour map and norm."""
    cmap, norm = step_colours(len(footprint.steps))
    if fill:
        draw_cells(ax, cells, footprint.first_step, cmap=cmap, norm=norm, alpha=0.55, zorder=1, gid="event-first-step")
    width = 1.6 if len(footprint.steps) <= MAX_DATE_TICKS else 0.8  # many steps: thinner lines, less clutter
    for i, mask in enumerate(footprint.mask):
        outline_cells(ax, cells, mask, colors=[cmap(norm(i))], linewidths=width, zorder=2, gid=f"event-step-{i}")
    return cmap, norm


def reframed(cells: MapCells, west: float) -> MapCells:
    """The same cells in the longitude frame starting at ``west`` (each cell moved by whole turns)."""
    lon = to_frame(cells.lon, west)
    corners = cells.corners.copy()
    corners[..., 0] += (lon - cells.lon)[..., None]
    return MapCells(west, cells.lat, lon, corners, cells.drawable)


def seam_shift(mask: np.ndarray) -> int:
    """Columns to roll a wrapping grid by so that the cells of ``mask`` do not touch its first or last column.

    On a global grid the last column meets the first; rolled so that the
    middle of the widest run of columns without a cell of ``mask`` comes
    first, an event across the grid's edge is contiguous in the arrays, and
    its outline has no edge along the seam.

    Examples
    --------
    >>> mask = np.zeros((2, 8), bool); mask[:, [0, 7]] = True
    >>> np.flatnonzero(np.roll(mask, seam_shift(mask), axis=1).any(axis=0)).tolist()
    [3, 4]
    """
    empty = ~mask.any(axis=0)
    if empty.all() or not empty.any():
        return 0
    n = empty.size
    doubled = np.concatenate([empty, empty]).astype(int)  # runs of empty columns, circularly
    best, best_start, run = 0, 0, 0
    for k, value in enumerate(doubled):
        run = run + 1 if value else 0
        if run > best and run <= n:
            best, best_start = run, k - run + 1
    middle = (best_start + best // 2) % n
    return int(-middle % n)


def rolled(cells: MapCells, shift: int) -> MapCells:
    """The cells with their columns rolled by ``shift`` (a wrapping grid only)."""
    if not shift:
        return cells
    lat, lon, corners, drawable = (np.roll(a, shift, axis=1) for a in (cells.lat, cells.lon, cells.corners,
                                                                        cells.drawable))
    return MapCells(cells.west, lat, lon, corners, drawable)


def around(cells: MapCells, mask: np.ndarray) -> MapCells:
    """The cells whose centres lie near the cells of ``mask``: a map window around them."""
    corners = cells.corners[mask]
    west, east = corners[..., 0].min(), corners[..., 0].max()
    south, north = corners[..., 1].min(), corners[..., 1].max()
    size = np.median(np.ptp(corners[..., 0], axis=-1)), np.median(np.ptp(corners[..., 1], axis=-1))
    pad_lon = max(WINDOW_CELLS * size[0], WINDOW_SHARE * (east - west))
    pad_lat = max(WINDOW_CELLS * size[1], WINDOW_SHARE * (north - south))
    near = ((cells.lon >= west - pad_lon) & (cells.lon <= east + pad_lon)
            & (cells.lat >= south - pad_lat) & (cells.lat <= north + pad_lat))
    return MapCells(cells.west, cells.lat, cells.lon, cells.corners, cells.drawable & (near | mask))


def step_colours(n_steps: int):
    """A colour map and a norm giving each of ``n_steps`` steps (0, 1, ...) its own colour."""
    from matplotlib import colormaps
    from matplotlib.colors import BoundaryNorm

    cmap = colormaps[STEP_COLOURS].resampled(max(n_steps, 2))
    return cmap, BoundaryNorm(np.arange(n_steps + 1) - 0.5, cmap.N)


def _date_ticks(bar: Any, dates: list[str]) -> None:
    """Label the colour bar's steps with their dates, at most :data:`MAX_DATE_TICKS` of them."""
    every = int(np.ceil(len(dates) / MAX_DATE_TICKS))
    ticks = np.arange(0, len(dates), every)
    bar.set_ticks(ticks, labels=[dates[i] for i in ticks])


def _grey():
    from matplotlib.colors import ListedColormap

    return ListedColormap(["0.9"])


def _title(result: xr.Dataset, footprint: Footprint) -> str:
    """``event 3: 2007-01-16 to 2007-03-16 (3 steps), up to 41 cells; peak fused irregularity 12.3``."""
    dates = footprint.dates()
    fused = result["fused_irregularity"].isel(time=footprint.steps).values
    peak = np.nanmax(np.where(footprint.mask, fused, np.nan)) if np.isfinite(fused[footprint.mask]).any() else np.nan
    steps = len(dates)
    when = dates[0] if steps == 1 else f"{dates[0]} to {dates[-1]}"
    largest = int(footprint.mask.sum(axis=(1, 2)).max())
    return (f"event {footprint.event}: {when} ({steps} step{'s' * (steps > 1)}), up to {largest} "
            f"cell{'s' * (largest > 1)} at once; peak fused irregularity {peak:.3g}")


def spatial_slices(mask: np.ndarray) -> tuple[slice, slice]:
    """The smallest (row, col) slices holding every true cell of a 2-D mask."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1)


__all__ = ["Footprint", "around", "checked_labels", "event_footprint", "event_map", "reframed", "rolled",
           "seam_shift", "spatial_slices", "step_colours"]
