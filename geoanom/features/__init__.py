"""Per-observation features: the variables and their anomalies from climatology."""

from .values import Climatology, feature_names, observation_features, season_index, season_kind

__all__ = ["Climatology", "feature_names", "observation_features", "season_index", "season_kind"]
