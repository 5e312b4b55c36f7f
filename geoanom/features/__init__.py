"""Per-observation features, and the anomalous regions of each time step."""

from .region_stats import region_features
from .regions import RegionParams, region_labels
from .tuning import RegionTuning, tune_region_params
from .calendar import season_kind
from .climatology import Climatology
from .values import feature_names, observation_features

__all__ = [
    "Climatology", "RegionParams", "RegionTuning", "feature_names", "observation_features", "region_features",
    "region_labels", "season_kind", "tune_region_params",
]
