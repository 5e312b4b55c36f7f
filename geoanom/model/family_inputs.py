"""What each detector family is given of a model's features: the feature sets, the columns it reads, its parameters.

Only the ``event`` family reads the background ring (``RING_READERS``): the
others would score it as one more coordinate. Every family gets the unit of
each column it reads (:func:`feature_units`), in which a tile's constant
column is measured.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..detectors.event import event_params
from ..errors import GeoanomWarning
from ..features.vectors import DEFAULT_FEATURES

if TYPE_CHECKING:  # the units read the climatology's spreads
    from ..features import Climatology


# The families that judge a cell given its background ring (the "background" features); no other family reads it.
RING_READERS = frozenset({"event"})


def default_features(detectors: Sequence[str]) -> tuple[str, ...]:
    """The feature sets a model of these families gets by default.

    ``("anomalies", "neighbours")``, plus ``"background"`` when the ``event``
    family, which judges a cell given its background ring, is one of them.
    Only it reads the ring (:func:`_family_columns`): the other families
    would score it as one more coordinate and flag a halo of normal cells
    around every event (``geoanom.features.vectors``).

    Examples
    --------
    >>> default_features(("event",))
    ('anomalies', 'neighbours', 'background')
    >>> default_features(("gmm", "event"))
    ('anomalies', 'neighbours', 'background')
    >>> default_features(("gmm", "kmeans"))
    ('anomalies', 'neighbours')
    """
    return DEFAULT_FEATURES + ("background",) if RING_READERS & set(detectors) else DEFAULT_FEATURES


def kept_feature_sets(feature_sets: tuple[str, ...], names: tuple[str, ...]) -> tuple[str, ...]:
    """The feature sets without the background ring when no family reads it (with a warning), else as given.

    Examples
    --------
    >>> kept_feature_sets(("anomalies", "neighbours"), ("gmm",))
    ('anomalies', 'neighbours')
    """
    if "background" not in feature_sets or RING_READERS & set(names):
        return feature_sets
    warnings.warn(f"the background feature set is read only by the event family, not by {', '.join(names)}; "
                  "it is left out of this model.", GeoanomWarning, stacklevel=3)
    return tuple(name for name in feature_sets if name != "background")


def family_inputs(names: tuple[str, ...], features: list[str], variables: Sequence[str],
                  climatology: Climatology) -> tuple[dict[str, dict[str, Any]], dict[str, list[int]] | None]:
    """Each family's constructor parameters, and the columns each reads (None: every family reads every one).

    A family's parameters are those it takes from the features (the event
    family's groups) and the unit of each column it reads
    (:func:`feature_units`); only the event family reads the background ring.

    Examples
    --------
    >>> params, columns = family_inputs(("gmm", "event"), ["sst_anomaly", "sst_background"], ["sst"],
    ...                                 model.climatology)  # doctest: +SKIP
    >>> columns  # doctest: +SKIP
    {'gmm': [0]}
    """
    columns = _family_columns(names, features)
    units = feature_units(features, variables, climatology)
    return _with_feature_units(_family_params(names, features), names, columns, units), columns


def _family_params(names: tuple[str, ...], features: list[str]) -> dict[str, dict[str, Any]]:
    """Constructor parameters a family takes from the model's features: the event family's groups."""
    return {"event": event_params(features)} if "event" in names else {}


def _family_columns(names: tuple[str, ...], features: list[str]) -> dict[str, list[int]] | None:
    """The columns each family reads: the event family every one, the others all but the background ring.

    None (every family reads every column) when the features hold no background.
    """
    kept = [index for index, name in enumerate(features) if not name.endswith("_background")]
    if len(kept) in (0, len(features)):
        return None
    return {name: kept for name in names if name not in RING_READERS}


def feature_units(features: Sequence[str], variables: Sequence[str], climatology: Climatology) -> list[float]:
    """The unit of each feature column, in which a tile's constant column is measured (see ``detectors.inputs``).

    A raw value's unit (the ``"values"`` features, named as their variable)
    is its variable's median spread over the grid, in its own units; every
    other feature is a standardised anomaly, a mean of them, or a log area,
    whose unit is 1 (a spread).

    Examples
    --------
    >>> feature_units(["sst", "sst_anomaly"], ["sst"], model.climatology)  # doctest: +SKIP
    [0.39, 1.0]
    """
    spread = np.moveaxis(np.asarray(climatology.spread, dtype=np.float64), 1, 0)
    typical = [float(np.nanmedian(planes)) if np.isfinite(planes).any() else 1.0 for planes in spread]
    units = [typical[list(variables).index(name)] if name in variables else 1.0 for name in features]
    return [unit if np.isfinite(unit) and unit > 0 else 1.0 for unit in units]


def _with_feature_units(family_params: dict[str, dict[str, Any]], names: tuple[str, ...],
                        family_columns: dict[str, list[int]] | None, units: list[float]) -> dict[str, dict[str, Any]]:
    """Each family's parameters with the units of the columns it reads (``feature_units`` of ``fit_many``)."""
    out = {}
    for name in names:
        columns = (family_columns or {}).get(name)
        out[name] = {**family_params.get(name, {}),
                     "feature_units": units if columns is None else [units[i] for i in columns]}
    return out
