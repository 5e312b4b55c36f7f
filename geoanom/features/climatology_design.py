"""Choosing the climatology's design: what the training times support, and each cell's order by robust PRESS.

:meth:`Climatology.fit <geoanom.features.Climatology.fit>` calls
:func:`design_and_prefix`: the harmonics the record pins down are the
candidates (a gap in the year under their half-period rules one out), and
each group of cells (a geohash tile) takes the one with the least leave-one-out
error summed over its cells, capped by each cell's own values. The
per-block PRESS is :func:`geoanom.features.press.press_block`.
"""

from __future__ import annotations

import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..errors import GeoanomWarning, NoDataError, RecordTooShortError
from ..formatting import iso_date
from .calendar import (
    MAX_ANNUAL,
    MAX_DIURNAL,
    Design,
    annual_phase,
    decimal_year,
    diurnal_phase,
    largest_phase_gap,
    season_kind,
    supported_harmonics,
)
from .press import AnnualCoverage, press_block, press_sample
from .robust import MIN_STEPS


def design_and_prefix(data: da.Array, time: xr.DataArray, trend: str | None, groups: np.ndarray | None, what: str,
                      scheduler: Any) -> tuple[Design, np.ndarray]:
    """The design the training values support, and how many of its columns each cell uses (variable, *spatial).

    :meth:`Climatology.fit <geoanom.features.Climatology.fit>`'s choice: the
    candidates are the nested designs the steps holding values pin down; each
    group of cells takes the one with the least summed robust PRESS, capped by
    each cell's own values. Warns where the design is simpler than asked, and
    for cells whose values cover less of the year than the record's or are
    too few for a climatology.

    Parameters
    ----------
    data : dask array (variable, time, y, x)
        The training values, float64, each block holding the whole record.
    time : DataArray
        The training times.
    trend : {None, "linear"}
        Asked of the design.
    groups : ndarray of int (*spatial), optional
        Cells that choose together (negative: none); the whole field when None.
    what : str
        Names the data in messages.
    scheduler : optional
        Passed to :func:`dask.compute`.

    Raises
    ------
    RecordTooShortError
        Fewer than ``MIN_STEPS`` steps hold any value.
    NoDataError
        No cell holds ``MIN_STEPS`` valid values.

    Examples
    --------
    >>> design, prefix = design_and_prefix(data, values["time"], None, None, "'sst' in sst.nc", None)  # doctest: +SKIP
    >>> prefix.shape  # doctest: +SKIP
    (1, 18, 432)
    """
    # The design must follow the steps that hold data, not the time axis: a record whose first two years are
    # NaN covers what its valid steps cover. Those steps come out of the same pass as the PRESS of the design
    # the time axis supports (one read of the data); only where they tell a different story is it repeated.
    design, notes = _design_and_notes(time, trend, what)
    prefixes = _candidates(design, time.size)
    scores, holds_data, cell_counts = _press(data, time, design, prefixes, groups, scheduler, steps=True)
    n_valid = int(holds_data.sum())
    if 0 < n_valid < time.size:  # none: the all-NaN error below
        if n_valid < MIN_STEPS:
            raise RecordTooShortError(
                f"the training period of {what} has {n_valid} time step{'' if n_valid == 1 else 's'} holding any"
                f" value ({time.size} in all, the rest NaN); a climatology needs at least {MIN_STEPS}.")
        first, last = (iso_date(time.values[holds_data][i]) for i in (0, -1))
        # the kind of record stays the time axis's: monthly values with every other month NaN are still monthly
        valid_design, notes = _design_and_notes(time[holds_data], trend,
                                                f"{what} (values only from {first} to {last})", design.kind)
        if valid_design != design or _candidates(valid_design, n_valid) != prefixes:
            design, prefixes = valid_design, _candidates(valid_design, n_valid)
            scores = _press(data, time, design, prefixes, groups, scheduler)
    for note in notes:
        warnings.warn(note, GeoanomWarning, stacklevel=3)  # the caller of Climatology.fit
    if design.n_annual:  # each cell's own coverage of the year: the last plane
        scores, gap = scores[:-1], scores[-1]
        _warn_partial_cells(gap, scores[-1], largest_phase_gap(annual_phase(time[holds_data], design.kind)), what)
    press, limit = scores[:-1], scores[-1]
    if not (limit > 0).any():
        raise NoDataError(f"no cell of {what} has {MIN_STEPS} valid observations in the training period; the "
                          "selected data may be all NaN.")
    _warn_sparse_cells(cell_counts, what)
    prefix = _chosen_prefix(press, limit, prefixes, groups)
    return design, prefix


def choose_design(time: xr.DataArray, trend: str | None, what: str) -> Design:
    """The richest design the training times support, with a warning where it is simpler than asked.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> time = xr.DataArray(pd.date_range("2000-01-15", periods=36, freq="MS"), dims="time")
    >>> choose_design(time, None, "tas").n_annual
    6
    """
    design, notes = _design_and_notes(time, trend, what)
    for note in notes:
        warnings.warn(note, GeoanomWarning, stacklevel=3)
    return design


def _design_and_notes(time: xr.DataArray, trend: str | None, what: str,
                      kind: str | None = None) -> tuple[Design, list[str]]:
    """:func:`choose_design`'s design, and the warnings it would give, unsaid; ``kind`` from the times by default."""
    kind = season_kind(time) if kind is None else kind
    n_annual = n_diurnal = 0
    notes = []
    if MAX_ANNUAL[kind]:
        phase = annual_phase(time, kind)
        n_annual = supported_harmonics(phase, MAX_ANNUAL[kind])
        gap = largest_phase_gap(phase)
        if n_annual == 0:
            notes.append(f"the training period of {what} covers only {1 - gap:.0%} of the year, too little to fit "
                         "a seasonal cycle: anomalies are departures from the period's mean, so other seasons "
                         "may look anomalous; train on a full year or more.")
        elif gap > 1.5 / 12:
            notes.append(f"the training period of {what} leaves {gap:.0%} of the year uncovered: the expected "
                         f"value there is extrapolated by {n_annual} harmonic(s) of the year.")
    if MAX_DIURNAL[kind]:
        n_diurnal = supported_harmonics(diurnal_phase(time), MAX_DIURNAL[kind])
    years = decimal_year(time, kind)
    span = float(years.max() - years.min())
    if trend == "linear" and _years_covered(years) < 3.0 - 1e-6:
        covered = np.floor(_years_covered(years) * 100) / 100  # never rounded up to the 3.00 it falls short of
        notes.append(f"the training period of {what} covers {covered:.2f} years, too short to tell a "
                     "trend from variability: using a fixed baseline (trend=None); a trend needs at least 3 years.")
        trend = None
    origin = round(float(years.min() + span / 2), 6)
    return Design(kind, trend == "linear", origin, n_annual, n_diurnal), notes


def _years_covered(years: np.ndarray) -> float:
    """The years ``n`` steps (decimal years) cover: first to last, and the last step's own length.

    36 months cover 3 years, not the 2.92 from the first to the last.

    Examples
    --------
    >>> round(_years_covered(np.arange(36) / 12 + 2000.0), 6)
    3.0
    """
    steps = np.diff(np.unique(years))
    return float(years.max() - years.min()) + (float(np.median(steps)) if steps.size else 0.0)


def _candidates(design: Design, n_steps: int) -> list[int]:
    """The nested candidates a record of ``n_steps`` values can fit (2 q + 4 values for q columns)."""
    return [q for q in design.prefixes if 2 * q + 4 <= n_steps] or [design.n_fixed]


def _press(data: da.Array, time: xr.DataArray, design: Design, prefixes: list[int], groups: np.ndarray | None,
           scheduler: Any, steps: bool = False):
    """Every candidate's robust PRESS and each cell's usable prefix (candidate + 1, variable, *spatial).

    With ``steps``, also whether each time step holds any value and how many valid values each cell holds
    (variable, *spatial), from the same read of the data.
    """
    columns = design.columns(time)
    annual = _annual_coverage(time, design) if design.n_annual else None
    # one candidate (annual data, say): nothing to choose, so no cell's PRESS is needed, only its data count
    sampled = press_sample(groups, data.shape[2:]) if len(prefixes) > 1 else np.zeros(data.shape[2:], dtype=bool)
    sampled = da.from_array(sampled, chunks=data.chunks[2:])
    scores = da.map_blocks(press_block, data, sampled, columns, design.frequencies(time), prefixes, annual,
                           dtype=np.float64,
                           chunks=((len(prefixes) + 1 + (annual is not None),),) + data.chunks[1:])
    if not steps:
        return dask.compute(scores, scheduler=scheduler)[0]
    present = da.isfinite(data)
    return dask.compute(scores, present.any(axis=(0, 2, 3)), present.sum(axis=1), scheduler=scheduler)


def _annual_coverage(time: xr.DataArray, design: Design) -> AnnualCoverage:
    """Each step's phase of the year (to a day's precision or better) and the columns holding k harmonics."""
    phase = annual_phase(time, design.kind)
    _, first, step_bin = np.unique(np.round(phase, 4), return_index=True, return_inverse=True)
    bin_phase = phase[first]  # unrounded: twelve months are 1/12 apart exactly, which six harmonics need
    columns = np.asarray(design.prefixes[design.n_diurnal:design.n_diurnal + design.n_annual + 1], dtype=np.int64)
    return AnnualCoverage(step_bin.ravel(), bin_phase, columns)


def _warn_partial_cells(gap: np.ndarray, limit: np.ndarray, field_gap: float, what: str) -> None:
    """One warning for the cells whose own values leave more of the year uncovered than the record's do."""
    fitted = limit > 0
    partial = fitted & (gap > 1.5 / 12) & (gap > field_gap + 1e-9)
    if partial.any():
        warnings.warn(f"{int(partial.sum())} of {int(fitted.sum())} cells of {what} hold values that leave more of "
                      f"the year uncovered than the training period does (up to {float(gap[partial].max()):.0%}): "
                      "their expected value there is extrapolated by the harmonics of the year their values support.",
                      GeoanomWarning, stacklevel=4)  # the caller of Climatology.fit


def _warn_sparse_cells(counts: np.ndarray, what: str) -> None:
    """One warning for the cells with values but fewer than ``MIN_STEPS`` of them: they get no climatology."""
    sparse = (counts > 0) & (counts < MIN_STEPS)
    if sparse.any():
        warnings.warn(f"{int(sparse.sum())} of {int((counts > 0).sum())} cells of {what} hold fewer than {MIN_STEPS} "
                      "valid values in the training period: they get no climatology, and their observations are left "
                      "unscored (NaN).", GeoanomWarning, stacklevel=4)  # the caller of Climatology.fit


def _chosen_prefix(press: np.ndarray, limit: np.ndarray, prefixes: list[int], groups: np.ndarray | None) -> np.ndarray:
    """Columns per cell: the candidate with the least summed PRESS in the cell's group, capped by its data."""
    n_vars = press.shape[1]
    codes = np.zeros(press.shape[2:], dtype=np.int64) if groups is None else np.asarray(groups, dtype=np.int64)
    codes = np.where(codes < 0, codes.max(initial=0) + 1, codes)  # ungrouped cells choose together
    chosen = np.zeros(press.shape[1:], dtype=np.int64)
    for v in range(n_vars):
        sums = np.stack([np.bincount(codes.ravel(), np.nan_to_num(p[v]).ravel(), minlength=codes.max() + 1)
                         for p in press])
        best = np.asarray(prefixes)[np.argmin(sums, axis=0)]
        chosen[v] = best[codes]
    return np.minimum(chosen, limit.astype(np.int64))
