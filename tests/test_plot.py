"""Pictures: one cell explained, maps side by side, the flagged share over time."""

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import xarray as xr

import geoanom as ga
import geoanom.model.score as score_module
from geoanom.errors import GeoanomError, VariableNotFoundError
from geoanom.features.calendar import decimal_year
from geoanom.features.pipeline import joined_blocks
from geoanom.plot import cell, flagged_share_and_change, irregularity_maps, nearest_cell
from geoanom.testing import synthetic_cube

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path, min_bytes=20_000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > min_bytes
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 300 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # not a blank canvas


def line(ax, gid):
    [found] = [artist for artist in ax.get_lines() if artist.get_gid() == gid]
    return found


def chord_nearest(lats, lons, lat, lon, usable=None):
    """The nearest cell by the straight-line distance between points on the unit sphere.

    It orders cells as the great-circle distance does, computed another way."""
    def xyz(la, lo):
        la, lo = np.radians(la), np.radians(lo)
        return np.stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)], axis=-1)

    distance = np.linalg.norm(xyz(np.asarray(lats), np.asarray(lons)) - xyz(lat, lon), axis=-1)
    if usable is not None:
        distance = np.where(usable, distance, np.inf)
    return tuple(int(i) for i in np.unravel_index(np.argmin(distance), distance.shape))


@pytest.fixture(scope="module")
def full_result(fitted_model, opened_cube):
    return fitted_model.score(opened_cube).compute()


@pytest.fixture(scope="module")
def busiest_cell(full_result):
    """(row, col) of the cell the ensemble flags most often."""
    counts = full_result["ensemble"].sum("time").values
    return tuple(int(i) for i in np.unravel_index(np.argmax(counts), counts.shape))


@pytest.fixture(scope="module")
def curvilinear():
    """A rotated curvilinear grid (2-D lat/lon on y, x), a model and its full scores."""
    cube, _ = synthetic_cube(n_years=8, n_lat=12, n_lon=10, seed=3)
    y, x = np.meshgrid(np.arange(12), np.arange(10), indexing="ij")
    lat = 30 + 1.6 * y + 0.7 * x
    lon = -90 + 1.8 * x - 0.9 * y
    cube = cube.rename({"lat": "y", "lon": "x"}).drop_vars(["y", "x"])
    cube = cube.assign_coords(lat=(("y", "x"), lat, {"standard_name": "latitude"}),
                              lon=(("y", "x"), lon, {"standard_name": "longitude"}))
    model = ga.fit(cube.isel(time=slice(None, 48)), detectors="gmm", precision=2)
    return cube, model, model.score(cube).compute()


def test_cell_draws_that_cells_climatology_observations_and_flags(fitted_model, opened_cube, full_result,
                                                                   busiest_cell, tmp_path):
    row, col = busiest_cell
    lat, lon = float(opened_cube["lat"][row]) + 0.4, float(opened_cube["lon"][col]) - 0.3  # off the centre
    fig = cell(fitted_model, opened_cube, lat=lat, lon=lon, path=tmp_path / "cell.png")
    ax = fig.axes[0]
    time = opened_cube["time"]
    climatology = fitted_model.climatology.block(slice(row, row + 1), slice(col, col + 1))
    expected = climatology.expected(time)[0, :, 0, 0]
    spread = climatology.spread_at(time)[0, :, 0, 0]
    assert np.ptp(expected) > 2  # the seasonal cycle (a few K at the busiest cell), not a constant
    np.testing.assert_allclose(line(ax, "expected").get_ydata(), expected)
    np.testing.assert_allclose(line(ax, "expected").get_xdata(), decimal_year(time, "dayofyear"))
    np.testing.assert_array_equal(line(ax, "observations").get_ydata(), opened_cube["tas"].values[:, row, col])
    [band] = [c for c in ax.collections if c.get_label().startswith("expected \u00b1 2")]
    edges = band.get_paths()[0].vertices[:, 1]
    assert edges.max() == pytest.approx((expected + 2 * spread).max())
    assert edges.min() == pytest.approx((expected - 2 * spread).min())
    # the flags of this cell scored alone are those of the whole cube scored at once
    flags = full_result["ensemble"].values[:, row, col]
    assert flags.sum() >= 2
    np.testing.assert_allclose(line(ax, "flagged").get_xdata(), decimal_year(time, "dayofyear")[flags])
    np.testing.assert_array_equal(line(ax, "flagged").get_ydata(), opened_cube["tas"].values[flags, row, col])
    assert line(ax, "flagged").get_markerfacecolor() == "red"
    np.testing.assert_allclose(line(fig.axes[1], "fused").get_ydata(),
                               full_result["fused_irregularity"].values[:, row, col], rtol=1e-6)
    title = ax.get_title()
    tile = str(fitted_model.labels.values[row, col])
    assert f"tile {tile}" in title and "tas (K)" in title
    assert f"{float(opened_cube['lat'][row]):.2f}\u00b0N" in title
    assert f"{flags.sum()} of {time.size} scored steps flagged" in title
    assert "2000-01-01 to 2005-12-01" in title  # the training period
    assert_png(tmp_path / "cell.png")


def test_cell_scores_that_cell_alone(monkeypatch, fitted_model, opened_cube):
    shapes = []
    original = score_module._score_block

    def spy(values, *args, **kwargs):
        shapes.append(joined_blocks(values).shape)  # the feature blocks come as a list (not concatenated)
        return original(values, *args, **kwargs)

    monkeypatch.setattr(score_module, "_score_block", spy)
    cell(fitted_model, opened_cube, lat=35.0, lon=-80.0)
    assert shapes, "nothing was scored"
    assert {shape[-2:] for shape in shapes} == {(1, 1)}  # one cell per block, and no other block
    assert sum(shape[1] for shape in shapes) == opened_cube.sizes["time"]


def test_cell_with_a_stored_result_and_given_axes(fitted_model, opened_cube, full_result, busiest_cell, tmp_path):
    from matplotlib.figure import Figure

    ga.write_dataset(full_result, tmp_path / "scores.zarr")
    row, col = busiest_cell
    stored = xr.open_zarr(tmp_path / "scores.zarr")
    figure = Figure()
    ax = figure.subplots()
    returned = cell(fitted_model, opened_cube, lat=float(opened_cube["lat"][row]),
                    lon=float(opened_cube["lon"][col]), result=stored, ax=ax)
    assert returned is figure and len(figure.axes) == 1
    flags = full_result["ensemble"].values[:, row, col]
    np.testing.assert_array_equal(line(ax, "flagged").get_ydata(), opened_cube["tas"].values[flags, row, col])


def test_nearest_cell_is_the_nearest_by_great_circle(fitted_model, opened_cube):
    lats, lons = xr.broadcast(opened_cube["lat"], opened_cube["lon"])
    rng = np.random.default_rng(1)
    for lat, lon in zip(rng.uniform(19.5, 50.5, 40), rng.uniform(-100.5, -59.5, 40)):
        expected = chord_nearest(lats.values, lons.values, lat, lon)
        assert nearest_cell(fitted_model, lat, lon) == expected
        assert nearest_cell(fitted_model, lat, lon + 360.0) == expected  # longitudes in [0, 360) too


def test_nearest_cell_and_picture_on_a_curvilinear_grid(curvilinear):
    cube, model, result = curvilinear
    lats, lons = cube["lat"].values, cube["lon"].values
    rng = np.random.default_rng(2)
    points = list(zip(rng.uniform(35, 45, 25), rng.uniform(-88, -80, 25)))
    naive_differs = False
    for lat, lon in points:
        row, col = chord_nearest(lats, lons, lat, lon)
        assert nearest_cell(model, lat, lon) == (row, col)
        # the nearest row and column taken separately would often be wrong on a rotated grid
        naive = (int(np.argmin(np.abs(lats[:, col] - lat))), int(np.argmin(np.abs(lons[row] - lon))))
        naive_differs |= naive != (row, col)
    assert naive_differs
    lat, lon = points[0]
    row, col = chord_nearest(lats, lons, lat, lon)
    fig = cell(model, cube, lat=lat, lon=lon)
    expected = model.climatology.block(slice(row, row + 1), slice(col, col + 1)).expected(cube["time"])[0, :, 0, 0]
    np.testing.assert_allclose(line(fig.axes[0], "expected").get_ydata(), expected)
    np.testing.assert_array_equal(line(fig.axes[0], "observations").get_ydata(), cube["tas"].values[:, row, col])
    flags = result["ensemble"].values[:, row, col]
    np.testing.assert_array_equal(line(fig.axes[0], "flagged").get_ydata(), cube["tas"].values[flags, row, col])


def test_cells_without_data_are_passed_over():
    cube, _ = synthetic_cube(n_years=4, n_lat=8, n_lon=8, seed=5)
    cube["tas"][:, 3, 4] = np.nan  # a land cell
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=1)
    lat, lon = float(cube["lat"][3]), float(cube["lon"][4])
    usable = np.ones((8, 8), dtype=bool)
    usable[3, 4] = False
    lats, lons = xr.broadcast(cube["lat"], cube["lon"])
    found = nearest_cell(model, lat, lon)
    assert found != (3, 4)
    assert found == chord_nearest(lats.values, lons.values, lat, lon, usable)


def test_cell_refuses_what_it_cannot_draw(fitted_model, opened_cube):
    with pytest.raises(VariableNotFoundError, match="'pr'"):
        cell(fitted_model, opened_cube, lat=35, lon=-80, variable="pr")
    with pytest.raises(GeoanomError, match="outside the grid"):
        cell(fitted_model, opened_cube, lat=-40, lon=20)
    with pytest.raises(GeoanomError, match="latitude must be in"):
        nearest_cell(fitted_model, 91, -80)
    with pytest.raises(GeoanomError, match="differs from the model"):
        cell(fitted_model, opened_cube.isel(lat=slice(1, None)), lat=35, lon=-80)


def test_irregularity_maps_share_a_scale_and_report_each_share(monkeypatch, full_result, tmp_path):
    from matplotlib.figure import Figure

    drawn = []
    save = Figure.savefig
    monkeypatch.setattr(Figure, "savefig", lambda self, *a, **k: (drawn.append(self), save(self, *a, **k))[1])
    quieter = full_result.copy()
    quieter["ensemble"] = full_result["ensemble"] & False
    returned = irregularity_maps({"as scored": full_result, "nothing flagged": quieter}, tmp_path / "maps.png",
                                 time=-1, title="two expectations")
    assert_png(tmp_path / "maps.png")
    last = full_result.isel(time=-1)
    share = float(last["ensemble"].sum() / last["fused_irregularity"].notnull().sum())
    assert share > 0
    [figure] = drawn
    assert returned is figure
    maps = [ax for ax in figure.axes if ax.get_title()]
    trained = "model trained on 2000-01-01 to 2005-12-01"
    # titles are wrapped to the panel's width: compare their words
    assert [ax.get_title().replace("\n", " ") for ax in maps] == [f"as scored {share:.1%} of cells flagged; {trained}",
                                                                   f"nothing flagged 0.0% of cells flagged; {trained}"]
    assert figure.get_suptitle() == "two expectations\ntas (K), 2011-12-01"
    norms = [ax.collections[0].norm for ax in maps]
    assert norms[0].vmax == norms[1].vmax and norms[0].vmin == pytest.approx(1 / norms[0].vmax)


def test_flagged_share_and_change(full_result, tmp_path):
    shares = pd.DataFrame({"a": np.linspace(0, 1, 20), "b": np.full(20, 0.01)}, index=np.arange(2000, 2020))
    change = full_result["fused_irregularity"].mean("time").assign_attrs(long_name="mean irregularity", units="1")
    flagged_share_and_change(shares, change, tmp_path / "change.png", mark=2010, title="t")
    assert_png(tmp_path / "change.png")
