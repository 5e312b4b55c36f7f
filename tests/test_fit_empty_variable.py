"""A variable with no values in the training period is named, with the period, instead of "the data are all NaN"."""

from __future__ import annotations

import pytest

import geoanom as ga
from geoanom.errors import NoDataError


def test_a_variable_absent_from_the_training_period_is_named(tmp_path):
    cube = ga.sample_cube("sst").isel(lon=slice(216, 240)).compute()
    cube["late"] = cube["surface_temperature"].where(cube["time"] >= cube["time"][30])  # as salinity from 2013 on
    cube.attrs.pop("geoanom_source")
    cube.to_netcdf(tmp_path / "two.nc")
    opened = ga.open_cube(tmp_path / "two.nc")
    with pytest.raises(NoDataError, match=r"^late has no values \(or in no cell enough for a climatology\) in the "
                                          r"training period \(2006-04-16 to 2008-03-16T12:00\) of '.*two.nc'; fit "
                                          r"surface_temperature alone, or choose a training period where it has values\.$"):
        ga.fit(opened.isel(time=slice(0, 24)), detectors="gmm")
    assert ga.fit(opened.isel(time=slice(30, 54)), detectors="gmm").variables == ["surface_temperature", "late"]
