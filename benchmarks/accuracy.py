"""Accuracy of geoanom against the baselines a scientist would compute, in the same run.

    python benchmarks/accuracy.py            # about 10 minutes on 2 cores; benchmarks/results/accuracy.json
    python benchmarks/accuracy.py --quick    # a smoke check (a few minutes); results/accuracy_quick.json
    python benchmarks/accuracy.py --detectors gmm,kmeans,dpmm,iforest   # four families: results/accuracy_gmm-...-iforest.json

Cubes: the embedded OSTIA SST (monthly 2006-04..2010-09, 54 x 18 x 432, land
NaN), the embedded HadCM3 North America air temperature (annual 1860-2099)
and a clean synthetic monthly cube (``geoanom.testing.synthetic_cube``,
10 years, 24 x 32 cells, no anomalies of its own).

Cases: each cube, each kind of event of :func:`geoanom.testing.inject_events`
(warm blobs, cold blobs, single-cell spikes, a step shift in a rectangle, a
slow drift in a rectangle; one kind per case, sizes in each cell's local
standard deviations) and each training length. The model is fitted on the
first ``n`` time steps (clean) and scores the remainder, where alone the
events are injected. Training lengths:

- synthetic: 24, 36, 60 months and 96 ("all": every month but the last 2 years);
- SST: 24, 36 months and 42 ("all": every month but the last 12);
- North America is annual, so months make no sense: 60, 100, 140 years and
  200 ("all": every year but the last 40). A blob there lasts 1-3 years.
  Its A1B warming trend makes the late scored years warm for every method
  alike; the truth is the injected events only.

Scores, each judged by ROC AUC and average precision over the scored
observations (NaN values, and observations any score leaves NaN, are left out
of every metric, so all scores are judged on the same observations):

- baselines: ``cell |z|`` (training mean and standard deviation per cell, all
  months pooled); ``season |z|`` (the same per cell and calendar month; on
  annual data identical to ``cell |z|``); ``clim |z|`` (the standardised
  anomaly of geoanom's own climatology, ``model.climatology``, alone);
  ``tile GMM`` (per geohash tile of the model's precision, a scikit-learn
  ``GaussianMixture(2, random_state=0)`` on the raw training values of its
  cells; score ``-score_samples``);
- geoanom: each family's irregularity and the fused irregularity of
  ``ga.fit(train).score(test)`` with the default detectors, plus the recall
  and false-alarm share of each family's ``anomalous`` flag and of the
  majority flag ``ensemble``; and ``adaptive``, the fused irregularity of
  ``model.adapt(test)`` (the same model adapting to the scored period as it
  scores it, as the paper's adaptive algorithm does);
- ``event``: the irregularity (and flag) of a second model fitted on the same
  training data with ``detectors="event"`` and the features ``anomalies,
  neighbours, background``: the opt-in event-direction GLR family
  (:class:`geoanom.EventDetector`, one (anomaly, neighbours) pair per
  variable, judged given its background ring), shown beside the fused score; and ``event, one scale``, its
  GLR over one Gaussian 1% bound in every tile (``paper_threshold``)
  instead of each tile's own threshold.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import time
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr
from sklearn.metrics import average_precision_score, roc_auc_score
from sklearn.mixture import GaussianMixture

import geoanom as ga
from geoanom.features.pipeline import stack_variables
from geoanom.grid import spatial_dims
from geoanom.testing import EVENT_KINDS, inject_events, synthetic_cube

RESULTS = Path(__file__).parent / "results"
BASELINES = ("cell |z|", "season |z|", "clim |z|", "tile GMM")
MIN_TILE_VALUES = 10  # a tile GMM needs at least this many training values


@dataclass
class Setup:
    """One cube, its variable and its training lengths (label, time steps)."""

    name: str
    cube: xr.Dataset
    variable: str
    lengths: list[tuple[str, int]]


def setups(quick: bool) -> list[Setup]:
    sst = ga.sample_cube("sst")
    north_america = ga.sample_cube("north_america")
    synthetic, _ = synthetic_cube(n_years=10, n_lat=24, n_lon=32, anomaly_rate=0.0, seed=0, frequency="month")
    all_sst, all_na, all_syn = sst.sizes["time"] - 12, north_america.sizes["time"] - 40, synthetic.sizes["time"] - 24
    cases = [
        Setup("synthetic", synthetic, "tas", [("24 m", 24), ("36 m", 36), ("60 m", 60), (f"{all_syn} m (all)", all_syn)]),
        Setup("sst", sst, "surface_temperature", [("24 m", 24), ("36 m", 36), (f"{all_sst} m (all)", all_sst)]),
        Setup("north_america", north_america, "air_temperature",
              [("60 y", 60), ("100 y", 100), ("140 y", 140), (f"{all_na} y (all)", all_na)]),
    ]
    if quick:
        for setup in cases:
            setup.lengths = setup.lengths[:1]
    return cases


# -- baselines ------------------------------------------------------------------------------

def field(cube: xr.Dataset, variable: str) -> np.ndarray:
    """The variable as float64 (time, *spatial)."""
    return cube[variable].transpose("time", *spatial_dims(cube)).values.astype(np.float64)


class Baselines:
    """The per-cell, per-season and per-tile baselines, fitted on the training field."""

    def __init__(self, train: np.ndarray, months: np.ndarray, tiles: np.ndarray) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN land cells
            self.cell = (np.nanmean(train, axis=0), np.nanstd(train, axis=0, ddof=1))
            self.season = {m: (np.nanmean(train[months == m], axis=0), np.nanstd(train[months == m], axis=0, ddof=1))
                           for m in np.unique(months)}
        self.tiles = [(cells, gmm) for cells, gmm in (self._tile_gmm(train, tiles == t) for t in np.unique(tiles))
                      if gmm is not None]

    @staticmethod
    def _tile_gmm(train: np.ndarray, cells: np.ndarray) -> tuple[np.ndarray, GaussianMixture | None]:
        values = train[:, cells].ravel()
        values = values[np.isfinite(values)]
        if values.size < MIN_TILE_VALUES:
            return cells, None
        return cells, GaussianMixture(2, random_state=0).fit(values[:, None])

    def scores(self, test: np.ndarray, months: np.ndarray) -> dict[str, np.ndarray]:
        season = np.full(test.shape, np.nan)
        for step, month in enumerate(months):
            mean, std = self.season.get(month, self.cell)
            season[step] = _abs_z(test[step], mean, std)
        return {"cell |z|": _abs_z(test, *self.cell), "season |z|": season, "tile GMM": self._tile_scores(test)}

    def _tile_scores(self, test: np.ndarray) -> np.ndarray:
        out = np.full(test.shape, np.nan)
        for cells, gmm in self.tiles:
            values = test[:, cells]
            score = np.full(values.shape, np.nan)
            finite = np.isfinite(values)
            score[finite] = -gmm.score_samples(values[finite][:, None])
            out[:, cells] = score
        return out


def _abs_z(values: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(std > 0, np.abs(values - mean) / std, np.nan)


# -- geoanom ----------------------------------------------------------------------------------

def geoanom_scores(model: ga.AnomalyModel, event_model: ga.AnomalyModel,
                   test: xr.Dataset) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Scores (each family, fused, the event model's, and the climatology's |z| alone) and flags on a test cube."""
    order = ("time", *spatial_dims(test))
    event = event_model.score(test).compute()
    result = model.score(test).compute()
    scores = {d: result["irregularity"].sel(detector=d).transpose(*order).values for d in model.detectors}
    scores["fused"] = result["fused_irregularity"].transpose(*order).values
    flags = {d: result["anomalous"].sel(detector=d).transpose(*order).values for d in model.detectors}
    flags["ensemble"] = result["ensemble"].transpose(*order).values
    scores["event"] = event["irregularity"].sel(detector="event").transpose(*order).values
    scores["event, one scale"] = scores["event"] * gaussian_rescaling(event_model, event, order[1:])
    flags["event"] = event["anomalous"].sel(detector="event").transpose(*order).values
    adaptive, _ = model.adapt(test)  # the same model, adapting to the scored period as it goes (a copy)
    scores["adaptive"] = adaptive["fused_irregularity"].transpose(*order).values
    z = model.climatology.standardise(stack_variables(test, model.variables)).transpose("variable", *order)
    scores["clim |z|"] = np.abs(z.values).max(axis=0)
    return scores, flags


def gaussian_rescaling(event_model: ga.AnomalyModel, result: xr.Dataset, spatial: tuple[str, ...]) -> np.ndarray:
    """Per cell, what turns the event irregularity (the GLR over its tile's own threshold) into the GLR over
    one Gaussian 1% bound shared by every tile (``paper_threshold``): the event family on one scale."""
    names = ga.tile_names(result).transpose(*spatial).values
    factors = {name: d.native_threshold_ / d.paper_threshold
               for name, d in ((n, e.detectors_["event"]) for n, e in event_model.ensembles.items())}
    return np.vectorize(lambda name: factors.get(name, np.nan), otypes=[float])(names)[None]


def background_share(model: ga.AnomalyModel, clean_test: xr.Dataset) -> float:
    """Share of the clean scored observations whose climatology |z| exceeds 3: real, unlabelled anomalies.

    About 0.3% for a stationary Gaussian record; far more means the scored
    period itself departs from the training one (a trend, El Nino), which
    every score sees and the truth mask does not count.
    """
    z = np.abs(model.climatology.standardise(stack_variables(clean_test, model.variables)).values)
    return float(np.mean(z[np.isfinite(z)] > 3))


EVENT_FEATURES = ("anomalies", "neighbours", "background")


def fit_event_model(train: xr.Dataset) -> ga.AnomalyModel:
    """A model of the event family alone: per variable, its (anomaly, neighbours) pair given its background."""
    model = ga.fit(train, detectors="event", features=EVENT_FEATURES)
    assert all(e.detectors_["event"].pairs == len(train.data_vars) and e.detectors_["event"].background
               for e in model.ensembles.values())
    return model


# -- metrics ----------------------------------------------------------------------------------

def score_metrics(truth: np.ndarray, score: np.ndarray) -> dict[str, float]:
    if truth.all() or not truth.any():
        return {"roc_auc": float("nan"), "average_precision": float("nan")}
    return {"roc_auc": float(roc_auc_score(truth, score)),
            "average_precision": float(average_precision_score(truth, score))}


def flag_metrics(truth: np.ndarray, flags: np.ndarray) -> dict[str, float]:
    return {"recall": float(flags[truth].mean()) if truth.any() else float("nan"),
            "false_alarm_share": float(flags[~truth].mean()) if (~truth).any() else float("nan")}


# -- one case ---------------------------------------------------------------------------------

def run_length(setup: Setup, label: str, n_train: int, kinds: tuple[str, ...],
               detectors: str | None = None) -> list[dict]:
    """Fit once on the clean first ``n_train`` steps, then score every kind of event injected after them."""
    cube, variable = setup.cube, setup.variable
    train = cube.isel(time=slice(None, n_train))
    started = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ga.fit(train[[variable]], **({"detectors": detectors} if detectors else {}))
    fit_seconds = time.perf_counter() - started
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the same warnings as the model above
        event_model = fit_event_model(train[[variable]])
    tiles = ga.tile_labels(cube, precision=model.precision).transpose(*spatial_dims(cube)).values
    started = time.perf_counter()
    baselines = Baselines(field(train, variable), train["time"].dt.month.values, tiles)
    baseline_seconds = time.perf_counter() - started
    background = background_share(model, cube.isel(time=slice(n_train, None))[[variable]])
    rows = []
    for kind in kinds:
        seed = zlib.crc32(f"{setup.name}/{kind}/{n_train}".encode())
        injected, events = inject_events(cube[[variable]], variable, kind, start=n_train, seed=seed)
        test = injected.isel(time=slice(n_train, None))
        truth = events.isel(time=slice(n_train, None)).values
        started = time.perf_counter()
        scores, flags = geoanom_scores(model, event_model, test)
        score_seconds = time.perf_counter() - started
        scores.update(baselines.scores(field(test, variable), test["time"].dt.month.values))
        row = case_row(setup, label, n_train, kind, truth, field(test, variable), scores, flags)
        row.update(seconds_fit=fit_seconds, seconds_baselines_fit=baseline_seconds, seconds_score=score_seconds,
                   precision=int(model.precision), skipped_tiles=len(model.skipped), background_share=background,
                   fit_warnings=sorted({str(w.message) for w in caught}))
        rows.append(row)
        print(f"  {setup.name:14s} {kind:10s} {label:12s} events {row['events']:6d} / {row['observations']:7d}  "
              f"background {100 * background:4.1f}%  "
              f"best baseline {row['best_baseline']:10s} {row['best_baseline_auc']:.3f}  fused {row['fused_auc']:.3f}"
              f"  event {row['event_auc']:.3f}"
              f"  (fit {fit_seconds:.1f} s, score {score_seconds:.1f} s)", flush=True)
    return rows


def case_row(setup: Setup, label: str, n_train: int, kind: str, truth: np.ndarray, values: np.ndarray,
             scores: dict[str, np.ndarray], flags: dict[str, np.ndarray]) -> dict:
    """Metrics of every score on the observations that every score (and the data) has."""
    keep = np.isfinite(values) & np.logical_and.reduce([np.isfinite(s) for s in scores.values()])
    unscored = np.isfinite(values) & ~np.isfinite(scores["fused"])
    y = truth[keep]
    metrics = {name: score_metrics(y, score[keep]) for name, score in scores.items()}
    for name, flag in flags.items():
        metrics.setdefault(name, {}).update(flag_metrics(y, flag[keep]))
    best = max(BASELINES, key=lambda name: np.nan_to_num(metrics[name]["roc_auc"], nan=-1.0))
    fused_auc, best_auc = metrics["fused"]["roc_auc"], metrics[best]["roc_auc"]
    return {"cube": setup.name, "kind": kind, "train": label, "train_steps": n_train,
            "test_steps": int(values.shape[0]), "observations": int(keep.sum()), "events": int(y.sum()),
            "unscored_by_geoanom": int(unscored.sum()), "scores": metrics, "best_baseline": best,
            "best_baseline_auc": best_auc, "fused_auc": fused_auc, "fused_beats_best_baseline": bool(fused_auc > best_auc),
            "adaptive_auc": metrics["adaptive"]["roc_auc"],
            "adaptive_beats_best_baseline": bool(metrics["adaptive"]["roc_auc"] > best_auc),
            "event_auc": metrics["event"]["roc_auc"], "event_beats_best_baseline": bool(metrics["event"]["roc_auc"] > best_auc),
            "event_beats_fused": bool(metrics["event"]["roc_auc"] > fused_auc),
            "event_one_scale_auc": metrics["event, one scale"]["roc_auc"],
            "event_one_scale_beats_best_baseline": bool(metrics["event, one scale"]["roc_auc"] > best_auc)}


# -- report -----------------------------------------------------------------------------------

def case_name(row: dict) -> str:
    return f"{row['cube']} {row['kind']} {row['train']}"


def print_table(rows: list[dict], columns: list[str], metric: str, title: str) -> None:
    print(f"\n{title}")
    print(f"{'case':36s}" + "".join(f"{c:>11s}" for c in columns))
    for row in rows:
        print(f"{case_name(row):36s}" + "".join(f"{row['scores'][c][metric]:11.3f}" for c in columns))


def print_flags(rows: list[dict], columns: list[str]) -> None:
    print("\nflags: recall / false-alarm share (%)")
    print(f"{'case':36s}" + "".join(f"{c:>15s}" for c in columns))
    for row in rows:
        cells = [f"{row['scores'][c]['recall']:.2f} / {100 * row['scores'][c]['false_alarm_share']:4.1f}" for c in columns]
        print(f"{case_name(row):36s}" + "".join(f"{c:>15s}" for c in cells))


def print_by_kind(rows: list[dict], columns: list[str]) -> None:
    print("\nmean ROC AUC by kind of event (over cubes and training lengths)")
    print(f"{'kind':12s}" + "".join(f"{c:>11s}" for c in columns))
    for kind in dict.fromkeys(r["kind"] for r in rows):
        chosen = [r for r in rows if r["kind"] == kind]
        print(f"{kind:12s}" + "".join(f"{np.nanmean([r['scores'][c]['roc_auc'] for r in chosen]):11.3f}" for c in columns))


def print_summary(rows: list[dict]) -> int:
    print("\nsummary: fused irregularity against the best baseline (ROC AUC); background = share of the clean"
          "\nscored observations with climatology |z| > 3 (real anomalies the truth does not count)")
    print(f"{'case':36s} {'background':>10s} {'best baseline':>14s} {'AUC':>7s} {'fused':>7s} {'margin':>8s}  fused beats it")
    for row in rows:
        margin = row["fused_auc"] - row["best_baseline_auc"]
        print(f"{case_name(row):36s} {100 * row['background_share']:9.1f}% {row['best_baseline']:>14s} "
              f"{row['best_baseline_auc']:7.3f} {row['fused_auc']:7.3f} {margin:+8.3f}  "
              f"{'yes' if row['fused_beats_best_baseline'] else 'NO'}")
    wins = sum(r["fused_beats_best_baseline"] for r in rows)
    by_cube = ", ".join(f"{cube} {sum(r['fused_beats_best_baseline'] for r in rows if r['cube'] == cube)}"
                        f"/{sum(r['cube'] == cube for r in rows)}" for cube in dict.fromkeys(r["cube"] for r in rows))
    print(f"fused beats the best baseline in {wins} of {len(rows)} cases ({by_cube})")
    adaptive = sum(r["adaptive_beats_best_baseline"] for r in rows)
    by_cube = ", ".join(f"{cube} {sum(r['adaptive_beats_best_baseline'] for r in rows if r['cube'] == cube)}"
                        f"/{sum(r['cube'] == cube for r in rows)}" for cube in dict.fromkeys(r["cube"] for r in rows))
    print(f"the adaptive fused score (model.adapt) beats it in {adaptive} of {len(rows)} cases ({by_cube})")
    print_event_summary(rows)
    return wins


def print_event_summary(rows: list[dict]) -> None:
    """The event family alone against the best baseline and the fused score (ROC AUC)."""
    print("\nsummary: event family (detectors=\"event\") against the best baseline and the fused score (ROC AUC)")
    print(f"{'case':36s} {'best baseline':>14s} {'AUC':>7s} {'fused':>7s} {'event':>7s} {'margin':>8s}  event beats it")
    for row in rows:
        print(f"{case_name(row):36s} {row['best_baseline']:>14s} {row['best_baseline_auc']:7.3f} {row['fused_auc']:7.3f} "
              f"{row['event_auc']:7.3f} {row['event_auc'] - row['best_baseline_auc']:+8.3f}  "
              f"{'yes' if row['event_beats_best_baseline'] else 'NO'}")
    for key, what in (("event_beats_best_baseline", "every baseline"), ("event_beats_fused", "the fused score"),
                      ("event_one_scale_beats_best_baseline", "every baseline on one Gaussian scale")):
        by_cube = ", ".join(f"{cube} {sum(r[key] for r in rows if r['cube'] == cube)}/{sum(r['cube'] == cube for r in rows)}"
                            for cube in dict.fromkeys(r["cube"] for r in rows))
        print(f"event beats {what} in {sum(r[key] for r in rows)} of {len(rows)} cases ({by_cube})")
    margins = {name: [r[f"{name}_auc"] - r["best_baseline_auc"] for r in rows]
               for name in ("fused", "event", "event_one_scale")}
    print("margin over the best baseline, mean / worst: "
          + ", ".join(f"{name} {np.mean(m):+.3f} / {np.min(m):+.3f}" for name, m in margins.items()))


def provenance() -> dict[str, str | bool]:
    """The commit the run measured, and whether geoanom's files differed from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=Path(__file__).parent, capture_output=True, text=True).stdout.strip()
    try:
        return {"commit": git("rev-parse", "HEAD"), "geoanom_modified": bool(git("status", "--porcelain", "--", "../geoanom"))}
    except OSError:
        return {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="first training length of each cube, two kinds")
    parser.add_argument("--detectors", default=None,
                        help="the main model's families, comma-separated (default: geoanom's default ensemble)")
    args = parser.parse_args()
    kinds = ("warm_blob", "spike") if args.quick else EVENT_KINDS
    started = time.perf_counter()
    rows = []
    for setup in setups(args.quick):
        for label, n_train in setup.lengths:
            rows += run_length(setup, label, n_train, kinds, args.detectors)
    seconds = time.perf_counter() - started
    families = [c for c in rows[0]["scores"] if c not in BASELINES and c != "ensemble"]
    columns = list(BASELINES) + families
    print_table(rows, columns, "roc_auc", "ROC AUC")
    print_table(rows, columns, "average_precision", "average precision")
    print_flags(rows, [c for c in [*families, "ensemble"] if "recall" in rows[0]["scores"][c]])  # those with a flag
    print_by_kind(rows, columns)
    wins = print_summary(rows)
    print(f"total {seconds:.0f} s")
    suffix = ("_quick" if args.quick else "") + (f"_{args.detectors.replace(',', '-')}" if args.detectors else "")
    out = RESULTS / f"accuracy{suffix}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"seconds": seconds, "quick": args.quick, "detectors": args.detectors or "default",
                               "provenance": provenance(), "cases": rows,
                               "fused_beats_best_baseline": wins, "n_cases": len(rows),
                               "event_beats_best_baseline": sum(r["event_beats_best_baseline"] for r in rows),
                               "event_beats_fused": sum(r["event_beats_fused"] for r in rows),
                               "event_one_scale_beats_best_baseline":
                                   sum(r["event_one_scale_beats_best_baseline"] for r in rows)}, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
