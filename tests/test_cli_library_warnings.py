"""The command's warnings: geoanom's and real problems from libraries once each as one line, known noise dropped."""

import warnings

import numpy as np
import pytest

from geoanom.cli import one_line_warnings
from geoanom.errors import GeoanomWarning
from geoanom.testing import synthetic_cube


def warn_from(module, filename, message, category=UserWarning):
    """A warning as a library module raises it (its module and file name as Python records them)."""
    warnings.warn_explicit(message, category, filename, 10, module=module)


def test_known_noise_is_dropped_and_each_message_said_once(capsys):
    site = "/usr/lib/python3.11/site-packages"
    with one_line_warnings():
        warn_from("distributed.client", f"{site}/distributed/client.py",
                  "Sending large graph of size 10.77 MiB.\nThis may cause some slowdown.")
        warn_from("distributed.node", f"{site}/distributed/node.py",
                  "Port 8787 is already in use.\nPerhaps you already have a cluster running?")
        for _ in range(2):
            warnings.warn("tas holds 3 infinite values in tas.nc", GeoanomWarning, stacklevel=1)
            warn_from("xarray.conventions", f"{site}/xarray/conventions.py",
                      "variable 'v' has multiple fill values {1, 2} defined,\ndecoding all values to NaN.",
                      RuntimeWarning)
    assert capsys.readouterr().err.splitlines() == [
        "geoanom: warning: tas holds 3 infinite values in tas.nc",
        "geoanom: warning: variable 'v' has multiple fill values {1, 2} defined, decoding all values to NaN. "
        "(xarray RuntimeWarning)",
    ]
    with pytest.warns(UserWarning, match="Sending large graph"):  # the filter ends with the block
        warnings.warn("Sending large graph of size 1 MiB.", UserWarning, stacklevel=1)


def test_a_file_with_two_fill_values_warns_once_in_one_line_also_quiet(tmp_path, refused):
    cube, _ = synthetic_cube(n_years=1, n_lat=3, n_lon=4)
    cube["tas"] = (cube["tas"] * 10).astype(np.int16)
    cube["tas"].encoding.update(_FillValue=np.int16(-1))
    cube["tas"].attrs["missing_value"] = np.int16(-2)
    cube.to_netcdf(tmp_path / "two_fills.nc")
    process = refused("info", tmp_path / "two_fills.nc", "-q")
    assert process.returncode == 0, process.stderr
    lines = process.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("geoanom: warning: variable 'tas' has multiple fill values")
    assert lines[0].endswith("(xarray SerializationWarning)")
