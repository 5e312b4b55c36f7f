"""The climatology: every cell's expected value at any time, and its spread.

This is the one definition of "normal" in geoanom. ``fit``, ``score``, the
region pipeline, its tuning and the federated rows all standardise by it.

For each cell and variable the expected value is a linear model in time
(:class:`~geoanom.features.calendar.Design`): a mean, an optional linear
trend, and harmonics of the year (and of the day for sub-daily data). So
every season has an expected value, whether or not the training period
saw it, and a short record gives a smooth cycle rather than twelve noisy
monthly means. On monthly data the sixth harmonic makes the model one mean
per month: per-month means are thus one of the candidates, and win only
where enough years exist for them to beat fewer harmonics.

- **Order of the harmonics** by leave-one-out cross-validation (PRESS,
  closed form from the hat matrix), summed over the cells of a group (a
  geohash tile in ``fit``, the whole field otherwise). Only harmonics the
  training values pin down are offered (a gap in the year under their
  half-period), judged on the steps that hold values, and per cell on the
  cell's own values: a record NaN until March leaves January unseen; a
  cell seen in part of every year (sea ice) keeps the annual harmonic
  (:func:`~geoanom.features.press.supported_per_cell`).
- **Robust**: iteratively reweighted least squares, two Huber steps then
  Tukey's bisquare, so an event inside the training period neither moves
  the expected value nor widens the spread.
- **Spread**: per month for sub-annual data, from the leave-one-out
  residuals (so it is the spread of a *new* observation about the fit):
  each month's robust spread, judged on its own scale (a summer three
  times as variable as the winter keeps its large residuals, and the
  winter its small spread), alone where it holds six values or more and
  shrunk towards its two neighbours', else over the three months; then
  shrunk towards the cell's whole-year spread by as many observations as
  the months' differences allow (24 at most, where the months are alike;
  :mod:`geoanom.features.season_spread`), then towards the spreads of
  the 5 x 5 cells around it as far as the field is smooth there
  (:mod:`geoanom.features.spread_pooling`: a short record's noisy spread
  gives heavy-tailed anomalies), and floored at ``FLOOR_SHARE`` of the
  field's median spread. A daily step's spread blends its month's with
  the nearer neighbouring month's (:func:`~geoanom.features.calendar.season_blend`).
- **Zero-inflated cells** (daily rain, sea ice at the freezing point) are
  fitted by least squares, so their expected value is their mean and
  seasonal cycle, never under their point mass
  (:mod:`geoanom.features.point_mass`).
- **Training anomalies** divide each residual by 1 - h, its leverage in the
  robust fit, so they are distributed like the anomalies of new data and
  thresholds learnt in training hold (the in-sample residuals of a
  24-month fit are about 18% narrower).
- **Persistence**: where a cell's anomalies persist from one step to the
  next (daily weather lasting weeks), a step's neighbours in time pull the
  fit towards it too. Its leverage, in the PRESS, the spread and the
  training anomalies, is inflated by the errors' spectrum at the design's
  frequencies, and each month's spread counts the independent values it
  holds (:mod:`geoanom.features.persistence`): leave-one-out becomes, to
  first order, leave-the-spell-out. At a lag-1 correlation of 0.95 and 3
  years of days, held-back anomalies beyond 2.576 fell from 4.95% to 1.1%.
- **The neighbours' relation**: how a neighbour's anomaly follows the
  cell's own in training (a slope, and the correlation of the departures),
  from the training anomalies of up to 48 steps
  (:mod:`geoanom.features.neighbour_relation`), so that the neighbours
  feature of a month with gaps stands for the mean over every neighbour.
  It costs about 3% of a fit.

The design and each cell's order of harmonics are chosen in
:mod:`geoanom.features.climatology_design`; the per-block numerics live in
:mod:`geoanom.features.robust`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ..errors import GeoanomError, GeoanomWarning, RecordTooShortError
from ..grid import wraps_in_longitude
from ..resident import resident_array
from .anomaly import anomaly_kernel
from .calendar import SPREAD_SEASONS, Design, season_blend, spread_season, spread_window_steps
from .climatology_design import design_and_prefix
from .irls import RESOLUTION
from .neighbour_relation import RELATION_STEPS, fit_neighbour_relation
from .persistence import WARNING_STEPS, persistence_warning
from .point_mass import point_mass_warning
from .robust import BISQUARE_C, KAPPA, MAX_LEVERAGE, MIN_STEPS, final_block
from .spread_pooling import pool_spread

FLOOR_SHARE = 0.05  # no spread below this share of the field's median spread
# Time steps x cells per block of the fit: at most BLOCK_VALUES (16 MB per float64 plane), and small enough for
# FIT_BLOCKS blocks down to MIN_BLOCK_VALUES. Each cell is fitted on its own, so the blocks change no bit of the
# result; more of them balance the threads: 2 M made 3 blocks of the throughput cubes (180 x 120 x 240 and
# 520 x 100 x 100 training values), the last running alone on 2 cores.
BLOCK_VALUES, MIN_BLOCK_VALUES, FIT_BLOCKS = 2_000_000, 250_000, 16
TRENDS = (None, "linear")


@dataclass
class Climatology:
    """Expected value and spread of every cell of a grid at any time.

    Built by :meth:`fit`. Per-cell arrays have shape (..., variable, *spatial).

    Attributes
    ----------
    design : Design
        The columns of the expected-value model.
    coefficients : ndarray (column, variable, *spatial)
        Robust fit per cell; zero beyond the cell's ``prefix``; NaN for a
        cell with too few valid training values.
    spread : ndarray (spread season, variable, *spatial)
        Spread of a new observation about the expected value, per month (or one).
    spread_weight : ndarray (spread season, variable, *spatial)
        Observations' worth of each spread: how much one of them moves it.
    prefix : ndarray of int (variable, *spatial)
        Number of design columns each cell uses.
    weight_scale : ndarray (variable, *spatial)
        Robust scale of the training residuals, which sets the bisquare weights.
    leverage_scale : ndarray (variable, *spatial)
        Training steps over the cell's total robust weight: turns the
        design's leverage into the cell's.
    gram_inverse : ndarray (column + 1, column, column)
        Inverse of X'X of the training design, for every prefix length.
    neighbour_relation : ndarray (2, variable, *spatial) or None
        The slope ``b`` of a neighbour's anomaly on the cell's own in the
        training period and the correlation of the neighbours' departures
        from ``b z`` (:mod:`geoanom.features.neighbour_relation`), NaN
        where the cell has no climatology: with them the neighbours
        feature of a step with gaps stands for the mean over every
        neighbour. None in a model saved before it: missing neighbours are
        left out, as then.
    lower_bound : ndarray (variable, *spatial) or None
        The least expected value of a zero-inflated cell (its point mass:
        rain's dry 0, sea ice's freezing point), whose mean and seasonal
        cycle are fitted by least squares and went as low as -1 mm/day of
        rain; -inf elsewhere, and None (no bound) in a model saved before it.

    Examples
    --------
    >>> clim = Climatology.fit(cube["sst"].expand_dims(variable=["sst"]))  # doctest: +SKIP
    >>> anomaly = clim.standardise(cube["sst"].expand_dims(variable=["sst"]))  # doctest: +SKIP
    """

    design: Design
    coefficients: np.ndarray
    spread: np.ndarray
    spread_weight: np.ndarray
    prefix: np.ndarray
    weight_scale: np.ndarray
    leverage_scale: np.ndarray
    gram_inverse: np.ndarray
    neighbour_relation: np.ndarray | None = None
    lower_bound: np.ndarray | None = None

    # -- fitting ---------------------------------------------------------------------------
    @classmethod
    def fit(cls, values: xr.DataArray, *, trend: str | None = None, groups: np.ndarray | None = None,
            source: str = "the data", scheduler: Any = None) -> "Climatology":
        """Fit the climatology of a training cube.

        Parameters
        ----------
        values : DataArray (variable, time, *spatial)
            Dask-backed or in memory.
        trend : {None, "linear"}
            None: a fixed baseline (anomalies include any long-term change);
            "linear": expected values follow each cell's linear trend, so
            anomalies are departures from it.
        groups : ndarray of int (*spatial), optional
            Cells that choose their harmonic order together (e.g. tile codes;
            negative: none); the whole field by default.
        source : str
            Names the data in messages.
        scheduler : optional
            Passed to :func:`dask.compute` (a distributed Client works).

        Returns
        -------
        Climatology

        Raises
        ------
        RecordTooShortError
            Fewer than ``MIN_STEPS`` training time steps.

        Examples
        --------
        >>> clim = Climatology.fit(train.to_array("variable"), trend="linear")  # doctest: +SKIP
        """
        if trend not in TRENDS:
            raise GeoanomError(f"trend must be None or 'linear', got {trend!r}.")
        time = values["time"]
        names = ", ".join(f"'{v}'" for v in np.atleast_1d(values["variable"].values))
        if time.size < MIN_STEPS:
            raise RecordTooShortError(
                f"the training period of {names} in {source} has {time.size} time step"
                f"{'' if time.size == 1 else 's'}; a climatology needs at least {MIN_STEPS}."
            )
        what = f"{names} in {source}"
        data = _fit_layout(values)
        design, prefix = design_and_prefix(data, time, trend, groups, what, scheduler)
        columns = design.columns(time)
        n_planes = columns.shape[1] + 2 * SPREAD_SEASONS[design.kind] + 4
        seasons = spread_season(time, design.kind)
        cell_prefix = da.from_array(prefix[:, None], chunks=(data.chunks[0], (1,)) + data.chunks[2:])
        cells = da.map_blocks(final_block, data, cell_prefix, columns, design.frequencies(time), seasons,
                              SPREAD_SEASONS[design.kind], spread_window_steps(time, design.kind), dtype=np.float64,
                              chunks=((n_planes,),) + data.chunks[1:])  # block for block: no copy of the data
        [cells] = dask.compute(cells, scheduler=scheduler)
        n_columns, n_seasons = columns.shape[1], SPREAD_SEASONS[design.kind]
        coefficients = cells[:n_columns]
        spread, spread_weight = pool_spread(cells[n_columns:n_columns + n_seasons], cells[n_columns + n_seasons:-4])
        spread = _floored(spread, coefficients[0])
        weight_scale, leverage_scale, lower_bound, point_mass = cells[-4], cells[-3], cells[-2], cells[-1]
        message = point_mass_warning(point_mass == 1, what)
        if message:
            warnings.warn(message, GeoanomWarning, stacklevel=2)  # the caller of Climatology.fit
        climatology = cls(design, coefficients, spread, spread_weight, prefix, weight_scale, leverage_scale,
                          _gram_inverses(columns), lower_bound=np.where(np.isnan(lower_bound), -np.inf, lower_bound))
        climatology.neighbour_relation = climatology._fitted_neighbour_relation(values, scheduler)
        climatology._warn_persistence(values, what, scheduler)
        return climatology

    def _warn_persistence(self, values: xr.DataArray, what: str, scheduler: Any) -> None:
        """Warn where daily (or finer) training anomalies persist beyond what the fit allows for
        (:func:`~geoanom.features.persistence.persistence_warning`)."""
        if self.design.kind not in ("dayofyear", "subdaily") or values.sizes["time"] < 3:
            return
        window = values.isel(time=slice(0, WARNING_STEPS))
        window = window.copy(data=_fit_layout(window))
        [anomaly] = dask.compute(self.standardise(window, training=True).data, scheduler=scheduler)
        message = persistence_warning(anomaly, values.sizes["time"], what)
        if message:
            warnings.warn(message, GeoanomWarning, stacklevel=3)

    def _fitted_neighbour_relation(self, values: xr.DataArray, scheduler: Any) -> np.ndarray:
        """The neighbours' relation on the training anomalies of ``RELATION_STEPS`` steps spread over the record
        (:func:`~geoanom.features.neighbour_relation.fit_neighbour_relation`)."""
        n_times = values.sizes["time"]
        steps = np.unique(np.linspace(0, n_times - 1, min(n_times, RELATION_STEPS)).round().astype(np.intp))
        sample = values.isel(time=steps)
        sample = sample.copy(data=_fit_layout(sample))  # blocks fixed by the grid: the same bits for any chunks
        wrap = "lon" in sample.coords and wraps_in_longitude(sample)
        return fit_neighbour_relation(self.standardise(sample, training=True), self.prefix > 0, wrap, scheduler)

    # -- evaluating ------------------------------------------------------------------------
    def time_terms(self, time: xr.DataArray, training: bool | np.ndarray = False) -> np.ndarray:
        """Everything a block needs to know of its time steps, as one float array (time, term).

        The design columns, the spread season, whether the step was part of
        the training fit, the season its spread leans towards and how far
        (:func:`~geoanom.features.calendar.season_blend`), and the design's
        leverage at every prefix length.
        """
        columns = self.design.columns(time)
        n_columns = columns.shape[1]
        leverage = np.stack([np.einsum("tp,pq,tq->t", columns[:, :q], self.gram_inverse[q, :q, :q], columns[:, :q])
                             for q in range(1, n_columns + 1)], axis=1)
        flags = np.broadcast_to(np.asarray(training, dtype=np.float64), (time.size,))
        other, blend = season_blend(time, self.design.kind)
        return np.concatenate([columns, spread_season(time, self.design.kind)[:, None], flags[:, None],
                               other[:, None], blend[:, None], leverage], axis=1)

    def anomaly(self, values: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """Standardised anomaly (variable, time, *spatial) of a block of values on this climatology's cells.

        The departure from the expected value over the spread of its season
        (blended with the nearer neighbouring month's for daily or finer steps).
        A step flagged as training gets the leave-one-out anomaly: its
        departure is divided by 1 - h, h its leverage in its cell's robust
        fit (w x' (X'X)^-1 x times the cell's steps over its total robust
        weight: exact for a cell without gaps whose weights are all 1, right
        to first order otherwise), and its spread is the season's with itself
        left out (a dozen values hold each one with a weight of about 1/12,
        so a large departure would widen its own yardstick). Computed by
        :func:`geoanom.features.anomaly.anomaly_kernel`, one pass without
        block-sized temporaries, the GIL released.

        Parameters
        ----------
        values : ndarray (variable, time, *spatial)
        terms : ndarray (time, term)
            From :meth:`time_terms`; steps flagged as training get the
            leave-one-out anomaly (residual / (1 - leverage)).

        Examples
        --------
        >>> z = clim.anomaly(block, clim.time_terms(cube["time"]))  # doctest: +SKIP
        """
        n_columns = self.coefficients.shape[0]
        columns, season = terms[:, :n_columns], terms[:, n_columns].astype(np.intp)
        training, other, blend = terms[:, n_columns + 1] > 0, terms[:, n_columns + 2].astype(np.intp), \
            np.ascontiguousarray(terms[:, n_columns + 3])
        leverage = terms[:, n_columns + 4:]
        # every array with its spatial axes flattened into one cell axis
        cells = lambda a: a.reshape(a.shape[:a.ndim - values.ndim + 2] + (-1,))  # noqa: E731
        out = anomaly_kernel(cells(values), np.ascontiguousarray(columns), season, other, blend, training,
                             np.ascontiguousarray(leverage), *map(cells, self._cell_arrays()), cells(self._lower()),
                             BISQUARE_C, KAPPA, MAX_LEVERAGE)
        return out.reshape(values.shape)

    def expected_from(self, columns: np.ndarray) -> np.ndarray:
        """Expected values (variable, time, *spatial) for design rows (time, column)."""
        # a plain sum over columns: the same rounding for any block shape
        total = np.zeros((self.coefficients.shape[1], columns.shape[0]) + self.coefficients.shape[2:])
        shape = (1, columns.shape[0]) + (1,) * (self.coefficients.ndim - 2)
        for p in range(self.coefficients.shape[0]):
            total += columns[:, p].reshape(shape) * self.coefficients[p][:, None]
        if self.lower_bound is not None:
            lower = np.broadcast_to(self.lower_bound[:, None], total.shape)
            total = np.where(total < lower, lower, total)  # NaN stays NaN
        return total

    def expected(self, time: xr.DataArray) -> np.ndarray:
        """Expected value (variable, time, *spatial) of every cell at the given times.

        Examples
        --------
        >>> clim.expected(cube["time"][:12]).shape  # doctest: +SKIP
        (1, 12, 18, 432)
        """
        return self.expected_from(self.design.columns(time))

    def spread_at(self, time: xr.DataArray) -> np.ndarray:
        """Spread (variable, time, *spatial) of every cell at the given times.

        Examples
        --------
        >>> clim.spread_at(cube["time"][:12]).shape  # doctest: +SKIP
        (1, 12, 18, 432)
        """
        other, blend = season_blend(time, self.design.kind)
        shape = (-1,) + (1,) * (self.spread.ndim - 1)
        blended = (1.0 - blend.reshape(shape)) * self.spread[spread_season(time, self.design.kind)] + \
            blend.reshape(shape) * self.spread[other]
        return np.moveaxis(blended, 0, 1)

    def block(self, rows: slice, cols: slice) -> "Climatology":
        """The climatology of a block of grid cells."""
        relation = None if self.neighbour_relation is None else self.neighbour_relation[..., rows, cols]
        return Climatology(self.design, *(a[..., rows, cols] for a in self._cell_arrays()), self.gram_inverse,
                           relation, self._lower()[..., rows, cols])

    def _cell_arrays(self) -> tuple[np.ndarray, ...]:
        return (self.coefficients, self.spread, self.spread_weight, self.prefix, self.weight_scale,
                self.leverage_scale)

    def _lower(self) -> np.ndarray:
        """The lower bound of every cell's expected value, -inf where there is none."""
        return np.full(self.prefix.shape, -np.inf) if self.lower_bound is None else self.lower_bound

    def planes(self) -> np.ndarray:
        """Every per-cell array stacked into one (plane, variable, *spatial), to ship by space chunk."""
        return np.concatenate([self.coefficients, self.spread, self.spread_weight, self.prefix[None].astype(np.float64),
                               self.weight_scale[None], self.leverage_scale[None], self._lower()[None]], axis=0)

    def with_planes(self, planes: np.ndarray) -> "Climatology":
        """This climatology's design on other cells, given their :meth:`planes`."""
        n_columns, n_seasons = self.coefficients.shape[0], self.spread.shape[0]
        seasons_end = n_columns + 2 * n_seasons
        return Climatology(self.design, planes[:n_columns], planes[n_columns:n_columns + n_seasons],
                           planes[n_columns + n_seasons:seasons_end], planes[seasons_end].astype(np.int64),
                           planes[-3], planes[-2], self.gram_inverse, lower_bound=planes[-1])

    def standardise(self, values: xr.DataArray, training: bool | np.ndarray = False) -> xr.DataArray:
        """Standardised anomalies of a cube on this climatology's grid, lazily.

        Parameters
        ----------
        values : DataArray (variable, time, *spatial)
        training : bool or array of bool over time
            Steps that were part of the training fit get leave-one-out anomalies.

        Returns
        -------
        DataArray like ``values``, float64, chunked like it.

        Examples
        --------
        >>> z = model.climatology.standardise(test.to_array("variable"))  # doctest: +SKIP
        """
        data = values.data if isinstance(values.data, da.Array) else da.from_array(values.values)
        data = data.rechunk({0: -1})
        terms = da.from_array(self.time_terms(values["time"], training), chunks=(data.chunks[1], -1))
        planes = resident_array(self.planes(), chunks=(-1, -1) + data.chunks[2:])
        # Each task gets the design alone and its own chunk of planes: passing `self` put every cell's
        # climatology into every task (1.58 -> 0.86 MiB of graph for a 40 x 60 grid).
        design_only = dask.delayed(self.block(slice(0, 0), slice(0, 0)), traverse=False)  # one graph key
        anomaly = da.blockwise(_standardise_block, "vtyx", data, "vtyx", terms, "tk", planes, "pvyx",
                               design_only, None, dtype=np.float64, concatenate=True,
                               meta=np.empty((0, 0, 0, 0), dtype=np.float64))
        return values.copy(data=anomaly)

    def to_tree(self) -> dict[str, Any]:
        """Plain JSON values and arrays, for a model file."""
        tree = {"design": self.design.to_dict(), "coefficients": self.coefficients, "spread": self.spread,
                "spread_weight": self.spread_weight, "prefix": self.prefix, "weight_scale": self.weight_scale,
                "leverage_scale": self.leverage_scale, "gram_inverse": self.gram_inverse}
        if self.neighbour_relation is not None:
            tree["neighbour_relation"] = self.neighbour_relation
        if self.lower_bound is not None:
            tree["lower_bound"] = self.lower_bound
        return tree

    @classmethod
    def from_tree(cls, tree: dict[str, Any]) -> "Climatology":
        """Inverse of :meth:`to_tree`; a model saved before the neighbours' relation or the lower bound has none."""
        relation, lower = tree.get("neighbour_relation"), tree.get("lower_bound")
        return cls(Design(**tree["design"]), *(np.asarray(tree[key]) for key in
                   ("coefficients", "spread", "spread_weight", "prefix", "weight_scale", "leverage_scale",
                    "gram_inverse")), None if relation is None else np.asarray(relation, dtype=np.float64),
                   None if lower is None else np.asarray(lower, dtype=np.float64))


def _standardise_block(values: np.ndarray, terms: np.ndarray, planes: np.ndarray, climatology: Climatology):
    return climatology.with_planes(planes).anomaly(values, terms)


def _fit_layout(values: xr.DataArray) -> da.Array:
    """The training data as (variable, time, y, x) float64, time whole, in blocks fixed by the grid alone.

    Blocks depend only on the array's shape, never on its chunks, so the
    climatology is bit-for-bit the same for any chunking of the input.
    """
    data = values.data if isinstance(values.data, da.Array) else da.from_array(np.asarray(values.data))
    n_vars, n_times, n_rows, n_cols = data.shape
    per_block = min(BLOCK_VALUES, max(MIN_BLOCK_VALUES, data.size // FIT_BLOCKS))
    cells = max(1, per_block // max(n_times * n_vars, 1))
    col_chunk = min(n_cols, cells)
    row_chunk = max(1, min(n_rows, cells // col_chunk))
    # rechunked before the cast: the full-time blocks hold the whole record's pieces at once, in its own
    # width (float32 data: half the bytes; 83 MB less at 720 x 120 x 240, benchmarks/fit_memory.py)
    return data.rechunk((n_vars, n_times, row_chunk, col_chunk)).astype(np.float64)


def _gram_inverses(columns: np.ndarray) -> np.ndarray:
    """(X'X)^-1 of the first q columns for q = 0 .. n_columns, zero-padded."""
    n_columns = columns.shape[1]
    out = np.zeros((n_columns + 1, n_columns, n_columns))
    gram = columns.T @ columns
    for q in range(1, n_columns + 1):
        out[q, :q, :q] = np.linalg.pinv(gram[:q, :q])
    return out


def _floored(spread: np.ndarray, level: np.ndarray) -> np.ndarray:
    """Spreads floored per variable at a share of the field's median (a constant cell would divide by 0), and per
    cell at the resolution of its ``level`` (variable, *spatial): a field cut out of mostly constant cells (land
    filled with 271.35 K) has a median spread of rounding noise, and its constant cells' rounding became anomalies.
    """
    positive = np.where(spread > 0, spread, np.nan).reshape(spread.shape[0], spread.shape[1], -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a variable without any valid cell
        typical = np.nanmedian(positive, axis=(0, 2))
    floor = np.where(np.isfinite(typical), FLOOR_SHARE * typical, 1.0)
    floor = np.maximum(floor, np.finfo(np.float64).tiny).reshape((1, -1) + (1,) * (spread.ndim - 2))
    return np.maximum(spread, np.maximum(floor, RESOLUTION * np.abs(np.nan_to_num(level))[None]))
