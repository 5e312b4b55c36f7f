"""Files holding one variable each (the CMIP layout) are merged; each variable's files are joined in time first.

Before: ``open_cube(["tos.nc", "pr.nc"])`` was refused with "variable 'tos' is not in pr.nc", even by
``geoanom info``, which asked for no variable.
"""

from __future__ import annotations

import numpy as np
import pytest

import geoanom as ga
from geoanom.errors import CoordinateError, VariableNotFoundError
from geoanom.io import describe_levels


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    """Real OSTIA SST as 'tos' and a second variable 'half', each in two files of 27 months."""
    folder = tmp_path_factory.mktemp("cmip")
    cube = ga.sample_cube("sst").isel(lon=slice(216, 240)).compute()
    cube.attrs.pop("geoanom_source")
    tos = cube.rename(surface_temperature="tos")
    half = (cube * 0.5).rename(surface_temperature="half")
    for name, data in (("tos", tos), ("half", half)):
        data.isel(time=slice(0, 27)).to_netcdf(folder / f"{name}_a.nc")
        data.isel(time=slice(27, 54)).to_netcdf(folder / f"{name}_b.nc")
    return folder, cube


def test_one_variable_per_file_split_in_time_opens_as_one_cube(layout):
    folder, cube = layout
    files = [folder / "half_b.nc", folder / "tos_a.nc", folder / "half_a.nc", folder / "tos_b.nc"]
    opened = ga.open_cube(files)
    assert list(opened.data_vars) == ["half", "tos"] and opened.sizes["time"] == 54
    np.testing.assert_array_equal(opened["tos"].values, cube["surface_temperature"].values)
    np.testing.assert_array_equal(opened["half"].values, (cube["surface_temperature"] * 0.5).values)
    assert list(ga.open_cube(files, variables=["tos", "half"]).data_vars) == ["tos", "half"]
    assert set(describe_levels(files)) == {"tos", "half"}  # what `geoanom info` asks first


def test_variables_in_their_own_files_must_cover_the_same_times_and_not_repeat(layout, tmp_path):
    folder, cube = layout
    with pytest.raises(CoordinateError, match=r"hold tos at 54 steps from 2006-04-16 to 2010-09-16 but half at "
                                              r"27 steps from 2006-04-16 to 2008-06-16; variables in files of their "
                                              r"own must cover the same time steps\.$"):
        ga.open_cube([folder / "tos_a.nc", folder / "tos_b.nc", folder / "half_a.nc"])
    both = cube.rename(surface_temperature="tos").assign(half=cube["surface_temperature"] * 0.5)
    both.to_netcdf(tmp_path / "both.nc")
    with pytest.raises(VariableNotFoundError, match=r"^variable 'half' is not in .*tos_a.nc, which holds tos, though "
                                                    r".*both.nc holds tos, half; give files that hold the same "
                                                    r"variables, or one variable each\.$"):
        ga.open_cube([tmp_path / "both.nc", folder / "tos_a.nc"])
    with pytest.raises(VariableNotFoundError, match=r"^variable 'pr' is in none of .*; they hold tos, half\.$"):
        ga.open_cube([folder / "tos_a.nc", folder / "half_a.nc"], variables=["tos", "pr", "half"])
