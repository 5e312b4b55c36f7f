"""Time as the climatology sees it: the kind of record, the phase of the year, the design columns.

The expected value of a cell is a linear model in columns that depend on
time alone: a mean, optionally a linear trend, then harmonics of the year
(and of the day, for sub-daily data) in order of priority. Harmonic fits of
increasing order are therefore nested prefixes of one design matrix, which
lets the climatology choose the order by cross-validation cheaply.

Phases follow the file's own calendar (``360_day``, ``noleap``, standard):
the phase of a monthly value is its month, (month - 1) / 12, so six
harmonics reproduce per-month means exactly; that of daily or finer data is
the fraction of its own year (``dayofyear`` and ``days_in_year``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import xarray as xr

from ..timesteps import step_days

KINDS = ("none", "month", "dayofyear", "subdaily")
# Highest annual harmonic offered: six on months is one mean per month (the
# saturated model); four on days resolves features about a month wide, which
# is what climate practice keeps of a daily cycle (three to four harmonics).
MAX_ANNUAL = {"none": 0, "month": 6, "dayofyear": 4, "subdaily": 4}
MAX_DIURNAL = {"none": 0, "month": 0, "dayofyear": 0, "subdaily": 2}
# Spreads vary by month for any sub-annual record (12 spread seasons), else one.
SPREAD_SEASONS = {"none": 1, "month": 12, "dayofyear": 12, "subdaily": 12}


def season_kind(time: xr.DataArray) -> str:
    """The kind of record, from its median time step.

    Returns ``"subdaily"`` (steps under 20 hours), ``"dayofyear"`` (up to two
    days), ``"month"`` (up to 45 days) or ``"none"`` (annual and coarser: no
    seasonal cycle).

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> season_kind(xr.DataArray(pd.date_range("2000", periods=24, freq="MS"), dims="time"))
    'month'
    """
    if time.size < 2:
        return "none"
    days = _median_step_days(time)
    if days < 20 / 24:
        return "subdaily"
    if days <= 2:
        return "dayofyear"
    if days <= 45:
        return "month"
    return "none"


def _median_step_days(time: xr.DataArray) -> float:
    return float(np.median(step_days(time)))


def annual_phase(time: xr.DataArray, kind: str) -> np.ndarray:
    """Fraction of the year at each time step, in [0, 1), in the data's calendar."""
    if kind == "month":
        return (time.dt.month.values - 1) / 12.0
    day = time.dt.dayofyear.values - 1 + _hour_fraction(time)
    return day / time.dt.days_in_year.values


def diurnal_phase(time: xr.DataArray) -> np.ndarray:
    """Fraction of the day at each time step, in [0, 1)."""
    return _hour_fraction(time)


def _hour_fraction(time: xr.DataArray) -> np.ndarray:
    return (time.dt.hour.values + time.dt.minute.values / 60.0 + time.dt.second.values / 3600.0) / 24.0


def spread_season(time: xr.DataArray, kind: str) -> np.ndarray:
    """Index of each time step's spread season: its month - 1 for sub-annual data, else 0."""
    if SPREAD_SEASONS[kind] == 1:
        return np.zeros(time.size, dtype=np.int16)
    return time.dt.month.values.astype(np.int16) - 1


def spread_window_steps(time: xr.DataArray, kind: str) -> float:
    """Consecutive steps a season's spread window (three months) spans in one year; the record's for one season.

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> spread_window_steps(xr.DataArray(pd.date_range("2000", periods=24, freq="MS"), dims="time"), "month")
    3.0
    """
    if SPREAD_SEASONS[kind] == 1:
        return float(time.size)
    per_year = 12.0 if kind == "month" else 365.25 / _median_step_days(time)
    return per_year * 3 / SPREAD_SEASONS[kind]


def season_blend(time: xr.DataArray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """The spread season each step leans towards and how far (time,): the next month's or the last month's.

    A daily or finer step's spread is its month's blended linearly with the
    nearer neighbouring month's, half and half at the boundary and its
    month's alone at the month's middle, so spreads do not step from one
    month to the next (they jumped by up to 33% between the last day of a
    month and the first of the next, where the true spread changed by 1%).
    Monthly and coarser steps lean nowhere (a blend of 0).

    Examples
    --------
    >>> import pandas as pd, xarray as xr
    >>> t = xr.DataArray(pd.to_datetime(["2001-01-16", "2001-01-31", "2001-02-01"]), dims="time")
    >>> other, blend = season_blend(t, "dayofyear")
    >>> other.tolist(), blend.round(3).tolist()
    ([1, 1, 0], [0.0, 0.484, 0.482])
    """
    season = spread_season(time, kind).astype(np.int64)
    if kind not in ("dayofyear", "subdaily"):
        return season, np.zeros(time.size)
    length = time.dt.days_in_month.values
    position = (time.dt.day.values - 0.5 + _hour_fraction(time)) / length - 0.5  # -0.5 .. 0.5 about the middle
    n_seasons = SPREAD_SEASONS[kind]
    other = np.where(position >= 0, (season + 1) % n_seasons, (season - 1) % n_seasons)
    return other, np.abs(position)


def decimal_year(time: xr.DataArray, kind: str) -> np.ndarray:
    """Year plus the phase of the year: the clock of the trend term."""
    return time.dt.year.values + annual_phase(time, "dayofyear" if kind == "none" else kind)


@dataclass(frozen=True)
class Design:
    """The columns of the expected-value model, in order of priority.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    trend : bool
        A linear trend column (per year, from ``origin``) follows the mean.
    origin : float
        Decimal year at which the trend term is zero (the training period's middle).
    n_annual, n_diurnal : int
        Highest harmonics of the year and of the day in the full design.
    """

    kind: str
    trend: bool
    origin: float
    n_annual: int
    n_diurnal: int

    @property
    def n_fixed(self) -> int:
        """Columns always fitted: the mean and the trend."""
        return 1 + int(self.trend)

    @property
    def names(self) -> list[str]:
        """Name of every column."""
        names = ["mean"] + (["trend"] if self.trend else [])
        for k in range(1, self.n_diurnal + 1):
            names += [f"day_cos{k}", f"day_sin{k}"]
        for k in range(1, self.n_annual + 1):
            names += [f"year_cos{k}"] + ([] if self._drops_sine(k) else [f"year_sin{k}"])
        return names

    @property
    def prefixes(self) -> list[int]:
        """Column counts of the nested candidate models, simplest first."""
        out, count = [self.n_fixed], self.n_fixed
        for _ in range(self.n_diurnal):
            count += 2
            out.append(count)
        for k in range(1, self.n_annual + 1):
            count += 1 if self._drops_sine(k) else 2
            out.append(count)
        return out

    def _drops_sine(self, k: int) -> bool:
        # On twelve month phases sin(2 pi 6 m / 12) is zero: the column would be empty.
        return self.kind == "month" and k == 6

    def columns(self, time: xr.DataArray) -> np.ndarray:
        """The design matrix (time, column) at the given time steps.

        Examples
        --------
        >>> import pandas as pd, xarray as xr
        >>> t = xr.DataArray(pd.date_range("2000", periods=3, freq="MS"), dims="time")
        >>> Design("month", False, 2000.0, 1, 0).columns(t).shape
        (3, 3)
        """
        cols = [np.ones(time.size)]
        if self.trend:
            cols.append(decimal_year(time, self.kind) - self.origin)
        if self.n_diurnal:
            day = 2 * np.pi * diurnal_phase(time)
            for k in range(1, self.n_diurnal + 1):
                cols += [np.cos(k * day), np.sin(k * day)]
        if self.n_annual:
            year = 2 * np.pi * annual_phase(time, self.kind)
            for k in range(1, self.n_annual + 1):
                cols.append(np.cos(k * year))
                if not self._drops_sine(k):
                    cols.append(np.sin(k * year))
        return np.stack(cols, axis=1).astype(np.float64)

    def frequencies(self, time: xr.DataArray) -> np.ndarray:
        """Each column's angular frequency (column,), in radians per time step of the record ``time``.

        The mean and the trend are 0; a harmonic of the year or the day
        turns by 2 pi k over the year's or the day's share of the median step.
        The errors' spectrum at these frequencies tells how persistent
        weather inflates each column's leverage
        (:func:`geoanom.features.persistence.leverage_inflation`).

        Examples
        --------
        >>> import pandas as pd, xarray as xr
        >>> t = xr.DataArray(pd.date_range("2000", periods=24, freq="MS"), dims="time")
        >>> (Design("month", False, 2000.0, 6, 0).frequencies(t) / np.pi).round(3).tolist()
        [0.0, 0.167, 0.167, 0.333, 0.333, 0.5, 0.5, 0.667, 0.667, 0.833, 0.833, 1.0]
        """
        step = 1.0 / 12.0 if self.kind == "month" else _median_step_days(time) / 365.25  # in years
        out = [0.0] * self.n_fixed
        for k in range(1, self.n_diurnal + 1):
            out += [2 * np.pi * k * step * 365.25] * 2
        for k in range(1, self.n_annual + 1):
            out += [2 * np.pi * k * step] * (1 if self._drops_sine(k) else 2)
        return np.array(out)

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return {"kind": self.kind, "trend": self.trend, "origin": self.origin,
                "n_annual": self.n_annual, "n_diurnal": self.n_diurnal}


def largest_phase_gap(phase: np.ndarray) -> float:
    """The widest stretch of the cycle (a fraction of it) that no time step covers."""
    points = np.unique(np.mod(phase, 1.0))
    if points.size == 0:
        return 1.0
    gaps = np.diff(np.concatenate([points, [points[0] + 1.0]]))
    return float(gaps.max())


def supported_harmonics(phase: np.ndarray, limit: int) -> int:
    """The highest harmonic the phases can pin down: the largest k whose half-period 1 / (2 k) spans the widest gap.

    A harmonic of order k changes sign every 1 / (2 k) of the cycle; a gap
    wider than that leaves it free to do anything where no data are, so
    the expected value of an unseen season would be a guess. Returns 0 when
    the record covers half the cycle or less.
    """
    gap = largest_phase_gap(phase)
    if gap >= 0.5 - 1e-9:
        return 0
    return int(min(np.floor(0.5 / gap + 1e-9), limit))
