"""Read and write data cubes: `open_cube`, `sample_cube` and `write_dataset`.

``read`` opens files as one lazy cube, ``grid`` gives its coordinates their
canonical names and ranges, ``write`` writes results without ever leaving a
half-written output.
"""

from .levels import LevelAxis
from .read import CHUNK_BYTES, NETCDF_ENGINES, describe_levels, open_cube, sample_cube
from .write import write_dataset

__all__ = ["CHUNK_BYTES", "NETCDF_ENGINES", "LevelAxis", "describe_levels", "open_cube", "sample_cube", "write_dataset"]
