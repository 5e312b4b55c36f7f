"""Thresholds of small tiles from out-of-fold scores.

A family's threshold is a quantile of its training scores (or the paper's
constant, when that quantile agrees with it). A model scores the rows it
was fitted on better than new ones, and on a small tile the difference is
large: on an 8 x 8 grid trained for 12 months (tiles of 144 to 432 rows)
the in-sample thresholds of the default families flagged 3-5% of held-back
normal data at a contamination of 1% (``tests/test_false_alarms.py``).
So for a tile of fewer than ``CROSSFIT_BELOW`` rows (and at least
``CROSSFIT_ABOVE``, the fewest geoanom.fit accepts) the threshold is
chosen from out-of-fold scores instead: the rows are dealt into
``N_FOLDS`` folds, each fold is scored by the family fitted on the
others, and the pooled scores are those of rows the scoring model did not
see, as a new observation's are, and their conformal quantile
(:func:`~geoanom.detectors.thresholds.contamination_quantile`) flags at
most the contamination of new normal data; under 99 rows that quantile
would be beyond the largest score, and the tail is extrapolated
(:func:`~geoanom.detectors.thresholds.tail_quantile`). The tile's own model is still the one
fitted on all its rows. Larger tiles keep their in-sample thresholds: the
optimism shrinks with the rows, and every small tile costs three more fits
(the isolation forest's most). ``python benchmarks/small_tiles.py``
(``results/small_tiles.json``), best of two in one process: ``ga.fit`` on
24 months of the SST sample 1.03 -> 1.11 s, at precision 3, where nearly
every tile is small, 2.53 -> 7.97 s; on 100 years of North America 1.06
-> 1.07 s. Three folds rather than five: fold models fitted on two thirds
of the rows score a little worse than the tile's model, so the threshold
errs high; the majority flag on held-back normal data of the 8 x 8 grid
after 12 months is 1.9% with three folds, 2.4% with five, 3.7% without.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .base import Detector

CROSSFIT_BELOW = 1024  # rows; see the module docstring
N_FOLDS = 3
# Fewer rows keep the in-sample threshold (geoanom.fit refuses min_observations and sample_size below it,
# see geoanom.detectors.limits): fold models of a handful of rows cannot be fitted by every family. It was 30,
# and tiles of 20-29 rows flagged 10.7% of new normal data in the trial of session 27 (kmeans 24%); from 12
# rows out-of-fold thresholds, extrapolated beyond the largest score (thresholds.tail_quantile), flag 0.8-1.1%
# by the majority of the five default families (tests/test_small_tiles.py).
CROSSFIT_ABOVE = 12


def fold_of_rows(n_rows: int, seed: int | None, n_folds: int = N_FOLDS) -> np.ndarray:
    """Each row's fold, ``0 .. n_folds - 1``: equal shares, dealt at random (reproducibly, from ``seed``).

    Examples
    --------
    >>> np.bincount(fold_of_rows(12, seed=0, n_folds=3)).tolist()
    [4, 4, 4]
    """
    return np.random.default_rng(seed).permutation(np.arange(n_rows) % n_folds)


def fit_many_out_of_fold(family: type[Detector], samples: Sequence[np.ndarray], random_states: Sequence[int | None],
                         params: dict[str, Any] | None = None, *, below: int | None = None,
                         n_folds: int | None = None) -> list[Detector]:
    """``family.fit_many``, with the thresholds of samples under ``below`` rows chosen out of fold.

    The fold models of all small samples are fitted in one batch (the
    families batch their work over samples).

    Parameters
    ----------
    family : Detector subclass
    samples : sequence of ndarray (n_i, n_features)
        One per tile, checked.
    random_states : sequence of int or None
        One seed per sample: the seed of its model, of its folds and of its fold models.
    params : dict, optional
        Constructor parameters shared by every detector.
    below, n_folds : int, optional
        Samples with fewer rows than ``below`` (and at least ``CROSSFIT_ABOVE``)
        get out-of-fold thresholds from ``n_folds`` folds; by default
        ``CROSSFIT_BELOW`` and ``N_FOLDS``, read at the call.

    Examples
    --------
    >>> from geoanom.detectors import GMMDetector
    >>> rng = np.random.default_rng(0)
    >>> small, large = rng.normal(size=(150, 2)), rng.normal(size=(300, 2))
    >>> fitted = fit_many_out_of_fold(GMMDetector, [small, large], [0, 1], below=200)
    >>> in_sample = GMMDetector.fit_many([small], [0])[0]
    >>> bool(fitted[0].native_threshold_ != in_sample.native_threshold_)
    True
    """
    params = params or {}
    below = CROSSFIT_BELOW if below is None else below
    n_folds = N_FOLDS if n_folds is None else n_folds
    detectors = family.fit_many(samples, random_states, **params)
    small = [i for i, X in enumerate(samples) if CROSSFIT_ABOVE <= len(X) < below]
    if not small:
        return detectors
    folds = {i: fold_of_rows(len(samples[i]), random_states[i], n_folds) for i in small}
    jobs = [(i, k) for i in small for k in range(n_folds)]
    fold_models = family.fit_many([samples[i][folds[i] != k] for i, k in jobs],
                                  [random_states[i] for i, _ in jobs], **params)
    held_out: dict[int, list[np.ndarray]] = {i: [] for i in small}
    for (i, k), model in zip(jobs, fold_models):
        held_out[i].append(model.native_score(samples[i][folds[i] == k]))
    for i in small:
        detectors[i].renew_threshold(np.concatenate(held_out[i]), held_out=True)
    return detectors
