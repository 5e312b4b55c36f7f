"""Pictures and tables of what geoanom found: maps over the grid, one cell explained, events, feature scatters."""

from .binning import flagged_share_map, flagged_shares
from .curves import learning_curve
from .events import event_footprint, event_map
from .explain import cell, nearest_cell, nearest_grid_cell
from .maps import flagged_share_and_change, irregularity_figure, irregularity_map, irregularity_maps, top_tiles
from .scatter import feature_scatter
from .series import event_timeseries

__all__ = ["cell", "event_footprint", "event_map", "event_timeseries", "feature_scatter", "flagged_share_and_change",
           "flagged_share_map", "flagged_shares", "irregularity_figure", "irregularity_map", "irregularity_maps",
           "learning_curve", "nearest_cell", "nearest_grid_cell", "top_tiles"]
