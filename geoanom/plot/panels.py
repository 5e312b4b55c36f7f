"""One map panel of a result: a time step read, its cells filled, flags outlined, tiles named, coasts drawn.

Shared by the map writers in :mod:`geoanom.plot.maps`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import GeoanomError
from ..formatting import duration, iso_date
from ..grid import wraps_in_longitude
from ..model.result import tile_names
from .cells import MapCells, draw_cells, map_cells, outline_cells, set_extent, to_frame
from .coastlines import draw_coastlines

if TYPE_CHECKING:
    from matplotlib.axes import Axes

MAX_TILE_LABELS = 80  # more tile names than this would hide the map
IRREGULARITY_LABEL = "fused irregularity (log scale; 1 = detector thresholds)"


@dataclass(frozen=True)
class Step:
    """One time step of a result, in memory, with what its titles say."""

    data: xr.Dataset
    variable: str
    units: str
    date: str
    training: str
    scored_with: tuple[str, ...] = ()  # every variable the ensemble judged together (a multi-variable model)

    @property
    def anomaly(self) -> xr.DataArray | None:
        """The signed standardised anomaly of the variable, if the result holds it."""
        return self.data.get(f"{self.variable}_anomaly")

    def flagged_share(self) -> float:
        """Share of the cells with a score that the ensemble flags."""
        valid = self.data["fused_irregularity"].notnull()
        return float(self.data["ensemble"].where(valid, False).sum() / max(int(valid.sum()), 1))

    def has_scores(self) -> bool:
        return bool(self.data["fused_irregularity"].notnull().any())

    def flags_note(self) -> str:
        """Where the flags come from when the model judged several variables: "" for one.

        Examples
        --------
        >>> Step(None, "tos", "K", "2015-07-16", "", ("tos", "so", "pr")).flags_note()
        'the flags judge tos, so and pr together: a flag may come from so or pr, not from tos drawn here'
        """
        others = [v for v in self.scored_with if v != self.variable]
        if not others:
            return ""
        return (f"the flags judge {_listed(self.scored_with, 'and')} together: a flag may come from "
                f"{_listed(others, 'or')}, not from {self.variable} drawn here")

    def heading(self) -> str:
        """``tas (K), 2010-09-16``: the variable, its units and the time step."""
        return f"{self.variable}{f' ({self.units})' if self.units else ''}, {self.date}"


def time_step(result: xr.Dataset, time: int | str | None = -1, variable: str | None = None) -> Step:
    """One time step of a result (an index, a date understood by ``sel``, or None: the last with scores), in memory.

    A result already cut to one step (``result.isel(time=k)``, without a time
    dimension) is that step.

    Raises
    ------
    GeoanomError
        Not a result of ``model.score``, an index out of range, or an unknown variable.
    """
    if "time" not in result.dims and "time" in result.coords and result["time"].ndim == 0:
        # one step picked with result.isel(time=k) or .sel(time=date): the map of that step
        result = result.expand_dims("time")
        if "tile" in result:
            result["tile"] = result["tile"].isel(time=0, drop=True)
    missing = [name for name in ("fused_irregularity", "ensemble", "tile") if name not in result]
    if missing or "time" not in result.dims or result.sizes["time"] == 0:
        raise GeoanomError(f"cannot map this data set: it has no time steps or no '{(missing or ['time'])[0]}'; "
                           "pass the output of model.score.")
    variables = [v for v in str(result["fused_irregularity"].attrs.get("geoanom_variables", "")).split(",") if v]
    if variable is not None and variable not in variables:
        raise GeoanomError(f"the result has no variable '{variable}'; it scored {', '.join(variables) or 'none'}.")
    variable = variable or (variables[0] if variables else "values")
    step = result.isel(time=last_scored_step(result) if time is None else step_index(result, time))
    names = ["fused_irregularity", "ensemble", "tile"] + [n for n in (f"{variable}_anomaly",) if n in result]
    data = step[names].compute()
    data["tile"] = tile_names(data)
    anomaly = result.get(f"{variable}_anomaly")
    units = str(anomaly.attrs.get("geoanom_variable_units", "")) if anomaly is not None else ""
    return Step(data, variable, units, iso_date(data["time"].values, with_time=_sub_daily(result["time"])),
                training_period(result), tuple(variables))


def _listed(names, last: str) -> str:
    """``a, b and c``: names in a sentence."""
    names = list(names)
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} {last} {names[-1]}"


def _at_date(result: xr.Dataset, date: str, what: str = "the result") -> xr.Dataset:
    """The step at a date (its first step for a partial date, "2027"), else the nearest within half a time step.

    Only a date finer than half the typical step (a day of monthly data) is
    drawn at its nearest step: a coarser one ("2010-10" of monthly data)
    names the steps it spans, and there is none.
    """
    times = result["time"].values
    refusal = f"{what} has no time step at '{date}'; it runs from {iso_date(times[0])} to {iso_date(times[-1])}"
    try:
        step = result.sel(time=date)
    except (KeyError, TypeError, ValueError):
        step = None
    # a date between the steps of a sorted index selects no step (one outside it raises KeyError)
    if step is not None and step.sizes.get("time", 1) > 0:
        return step.isel(time=0) if "time" in step.dims else step
    nearest = _nearest_step(times, date)
    if nearest is None:
        raise GeoanomError(f"{refusal}.")
    index, distance, half = nearest
    if distance > half:
        raise GeoanomError(f"{refusal}, and its nearest step, {iso_date(times[index])}, is more than half a time "
                           f"step ({duration(half / pd.Timedelta(seconds=1))}) from it.")
    return result.isel(time=index)


def _nearest_step(times: np.ndarray, date: str) -> tuple[int, pd.Timedelta, pd.Timedelta] | None:
    """The nearest step to a date finer than half the typical step, its distance and that half; else None."""
    if times.size < 2:
        return None
    try:
        period = pd.Period(date)  # its resolution: "2010-10" spans a month, "2010-10-05" a day
    except (ValueError, TypeError, OverflowError):
        return None
    half = pd.to_timedelta(np.diff(times)).median() / 2  # the typical step: a gap in the record is no step
    if period.end_time - period.start_time >= half:
        return None
    when = period.start_time
    try:
        target = np.datetime64(when) if np.issubdtype(times.dtype, np.datetime64) else \
            type(times[0])(when.year, when.month, when.day, when.hour, when.minute, when.second,
                           calendar=times[0].calendar)
    except (ValueError, TypeError):  # a date its calendar lacks (2001-02-29 of noleap)
        return None
    distances = abs(pd.to_timedelta(np.asarray(times - target)))
    index = int(np.argmin(distances))
    return index, distances[index], half



def step_index(data: xr.Dataset | xr.DataArray, time: int | str, what: str = "the result") -> int:
    """The position of a time step given as an index or a date (as :func:`time_step` reads it), from coordinates.

    A partial date (``"2010"``, ``"2010-09"``) is its first step; a date
    between steps, finer than them (a day of monthly data), is the nearest
    step within half a time step, in any calendar. ``what`` names ``data``
    in the refusal.

    Raises
    ------
    GeoanomError
        No step at that date (or index), nor one within half a time step of
        it, with the span of the data.

    Examples
    --------
    >>> import pandas as pd
    >>> times = xr.Dataset(coords={"time": pd.date_range("2010-01-01", periods=24, freq="MS")})
    >>> step_index(times, "2010-09"), step_index(times, -1)
    (8, 23)
    """
    times = data["time"]
    if isinstance(time, (int, np.integer)):
        if not -times.size <= time < times.size:
            raise GeoanomError(f"time step {time} is out of range: {what} has {times.size} steps.")
        return int(time) % times.size
    chosen = _at_date(xr.Dataset(coords={"time": times}), str(time), what)["time"].values
    return int(np.flatnonzero(times.values == chosen)[0])


def last_scored_step(result: xr.Dataset) -> int:
    """The position of the last time step where some cell has a score (the last step when none has).

    Reads back from the end, 1, 2, 4... steps at a time, so a result whose
    last step has scores costs one step's read.

    Examples
    --------
    >>> last_scored_step(result)  # doctest: +SKIP
    53
    """
    fused = result["fused_irregularity"]
    others = [dim for dim in fused.dims if dim != "time"]
    end, size = fused.sizes["time"], 1
    while end > 0:
        start = max(end - size, 0)
        scored = np.asarray(fused.isel(time=slice(start, end)).notnull().any(others).values)
        if scored.any():
            return start + int(np.flatnonzero(scored)[-1])
        end, size = start, size * 2
    return fused.sizes["time"] - 1


def training_period(result: xr.Dataset) -> str:
    """``1860-01-16 to 1959-12-16``, from the result's provenance; ``unknown`` without it."""
    period = str(result["fused_irregularity"].attrs.get("geoanom_training_period", ""))
    if " to " not in period:
        return "unknown"
    start, end = period.split(" to ", 1)
    return f"{iso_date(start)} to {iso_date(end)}"


def _sub_daily(times: xr.DataArray) -> bool:
    """True when time steps are less than a day apart (titles then give the hour)."""
    if times.size < 2:
        return False
    steps = pd.to_timedelta(np.asarray(times.diff("time").values))
    return bool(np.nanmedian(np.abs(steps / pd.Timedelta(days=1))) < 1)


def colour_limit(steps: list[Step]) -> float:
    """Upper end of a log colour scale symmetric about 1: the 99th percentile, at least 2."""
    finite = np.concatenate([np.ravel(step.data["fused_irregularity"].values) for step in steps])
    finite = finite[np.isfinite(finite)]
    return max(float(np.percentile(finite, 99)) if finite.size else 10.0, 2.0)


def draw_irregularity(ax: "Axes", step: Step, vmax: float, cells: MapCells | None = None):
    """Fused irregularity of one step on ``ax``, the ensemble's flags outlined, tiles named, coasts drawn.

    The outline's legend is the figure's (:func:`geoanom.plot.layout.outline_legend`), outside the map.
    Returns the filled cells (a PolyCollection, for a colour bar).
    """
    from matplotlib.colors import LogNorm

    cells = cells or map_cells(step.data)
    # Log colours: irregularity spans orders of magnitude, and 1 is the threshold.
    mesh = draw_cells(ax, cells, step.data["fused_irregularity"].values, cmap="RdYlBu_r",
                      norm=LogNorm(vmin=1.0 / vmax, vmax=vmax))
    outline_cells(ax, cells, step.data["ensemble"].values, wraps_in_longitude(step.data), colors="black",
                  linewidths=0.8)
    _frame(ax, cells, step)
    _draw_tiles(ax, cells, step.data["tile"].values)
    return mesh


def draw_anomaly(ax: "Axes", step: Step, cells: MapCells | None = None):
    """The signed standardised anomaly of one step: red above the expected value, blue below, 0 white."""
    from matplotlib.colors import TwoSlopeNorm

    cells = cells or map_cells(step.data)
    values = step.anomaly.values
    finite = np.abs(values[np.isfinite(values)])
    limit = max(float(np.percentile(finite, 99)) if finite.size else 3.0, 3.0)  # at least +-3 spreads
    mesh = draw_cells(ax, cells, values, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, -limit, limit))
    outline_cells(ax, cells, step.data["ensemble"].values, wraps_in_longitude(step.data), colors="black",
                  linewidths=0.8)
    _frame(ax, cells, step)
    return mesh


def draw_field(ax: "Axes", field: xr.DataArray, **style):
    """Any (lat, lon) or curvilinear map on ``ax``, with coastlines; returns the filled cells."""
    cells = map_cells(field)
    mesh = draw_cells(ax, cells, np.asarray(field.values, dtype=float), **style)
    set_extent(ax, cells)
    draw_coastlines(ax, cells)
    _axis_labels(ax)
    if not np.isfinite(np.asarray(field.values, dtype=float)).any():
        _note(ax, "no cell has a value")
    return mesh


def _frame(ax: "Axes", cells: MapCells, step: Step) -> None:
    set_extent(ax, cells)
    draw_coastlines(ax, cells)
    _axis_labels(ax)
    if not step.has_scores():
        _note(ax, f"no cell has a score at {step.date}")


def _axis_labels(ax: "Axes") -> None:
    ax.set_xlabel("longitude")
    ax.set_ylabel("latitude")


def _note(ax: "Axes", text: str) -> None:
    ax.text(0.5, 0.5, text, transform=ax.transAxes, ha="center", va="center", fontsize="large",
            bbox={"facecolor": "white", "edgecolor": "0.5"})


def _draw_tiles(ax: "Axes", cells: MapCells, tiles: np.ndarray) -> None:
    """Name each tile at the mean position of its drawable cells, when there are few enough to read."""
    usable = cells.drawable
    if not usable.any() or len(np.unique(tiles[usable])) > MAX_TILE_LABELS:
        return
    frame = pd.DataFrame({"tile": tiles[usable], "lat": cells.lat[usable],
                          "x": np.cos(np.radians(cells.lon[usable])), "y": np.sin(np.radians(cells.lon[usable]))})
    for tile, row in frame.groupby("tile").mean().iterrows():
        # the circular mean: a tile astride the frame's edge is named at its middle, not across the map
        lon = to_frame(np.degrees(np.arctan2(row["y"], row["x"])), cells.west)
        ax.text(lon, row["lat"], str(tile), fontsize=6, ha="center", va="center", alpha=0.7, clip_on=True)
