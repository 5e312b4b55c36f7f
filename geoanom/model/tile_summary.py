"""The table of a model's tiles: what each was fitted on, its status and thresholds.

Behind :meth:`geoanom.AnomalyModel.tile_table`: one row per tile, fitted or
skipped, with its cells, training observations, each family's threshold and
where it came from, and in a federated fit how much of each tile's adapted
families came from its region's model (:func:`geoanom.model.personalise.region_share`).
This module knows the model only by its attributes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..detectors import Ensemble
from .personalise import FAMILIES, region_share

if TYPE_CHECKING:
    from .core import AnomalyModel


def tile_table(model: "AnomalyModel") -> pd.DataFrame:
    """One row per tile, indexed by ``tile``: cells, training observations, status and thresholds.

    Fitted tiles have ``observations`` and per family ``<family>_threshold``
    and ``<family>_threshold_source``; skipped ones a ``reason``. In a
    federated fit, also ``<family>_region_share`` for the gmm and kmeans.

    Examples
    --------
    >>> tile_table(model).loc["dj", ["cells", "status"]].tolist()  # doctest: +SKIP
    [64, 'fitted']
    """
    cells = pd.Series(model.labels.values.ravel()).value_counts()
    rows = []
    for tile in sorted(set(model.ensembles) | set(model.skipped)):
        row: dict[str, Any] = {"tile": tile, "cells": int(cells.get(tile, 0))}
        ensemble = model.ensembles.get(tile)
        if ensemble is None:
            row.update(status="skipped", reason=model.skipped[tile])
        else:
            row.update(status="fitted", observations=getattr(ensemble, "n_observations_", np.nan))
            for name, detector in ensemble.detectors_.items():
                row[f"{name}_threshold"] = detector.native_threshold_
                row[f"{name}_threshold_source"] = detector.threshold_source_
            row.update(_region_shares(ensemble, float(model.attrs.get("federated_relevance") or 0.0)))
        rows.append(row)
    return pd.DataFrame(rows).set_index("tile")


def _region_shares(ensemble: Ensemble, relevance: float) -> dict[str, float]:
    """In a federated fit (``relevance`` > 0), how much each adapted family of a tile came from its region's model."""
    if not relevance:
        return {}
    return {f"{name}_region_share": region_share(ensemble.detectors_[name], ensemble.n_observations_, relevance)
            for name in FAMILIES if name in ensemble.detectors_}
