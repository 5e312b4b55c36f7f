"""Pictures and tables of what geoanom found: maps over the grid, and one cell explained."""

from .curves import learning_curve
from .explain import cell, nearest_cell, nearest_grid_cell
from .maps import flagged_share_and_change, irregularity_figure, irregularity_map, irregularity_maps, top_tiles

__all__ = ["cell", "flagged_share_and_change", "irregularity_figure", "irregularity_map", "irregularity_maps",
           "learning_curve", "nearest_cell", "nearest_grid_cell", "top_tiles"]
