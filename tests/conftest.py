"""Shared fixtures: small synthetic cubes with known anomalies, written to real files."""

from __future__ import annotations

import pytest

from geoanom.testing import synthetic_cube


@pytest.fixture(scope="session")
def cube_and_labels():
    return synthetic_cube()


@pytest.fixture(scope="session")
def cube_file(tmp_path_factory, cube_and_labels):
    """The synthetic cube written to a real NetCDF file."""
    path = tmp_path_factory.mktemp("data") / "tas.nc"
    cube_and_labels[0].to_netcdf(path)
    return path


@pytest.fixture(scope="session")
def opened_cube(cube_file):
    import geoanom as ga

    return ga.open_cube(cube_file)


@pytest.fixture(scope="session")
def fitted_model(opened_cube):
    """A model fitted on the first half of the synthetic cube."""
    import geoanom as ga

    half = opened_cube.sizes["time"] // 2
    return ga.fit(opened_cube.isel(time=slice(None, half)), precision=2)


@pytest.fixture
def refused(capsys):
    """Run ``geoanom ARGS`` in this process and return (returncode, stdout, stderr) like a subprocess.

    For the command's refusals: they need no fresh interpreter, which costs
    about 2.5 s a run (the imports), and ``main`` is what the console script calls.
    """
    from types import SimpleNamespace

    from geoanom.cli import main

    def run(*args):
        status = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return SimpleNamespace(returncode=status, stdout=captured.out, stderr=captured.err)

    return run
