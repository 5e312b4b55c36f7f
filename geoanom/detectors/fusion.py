"""How the families' irregularities become one verdict: the fused irregularity (each view counted once) and the strict majority.

The one place of the rule, shared by :class:`~geoanom.detectors.ensemble.Ensemble`
(``decision_function``, ``majority_vote``) and the scored cubes
(:mod:`geoanom.model.result`, :mod:`geoanom.model.trajectory`, :mod:`geoanom.queries.consensus`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["FUSED_THRESHOLD", "FUSE_FLOOR", "VIEWS", "fuse", "majority", "view_weights"]

# The fused irregularity's threshold: pyod's ``threshold_`` of the ensemble (see Ensemble.predict).
FUSED_THRESHOLD = 1.0


def majority(votes: Any, n_detectors: int) -> Any:
    """Strict majority of ``n_detectors`` (both of two, two of three, ...).

    Examples
    --------
    >>> majority(np.array([0, 1, 2, 3]), 3).tolist()
    [False, False, True, True]
    """
    return votes * 2 > n_detectors


# Irregularities below this floor (normal observations, some negative) count
# as the floor in the geometric mean, so one family cannot veto with a 0.
FUSE_FLOOR = 0.01


# What each family judges. The four families of the reference paper model the density (or isolation) of one
# feature vector: one view, four estimates of it. The event family's likelihood ratio of an event against the cell's
# background ring is another view. Each view counts once in the fused score, so four estimates of one view do not
# out-vote the other. On ``benchmarks/accuracy.py``'s 55 cases, with every family counted once, the fused ROC AUC
# averaged 0.801 (real SST 0.801, its cold blobs 0.64-0.70, where the event family alone reached 0.78-0.84); with
# each view counted once 0.835 (SST 0.843, North America 0.671 -> 0.735, synthetic 0.929 either way), mean average
# precision 0.433 -> 0.458. Weighing the event family a third instead of a half gave 0.817.
VIEWS = {"gmm": "density", "kmeans": "density", "dpmm": "density", "iforest": "density", "event": "event"}


def view_weights(families: Sequence[str]) -> np.ndarray:
    """Each family's weight in the fused score: every view of :data:`VIEWS` weighs 1 / views, shared by its families.

    A family of no known view is a view of its own.

    Examples
    --------
    >>> view_weights(["gmm", "kmeans", "dpmm", "iforest", "event"]).tolist()
    [0.125, 0.125, 0.125, 0.125, 0.5]
    >>> view_weights(["gmm", "kmeans"]).tolist()
    [0.5, 0.5]
    """
    views = [VIEWS.get(str(name), str(name)) for name in families]
    counts = {view: views.count(view) for view in views}
    return np.array([1.0 / (len(counts) * counts[view]) for view in views])


def fuse(irregularity: Any, families: Sequence[str], axis: int = 0) -> Any:
    """Fused irregularity over the detector ``axis`` (one entry per name of ``families``): a geometric mean.

    Families grow at different rates past their thresholds (the density
    score is roughly cubic in the distance), so the geometric mean, not the
    arithmetic one, keeps any single family from dominating; it exceeds 1
    exactly when the families' log-irregularities average above 0. The mean
    is weighted by :func:`view_weights`: each view counts once. Values
    below ``FUSE_FLOOR`` are raised to it first.

    Examples
    --------
    >>> fuse(np.array([[4.0, 0.5], [1.0, 0.0]]), ["gmm", "kmeans"]).round(3).tolist()
    [2.0, 0.071]
    >>> fuse(np.array([[4.0], [4.0], [4.0], [4.0], [0.25]]), ["gmm", "kmeans", "dpmm", "iforest", "event"]).tolist()
    [1.0]
    """
    logs = np.log(np.maximum(irregularity, FUSE_FLOOR))
    weights = view_weights(families)
    if logs.shape[axis] != weights.size:
        raise ValueError(f"{logs.shape[axis]} irregularities along axis {axis} for {weights.size} families")
    shape = [1] * logs.ndim
    shape[axis] = weights.size
    return np.exp((logs * weights.reshape(shape)).sum(axis=axis))
