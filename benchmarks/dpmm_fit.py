"""Benchmark DPMMDetector fitting: batched variational inference vs scikit-learn per tile.

Fits 729 seeded samples of 2 features shaped like standardised climate
anomalies (mixtures of one to three Gaussians of unequal spread and
correlation, 2048 rows, one in ten ragged between 200 and 2047 rows) two
ways in the same run:

* old: the detector as it was before the batched fit (geoanom commit
  13449d1), copied below as the baseline: one scikit-learn
  ``BayesianGaussianMixture(weight_concentration_prior_type=
  "dirichlet_process", covariance_type="full", n_components=6,
  weight_concentration_prior=0.01, tol=1e-3 * n, max_iter=200)`` per tile;
* new: ``DPMMDetector.fit_many`` (:mod:`geoanom.detectors.variational`,
  every tile of the batch in one numpy loop).

Both are whole detector fits (standardisation, the mixture, the model
log-likelihood and the threshold). Also times the mixture alone both ways
(``BayesianGaussianMixture.fit`` per tile vs ``fit_dirichlet_mixtures``) on
the same standardised samples. Each time is the best of ``--repeats`` runs,
old and new interleaved (the machine is shared), timed with
``time.perf_counter``, after a warm-up fit of two tiles (numba's
compilation, cached on disk). The BLAS and OpenMP pools are limited to
``--threads`` threads (1 by default, as distributed gives its workers): on a
loaded 2-core machine a threaded OpenBLAS spins on the many tiny (2 x 2)
solves of both paths, 2x2 ``scipy.linalg.solve_triangular`` measured at 8 ms
a call instead of 15 us, which would time the machine, not the algorithms.

Agreement: the share of tiles whose two fits have the same number of
populated components (weight >= 1%), the median and largest absolute
difference of the model's mean log-likelihood (``model_llk_``), and the
largest parameter difference. Accuracy: every tile's detector scores
2048 held-out rows drawn from the tile's own mixture, 1% of them moved 4 to
8 standard deviations in a random direction (the outliers); the ROC AUC of
``decision_function`` is reported per tile (mean) and pooled, old and new.

Prints a table and writes ``benchmarks/results/dpmm_fit.json``. Run from the
repository root::

    python benchmarks/dpmm_fit.py [--tiles N] [--repeats N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import sklearn
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.mixture import BayesianGaussianMixture
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from geoanom.detectors import DPMMDetector  # noqa: E402
from geoanom.detectors.base import Detector  # noqa: E402
from geoanom.detectors.dpmm import NEAR_EMPTY_WEIGHT  # noqa: E402
from geoanom.detectors.inputs import standardised_sample  # noqa: E402
from geoanom.detectors.variational import fit_dirichlet_mixtures  # noqa: E402

ROWS = 2048
OUTLIER_SHARE = 0.01


class OldDPMMDetector(DPMMDetector):
    """The detector before the batched fit (geoanom commit 13449d1): one scikit-learn fit per tile."""

    fit_many = classmethod(Detector.fit_many.__func__)  # one tile after another

    def _fit(self, X: np.ndarray) -> None:
        Z = standardised_sample(self, X, self.max_samples, np.random.default_rng(self.random_state))
        mixture = scikit_learn_fit(Z, self)
        self.converged_ = bool(mixture.converged_)
        self._set_components(mixture.weights_, mixture.means_, mixture.covariances_)
        self.model_llk_ = float(np.mean(self._log_likelihood(Z)[0]))


def scikit_learn_fit(Z: np.ndarray, detector: DPMMDetector) -> BayesianGaussianMixture:
    """The old path's variational fit of one standardised sample."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return BayesianGaussianMixture(
            n_components=min(detector.max_components, len(Z)), covariance_type="full",
            weight_concentration_prior_type="dirichlet_process",
            weight_concentration_prior=detector.concentration, reg_covar=detector.reg_covar,
            max_iter=detector.max_iter, tol=1e-3 * len(Z), random_state=detector.random_state,
        ).fit(Z)


# -- data -----------------------------------------------------------------------------


def tile_mixture(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A tile's generating mixture: weights (c,), means (c, 2), square-root covariances (c, 2, 2)."""
    c = int(rng.integers(1, 4))
    weights = rng.dirichlet(np.full(c, 4.0))
    means = rng.normal(scale=2.5, size=(c, 2))
    angles = rng.uniform(0, np.pi, c)
    rotation = np.stack([np.stack([np.cos(angles), -np.sin(angles)], 1), np.stack([np.sin(angles), np.cos(angles)], 1)], 1)
    roots = rotation * rng.uniform(0.3, 1.2, size=(c, 1, 2))
    return weights, means, roots


def draw(mixture: tuple[np.ndarray, np.ndarray, np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    weights, means, roots = mixture
    labels = rng.choice(len(weights), size=n, p=weights)
    return means[labels] + np.einsum("nij,nj->ni", roots[labels], rng.normal(size=(n, 2)))


def anomaly_samples(n_tiles: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Training samples, held-out samples with outliers, and the held-out outlier labels."""
    rng = np.random.default_rng(seed)
    train, held_out, labels = [], [], []
    for _ in range(n_tiles):
        mixture = tile_mixture(rng)
        n = ROWS if rng.random() > 0.1 else int(rng.integers(200, ROWS))
        X = draw(mixture, n, rng)
        centre, scale = X.mean(axis=0), X.std(axis=0)
        train.append((X - centre) / scale)
        test = (draw(mixture, ROWS, rng) - centre) / scale
        outliers = rng.random(ROWS) < OUTLIER_SHARE
        direction = rng.normal(size=(int(outliers.sum()), 2))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        test[outliers] += direction * rng.uniform(4, 8, size=(len(direction), 1))
        held_out.append(test)
        labels.append(outliers)
    return train, held_out, labels


# -- measurements --------------------------------------------------------------------


def best_of(repeats: int, runs: dict[str, Callable[[], Any]]) -> tuple[dict[str, float], dict[str, Any]]:
    """Best wall time of each run over ``repeats`` rounds, the runs interleaved; the last results."""
    times = {name: np.inf for name in runs}
    results: dict[str, Any] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            started = time.perf_counter()
            results[name] = run()
            times[name] = min(times[name], time.perf_counter() - started)
    return times, results


def agreement(old: list[DPMMDetector], new: list[DPMMDetector]) -> dict[str, float]:
    populated = [(int((a.weights_ >= NEAR_EMPTY_WEIGHT).sum()), int((b.weights_ >= NEAR_EMPTY_WEIGHT).sum()))
                 for a, b in zip(old, new)]
    llk = np.abs([a.model_llk_ - b.model_llk_ for a, b in zip(old, new)])
    parameters = max(float(np.abs(getattr(a, name) - getattr(b, name)).max())
                     for a, b in zip(old, new) for name in ("weights_", "means_", "covariances_"))
    return {
        "same_populated_count_share": float(np.mean([a == b for a, b in populated])),
        "median_abs_mean_llk_difference": float(np.median(llk)),
        "max_abs_mean_llk_difference": float(llk.max()),
        "max_abs_parameter_difference": parameters,
        "populated_components_histogram_new": np.bincount([b for _, b in populated], minlength=7).tolist(),
    }


def accuracy(detectors: list[DPMMDetector], held_out: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    scores = [detector.decision_function(X) for detector, X in zip(detectors, held_out)]
    per_tile = [roc_auc_score(y, s) for y, s in zip(labels, scores) if 0 < y.sum() < len(y)]
    return {"mean_tile_roc_auc": float(np.mean(per_tile)),
            "pooled_roc_auc": float(roc_auc_score(np.concatenate(labels), np.concatenate(scores))),
            "tiles_scored": len(per_tile)}


def print_table(n_tiles: int, fits: dict[str, float], mixtures: dict[str, float], agree: dict[str, float],
                auc: dict[str, dict[str, float]]) -> None:
    print(f"{n_tiles} tiles of 2 features, {ROWS} rows (one in ten ragged); best of repeats, seconds")
    print(f"{'':32s} {'old (sklearn per tile)':>24s} {'new (batched)':>14s} {'ratio':>7s}")
    for label, times in (("DPMMDetector.fit_many", fits), ("mixture alone", mixtures)):
        print(f"{label:32s} {times['old']:24.2f} {times['new']:14.2f} {times['old'] / times['new']:7.1f}")
    print(f"same number of populated components: {agree['same_populated_count_share']:.1%} of tiles; "
          f"|model llk difference| median {agree['median_abs_mean_llk_difference']:.1e}, "
          f"max {agree['max_abs_mean_llk_difference']:.1e}; "
          f"largest parameter difference {agree['max_abs_parameter_difference']:.1e}")
    for key in ("mean_tile_roc_auc", "pooled_roc_auc"):
        print(f"{key:32s} {auc['old'][key]:24.4f} {auc['new'][key]:14.4f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=729)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "dpmm_fit.json")
    args = parser.parse_args(argv)
    with threadpool_limits(args.threads):
        result = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}")
    return 0


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Run the timings, agreement and accuracy; the JSON record."""
    train, held_out, labels = anomaly_samples(args.tiles, args.seed)
    seeds = list(range(args.seed, args.seed + args.tiles))
    DPMMDetector.fit_many(train[:2], seeds[:2])  # numba compiles (or loads its cache) before the timings
    fits, detectors = best_of(args.repeats, {"old": lambda: OldDPMMDetector.fit_many(train, seeds),
                                             "new": lambda: DPMMDetector.fit_many(train, seeds)})
    # the mixtures alone, on the samples the detectors fitted (already standardised: at most 2048 rows)
    reference = DPMMDetector()
    mixtures, _ = best_of(args.repeats, {
        "old": lambda: [scikit_learn_fit(Z, reference.set_params(random_state=seed)) for Z, seed in zip(train, seeds)],
        "new": lambda: fit_dirichlet_mixtures(train, seeds, 6, concentration=0.01, reg_covar=1e-4, max_iter=200),
    })
    agree = agreement(detectors["old"], detectors["new"])
    auc = {name: accuracy(fitted, held_out, labels) for name, fitted in detectors.items()}
    print_table(args.tiles, fits, mixtures, agree, auc)

    return {
        "benchmark": "dpmm_fit",
        "repeats": args.repeats,
        "blas_openmp_threads": args.threads,
        "timer": "time.perf_counter, best of repeats, old and new interleaved",
        "seed": args.seed,
        "tiles": args.tiles,
        "rows_per_tile": [int(min(len(X) for X in train)), int(max(len(X) for X in train))],
        "fit_seconds": {"old_sklearn_per_tile": fits["old"], "new_batched": fits["new"],
                        "ratio": fits["old"] / fits["new"]},
        "mixture_seconds": {"old_sklearn_per_tile": mixtures["old"], "new_batched": mixtures["new"],
                            "ratio": mixtures["old"] / mixtures["new"]},
        "agreement": agree,
        "roc_auc": auc,
        "outliers": {"share": OUTLIER_SHARE, "distance_sd": [4, 8], "held_out_rows_per_tile": ROWS},
        "numpy": np.__version__,
        "scikit_learn": sklearn.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_at_end": os.getloadavg(),
    }


if __name__ == "__main__":
    raise SystemExit(main())
