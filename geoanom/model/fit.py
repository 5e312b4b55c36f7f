"""Fitting one detector ensemble per tile, as dask tasks.

The graph has three layers:

1. one task per block of the cube computes every observation's features and
   a :class:`~geoanom.detectors.sketch.TileSketch` of each tile it touches;
2. the sketches of each batch of tiles are merged by a tree reduction
   (``split_every`` at a time) over the blocks that hold its cells;
3. one task per batch fits the ensembles of its tiles from their sketches.

Only sketches travel: a tile's data is never gathered on one machine.
"""

from __future__ import annotations

import operator
import warnings
import zlib
from typing import Any, Sequence

import dask
import numpy as np
import xarray as xr

from ..detectors import DEFAULT_DETECTORS, Ensemble
from ..detectors.families import check_detector_names
from ..detectors.limits import check_min_observations, check_sample_size, resolve_seed
from ..detectors.sketch import DEFAULT_CAPACITY, TileSketch, merge_sketch_maps, sketch_tiles
from ..errors import GeoanomError, GeoanomWarning, NoDataError, ParameterError, TrainingPeriodError
from ..features import Climatology, RegionParams
from ..features.pipeline import feature_cube, source_name, stack_variables
from ..features.vectors import check_feature_sets, feature_names
from ..formatting import calendar_of, iso_date
from ..io import count_infinite, infinite_message
from ..io.fill_values import undeclared_fills
from ..io.levels import chosen_level
from ..io.read import as_cube
from ..memory import check_workers, largest_chunk, most_tiles_in_a_block, task_bytes
from ..reduction import tree_reduce
from ..resident import on_workers
from ..threads import single_threaded_pools
from ..tiling import group_cells, plan_batches, tile_codes, tile_labels
from .core import AnomalyModel
from .family_inputs import default_features, family_inputs, kept_feature_sets
from .federated_regions import refine_regions
from .parts import in_parts
from .personalise import DEFAULT_RELEVANCE, personalise_tiles
from .plausibility import coverage
from .pyramid import build_pyramid
from .units import variable_units

MIN_OBSERVATIONS = 100


def fit(
    cube: xr.Dataset,
    *,
    variables: Sequence[str] | str | None = None,
    precision: int | None = None,
    detectors: Sequence[str] | str = DEFAULT_DETECTORS,
    seed: int | None = 0,
    client: Any = None,
    min_observations: int = MIN_OBSERVATIONS,
    sample_size: int = DEFAULT_CAPACITY,
    split_every: int = 8,
    tiles_per_batch: int | None = None,
    features: Sequence[str] | str | None = None,
    regions: RegionParams | dict | None = None,
    federated: bool = False,
    federated_rounds: int = 5,
    federated_relevance: float = DEFAULT_RELEVANCE,
    trend: str | None = None,
    contamination: float = 0.01,
) -> AnomalyModel:
    """Fit a detector ensemble for every geohash tile of a training cube.

    Parameters
    ----------
    cube : xarray.Dataset or DataArray
        Training data from :func:`geoanom.open_cube` (dims time, lat, lon or a
        curvilinear y, x); a DataArray is a one-variable cube. Data not
        opened by it are given its names, checks and fill handling first
        (:func:`geoanom.io.read.as_cube`).
    variables : str or list of str, optional
        Variables to model; by default every variable over time and space.
    precision : int, optional
        Geohash precision of the tiles; chosen from the grid and the training
        length when None (see :func:`geoanom.tiling.choose_precision`).
    detectors : sequence of str, default ("gmm", "kmeans", "dpmm", "iforest", "event")
        Detector families of each tile's ensemble (a sequence or a
        comma-separated string).
    seed : int or None, default 0
        Seed of every random choice: the same seed gives the same model on one
        worker or many. None draws a fresh one, recorded in
        ``model.attrs["seed"]`` so the model can be fitted again identically.
    client : distributed.Client, optional
        Where to run; by default dask's current scheduler.
    min_observations : int, default 100
        Tiles with fewer valid observations are skipped (and say why); at
        least 12 (:data:`geoanom.detectors.limits.MIN_TILE_ROWS`).
    sample_size : int, default 4096
        Observations per tile kept (uniformly, by bottom-k sampling) for
        fitting the iterative models; moments use every observation. At
        least 12.
    split_every : int, default 8
        Fan-in of the tree reduction that merges a tile's partial sketches.
    tiles_per_batch : int, optional
        Tiles fitted per task; by default enough batches to keep 16 workers
        busy, at most 64 tiles each.
    features : sequence of str, optional
        What each observation's feature vector holds, per variable (see
        :mod:`geoanom.features.vectors`). ``"anomalies"``: its standardised
        anomaly; ``"neighbours"``: the trimmed mean anomaly of its eight
        neighbours (their largest and smallest left out), so a coherent event
        stands out, and a lone noisy cell and the cells beside it less;
        ``"background"``: the mean anomaly of a ring of cells 3 to 7 cells
        away, the region's large-scale state (a warm year, El Nino), which
        the ``event`` family judges each cell against. By default
        ``("anomalies", "neighbours")``, with ``"background"`` too when the
        ensemble has the ``event`` family, the only one that reads it
        (:func:`~geoanom.model.family_inputs.default_features`);
        ``"values"``: the value and its anomaly (the reference paper's
        setup, needed to judge one tile's cells by another tile's model);
        ``"regions"``: the denoised anomaly and the log area of the
        anomalous region around the cell.
    regions : RegionParams or dict, optional
        How regions are found (see :class:`geoanom.features.RegionParams`,
        or :func:`geoanom.features.tune_region_params` to choose); defaults
        when None.
    federated : bool, default False
        Also build the model of every coarser geohash region (see
        :meth:`AnomalyModel.region`) and refine its gmm and kmeans families
        by ``federated_rounds`` rounds of federated EM and Lloyd steps, in
        which each batch of tiles sends only sufficient statistics
        (:mod:`geoanom.model.federated_regions`). Then every tile's gmm and
        kmeans are adapted towards the smallest region's model, so each
        tile's model is informed by all tiles of its region: a tile with
        few observations borrows its region's shapes, one with many
        keeps its own (:mod:`geoanom.model.personalise`). Tiles with too
        little data to fit alone are scored by the smallest region holding
        them.
    federated_rounds : int, default 5
        Federated EM / Lloyd rounds of the region models.
    federated_relevance : float, default 16
        Weight of the region's model, in observations, when a tile's
        components are adapted towards it; 0 keeps each tile's own model.
    trend : {None, "linear"}, default None
        None: anomalies are departures from a fixed baseline, the training
        period's seasonal cycle, so a lasting change (a warming climate)
        shows as ever larger anomalies. "linear": each cell's expected
        value follows its training trend, so anomalies are weather and
        events about the trend. See :class:`geoanom.features.Climatology`.
    contamination : float, default 0.01
        The share of normal observations each family's threshold is set
        to flag (above 0 and below 0.5). A family keeps the reference
        paper's constant threshold where that flags between a tenth and
        twice this share of the training data and at most one percentage
        point away from it (see ``threshold_source_``); otherwise its
        threshold is the quantile of its training scores that flags this
        share (held-back clean synthetic data: 0.3-1.4% per family at 0.01,
        20-22% at 0.2). Every family of every tile takes it; the model
        records it.

    Raises
    ------
    RecordTooShortError
        The training period has too few time steps for a climatology.

    Examples
    --------
    >>> model = geoanom.fit(cube.sel(time=slice(None, "1959")), precision=2)  # doctest: +SKIP

    Returns
    -------
    AnomalyModel
    """
    if not isinstance(cube, (xr.Dataset, xr.DataArray)):
        raise GeoanomError(f"fit takes an xarray Dataset or DataArray with time and two spatial dimensions (as from "
                           f"geoanom.open_cube), not a {type(cube).__module__}.{type(cube).__name__}; for rows of "
                           "plain features use geoanom.Ensemble or a detector such as geoanom.GMMDetector.")
    names = check_detector_names(detectors)
    seed, min_observations = resolve_seed(seed), check_min_observations(min_observations)
    sample_size = check_sample_size(sample_size)
    # at 0.5 every family's threshold is the median of its scores: half of any data "anomalous"
    if not (isinstance(contamination, (int, float, np.number)) and 0.0 < contamination < 0.5):
        raise ParameterError(f"contamination must be a share of the observations above 0 and below 0.5 (the share of "
                             f"normal data each family flags), got {contamination!r}.")
    cube = as_cube(cube, variables)  # data not from open_cube get its names, checks and fill handling
    if federated and not federated_relevance >= 0:
        raise GeoanomError(f"federated_relevance must be 0 or more, got {federated_relevance}.")
    if federated and not (isinstance(federated_rounds, (int, np.integer)) and federated_rounds >= 1):
        raise GeoanomError(f"federated_rounds must be a whole number of at least 1, got {federated_rounds}.")
    feature_sets = kept_feature_sets(check_feature_sets(default_features(names) if features is None else features),
                                     names)
    region_params = as_region_params(regions)
    values = stack_variables(cube, variables)
    if values.sizes["time"] == 0:
        raise TrainingPeriodError(f"the training period selects no time step of {source_name(cube)}.")
    scheduler = client  # None: dask's current scheduler
    labels = tile_labels(cube, precision)
    codes, tile_names = tile_codes(labels)
    if client is not None:  # workers too small would pause and stall: refuse before submitting anything
        chunks = values.chunks or tuple((size,) for size in values.shape)
        task = task_bytes(largest_chunk(chunks), most_tiles_in_a_block(codes, chunks[-2:]), names, phase="fit")
        check_workers(client, task, f"fitting {source_name(cube)}")
    climatology = Climatology.fit(values, trend=trend, groups=codes, source=source_name(cube), scheduler=scheduler)
    variable_names = [str(name) for name in values["variable"].values]
    _refuse_empty_variables(climatology.prefix > 0, variable_names, values["time"].values, source_name(cube))
    _warn_partial_variables(climatology.prefix > 0, variable_names, source_name(cube))
    # every training observation was part of the climatology's fit: its anomaly is taken leave-one-out
    with on_workers(client):  # with a client, the climatology goes to the workers once, not in every graph
        features = feature_cube(in_parts(values, codes), climatology, feature_sets, region_params, training=True)
    sketch_batches = _sketch_graph(features, codes, tile_names, seed, sample_size, split_every, tiles_per_batch)
    model_features = feature_names(variable_names, feature_sets)
    family_params, family_columns = family_inputs(names, model_features, variable_names, climatology)
    family_params = {name: {**family_params.get(name, {}), "contamination": float(contamination)} for name in names}
    if federated:  # the rounds read the sketches again: keep them where they are
        sketch_batches = [(dask.persist(merged, scheduler=scheduler)[0], tiles) for merged, tiles in sketch_batches]
    no_data = ("no valid observations (every cell is NaN in the training period)" if len(variable_names) == 1 else
               f"no valid observations (no cell holds all of {', '.join(variable_names)} at once in the training "
               "period)")
    batches = [dask.delayed(_fit_batch, pure=True)(merged, tiles, names, seed, min_observations, family_params,
                                                     family_columns, no_data)
               for merged, tiles in sketch_batches]
    # The ±inf that open_cube treated as missing are counted in the same pass that reads the data.
    *fitted_batches, infinite, held = dask.compute(*batches, count_infinite(cube, compute=False),
                                                   coverage(values, climatology.prefix > 0), scheduler=scheduler)
    fitted: dict[str, Any] = {}
    for batch in fitted_batches:
        fitted.update(batch)
    infinite = {str(name): int(count) for name, count in infinite.items()}
    if message := infinite_message(infinite, f"the training period of {source_name(cube)}"):
        warnings.warn(message, GeoanomWarning, stacklevel=2)
    ensembles = {tile: result for tile, result in fitted.items() if isinstance(result, Ensemble)}
    if not ensembles:
        raise NoDataError(_too_little_data(cube, fitted, min_observations, int(labels.attrs["precision"])))
    skipped = {tile: result for tile, result in fitted.items() if isinstance(result, str)}
    pyramid = None
    if federated:
        pyramid = refine_regions(build_pyramid(ensembles, int(labels.attrs["precision"]), split_every, scheduler),
                                 sketch_batches, federated_rounds, split_every, scheduler)
        ensembles = personalise_tiles(ensembles, pyramid, sketch_batches, federated_relevance, scheduler)
    times = values["time"].values
    return AnomalyModel(
        variables=variable_names,
        climatology=climatology,
        labels=labels,
        ensembles=ensembles,
        skipped=skipped,
        detectors=names,
        attrs={
            "seed": seed,
            "training_start": iso_date(times[0]),
            "training_end": iso_date(times[-1]),
            "training_time_steps": int(times.size),
            "calendar": calendar_of(values["time"]),
            "source": cube.attrs.get("geoanom_source", ""),
            "min_observations": min_observations,
            "sample_size": sample_size,
            "contamination": float(contamination),
            "features": list(feature_sets),
            "region_params": region_params.to_dict() if "regions" in feature_sets else None,
            "feature_names": feature_names(variable_names, feature_sets),
            "units": variable_units(cube, variable_names),  # scoring data in other units is refused
            "undeclared_fills": undeclared_fills(cube, variable_names),  # values open_cube took for missing
            "level": chosen_level(cube),  # the vertical level open_cube selected (None): scoring another is refused
            "federated_rounds": federated_rounds if federated else 0,
            "federated_relevance": float(federated_relevance) if federated else 0.0,
            "trend": "linear" if climatology.design.trend else "none",
            "infinite_values": infinite,
            # the median share of the trained cells a training step held: scoring far fewer warns (plausibility)
            "training_coverage": {name: float(np.median(share)) for name, share in zip(variable_names, held)},
        },
        regions=pyramid,
    )


class SkipReason(str):
    """Why a tile was not fitted, as text (what ``model.skipped`` shows and saves), with its count of observations."""

    count: int

    def __new__(cls, text: str, count: int = 0) -> "SkipReason":
        reason = super().__new__(cls, text)
        reason.count = count
        return reason


def _too_little_data(cube, fitted: dict[str, Any], min_observations: int, precision: int) -> str:
    """Why no tile could be fitted, in one sentence: all NaN, or tiles too small for the record."""
    counts = {tile: reason.count for tile, reason in fitted.items() if isinstance(reason, SkipReason) and reason.count}
    if not counts:
        return (f"no tile of {source_name(cube)} has {min_observations} valid observations to fit; "
                "the selected data are all NaN.")
    fullest = (f"no tile of {source_name(cube)} at precision {precision} has {min_observations} valid observations "
               f"to fit (the fullest has {max(counts.values())})")
    if (coarser := _precision_that_fits(counts, min_observations)) is not None:
        return f"{fullest}; precision {coarser} would hold enough, or choose a longer training period."
    return f"{fullest}, and no coarser precision would hold enough; choose a longer training period."


def _precision_that_fits(counts: dict[str, int], min_observations: int) -> int | None:
    """The finest coarser precision at which some tile holds `min_observations` (a geohash's parents are its prefixes)."""
    for precision in range(len(next(iter(counts))) - 1, 0, -1):
        merged: dict[str, int] = {}
        for tile, count in counts.items():
            merged[tile[:precision]] = merged.get(tile[:precision], 0) + count
        if max(merged.values()) >= min_observations:
            return precision
    return None


def tile_seed(seed: int, tile: str) -> int:
    """A per-tile seed that depends only on the global seed and the tile's name."""
    return (zlib.crc32(tile.encode()) ^ (seed * 2654435761)) % 2**32


def as_region_params(regions: RegionParams | dict | None) -> RegionParams:
    """Region parameters from a RegionParams, a dict of its fields, or the defaults."""
    if regions is None:
        return RegionParams()
    return regions if isinstance(regions, RegionParams) else RegionParams(**dict(regions))


def _sketch_graph(features, codes, tile_names, seed, sample_size, split_every,
                  tiles_per_batch) -> list[tuple[Any, dict[int, str]]]:
    """Per batch of tiles: the delayed merged sketches of its tiles, and its {tile code: tile name}."""
    time_chunks, row_chunks, col_chunks = features.chunks[1:]
    if tiles_per_batch is None:
        tiles_per_batch = int(np.clip(np.ceil(len(tile_names) / 16), 1, 64))
    plan = plan_batches(codes, (row_chunks, col_chunks), tiles_per_batch)
    time_starts, row_starts, col_starts = (np.concatenate([[0], np.cumsum(chunks)]) for chunks in features.chunks[1:])
    n_cols = codes.shape[1]
    blocks = features.to_delayed()[0]
    batch_of_tile = dask.delayed(plan.batch_of_tile, pure=True)
    sketch_maps = {}
    for ti, yi, xi in np.ndindex(len(time_chunks), len(row_chunks), len(col_chunks)):
        rows = slice(row_starts[yi], row_starts[yi + 1])
        cols = slice(col_starts[xi], col_starts[xi + 1])
        cell_index = np.arange(rows.start, rows.stop)[:, None] * n_cols + np.arange(cols.start, cols.stop)
        sketch_maps[ti, yi, xi] = dask.delayed(_sketch_block, pure=True)(
            blocks[ti, yi, xi], codes[rows, cols], np.arange(time_starts[ti], time_starts[ti + 1]), cell_index,
            batch_of_tile, seed, sample_size,
        )
    out = []
    for batch, batch_blocks in enumerate(plan.blocks_of_batch):
        parts = [
            dask.delayed(operator.getitem, pure=True)(sketch_maps[ti, yi, xi], batch)
            for ti in range(len(time_chunks))
            for yi, xi in batch_blocks
        ]
        merged = tree_reduce(parts, merge_sketch_maps, split_every)
        batch_tiles = {int(code): str(tile_names[code]) for code in np.flatnonzero(plan.batch_of_tile == batch)}
        out.append((merged, batch_tiles))
    return out


def _sketch_block(features, codes, time_index, cell_index, batch_of_tile, seed,
                  sample_size) -> dict[int, dict[int, TileSketch]]:
    """Sketches of every tile in one block of features, grouped by the batch that fits them."""
    n_features, n_times = features.shape[:2]
    groups = group_cells(codes)
    # one compiled pass over the block, the GIL released (detectors/sketch.py)
    sketches = sketch_tiles(features.reshape(n_features, n_times, -1), groups, time_index, cell_index.ravel(),
                            seed, sample_size)
    out: dict[int, dict[int, TileSketch]] = {}
    for code, _ in groups:
        batch = out.setdefault(int(batch_of_tile[code]), {})
        if code in sketches:
            batch[code] = sketches[code]
    return out


def _refuse_empty_variables(fitted: np.ndarray, variables: list[str], times: np.ndarray, source: str) -> None:
    """Refuse, naming them and the training period, variables with no cell holding values enough for a climatology.

    Otherwise no observation has every variable, and the fit only said "the selected data are all NaN".
    ``fitted`` (variable, *spatial): whether the cell has a climatology of each variable.
    """
    empty = [name for name, has in zip(variables, fitted) if not has.any()]
    if not empty or len(empty) == len(variables) == 1:  # one variable, all NaN: said as before, with the tiles
        return
    period = f"the training period ({iso_date(times[0])} to {iso_date(times[-1])}) of {source}"
    if len(empty) == len(variables):
        raise NoDataError(f"{', '.join(empty)} have no values (or in no cell enough for a climatology) in {period}; "
                          "choose a period where they have values.")
    has = "has" if len(empty) == 1 else "have"
    raise NoDataError(f"{', '.join(empty)} {has} no values (or in no cell enough for a climatology) in {period}; fit "
                      f"{', '.join(n for n in variables if n not in empty)} alone, or choose a training period where "
                      f"{'it has' if len(empty) == 1 else 'they have'} values.")


def _warn_partial_variables(fitted: np.ndarray, variables: list[str], source: str) -> None:
    """One warning for the cells that have some of the variables but not all: an observation needs every one.

    ``fitted`` (variable, *spatial): whether the cell has a climatology of each variable.
    """
    partial = fitted.any(axis=0) & ~fitted.all(axis=0)
    if partial.any():
        missing = [name for name, has in zip(variables, fitted) if (partial & ~has).any()]
        warnings.warn(f"{int(partial.sum())} of {int(fitted.any(axis=0).sum())} cells of {source} lack "
                      f"{', '.join(missing)} while holding another of {', '.join(variables)}: an observation is scored "
                      "only where every variable has values, so they are left unscored; fit the variables one by one "
                      "to score each wherever it has values.", GeoanomWarning, stacklevel=3)


def _fit_batch(sketches, batch_tiles, detectors, seed, min_observations, family_params,
               family_columns, no_data: str) -> dict[str, Ensemble | str]:
    """Fit the ensembles of one batch of tiles; a tile with too little data gets a reason (``no_data``: none)."""
    with single_threaded_pools():  # one task per core already
        return _fit_tiles(sketches, batch_tiles, detectors, seed, min_observations, family_params, family_columns,
                          no_data)


def _fit_tiles(sketches, batch_tiles, detectors, seed, min_observations, family_params,
               family_columns, no_data) -> dict[str, Ensemble | str]:
    out: dict[str, Ensemble | str] = {}
    ready: dict[str, TileSketch] = {}
    for code, tile in batch_tiles.items():
        sketch = sketches.get(code)
        count = sketch.count if sketch is not None else 0
        if count == 0:
            out[tile] = no_data
        elif count < min_observations:
            out[tile] = SkipReason(f"only {count} valid observations (at least {min_observations} needed)", count)
        else:
            ready[tile] = sketch
    if ready:
        ensembles = Ensemble.fit_many(
            [sketch.rows for sketch in ready.values()], detectors, [tile_seed(seed, tile) for tile in ready],
            params=family_params, columns=family_columns,
        )
        for (tile, sketch), ensemble in zip(ready.items(), ensembles):
            ensemble.n_observations_ = sketch.count
            out[tile] = ensemble
    return out
