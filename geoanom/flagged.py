"""What a scored result's flags say as a whole: the share flagged, and the warning when it is far too high.

On data that stay in their training climate the ensemble flags 0.3-3% of
the observations; far more means the scored period has left that climate.
Both the command line (:mod:`geoanom.reporting`) and
:func:`geoanom.write_dataset` warn about it after writing a result, from
counts taken as it was written (an append reads back the steps it added),
judging the steps after the model's training period (in-sample steps say
nothing about leaving it).
"""

from __future__ import annotations

import functools
import warnings
from typing import Any

import numpy as np

from .errors import GeoanomWarning

# On data that stay in their training climate the ensemble flags 0.3-3% (tests/test_false_alarms.py);
# far more means the scored period has left that climate, which a reader of the map must be told.
MANY_FLAGGED = 0.10


def flagged_share(result) -> np.ndarray:
    """Share of the scored cells the ensemble flags, per time step (NaN where no cell was scored).

    Examples
    --------
    >>> flagged_share(model.score(cube).compute())  # doctest: +SKIP
    array([0.012, 0.009, ...])
    """
    flagged, counts = flag_counts(result)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, flagged / np.maximum(counts, 1), np.nan)


def flag_counts(result, compute: bool = True) -> tuple[Any, Any]:
    """Per time step: how many scored cells the ensemble flags, and how many cells were scored.

    With ``compute=False`` the counts of a lazy result stay lazy (dask
    arrays), to be computed with the result's write
    (:func:`geoanom.io.write.write_and_compute`): counted as the scores are
    written, not by reading them back (0.15-0.2 s on a 10 M-observation
    result). Each block is counted in one compiled pass (:func:`step_counts`):
    xarray's ``where`` and two ``sum`` took 0.17 s of CPU for the 10.4 M
    observations of ``benchmarks/throughput.py``'s monthly cube.

    Examples
    --------
    >>> flagged, scored = flag_counts(model.score(cube), compute=False)  # doctest: +SKIP
    """
    from .grid import spatial_dims  # xarray: not at import, the command's --help must stay instant

    dims = spatial_dims(result)
    ensemble = result["ensemble"].transpose("time", *dims).data
    fused = result["fused_irregularity"].transpose("time", *dims).data
    if hasattr(ensemble, "dask") or hasattr(fused, "dask"):
        import dask.array as da

        fused = da.asarray(fused).rechunk(da.asarray(ensemble).chunks)
        per_block = da.map_blocks(_block_counts, ensemble, fused, new_axis=0, chunks=((2,),) + tuple(
            (1,) * len(c) if i else c for i, c in enumerate(fused.chunks)), dtype=np.int64)
        counts = per_block.sum(axis=tuple(range(2, per_block.ndim)))
        flagged, scored = counts[0], counts[1]
    else:
        flagged, scored = step_counts(np.asarray(ensemble), np.asarray(fused))
    if compute and hasattr(flagged, "compute"):
        import dask

        flagged, scored = dask.compute(flagged, scored)
    return (flagged, scored)


def _block_counts(ensemble: np.ndarray, fused: np.ndarray) -> np.ndarray:
    """:func:`step_counts` of one block, shaped (2, time, 1, ...) for a sum over the spatial blocks."""
    flagged, scored = step_counts(ensemble, fused)
    return np.stack([flagged, scored]).reshape((2, ensemble.shape[0]) + (1,) * (ensemble.ndim - 1))


def step_counts(ensemble: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per step (axis 0): the cells flagged by the ensemble where scored, and the cells scored (fused not NaN).

    Examples
    --------
    >>> ensemble = np.array([[True, True], [False, True]])
    >>> fused = np.array([[2.0, np.nan], [0.5, 3.0]], dtype=np.float32)
    >>> [counts.tolist() for counts in step_counts(ensemble, fused)]
    [[1, 1], [1, 2]]
    """
    steps = ensemble.shape[0]
    return _step_counts(np.ascontiguousarray(ensemble, dtype=np.bool_).reshape(steps, -1),
                        np.ascontiguousarray(fused).reshape(steps, -1))


def _step_counts(ensemble: np.ndarray, fused: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return _count_kernel()(ensemble, fused)


@functools.cache
def _count_kernel():
    """:func:`_count_steps` compiled, the GIL released; numba is imported at the first count, not at import."""
    from numba import njit

    return njit(cache=True, nogil=True)(_count_steps)


def _count_steps(ensemble, fused):
    flagged = np.zeros(ensemble.shape[0], dtype=np.int64)
    scored = np.zeros(ensemble.shape[0], dtype=np.int64)
    for t in range(ensemble.shape[0]):
        n_flagged = n_scored = 0
        for i in range(ensemble.shape[1]):
            if fused[t, i] == fused[t, i]:  # not NaN
                n_scored += 1
                n_flagged += ensemble[t, i]
        flagged[t], scored[t] = n_flagged, n_scored
    return flagged, scored


def has_flags(result) -> bool:
    """Whether `result` is a scored result over time, whose flagged share :func:`warn_flagged_share` judges.

    Examples
    --------
    >>> has_flags(model.score(cube))  # doctest: +SKIP
    True
    """
    return {"ensemble", "fused_irregularity"} <= set(result.data_vars) and "time" in result.dims


# What to do about a scored period that left the training climate, for a result written from Python.
PYTHON_ADVICE = "fit with trend='linear' (unless the model has it), or score adaptively (model.adapt)"


def warn_flagged_share(result, path, advice: str) -> None:
    """Warn when the ensemble flags far more than normal data would: the scored period left the training climate.

    The share is of the scored observations outside the model's training
    period (:func:`outside_training`; of every one when all the steps are in
    it): in-sample steps say nothing about leaving the training climate.
    The first and last tenth of those time steps show whether it grows (a
    trend) or not (a shift). ``advice`` says what to do about it
    (``PYTHON_ADVICE``, or the command line's
    :func:`geoanom.reporting.command_line_advice`).

    Examples
    --------
    >>> warn_flagged_share(xr.open_zarr("anomalies.zarr"), "anomalies.zarr", PYTHON_ADVICE)  # doctest: +SKIP
    """
    warn_flagged_counts(*flag_counts(result), path, advice, outside=outside_training(result))


def outside_training(result) -> tuple[np.ndarray, str] | None:
    """Which time steps of a result lie outside its model's training period (before or after), and that period.

    From the coordinates and the period the result records
    (``geoanom_training_period`` on ``fused_irregularity``): nothing is
    computed. None when the result does not record it or its times are not
    sorted. A hindcast (a model of 1991-2020 scoring 1961-1990) is as far
    from its training as a forecast.

    Examples
    --------
    >>> outside, period = outside_training(model.score(cube))  # doctest: +SKIP
    >>> period  # doctest: +SKIP
    '1991-01-16 to 2020-12-16'
    """
    period = str(result["fused_irregularity"].attrs.get("geoanom_training_period", ""))
    start, _, end = (part.strip() for part in period.partition(" to "))
    if not end or "None" in (start, end):
        return None
    try:  # the index reads the dates as the result's own calendar does (cftime too)
        inside = result.indexes["time"].slice_indexer(start, end)
    except (KeyError, TypeError, ValueError):  # unsorted times, or a date no calendar reads
        return None
    steps = np.arange(result.sizes["time"])
    return (steps < inside.start) | (steps >= inside.stop), f"{start} to {end}"


def warn_flagged_counts(flagged: np.ndarray, counts: np.ndarray, path, advice: str,
                        outside: tuple[np.ndarray, str] | None = None) -> None:
    """:func:`warn_flagged_share` from the per-step counts of :func:`flag_counts`.

    ``outside`` (:func:`outside_training` of the result): the steps outside the
    training period, whose share alone is judged when any of them has scores.

    Examples
    --------
    >>> warn_flagged_counts(np.array([90, 95]), np.array([100, 100]), "a.zarr", PYTHON_ADVICE)  # doctest: +SKIP
    """
    flagged, counts = np.asarray(flagged), np.asarray(counts)
    unseen = ""
    if outside is not None and counts[outside[0]].sum() > 0:
        flagged, counts = flagged[outside[0]], counts[outside[0]]
        if counts.size < outside[0].size:  # some steps are in-sample: the share is of the others
            unseen = (f" of the {counts.size} time step{'s' * (counts.size != 1)} outside the training period "
                      f"({outside[1]})")
    if counts.sum() == 0 or flagged.sum() <= MANY_FLAGGED * counts.sum():
        return
    tenth = max(1, counts.size // 10)
    first, last = (part_flagged.sum() / max(part_counts.sum(), 1)
                   for part_flagged, part_counts in ((flagged[:tenth], counts[:tenth]),
                                                     (flagged[-tenth:], counts[-tenth:])))
    warnings.warn(f"{path}: the ensemble flags {flagged.sum() / counts.sum():.0%} of the scored observations (from "
                  f"{first:.0%} in the first tenth of the time steps to {last:.0%} in the last){unseen}, where normal "
                  "data give about 1%: the scored period has left the training climate, so the flags show that "
                  f"change (a trend or a shift) more than events; to see events about it, {advice}.",
                  GeoanomWarning, stacklevel=2)


def warn_flagged_share_of(path, advice: str, last_steps: int | None = None) -> None:
    """:func:`warn_flagged_share` for a written result, or its last ``last_steps`` time steps (an append).

    Examples
    --------
    >>> warn_flagged_share_of("anomalies.zarr", PYTHON_ADVICE, last_steps=1)  # doctest: +SKIP
    """
    with reopened(path) as written:
        if last_steps is not None:
            written = written.isel(time=slice(-last_steps, None))
        warn_flagged_share(written, path, advice)


def reopened(path):
    """The result just written, opened lazily.

    Examples
    --------
    >>> with reopened("anomalies.zarr") as written:  # doctest: +SKIP
    ...     print(flagged_share(written))
    """
    import xarray as xr

    if not str(path).endswith(".zarr"):
        return xr.open_dataset(path, chunks={})
    with warnings.catch_warnings():  # a Zarr 3 store has no consolidated metadata: the fallback is the reading
        warnings.filterwarnings("ignore", "Failed to open Zarr store with consolidated metadata", RuntimeWarning)
        return xr.open_zarr(path)
