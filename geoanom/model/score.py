"""Scoring a cube blockwise: each cell by its tile's ensemble, lazily.

The features come from the one pipeline (:func:`geoanom.features.pipeline.feature_cube`);
one task per block scores them with the ensembles of the block's tiles. The
ensembles are copied when the result is made (into the graph; with a client,
to the cluster, once each, the graph holding their keys), so a lazy result
means the same whenever it is computed. Adaptive scoring
(:func:`score_cube_adapting`) changes the ensembles it is given: the model's
:meth:`~geoanom.AnomalyModel.adapt` gives it a copy.
"""

from __future__ import annotations

import copy
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import dask
import dask.array as da
import numpy as np
import xarray as xr
from dask._task_spec import TaskRef
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from ..errors import GeoanomError, GeoanomWarning, NoDataError, TileError
from ..features import RegionParams
from ..features.pipeline import feature_cube, joined_blocks, source_name, stack_variables
from ..features.tile_rows import place_scores, tile_rows
from ..formatting import coordinate_difference
from ..io.fill_values import undeclared_fills
from ..memory import check_workers, largest_chunk, most_tiles_in_a_block, release_free_memory, task_bytes
from ..queries.consensus import consensus_share
from ..resident import on_workers, resident_values
from ..threads import single_threaded_pools
from ..tiling import group_cells, known_tiles
from .consensus import consensus_variable, partners_by_code
from .parts import part_chunks
from .plausibility import warn_implausible
from .record import check_same_level, check_same_time_step
from .result import result_dataset
from .units import check_same_units, cube_units

if TYPE_CHECKING:  # the model imports this module to score itself
    from .core import AnomalyModel


def score_cube(model: "AnomalyModel", cube: xr.Dataset, tile: str | None = None, client: Any = None,
               partners: dict[str, list[str]] | None = None, consensus: str = "") -> xr.Dataset:
    """See :meth:`AnomalyModel.score`; the model is left as it is.

    ``partners`` (tile to the tiles asked about its observations, from
    :meth:`AnomalyModel.consensus_partners`) adds the ``consensus`` variable,
    described by the spec ``consensus``.
    """
    if client is not None:
        check_score_memory(model, cube, client)
    release_free_memory()  # what a fit in this process freed (150 MB of its 680 after the annual cube's fit)
    # with a client, the climatology and each tile's models go to the cluster once, not in the graph
    with on_workers(client):
        return _score_cube(model, cube, tile, partners, consensus)


def check_score_memory(model: "AnomalyModel", cube: xr.Dataset, client: Any) -> None:
    """Refuse, before any work, to score on workers too small for a block and its tiles' models."""
    values = stack_variables(cube, model.variables)
    chunks = values.chunks or tuple((size,) for size in values.shape)
    tiles = most_tiles_in_a_block(model.tile_codes, chunks[-2:])
    check_workers(client, task_bytes(largest_chunk(chunks), tiles, model.detectors, phase="score"), "scoring this cube")


def _score_cube(model: "AnomalyModel", cube: xr.Dataset, tile: str | None,
                partners: dict[str, list[str]] | None, consensus: str) -> xr.Dataset:
    values = stack_variables(cube, model.variables)
    check_same_grid(model, cube)
    codes, ensembles = _cell_models(model, tile)
    # each block is scored in parts cut between tiles (no tile is scored more often): more, smaller tasks keep
    # every thread busy to the end, with fewer block-sized temporaries in memory; the result keeps the cube's chunks
    anomalies = model.climatology.standardise(values)  # a feature, and written as <variable>_anomaly
    features = feature_cube(values, model.climatology, feature_sets(model), region_params(model), anomalies=anomalies)
    blocks = features.chunks[2:]
    chunks = part_chunks(codes, features.chunks)
    features = features.rechunk({2: chunks[0], 3: chunks[1]})
    cell_codes = _data_blocks(_code_blocks(codes, chunks), chunks, codes.dtype, f"cell-codes-{tokenize(codes, chunks)}")
    partner_codes = None if partners is None else partners_by_code(model, partners)
    models = _models_by_block(codes, chunks, ensembles, partner_codes)
    n_detectors = len(model.detectors)
    asked = (None, None) if partner_codes is None else (_partners_by_block(codes, chunks, partner_codes), "yx")
    # blocks are paired by position: block (y, x) of the models holds the tiles of block (y, x) of the cube;
    # with partners, one more slice after the detectors holds the consensus (the features are made once)
    scored = da.blockwise(
        _score_block, "dtyx", features, "ftyx", cell_codes, "yx", models, "yx", n_detectors, None, *asked,
        new_axes={"d": n_detectors + (partners is not None)}, concatenate=False, align_arrays=False,
        dtype=np.float32, meta=np.empty((0, 0, 0, 0), dtype=np.float32),
    ).rechunk({2: blocks[0], 3: blocks[1]})  # the result keeps the cube's chunks
    if partners is None:
        return result_dataset(model, values, scored, tile, cube_units(cube, model.variables), anomalies,
                          undeclared_fills(cube, model.variables))
    result = result_dataset(model, values, scored[:n_detectors], tile, cube_units(cube, model.variables), anomalies,
                          undeclared_fills(cube, model.variables))
    result["consensus"] = consensus_variable(model, result["ensemble"], scored[n_detectors], consensus)
    return result


def _models_by_block(codes: np.ndarray, chunks: tuple[tuple[int, ...], ...], ensembles: list,
                     partners: dict[int, list[int]] | None = None) -> da.Array:
    """The tile models each spatial block needs, one graph key per block: {tile code: ensemble}.

    A task scoring a block receives only its own tiles' models (and, for a
    consensus, their ``partners``' models), so a worker holds the models of
    the tiles it scores, not the whole model (388 MiB for the SST sample at
    precision 3 with all four families). Each model is copied now, so
    changing the model afterwards (or adapting it) cannot change this result;
    its read-only arrays (an isolation forest's nodes) are shared, not
    copied (see :func:`_snapshot`). Inside ``on_workers(client)`` each model
    is sent to the cluster once instead, serialized (so copied) now
    (:func:`~geoanom.resident.resident_values`), and a block holds its
    tiles' futures: the graph held every model otherwise (86 MiB at 475
    tiles, through the scheduler).
    """
    def needed(block: np.ndarray) -> list[int]:
        own = [int(code) for code in np.unique(block) if code >= 0]
        wanted = {code for code in own if ensembles[code] is not None}
        wanted.update(p for code in own for p in (partners or {}).get(code, ()))
        return sorted(wanted)

    sent = sorted(set().union(*map(needed, _code_blocks(codes, chunks).values())))
    copies = dict(zip(sent, resident_values([ensembles[code] for code in sent], copy=_snapshot)))
    return _per_block(codes, chunks, lambda block: {code: copies[code] for code in needed(block)}, "tile-models")


def _snapshot(ensemble: Any) -> Any:
    """A deep copy of ``ensemble`` sharing its read-only arrays.

    A read-only array cannot change in place, and the detectors replace
    rather than change such arrays when they update, so sharing them keeps
    the copy's scores fixed: the copies of a saved four-family model's
    ensembles then take about 1 MB instead of 138 (annual throughput cube,
    729 tiles; the forests' nodes are read-only, see ``IForestDetector``).
    Numbers and strings are shared too, and the detectors are rebuilt from
    their attributes rather than through ``copy.deepcopy``'s generic
    protocol: 0.11 -> 0.05 s CPU for the 729 five-family ensembles, all of it
    on the main thread before any task runs.
    """
    return _copied(ensemble, {})


# Values that cannot change in place: a copy may share them.
_IMMUTABLE = (int, float, complex, str, bytes, bool, type(None), np.generic, np.dtype)


def _copied(value: Any, memo: dict[int, Any]) -> Any:
    """``copy.deepcopy(value)`` for a model's plain state (arrays, containers, attributes), read-only arrays shared.

    Objects it does not know (or that define their own copying) go through ``copy.deepcopy`` with the same
    memo, so a value held twice is copied once, as deepcopy does.
    """
    if isinstance(value, _IMMUTABLE):
        return value
    if id(value) in memo:
        return memo[id(value)]
    kind = type(value)
    if kind is np.ndarray and not value.dtype.hasobject:
        copied = value.copy(order="K") if value.flags.writeable else value
    elif kind is dict:
        copied = {key: _copied(item, memo) for key, item in value.items()}
    elif kind in (list, tuple):
        copied = kind(_copied(item, memo) for item in value)
    elif (hasattr(value, "__dict__") and not hasattr(kind, "__slots__") and not hasattr(kind, "__deepcopy__")
          and kind.__module__.startswith("geoanom.")):
        copied = object.__new__(kind)
        memo[id(value)] = copied
        copied.__dict__.update({name: _copied(item, memo) for name, item in vars(value).items()})
        return copied
    else:
        return copy.deepcopy(value, memo)
    memo[id(value)] = copied
    return copied


def _partners_by_block(codes: np.ndarray, chunks: tuple[tuple[int, ...], ...],
                       partners: dict[int, list[int]]) -> da.Array:
    """The consensus partners of each spatial block's tiles, one graph key per block: {tile code: codes}."""
    return _per_block(codes, chunks, lambda block: {int(code): partners[int(code)] for code in np.unique(block)
                                                   if int(code) in partners}, "tile-partners")


def _code_blocks(codes: np.ndarray, chunks: tuple[tuple[int, ...], ...]) -> dict[tuple[int, int], np.ndarray]:
    """Each spatial block of ``codes`` (views), by block index."""
    starts = [np.cumsum((0,) + tuple(sizes)) for sizes in chunks]
    return {(yi, xi): codes[starts[0][yi]:starts[0][yi + 1], starts[1][xi]:starts[1][xi + 1]]
            for yi, xi in np.ndindex(len(chunks[0]), len(chunks[1]))}


def _per_block(codes: np.ndarray, chunks: tuple[tuple[int, ...], ...], payload: Any, what: str) -> da.Array:
    """A (1, 1) object holder per spatial block of ``codes``, holding ``payload(the block's codes)``; ``what`` names
    the array."""
    blocks = {index: payload(block) for index, block in _code_blocks(codes, chunks).items()}
    # named once per call, not from the models' bytes (hashing the annual cube's forests took 1 s)
    name, chunks = f"{what}-{uuid.uuid4().hex}", tuple((1,) * len(sizes) for sizes in chunks)
    if any(isinstance(value, TaskRef) for block in blocks.values() for value in block.values()):
        # futures (see resident_values): a task per block gathers them, so the graph holds their keys
        graph = HighLevelGraph.from_collections(name, {(name, *index): (_holder, block)
                                                       for index, block in blocks.items()})
        return da.Array(graph, name, chunks, dtype=object, meta=np.empty((0, 0), dtype=object))
    return _data_blocks({index: _holder(block) for index, block in blocks.items()}, chunks, object, name)


def _holder(payload: Any) -> np.ndarray:
    """A (1, 1) object array holding ``payload``: one block of a `_per_block` array."""
    holder = np.empty((1, 1), dtype=object)
    holder[0, 0] = payload
    return holder


def _data_blocks(blocks: dict[tuple[int, ...], np.ndarray], chunks: tuple[tuple[int, ...], ...], dtype: Any,
                 name: str) -> da.Array:
    """A dask array named ``name`` whose blocks are ``blocks`` (by block index), held in the graph as data.

    dask's static ordering sets data apart from tasks, so the tasks that
    read a block are not tied together by it. With a task per block (what
    ``from_array`` and ``from_delayed`` make), the scoring tasks of every
    time block shared their spatial block's task, and dask ran the features
    of every time block before the first score (annual throughput cube:
    all 166 MB of the cube's features held at once, against 54 MB now).
    """
    graph = HighLevelGraph.from_collections(name, {(name, *index): block for index, block in blocks.items()})
    return da.Array(graph, name, chunks, dtype=dtype, meta=np.empty((0,) * len(chunks), dtype=dtype))


def score_cube_adapting(model: "AnomalyModel", cube: xr.Dataset, tile: str | None, adapt_every: int) -> xr.Dataset:
    """Score in time order, adapting the model's ensembles in place as it goes (eager, in this process).

    Call it on a copy of the model (:meth:`AnomalyModel.adapt` does).
    Adaptation makes every time step depend on all earlier ones: each
    tile's observations of the whole period are taken time step by time
    step, in batches of ``adapt_every`` rows counted from the first step,
    so the time chunks do not decide where a batch ends (scored chunk by
    chunk, 18 months in chunks of 9, 3 or 1 changed 316-661 of 5,015 flags).
    """
    values = stack_variables(cube, model.variables)
    check_same_grid(model, cube)
    codes, ensembles = _cell_models(model, tile)
    # computed once, in parallel: region features join the whole cube, so a time chunk alone would redo that;
    # the anomalies are a feature and an output: one computation serves both
    anomalies = model.climatology.standardise(values)
    features, anomaly_values = dask.compute(
        feature_cube(values, model.climatology, feature_sets(model), region_params(model), anomalies=anomalies),
        anomalies.data)
    anomalies = anomalies.copy(data=anomaly_values)
    n_detectors = len(model.detectors)
    out = np.full((n_detectors,) + values.shape[1:], np.nan, dtype=np.float32)
    flat = features.reshape(features.shape[:2] + (-1,))
    scored = out.reshape((n_detectors,) + flat.shape[1:])  # a view: the tiles' scores land in out
    with single_threaded_pools():
        for code, cells in group_cells(codes):
            if ensembles[code] is not None:
                _score_tile(ensembles[code], flat, cells, scored, adapt_every)
    return result_dataset(model, values, out, tile, cube_units(cube, model.variables), anomalies,
                          undeclared_fills(cube, model.variables))


def check_same_grid(model: "AnomalyModel", cube: xr.Dataset) -> None:
    """Raise unless the cube's grid is the one the model was fitted on, and its units, time step and level the model's.

    The units are checked here because every path that scores a cube with a
    model (score, adapt, the anomalies, the feature trajectory) checks its grid;
    so are values no weather gives and a trend stretched too far, which warn
    (:func:`~geoanom.model.plausibility.warn_implausible`).
    """
    if cube.sizes.get("time", 1) == 0:
        raise NoDataError(f"{source_name(cube)} has no time step to score; its time selection may be empty.")
    labels = model.labels
    for name in ("lat", "lon"):
        expected, found = labels[name].values, cube[name].values
        if expected.shape != found.shape or not np.allclose(expected, found, atol=1e-6):
            raise GeoanomError(f"the grid of {source_name(cube)} differs from the model's: "
                               f"{coordinate_difference(name, expected, found)}; "
                               f"{_grid_advice(name, expected, found)}.")
    check_same_units(model, cube)
    check_same_time_step(model, cube)
    check_same_level(model, cube)
    warn_implausible(model, cube)


def _grid_advice(name: str, expected: np.ndarray, found: np.ndarray) -> str:
    """What to do about a coordinate that differs: open with geoanom.open_cube when only its convention differs."""
    if expected.shape == found.shape:
        wrapped = name == "lon" and np.allclose(np.mod(found - expected + 180.0, 360.0) - 180.0, 0.0, atol=1e-6)
        reordered = np.allclose(np.sort(expected, axis=None), np.sort(found, axis=None), atol=1e-6)
        if wrapped or reordered:
            return ("the same cells in another order or longitude convention: open both the training and the scored "
                    "data with geoanom.open_cube, which puts latitudes ascending and longitudes in -180..180")
    return "score data on the grid the model was fitted on"


def _cell_models(model: "AnomalyModel", tile: str | None) -> tuple[np.ndarray, list]:
    """Tile code of every cell and the ensemble of every code (None if skipped)."""
    if tile is None:
        return model.tile_codes, [model.scoring_ensemble(str(name)) for name in model.tile_names]
    if len(tile) < model.precision:
        ensemble = model.region(tile)
    elif tile in model.ensembles:
        ensemble = model.ensembles[tile]
    else:
        reason = model.skipped.get(tile)
        detail = f"it was skipped: {reason}" if reason else known_tiles(list(model.ensembles))
        raise TileError(f"tile '{tile}' has no model; {detail}.")
    if "values" not in feature_sets(model):
        warnings.warn(f"scoring every cell with tile '{tile}''s model compares each cell's anomalies from its own "
                      "climatology, not its values; to ask how one region's model judges another's values "
                      "(Florida by Hudson Bay's), fit with features='values'.", GeoanomWarning, stacklevel=4)
    return np.zeros(model.tile_codes.shape, dtype=np.int32), [ensemble]


def feature_sets(model: "AnomalyModel") -> tuple[str, ...]:
    """The feature sets the model was fitted on (models from before feature sets used the values)."""
    return tuple(model.attrs.get("features", ("values",)))


def region_params(model: "AnomalyModel") -> RegionParams:
    """The region parameters the model was fitted with (the defaults if it has no region features)."""
    return RegionParams(**(model.attrs.get("region_params") or {}))


def _score_block(features: np.ndarray, codes: np.ndarray, models: np.ndarray, n_detectors: int,
                 partners: np.ndarray | None) -> np.ndarray:
    """Irregularity (detector, time, *spatial) of one block of features; NaN where a feature is NaN.

    ``models`` is the block's 1 x 1 holder of {tile code: ensemble} (see
    `_models_by_block`), ``partners`` None or that of {tile code: partner
    codes}, whose consensus is then one more slice after the detectors.
    """
    ensembles = models[0, 0]
    features = joined_blocks(features)  # the feature axis, contracted, as a list of blocks: not copied
    n_features, n_times = features.shape[:2]
    flat = features.reshape(n_features, n_times, -1)
    out = np.full((n_detectors, n_times, flat.shape[2]), np.nan, dtype=np.float32)
    with single_threaded_pools():
        for code, cells in group_cells(codes):
            if code in ensembles:
                _score_tile(ensembles[code], flat, cells, out)
        out = out.reshape((n_detectors,) + features.shape[1:])
        if partners is not None:
            out = np.concatenate([out, consensus_share(features, codes, ensembles, partners[0, 0])[None]])
    # each task's temporaries (features, scores, a tile's rows) are freed into the C heap, which keeps freed pages:
    # without giving them back, the process grew by about 100 MB more than it held (annual cube)
    release_free_memory()
    return out


def _score_tile(ensemble, features: np.ndarray, cells: np.ndarray, out: np.ndarray,
                adapt_every: int | None = None) -> None:
    """Irregularity of one tile's ``cells`` of a block of features (feature, time, cell), into ``out`` (detector,
    time, cell), which holds NaN where a feature is NaN.

    Rows run time step by time step, so with ``adapt_every`` the ensemble
    adapts in time order. The rows are taken out and the scores put back
    (clipped to float32's finite range: a value far from its tile's model
    can score beyond 3.4e38, and written as inf a map drew it blank) by
    compiled passes (:mod:`geoanom.features.tile_rows`).
    """
    rows, places = tile_rows(features, cells)
    if not len(rows):
        return
    # the rows are complete (tile_rows leaves out any with a non-finite feature): not checked again
    irregularity = (ensemble.irregularity_adapting(rows, adapt_every) if adapt_every
                    else ensemble.irregularity(rows, checked=True))
    place_scores(out, irregularity, places, cells)
