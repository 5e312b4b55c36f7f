"""One cell explained: its observations, expected value, spread band and flags."""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

import numpy as np
import xarray as xr

from .layout import saved
from .nearest import nearest_cell, nearest_description, nearest_grid_cell, variable_index

__all__ = ["cell", "decimal_years", "design_terms", "expected_label", "expected_terms", "nearest_cell",
           "nearest_grid_cell", "unscored_note", "variable_index", "zero_inflated"]

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from ..model import AnomalyModel

BAND_SPREADS = 2.0  # the picture of a cell shades the expected value +- this many spreads


def cell(model: "AnomalyModel", cube: xr.Dataset, *, lat: float, lon: float, variable: str | None = None,
         result: xr.Dataset | None = None, ax: "Axes | None" = None,
         path: str | os.PathLike | None = None) -> "Figure":
    """A picture of one grid cell: what geoanom expected there, what it saw, and what it flagged.

    The cell nearest to (``lat``, ``lon``) among those with data (see
    :func:`nearest_cell`; the title says how far it is from the point, and a
    point more than two grid spacings from every cell with data is refused)
    is drawn over the cube's time steps: its observations; the expected value
    of the model's climatology (``model.climatology.expected``: a robust
    fit of the training period's level and seasonal cycle, and its linear
    trend for a model fitted with ``trend="linear"``; the mean and seasonal
    cycle of a zero-inflated cell, as the legend says: see
    :func:`expected_terms`); a band of the expected value
    plus or minus two spreads (``model.climatology.spread_at``), where about
    95% of normal observations fall; the observations the ensemble flags
    (its majority, ``result["ensemble"]``) as red dots; and the training
    period shaded. A second panel shows the fused irregularity on a log
    scale against the detectors' threshold, 1. The ensemble judges value
    and anomaly together, tile by tile, so a flag does not follow the band
    exactly: the band shows the climatology, the dots the decision.

    Only that cell is read and scored: the cube is chunked so that the cell
    is a block of its own before anything is computed (a model with region
    features also reads the cells its regions can reach).

    Parameters
    ----------
    model : AnomalyModel
        The fitted model.
    cube : xarray.Dataset
        Data on the model's grid with the model's variables (e.g. from
        :func:`geoanom.open_cube`); every time step of it is drawn.
    lat, lon : float
        The point of interest, in degrees.
    variable : str, optional
        The variable drawn (default: the model's first). The flags judge
        every variable of the model together: with several, the legend and
        title say so, as a flagged step may be normal in the one drawn.
    result : xarray.Dataset, optional
        ``model.score(cube)`` (or a stored copy, e.g. ``xarray.open_zarr``),
        whose flags are drawn; only the cell is read from it. By default
        the cell is scored here.
    ax : matplotlib.axes.Axes, optional
        Draw the observations panel into these axes (without the
        irregularity panel) instead of a new figure.
    path : str or path-like, optional
        Also write the figure there (PNG, 110 dpi; the format by its extension).

    Returns
    -------
    matplotlib.figure.Figure
        The figure drawn on (``ax.figure`` when ``ax`` is given).

    Raises
    ------
    GeoanomError
        An unknown variable, a cube or result on another grid, or a point
        outside the grid or more than two grid spacings from any cell with
        data.

    Notes
    -----
    The title's first line names the cell, its second the flags; a third
    (:func:`unscored_note`) says why the cell has no scores when it has
    none (its tile was skipped in fitting, or it has no valid observation).

    Examples
    --------
    >>> import geoanom as ga
    >>> from geoanom.plot import cell
    >>> cube = ga.sample_cube("north_america")
    >>> model = ga.fit(cube.sel(time=slice(None, "1959")), detectors="gmm")
    >>> fig = cell(model, cube, lat=25.0, lon=-80.0, path="cell.png")  # doctest: +SKIP
    """
    import dask
    from matplotlib.figure import Figure

    from ..errors import GeoanomError, VariableNotFoundError
    from ..formatting import degrees, iso_date
    from ..grid import cell_centres
    from ..model.score import check_same_grid

    if isinstance(cube, xr.DataArray):
        cube = cube.to_dataset(name=cube.name or "values")
    index = variable_index(model, variable)
    name = model.variables[index]
    missing = [v for v in model.variables if v not in cube.data_vars]
    if missing:
        raise VariableNotFoundError(f"the cube has no variable '{missing[0]}' of the model; it has "
                                    f"{', '.join(map(str, cube.data_vars)) or 'none'}.")
    check_same_grid(model, cube)
    row, col = nearest_cell(model, lat, lon, name)
    dims = model.labels.dims
    where = {dims[0]: row, dims[1]: col}
    if result is None:
        result = model.score(_cell_alone(cube[model.variables], dims, row, col))
    elif tuple(result["ensemble"].shape[-2:]) != model.labels.shape:
        raise GeoanomError(f"the result's grid {tuple(result['ensemble'].shape[-2:])} is not the model's "
                           f"{model.labels.shape}; pass model.score(cube).")
    scored = result[["ensemble", "fused_irregularity"]].isel(where)
    observed = cube[name].isel(where)
    observed, scored = dask.compute(observed, scored)
    flagged_times = scored["time"].values[scored["ensemble"].values.astype(bool)]
    # Positions, not a selection: an empty selection of cftime dates loses its calendar (no .dt).
    in_flags = np.isin(observed["time"].values, flagged_times)
    if in_flags.sum() != flagged_times.size:
        raise GeoanomError("the result has time steps that are not in the cube; pass the cube it scored.")

    climatology = model.climatology.block(slice(row, row + 1), slice(col, col + 1))
    expected = climatology.expected(observed["time"])[index, :, 0, 0]
    spread = climatology.spread_at(observed["time"])[index, :, 0, 0]
    years = decimal_years(observed["time"])
    scored_years = decimal_years(scored["time"])
    flagged_years, flagged_values = years[in_flags], observed.values[in_flags]

    if ax is None:
        fig = Figure(figsize=(10, 6.5), layout="constrained")
        ax, lower = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    else:
        fig, lower = ax.figure, None
    start, end = (_year_of(str(model.attrs.get(key, ""))) for key in ("training_start", "training_end"))
    half_step = float(np.median(np.diff(years))) / 2 if years.size > 1 else 0.5
    if start is not None and end is not None:
        low, high = max(start - half_step, years.min() - half_step), min(end + half_step, years.max() + half_step)
        for axes in (ax, lower):
            if axes is not None and low < high:
                axes.axvspan(low, high, color="0.92", zorder=0, label="training period" if axes is ax else None)
    ax.fill_between(years, expected - BAND_SPREADS * spread, expected + BAND_SPREADS * spread, color="tab:blue",
                    alpha=0.2, linewidth=0, label=f"expected \u00b1 {BAND_SPREADS:g} spreads")
    ax.plot(years, expected, color="tab:blue", linewidth=1.5, label=expected_label(model, (row, col), name),
            gid="expected")
    ax.plot(years, observed.values, color="black", linewidth=0.7, marker=".", markersize=3, label="observations",
            gid="observations")
    others = [v for v in model.variables if v != name]  # the ensemble judges every variable together
    # a red dot near the expected value was flagged for another variable: the legend says so
    judged = (f"; {', '.join(model.variables)} judged together: a flag may come from {' or '.join(others)}"
              if others else "")
    ax.plot(flagged_years, flagged_values, linestyle="none", marker="o", markersize=6, markerfacecolor="red",
            markeredgecolor="darkred", label=f"flagged by the ensemble ({flagged_years.size}{judged})", gid="flagged")
    units = cube[name].attrs.get("units", "")
    ax.set_ylabel(f"{name} ({units})" if units else name)
    ax.legend(loc="best", fontsize="small")
    cell_lat, cell_lon = (float(np.asarray(c.values)[row, col]) for c in cell_centres(model.labels))
    tile = str(model.labels.values[row, col])
    fitted = expected_terms(model, (row, col), name)
    period = f"{iso_date(model.attrs.get('training_start', '?'))} to {iso_date(model.attrs.get('training_end', '?'))}"
    fused = scored["fused_irregularity"].values
    n_scored = int(np.isfinite(fused).sum())
    note = unscored_note(model, tile, n_scored)
    ax.set_title(
        f"{name}{f' ({units})' if units else ''} at {degrees(cell_lat, 'N', 'S', digits=2)} "
        f"{degrees(cell_lon, 'E', 'W', digits=2)}, "
        f"tile {tile} ({nearest_description(model.labels, lat, lon, row, col)})\n"
        f"expected value: {fitted} in training period {period}; "
        f"{flagged_years.size} of {n_scored} scored steps flagged" + (f"\n{note}" if note else ""),
        fontsize="medium", wrap=True,  # a long line (a trend, a long period) wraps instead of running off the figure
    )
    if lower is not None:
        if note:  # an empty panel must say why
            lower.text(0.5, 0.5, note, transform=lower.transAxes, ha="center", va="center", wrap=True,
                       color="darkred", gid="unscored", bbox={"facecolor": "white", "edgecolor": "0.7"})
        lower.semilogy(scored_years, fused, color="0.3", linewidth=0.8, marker=".", markersize=3, gid="fused")
        lower.axhline(1.0, color="red", linestyle="--", linewidth=0.8, label="detector thresholds")
        scored_flags = np.isin(scored["time"].values, flagged_times)
        lower.plot(scored_years[scored_flags], fused[scored_flags], linestyle="none", marker="o", markersize=5,
                   markerfacecolor="red", markeredgecolor="darkred")
        lower.set(ylabel="fused irregularity", xlabel="year")
        lower.legend(loc="upper left", fontsize="small")
    else:
        ax.set_xlabel("year")
    return saved(fig, path)


def expected_terms(model: "AnomalyModel", cell: tuple[int, int] | None = None, variable: str | None = None) -> str:
    """What the expected value of a cell (``cell``: row, col) of ``variable`` is, as text; of most cells without one.

    The climatology fits each cell robustly (Huber steps, then Tukey's
    bisquare), so its expected value is not the training mean where the
    values are skewed; only the zero-inflated cells (on their lowest value,
    dry or frozen, much of the time: ``weight_scale`` infinite, see
    :mod:`geoanom.features.point_mass`) are fitted by least squares, their
    mean and seasonal cycle.

    Examples
    --------
    >>> expected_terms(model)  # doctest: +SKIP
    'robust fit of the level and seasonal cycle'
    >>> expected_terms(rain_model, (3, 4))  # doctest: +SKIP
    'mean and seasonal cycle (zero-inflated cell)'
    """
    if cell is not None and zero_inflated(model, variable)[cell]:
        return f"{design_terms(model, 'mean')} (zero-inflated cell)"
    return f"robust fit of the {design_terms(model, 'level')}"


def expected_label(model: "AnomalyModel", cell: tuple[int, int], variable: str | None = None) -> str:
    """The legend's name of a cell's expected value: a robust fit, or a zero-inflated cell's mean.

    Examples
    --------
    >>> expected_label(model, (0, 0))  # doctest: +SKIP
    'expected value (robust seasonal fit)'
    """
    if zero_inflated(model, variable)[cell]:
        return f"expected value ({design_terms(model, 'mean')}, zero-inflated cell)"
    design = model.climatology.design
    return (f"expected value (robust {'seasonal ' if design.kind != 'none' else ''}fit"
            f"{' with trend' if design.trend else ''})")


def zero_inflated(model: "AnomalyModel", variable: str | None = None) -> np.ndarray:
    """Cells (bool, the grid's shape) of ``variable`` whose expected value is their mean, not a robust fit.

    Examples
    --------
    >>> int(zero_inflated(rain_model, "pr").sum())  # doctest: +SKIP
    37
    """
    return np.isinf(model.climatology.weight_scale[variable_index(model, variable)])


def design_terms(model: "AnomalyModel", first: str) -> str:
    """``first`` (mean, level), then the seasonal cycle and the linear trend where the model's design holds them.

    Examples
    --------
    >>> design_terms(model, "level")  # doctest: +SKIP
    'level and seasonal cycle'
    """
    design = model.climatology.design
    terms = [first] + (["seasonal cycle"] if design.kind != "none" else []) + (["linear trend"] if design.trend else [])
    return ", ".join(terms[:-1]) + " and " + terms[-1] if len(terms) > 1 else terms[0]


def unscored_note(model: "AnomalyModel", tile: str, n_scored: int) -> str:
    """Why a cell of ``tile`` with ``n_scored`` scored steps has none, or ``""`` when it has some.

    A tile skipped in fitting (``model.skipped``: too few valid
    observations) scores none of its cells, unless a federated fit scores
    it with its region's model.

    Examples
    --------
    >>> unscored_note(model, "6z", 0)  # doctest: +SKIP
    'tile 6z was skipped in fitting: only 66 valid observations (at least 100 needed); its cells are not scored'
    """
    reason = model.skipped.get(tile)
    if reason is not None and model.scoring_ensemble(tile) is None:
        return f"tile {tile} was skipped in fitting: {reason}; its cells are not scored"
    if n_scored:
        return ""
    if reason is not None:
        return f"tile {tile} was skipped in fitting: {reason}; its region's model scored no step of this cell"
    return "no step of this cell has a valid observation to score"


def decimal_years(times: xr.DataArray) -> np.ndarray:
    """Year plus the fraction of the year of each step, in the data's calendar: the plots' x axis.

    Any calendar (numpy dates, cftime ``noleap``, ``360_day``...); no steps give
    an empty array (xarray cannot tell an empty array of cftime dates is dates).

    Examples
    --------
    >>> import pandas as pd
    >>> decimal_years(xr.DataArray(pd.to_datetime(["2001-01-01", "2001-07-02"]), dims="time")).round(2)
    array([2001. , 2001.5])
    """
    from ..features.calendar import decimal_year

    if times.size == 0:
        return np.zeros(0)
    return decimal_year(times, "dayofyear")


def _cell_alone(cube: xr.Dataset, dims: tuple[str, ...], row: int, col: int) -> xr.Dataset:
    """The cube chunked so that cell (row, col) is a block of its own: scoring it computes that block only."""
    def around(size: int, k: int) -> tuple[int, ...]:
        return tuple(n for n in (k, 1, size - k - 1) if n)

    return cube.chunk({dims[0]: around(cube.sizes[dims[0]], row), dims[1]: around(cube.sizes[dims[1]], col)})


def _year_of(text: str) -> float | None:
    """Decimal year of a date written as ``YYYY-MM-DD...`` (any calendar, to within a day or so)."""
    match = re.match(r"\s*(-?\d+)-(\d{1,2})-(\d{1,2})", text)
    if not match:
        return None
    year, month, day = (int(g) for g in match.groups())
    return year + (month - 1) / 12 + (day - 1) / 365.25
