"""Per-observation features, and the anomalous regions of each time step."""

from .calendar import season_kind
from .climatology import Climatology
from .region_stats import region_features
from .regions import RegionParams, region_labels
from .tuning import RegionTuning, tune_region_params
from .vectors import DEFAULT_FEATURES, FEATURE_SETS, feature_names

__all__ = [
    "Climatology", "DEFAULT_FEATURES", "FEATURE_SETS", "RegionParams", "RegionTuning", "feature_names", "region_features",
    "region_labels", "season_kind", "tune_region_params",
]
