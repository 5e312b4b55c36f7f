"""The errors geoanom raises for a user's mistake.

Every error is one sentence that names the file, variable or tile at fault.
The command line prints it and exits with status 2, without a traceback.
"""

from __future__ import annotations


class GeoanomError(Exception):
    """Base class of every error geoanom raises for bad input."""


class InputFileError(GeoanomError, FileNotFoundError):
    """A file is missing, unreadable or not NetCDF/Zarr."""


class VariableNotFoundError(GeoanomError, KeyError):
    """A requested variable is not in the data set."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class CoordinateError(GeoanomError, ValueError):
    """Time, latitude or longitude could not be found or is malformed."""


class TrainingPeriodError(GeoanomError, ValueError):
    """The training period selects no data."""


class RecordTooShortError(TrainingPeriodError):
    """The training period holds too few time steps for a climatology."""


class OptionError(GeoanomError, ValueError):
    """A command-line option's value is malformed or out of range; the sentence names the option and the value."""


class NoDataError(GeoanomError, ValueError):
    """Nothing is left to work with, for example after removing NaNs."""


class ModelFileError(GeoanomError, ValueError):
    """A saved model is missing, corrupt or from an incompatible version."""


class TileError(GeoanomError, KeyError):
    """A tile (geohash) is unknown to the model."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class GeoanomWarning(UserWarning):
    """geoanom did something simpler than asked, and says why (e.g. a record too short for a seasonal cycle)."""


class CorruptDataError(GeoanomError, OSError):
    """Data in a file could not be read: a damaged Zarr chunk, an HDF error, bytes missing."""

    def __str__(self) -> str:  # OSError would prefix an errno when given two arguments
        return str(self.args[0]) if self.args else ""


class WorkerMemoryError(GeoanomError, MemoryError):
    """The cluster's workers are too small for the work asked of them (see :mod:`geoanom.memory`)."""


class UnitsError(GeoanomError, ValueError):
    """Data to score are in other units than the model was fitted on (degC against K, say)."""


class ParameterError(GeoanomError, ValueError):
    """A parameter's value is out of range (``sample_size=2``); the sentence names the parameter, the value and the range."""
