"""Pictures and tables of what geoanom found: maps over the grid, and one cell explained."""

from .explain import cell, nearest_cell, nearest_grid_cell
from .maps import flagged_share_and_change, irregularity_map, irregularity_maps, learning_curve, top_tiles

__all__ = ["cell", "flagged_share_and_change", "irregularity_map", "irregularity_maps", "learning_curve",
           "nearest_cell", "nearest_grid_cell", "top_tiles"]
