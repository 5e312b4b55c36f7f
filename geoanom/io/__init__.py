"""Read and write data cubes: `open_cube`, `sample_cube` and `write_dataset`.

``read`` opens files as one lazy cube (``opening`` finds and opens each
file, ``canonical`` gives files and data in memory one shape), ``grid`` gives
its coordinates their canonical names and ranges, ``write`` writes results
without ever leaving a half-written output (``overwrite``: what an output may
replace; ``temporaries``: the hidden sibling it is written to, and what a
killed write leaves), ``append`` adds new time steps to a result store and
resumes killed writes, ``safety`` names corrupt data and counts ±inf,
``fill_values`` treats fill values the files do not declare as missing.
"""

from .canonical import CHUNK_BYTES
from .levels import LevelAxis
from .opening import NETCDF_ENGINES
from .read import describe_levels, open_cube, sample_cube
from .safety import count_infinite, infinite_message
from .write import write_dataset

__all__ = ["CHUNK_BYTES", "NETCDF_ENGINES", "LevelAxis", "count_infinite", "describe_levels", "infinite_message",
           "open_cube", "sample_cube", "write_dataset"]
