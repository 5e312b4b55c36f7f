"""Choosing the smoothing and threshold of the region pipeline by Bayesian optimisation.

The reference paper tunes its filter sizes "by Bayesian optimisation within
each local client": :func:`tune_region_params` needs only the data it is
given, so each institution can run it where its data live (for example as a
task pinned to its own workers) and share only the chosen parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import dask
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import GeoanomError
from ..grid import wraps_in_longitude
from .region_stats import region_table
from .regions import RegionParams, as_field, denoise, region_mask, standardised_anomaly

if TYPE_CHECKING:
    import optuna

MEDIAN_SIZES = (1, 3, 5)


@dataclass
class RegionTuning:
    """The outcome of :func:`tune_region_params`.

    Attributes
    ----------
    params : RegionParams
        The best parameters; ``params.to_dict()`` are keywords of
        :func:`region_features` and :func:`region_labels`.
    score : float
        The objective at ``params`` (higher is better).
    objective : str
        What was maximised.
    trials : pandas.DataFrame
        One row per trial: its parameters and objective.
    """

    params: RegionParams
    score: float
    objective: str
    trials: pd.DataFrame


def tune_region_params(
    data: xr.DataArray | xr.Dataset,
    labels_or_objective: xr.DataArray | np.ndarray | pd.Series | Callable | None = None,
    *,
    variable: str | None = None,
    n_trials: int = 30,
    seed: int = 0,
    sigma_range: tuple[float, float] = (0.0, 3.0),
    threshold_range: tuple[float, float] = (0.5, 3.0),
    median_sizes: tuple[int, ...] = MEDIAN_SIZES,
    tail: str = RegionParams.tail,
    baseline: Any = None,
) -> RegionTuning:
    """Choose sigma, median size and threshold by Bayesian optimisation (optuna's TPE).

    Parameters
    ----------
    data : DataArray (time, lat, lon) or Dataset
        One client's field; nothing else is read.
    labels_or_objective : optional
        What to maximise:

        * a boolean DataArray shaped like ``data`` (true where an event
          is): the ROC AUC, over valid cells, of each cell's region score
          (its smoothed anomaly beyond the threshold's side inside a region,
          0 outside);
        * a boolean sequence over time (an event in this time step): the ROC
          AUC of ``total_area`` per time step;
        * a callable ``objective(table) -> float`` of the
          :func:`region_features` table;
        * None (no labels): **temporal agreement**, the mean Cohen's kappa
          between the region masks of consecutive time steps. Real events
          persist while noise does not, and kappa discounts the agreement
          that the masks' sizes alone would give, so neither an empty nor a
          full mask scores well.
    variable : str, optional
        The field of a Dataset.
    n_trials : int, default 30
    seed : int, default 0
        Seed of the sampler: the same data and seed give the same result.
    sigma_range, threshold_range : (float, float)
        Search intervals (cells; standard deviations).
    median_sizes : tuple of int, default (1, 3, 5)
    tail : {"both", "upper", "lower"}
    baseline : optional
        See :func:`region_features`.

    Returns
    -------
    RegionTuning
    """
    # The local threaded scheduler, even inside a dask worker: tuning reads
    # only this client's data, where it is, and trials run one after another.
    with dask.config.set(scheduler="threads"):
        return _tune(data, labels_or_objective, variable, n_trials, seed, sigma_range, threshold_range,
                     median_sizes, tail, baseline)


def _tune(data, labels_or_objective, variable, n_trials, seed, sigma_range, threshold_range, median_sizes, tail,
          baseline) -> RegionTuning:
    field = as_field(data, variable)
    wrap = wraps_in_longitude(field)
    anomaly = standardised_anomaly(field, baseline).persist()
    objective, name = _objective(field, anomaly, labels_or_objective, tail, wrap)

    import optuna  # here, where tuning runs: it takes a second to import and brings tqdm

    def trial_value(trial: optuna.Trial) -> float:
        params = RegionParams(
            sigma=trial.suggest_float("sigma", *sigma_range),
            median_size=trial.suggest_categorical("median_size", list(median_sizes)),
            threshold=trial.suggest_float("threshold", *threshold_range),
            tail=tail,
        )
        return objective(params)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.optimize(trial_value, n_trials=n_trials)  # one trial at a time: the sampler is deterministic
    best = RegionParams(tail=tail, **study.best_params)
    trials = study.trials_dataframe(attrs=("number", "value", "params"))
    return RegionTuning(best, float(study.best_value), name, trials)


def _objective(field, anomaly, target, tail, wrap) -> tuple[Callable[[RegionParams], float], str]:
    if callable(target) and not isinstance(target, (xr.DataArray, np.ndarray, pd.Series)):
        return (lambda params: float(target(region_table(anomaly, params, wrap, n_boot=0)))), "callable"
    if target is None:
        return (lambda params: temporal_agreement(region_mask(anomaly.data, params, wrap).compute(),
                                                  np.isfinite(field.values))), "temporal agreement (kappa)"
    truth = np.asarray(target, dtype=bool)
    if truth.shape == field.shape:
        valid = np.isfinite(field.values)
        return (lambda params: _auc(truth[valid], _cell_scores(anomaly, params, wrap)[valid])), "cell ROC AUC"
    if truth.shape == (field.sizes["time"],):
        return (lambda params: _auc(truth, region_table(anomaly, params, wrap, n_boot=0)["total_area"].to_numpy()),
                "time-step ROC AUC of total_area")
    raise GeoanomError(f"labels must be shaped like the field {field.shape} or its time axis "
                       f"({field.sizes['time']},), got {truth.shape}.")


def _cell_scores(anomaly: xr.DataArray, params: RegionParams, wrap: bool) -> np.ndarray:
    """Each cell's smoothed anomaly on the threshold's side inside a region, 0 outside."""
    smooth, mask = dask.compute(denoise(anomaly.data, params, wrap), region_mask(anomaly.data, params, wrap))
    side = {"upper": smooth, "lower": -smooth}.get(params.tail, np.abs(smooth))
    return np.where(mask, side, 0.0)


def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    if truth.all() or not truth.any():
        raise GeoanomError("the labels must mark some, but not all, observations as events.")
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(truth, np.nan_to_num(score)))


def temporal_agreement(mask: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean Cohen's kappa between the masks of consecutive time steps (0 when undefined).

    Parameters
    ----------
    mask : ndarray of bool (time, y, x)
    valid : ndarray of bool, optional
        Cells that count (not land); all by default.
    """
    valid = np.ones(mask.shape, dtype=bool) if valid is None else valid
    kappas = []
    for before, after, ok in zip(mask[:-1], mask[1:], valid[:-1] & valid[1:]):
        a, b = before[ok], after[ok]
        if a.size == 0:
            continue
        observed = np.mean(a == b)
        chance = a.mean() * b.mean() + (1 - a.mean()) * (1 - b.mean())
        kappas.append((observed - chance) / (1 - chance) if chance < 1 else 0.0)
    return float(np.mean(kappas)) if kappas else 0.0
