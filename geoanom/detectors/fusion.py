"""How the families' irregularities become one verdict: the fused irregularity and the strict majority.

The one place of the rule, shared by :class:`~geoanom.detectors.ensemble.Ensemble`
(``decision_function``, ``majority_vote``) and the scored cubes
(:mod:`geoanom.model.result`, :mod:`geoanom.model.trajectory`, :mod:`geoanom.queries.consensus`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["FUSED_THRESHOLD", "FUSE_FLOOR", "fuse", "majority"]

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


def fuse(irregularity: Any, axis: int = 0) -> Any:
    """Fused irregularity over the detector ``axis``: the geometric mean.

    Families grow at different rates past their thresholds (the density
    score is roughly cubic in the distance), so the geometric mean, not the
    arithmetic one, keeps any single family from dominating; it exceeds 1
    exactly when the families' log-irregularities average above 0. Values
    below ``FUSE_FLOOR`` are raised to it first.

    Examples
    --------
    >>> fuse(np.array([[4.0, 0.5], [1.0, 0.0]])).round(3).tolist()
    [2.0, 0.071]
    """
    return np.exp(np.log(np.maximum(irregularity, FUSE_FLOOR)).mean(axis=axis))
