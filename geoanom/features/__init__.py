"""Per-observation features, and the anomalous regions of each time step."""

from .region_stats import region_features
from .regions import RegionParams, region_labels
from .tuning import RegionTuning, tune_region_params
from .values import Climatology, feature_names, observation_features, season_index, season_kind

__all__ = [
    "Climatology", "RegionParams", "RegionTuning", "feature_names", "observation_features", "region_features",
    "region_labels", "season_index", "season_kind", "tune_region_params",
]
