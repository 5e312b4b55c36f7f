"""Tiles and cells whose values never change (sea ice at the freezing point, land filled with a constant).

Their feature columns vary only by rounding, so they used to be standardised by that noise: every step
flagged, irregularity inf in the result. See geoanom/detectors/base.py ("Constant features").
"""

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
from geoanom.detectors import GMMDetector, IForestDetector, KMeansDetector
from geoanom.detectors.thresholds import choose_threshold

FREEZING = 271.35  # K: what OSTIA and OISST hold under sea ice


def ice_cube(n_times: int = 48, seed: int = 0) -> xr.Dataset:
    """Monthly SST on 60-89.5N, 0-44E; every cell north of 80N held at the freezing point (as /tmp/newuser/ice2.py)."""
    rng = np.random.default_rng(seed)
    time = pd.date_range("2000-01-01", periods=n_times, freq="MS") + pd.Timedelta(days=14)
    lat, lon = np.arange(60.0, 90.0), np.arange(0.0, 45.0)
    season = 3 * np.cos(2 * np.pi * (np.arange(n_times) % 12 - 7) / 12)[:, None, None]
    sst = 275 + season + rng.normal(0, 0.4, (n_times, lat.size, lon.size))
    sst[:, lat >= 80, :] = FREEZING
    return xr.Dataset(
        {"sst": (("time", "lat", "lon"), sst.astype("float32"),
                 {"units": "K", "standard_name": "sea_surface_temperature"})},
        coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north", "standard_name": "latitude"}),
                "lon": ("lon", lon, {"units": "degrees_east", "standard_name": "longitude"})})


def fit_and_score(cube: xr.Dataset, train_end: str, **fit_args) -> tuple[ga.AnomalyModel, xr.Dataset, list]:
    """The model, its (loaded) result on the steps after ``train_end``, and the warnings both raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model = ga.fit(cube.sel(time=slice(None, train_end)), **fit_args)
        result = model.score(cube.sel(time=slice(pd.Timestamp(train_end) + pd.Timedelta(days=1), None))).load()
    return model, result, caught


@pytest.fixture(scope="module")
def ice(tmp_path_factory) -> tuple[Path, ga.AnomalyModel, xr.Dataset, list]:
    path = tmp_path_factory.mktemp("ice") / "ice.nc"
    ice_cube().to_netcdf(path)
    cube = ga.open_cube(path)
    return (cube, *fit_and_score(cube, "2002-12-31", precision=2))


def test_a_constant_tile_is_normal_and_finite(ice):
    cube, model, result, caught = ice
    frozen = result.sel(lat=slice(84.5, None))  # tiles wholly north of 80N (84.375-90N)
    irregularity = frozen["irregularity"].values
    assert np.isfinite(irregularity).all()
    assert not frozen["ensemble"].values.any()  # was: every step flagged, gmm and dpmm inf
    assert float(frozen["fused_irregularity"].max()) < 1
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning) and "overflow" in str(w.message)]
    # the rest of the cube keeps its normal rate (no "left the training climate" from the frozen cells)
    assert float(result["ensemble"].mean()) < 0.03


def test_constant_columns_survive_saving(ice, tmp_path):
    cube, model, result, _ = ice
    tile = str(model.tile_names[model.tile_codes[-1, -1]])
    assert any(detector._constant is not None for detector in model.ensembles[tile].detectors_.values())
    model.save(tmp_path / "ice.npz")
    again = ga.load_model(tmp_path / "ice.npz").score(cube.sel(time=slice("2003", None))).load()
    np.testing.assert_array_equal(again["irregularity"].values, result["irregularity"].values)


def test_a_departure_from_a_constant_tile_is_anomalous_and_finite(ice):
    cube, model, _, _ = ice
    thawed = cube.sel(time=slice("2003", None)).copy(deep=True)
    cell = dict(time=5, lat=-2, lon=20)  # June 2003, 88N: 2 K above the freezing point
    thawed["sst"][cell["time"], cell["lat"], cell["lon"]] = FREEZING + 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = model.score(thawed).load()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning)]
    assert np.isfinite(result["irregularity"].values[np.isfinite(result["irregularity"].values)]).all()
    assert bool(result["ensemble"].isel(cell))
    assert np.isfinite(float(result["fused_irregularity"].isel(cell)))
    frozen = result["ensemble"].sel(lat=slice(84.5, None))
    assert int(frozen.sum()) <= 9  # the thawed cell, and at most its eight neighbours (their neighbour mean moved)


def test_constant_cells_inside_a_varying_tile():
    cube = ice_cube(n_times=36, seed=1)
    cube["sst"][:, 10:13, 5:8] = FREEZING  # nine frozen cells in a tile of varying ones (65.6-71.25N)
    _, result, caught = fit_and_score(cube, "2001-12-31", precision=2)
    assert np.isfinite(result["irregularity"].values).all()
    assert not result["ensemble"][:, 10:13, 5:8].values.any()
    assert float(result["ensemble"].mean()) < 0.03
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning) and "overflow" in str(w.message)]


@pytest.mark.parametrize("family", [GMMDetector, KMeansDetector, IForestDetector])
def test_detectors_on_a_constant_column(family):
    rng = np.random.default_rng(0)
    X = np.c_[1.4e-5 + rng.normal(0, 1e-12, 500), rng.normal(size=500)]  # rounding noise, and a varying column
    detector = family.fit_many([X], [0], feature_units=[1.0, 1.0])[0]
    new = np.c_[1.4e-5 + rng.normal(0, 1e-9, 200), rng.normal(size=200)]  # the constant, other rounding
    assert np.isfinite(detector.irregularity(new)).all()
    assert detector.predict(new).mean() < 0.05
    departed = np.c_[np.full(3, 1.4e-5 + 3.0), np.zeros(3)]  # three spreads off the constant
    if family is not IForestDetector:  # a forest cannot split a constant column: it has nothing to say about it
        assert (detector.irregularity(departed) > 1).all()
        assert np.isfinite(detector.irregularity(departed)).all()
    assert np.isfinite(detector.irregularity(departed)).all()


def test_a_threshold_is_not_put_on_a_point_mass():
    # every training score the same: the paper's constant, not the point itself
    assert choose_threshold(np.zeros(1000), -1.0, anomalous_above=False, contamination=0.01) == (-1.0, "paper")
    assert choose_threshold(np.full(1000, 0.5), 0.6, anomalous_above=True, contamination=0.01) == (0.6, "paper")
    # a tie block with a tail: the tail is still estimated from, when the constant flags none of it or too much
    blind = np.r_[np.zeros(950), np.linspace(-0.9, -0.1, 50)]
    threshold, source = choose_threshold(blind, -1.0, anomalous_above=False, contamination=0.01)
    assert source == "estimated" and -0.9 < threshold < -0.1
    lenient = np.r_[np.zeros(900), np.linspace(-50, -10, 100)]
    assert choose_threshold(lenient, -1.0, anomalous_above=False, contamination=0.01)[1] == "estimated"


def test_ostia_with_land_filled_by_a_constant(tmp_path):
    """The user's report: OSTIA with land filled at 271.35 K; tiles 6r, 6x, d8 were flagged at every step."""
    sample_data = pytest.importorskip("iris_sample_data")
    source = Path(sample_data.__file__).parent / "sample_data" / "ostia_monthly.nc"
    with xr.open_dataset(source) as ostia:
        filled = ostia[["surface_temperature"]].load()
    filled["surface_temperature"] = filled["surface_temperature"].fillna(FREEZING)
    filled.to_netcdf(tmp_path / "ostia_const_land.nc")
    cube = ga.open_cube(tmp_path / "ostia_const_land.nc", variables=["surface_temperature"])
    cube = cube.sel(lon=slice(-112.5, -33.75))  # tiles 6r, 6x and d8, and enough ocean for a sound spread floor
    model, result, caught = fit_and_score(cube, "2008-12-31", precision=2)
    names = [str(name) for name in model.tile_names]
    for tile in ("6r", "6x", "d8"):
        cells = model.tile_codes == names.index(tile)
        assert not result["ensemble"].values[:, cells].any(), tile
        assert np.nanmax(result["fused_irregularity"].values[:, cells]) < 1, tile
    assert np.isfinite(result["irregularity"].values[np.isfinite(result["irregularity"].values)]).all()
    assert not [w for w in caught if issubclass(w.category, RuntimeWarning) and "overflow" in str(w.message)]


def test_a_cut_out_of_mostly_constant_cells_keeps_them_normal(tmp_path):
    """Cut to mostly land filled at 271.35 K, the field's median spread is rounding noise (3e-7 K): the spread
    floor must follow the data's resolution, or the constant cells' rounding reads as anomalies (76% flagged)."""
    sample_data = pytest.importorskip("iris_sample_data")
    source = Path(sample_data.__file__).parent / "sample_data" / "ostia_monthly.nc"
    with xr.open_dataset(source) as ostia:
        filled = ostia[["surface_temperature"]].load()
    filled["surface_temperature"] = filled["surface_temperature"].fillna(FREEZING)
    filled.to_netcdf(tmp_path / "ostia_const_land.nc")
    cube = ga.open_cube(tmp_path / "ostia_const_land.nc", variables=["surface_temperature"])
    cube = cube.sel(lon=slice(-78.75, -56.25))
    constant = (cube["surface_temperature"].values == np.float32(FREEZING)).all(axis=0)
    assert constant.mean() > 0.5
    _, result, _ = fit_and_score(cube, "2008-12-31", precision=2)
    assert result["ensemble"].values[:, constant].mean() < 0.01
