"""A model fitted on full fields judges months with gaps (a cloudy L3 month, missing swaths) as it judges full ones.

The neighbours feature was the trimmed mean of the neighbours holding data:
over fewer of them (white noise: its variance grows like 1/k) or over the
ring two cells away it was another statistic than the families learnt, and
normal months with gaps were flagged far more than full ones (synthetic
white noise, default families: 0.9% whole, 11% with 30% of the cells kept;
the smooth trial A field 0.7% and 11%). The mean over the neighbours held
now is made to stand for the mean over all that held data in training:
about ``b z``, ``b`` the slope of a neighbour's anomaly on the cell's own
in training, its departure from it scaled to the spread of the whole
mean's (:mod:`geoanom.features.neighbour_relation`). Cells without a
climatology (land) are left out as before, so full fields give the same
features to the bit.
"""

import warnings

import dask.array as da
import numpy as np
import pytest
import xarray as xr

import geoanom as ga
from geoanom.errors import GeoanomWarning
from geoanom.features.neighbourhood import SIGN_TRUSTED, neighbour_anomaly, neighbour_anomaly_block
from geoanom.features.pipeline import feature_cube, stack_variables
from geoanom.testing import synthetic_cube


def kept(cube: xr.Dataset, share: float, seed: int = 0) -> xr.Dataset:
    """The cube with only ``share`` of its cells at each step kept, at random (cloud-like gaps)."""
    rng = np.random.default_rng(seed)
    out = cube.copy()
    for name, variable in cube.data_vars.items():
        if variable.ndim == 3:
            out[name] = variable.where(xr.DataArray(rng.random(variable.shape) < share, dims=variable.dims))
    return out


def flagged(model: ga.AnomalyModel, cube: xr.Dataset) -> tuple[float, dict[str, float]]:
    """The ensemble's flagged share of the scored cells, and each family's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeoanomWarning)  # the coverage warning of a gappy month
        result = model.score(cube).compute()
    scored = result["fused_irregularity"].notnull()
    families = result["anomalous"].where(scored).mean([d for d in result["anomalous"].dims if d != "detector"])
    return float(result["ensemble"].where(scored).mean()), dict(families.to_series())


def test_normal_months_with_gaps_are_flagged_like_full_ones():
    # white noise: before, 0.9% of the full months flagged, 3.1% with 70% of the cells kept, 11% with 30%
    cube, _ = synthetic_cube(n_years=8, n_lat=24, n_lon=32, anomaly_rate=0.0, seed=3)
    model = ga.fit(cube.isel(time=slice(0, 60)))
    slope, correlation = model.climatology.neighbour_relation
    assert np.median(slope) < 0.1 and abs(np.median(correlation)) < 0.1  # white noise: a neighbour tells nothing
    held_back = cube.isel(time=slice(60, None))
    full, _ = flagged(model, held_back)
    assert 0.003 <= full <= 0.03
    for share in (0.7, 0.3):
        gappy, families = flagged(model, kept(held_back, share))
        assert 0.003 <= gappy <= min(0.03, 2 * full), (share, gappy, full)
        assert max(families.values()) <= 0.03, (share, families)


def test_the_event_family_on_the_sst_with_gaps():
    # a smooth real field (slopes near 1): the event family flagged 2.0% of the full held-back months, 9.2% with
    # 30% of the cells kept; the land (no climatology) stays out of every mean
    sst = ga.sample_cube("sst")
    model = ga.fit(sst.isel(time=slice(0, 36)), detectors="gmm,event")
    slope, correlation = model.climatology.neighbour_relation
    trained = model.climatology.prefix > 0
    assert np.isnan(slope[~trained]).all() and np.isnan(correlation[~trained]).all()
    assert (slope[trained] >= 0).all() and (slope[trained] <= 1).all() and (abs(correlation[trained]) <= 1).all()
    assert np.median(slope[trained]) > 0.8
    held_back = sst.isel(time=slice(36, None))
    _, full = flagged(model, held_back)
    for share in (0.7, 0.3):
        _, gappy = flagged(model, kept(held_back, share))
        assert gappy["event"] <= 2 * full["event"], (share, gappy, full)
        assert gappy["gmm"] <= 2 * full["gmm"], (share, gappy, full)


def test_full_fields_give_the_same_features_to_the_bit():
    # the land never held data: it is left out with the slope as without, so a model of full fields (and every
    # accuracy figure on them) is what it was
    sst = ga.sample_cube("sst").isel(time=slice(0, 24))
    values = stack_variables(sst)
    model = ga.fit(sst, detectors="gmm")
    climatology = model.climatology
    with_slope = feature_cube(values, climatology, ("anomalies", "neighbours"), training=True).compute()
    climatology.neighbour_relation = None
    without = feature_cube(values, climatology, ("anomalies", "neighbours"), training=True).compute()
    np.testing.assert_array_equal(with_slope.view(np.uint64), without.view(np.uint64))


def _reference(z: np.ndarray, relation: np.ndarray) -> np.ndarray:
    """The rule cell by cell: the other sign than a centre beyond one spread reads 0; the trimmed mean of 3 or more
    held; with ``missing`` neighbours that have a climatology (a finite slope), b z + s (mean - b z),
    s = sqrt(v(K) / v(k)), v(m) = (1 + (m - 1) rho) / m; the ring two away when none of the eight has a climatology."""
    out = np.zeros(z.shape)
    n_rows, n_cols = z.shape[2:]
    slope, correlation = relation
    for v, t, i, j in np.ndindex(*z.shape):
        centre = z[v, t, i, j]
        for distance in (1, 2):
            read, missing = [], 0
            for ii in range(i - distance, i + distance + 1):
                for jj in range(j - distance, j + distance + 1):
                    if max(abs(ii - i), abs(jj - j)) != distance or not (0 <= ii < n_rows and 0 <= jj < n_cols):
                        continue
                    value = z[v, t, ii, jj]
                    if np.isfinite(value):
                        read.append(0.0 if abs(centre) > SIGN_TRUSTED and not value * centre > 0 else value)
                    elif distance == 1 and np.isfinite(slope[v, ii, jj]):
                        missing += 1
            if read or missing:
                break
        mean = 0.0
        if len(read) >= 3:
            mean = (sum(read) - max(read) - min(read)) / (len(read) - 2)
        elif read:
            mean = sum(read) / len(read)
        if missing:
            ridge, rho, held = slope[v, i, j] * centre, correlation[v, i, j], len(read)
            whole = held + missing
            scale = np.sqrt((1 + (whole - 1) * rho) / whole * held / (1 + (held - 1) * rho)) if held else 0.0
            mean = ridge + scale * (mean - ridge)
        out[v, t, i, j] = mean
    return out


@pytest.mark.parametrize("wrap", [False, True])
def test_a_mean_over_fewer_neighbours_stands_for_the_whole_across_chunks(wrap):
    rng = np.random.default_rng(7)
    z = rng.normal(scale=1.5, size=(2, 3, 9, 11))
    z[rng.random(z.shape) < 0.4] = np.nan  # gaps now
    relation = np.stack([rng.random((2, 9, 11)), rng.uniform(-0.1, 0.9, (2, 9, 11))])
    relation[:, :, 6:, 8:] = np.nan  # land: never any data
    z[:, :, 6:, 8:] = np.nan
    z[0, 0, 1:6, 1:6] = np.nan
    z[0, 0, 3, 3] = 2.0  # no neighbour holds data now: no evidence either way, n = 2 b
    whole = neighbour_anomaly_block(z, wrap, relation=relation)
    chunked = neighbour_anomaly(da.from_array(z, chunks=(2, 2, 4, 5)), wrap,
                                da.from_array(relation, chunks=(2, 2, 4, 5)))
    np.testing.assert_array_equal(whole.view(np.uint64), chunked.compute().view(np.uint64))
    assert whole[0, 0, 3, 3] == 2.0 * relation[0, 0, 3, 3]
    if not wrap:
        finite = np.isfinite(z)
        np.testing.assert_allclose(whole[finite], _reference(z, relation)[finite], rtol=1e-12, atol=1e-12)
    # with every neighbour held, the mean is as without the relation, to the bit
    full = rng.normal(size=(1, 2, 6, 7))
    np.testing.assert_array_equal(neighbour_anomaly_block(full, wrap, relation=np.full((2, 1, 6, 7), 0.5)),
                                  neighbour_anomaly_block(full, wrap))


def test_a_model_saved_without_the_slope_scores_as_before(tmp_path):
    cube, _ = synthetic_cube(n_years=4, n_lat=8, n_lon=10, anomaly_rate=0.0, seed=1)
    model = ga.fit(cube.isel(time=slice(0, 36)), detectors="gmm")
    model.save(tmp_path / "new.npz")
    assert ga.load_model(tmp_path / "new.npz").climatology.neighbour_relation.shape == (2, 1, 8, 10)
    model.climatology.neighbour_relation = None  # as a model saved before the relation
    model.save(tmp_path / "old.npz")
    old = ga.load_model(tmp_path / "old.npz")
    assert old.climatology.neighbour_relation is None
    gappy = kept(cube.isel(time=slice(36, None)), 0.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GeoanomWarning)
        before, after = (m.score(gappy)["fused_irregularity"].values for m in (model, old))
    np.testing.assert_array_equal(before, after)
