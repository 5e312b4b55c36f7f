"""Per-observation features: each variable and its standardised anomaly.

The anomaly of an observation is its departure from its own cell's expected
value at that time, in units of the cell's spread, both from the one
:class:`~geoanom.features.climatology.Climatology`: a warm July is judged
against the cell's July, and a coastal cell against itself.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from .climatology import Climatology


def feature_names(variables: Sequence[str]) -> list[str]:
    """Names of the feature vector's entries: the variables, then their anomalies.

    Examples
    --------
    >>> feature_names(["sst"])
    ['sst', 'sst_anomaly']
    """
    return list(variables) + [f"{name}_anomaly" for name in variables]


def observation_features(values: np.ndarray, terms: np.ndarray, climatology: Climatology) -> np.ndarray:
    """Feature cube (2 * n_variables, time, *spatial) for one block of data.

    Parameters
    ----------
    values : ndarray (n_variables, time, *spatial)
    terms : ndarray (time, term)
        The block's rows of :meth:`Climatology.time_terms`; steps flagged as
        training get leave-one-out anomalies, so that training and scoring
        features are alike and thresholds learnt in training hold.
    climatology : Climatology
        The block's part of the climatology (see :meth:`Climatology.block`).

    Examples
    --------
    >>> features = observation_features(block, clim.time_terms(time), clim.block(rows, cols))  # doctest: +SKIP
    """
    return np.concatenate([values, climatology.anomaly(values, terms)], axis=0)
