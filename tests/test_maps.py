"""Maps on real grids: curvilinear ORCA/NEMO files (package iris-sample-data), the antimeridian, coastlines
drawn offline, titles, the signed anomaly beside the irregularity, tiny grids; and the tile encoding."""

import glob
import os
import socket
import warnings

import cftime
import iris_sample_data
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.formatting import iso_date
from geoanom.model.result import tile_names
from geoanom.plot import irregularity_figure, irregularity_map, top_tiles
from geoanom.plot.cells import frame_west
from geoanom.plot.panels import draw_field
from geoanom.testing import synthetic_cube

SAMPLES = iris_sample_data.path  # real NEMO/ORCA files shipped by the package iris-sample-data


def drawn(field):
    """Draw a field on a fresh figure; return (figure, axes, filled cells), rendered."""
    fig = Figure(figsize=(10, 5), dpi=80)
    ax = fig.subplots()
    mesh = draw_field(ax, field, cmap="viridis")
    FigureCanvasAgg(fig).draw()  # render off screen, no pyplot
    return fig, ax, mesh


def pixel(fig, ax, lon, lat):
    """RGBA of the rendered figure at a map position."""
    x, y = ax.transData.transform((lon, lat))
    image = np.asarray(fig.canvas.buffer_rgba())
    return image[image.shape[0] - 1 - int(round(y)), int(round(x))] / 255.0


def is_white(rgba):
    return bool(np.all(rgba[:3] > 0.98))


def coastline(ax):
    [lines] = [c for c in ax.collections if c.get_gid() == "coastline"]
    return lines


def widest_cell(mesh):
    """Widest drawn cell in degrees of longitude at the equator (cells near the poles span many degrees)."""
    return max(np.ptp(path.vertices[:, 0]) * np.cos(np.radians(np.abs(path.vertices[:, 1]).min()))
               for path in mesh.get_paths())


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test: coastlines must come from installed files."""
    def refuse(*args, **kwargs):
        raise AssertionError("a map tried to reach the network")

    monkeypatch.setattr(socket, "socket", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("files", [
    "orca2_votemper.nc",  # ORCA2, 148 x 180, 2-D nav_lat/nav_lon, a seam at 80E
    "NEMO/nemo_1m_2015*_grid-T.nc",  # eORCA1-like, 330 x 360, three monthly files
])
def test_curvilinear_orca_maps_on_2d_coordinates_land_blank_no_seam(files, no_network):
    cube = ga.open_cube(sorted(glob.glob(os.path.join(SAMPLES, files))))
    field = cube[list(cube.data_vars)[0]].isel(time=0)
    assert field["lat"].ndim == 2
    fig, ax, mesh = drawn(field)
    finite = np.isfinite(field.values)
    assert 0.5 < finite.mean() < 0.9  # the files hold land (NaN) and ocean
    # every ocean cell is drawn, each as its own small quadrilateral: none spans the map
    assert len(mesh.get_array()) >= finite.sum() * 0.99
    assert np.isfinite(mesh.get_array()).all()
    assert widest_cell(mesh) < 5.0
    assert ax.get_xlim()[1] - ax.get_xlim()[0] > 350  # the globe, in one frame
    # land is blank, the ocean painted, at both edges of the seam too (cells split, not smeared)
    assert is_white(pixel(fig, ax, 20.0, 15.0))  # the Sahara
    assert is_white(pixel(fig, ax, -100.0, 40.0))  # North America
    for lon, lat in [(-30.0, 0.0), (-170.0, -5.0), (-179.5, 0.0), (179.5, 0.0)]:  # Atlantic, Pacific, seam
        assert not is_white(pixel(fig, ax, lon, lat)), (lon, lat)
    # coastlines drawn, from files that ship with a package (the network is refused here)
    assert sum(len(segment) for segment in coastline(ax).get_segments()) > 5000


def test_antimeridian_draws_the_same_whatever_the_longitude_convention(tmp_path, no_network):
    lon360 = np.arange(117.5, 262.5 + 1e-9, 2.5)  # 117.5E to 97.5W, across 180
    lat = np.arange(-30.0, 30.0 + 1e-9, 2.5)
    time = pd.date_range("2000-01-01", periods=3, freq="MS")
    values = 290 + np.random.default_rng(0).normal(size=(3, lat.size, lon360.size)).astype("float32")
    images, limits = [], []
    for name, lon in [("0_360", lon360), ("pm180", np.where(lon360 >= 180, lon360 - 360, lon360))]:
        path = tmp_path / f"tas_{name}.nc"
        xr.Dataset({"tas": (("time", "lat", "lon"), values, {"units": "K"})},
                   coords={"time": time, "lat": ("lat", lat, {"units": "degrees_north"}),
                           "lon": ("lon", lon, {"units": "degrees_east"})}).to_netcdf(path)
        fig, ax, mesh = drawn(ga.open_cube(path)["tas"].isel(time=0))
        assert 2.4 < widest_cell(mesh) <= 2.5  # no cell drawn across the 215 degree gap
        limits.append(ax.get_xlim())
        images.append(np.asarray(fig.canvas.buffer_rgba()).copy())
        assert coastline(ax).get_segments()  # New Guinea, Australia, Mexico
    assert limits[0] == pytest.approx((116.25, 263.75))  # contiguous: 147.5 degrees wide, not 360
    assert limits[0] == pytest.approx(limits[1])
    np.testing.assert_array_equal(images[0], images[1])


def test_frame_west_puts_the_seam_in_the_widest_gap():
    assert frame_west(np.array([-100.0, -80.0, -60.0])) == -180.0  # North America: the usual frame
    assert frame_west(np.array([170.0, 180.0, 190.0])) == 0.0  # across the antimeridian, 0..360
    assert frame_west(np.array([-170.0, -180.0, 170.0])) == 0.0  # the same, the other convention
    assert frame_west(np.arange(0.0, 360.0, 2.5)) == -180.0  # a global grid
    assert frame_west(np.array([-20.0, 0.0, 20.0])) == -180.0  # across Greenwich


@pytest.fixture(scope="module")
def noleap_scores(tmp_path_factory):
    """A model fitted on a noleap-calendar file (cftime dates), and its scores."""
    cube, _ = synthetic_cube(n_years=6, n_lat=6, n_lon=8, seed=4)  # 48 cells, 2 tiles at precision 1
    cube = cube.assign_coords(time=[cftime.DatetimeNoLeap(t.year, t.month, 16) for t in
                                    pd.DatetimeIndex(cube["time"].values)])
    path = tmp_path_factory.mktemp("noleap") / "tas.nc"
    cube["time"].encoding.update(units="days since 2000-01-01", calendar="noleap")
    cube.to_netcdf(path)
    cube = ga.open_cube(path)
    model = ga.fit(cube.isel(time=slice(None, 48)), detectors="gmm", precision=1)
    return cube, model, model.score(cube)


def test_map_titles_name_variable_units_step_and_training_and_draw_the_signed_anomaly(noleap_scores, no_network):
    cube, model, result = noleap_scores
    fig = irregularity_figure(result, time=-2)
    title = fig.get_suptitle()
    assert "tas (K), 2005-11-16" in title
    assert "model trained on 2000-01-16 to 2003-12-16" in title
    assert "00:00" not in title and ".000" not in title
    assert "tas (K), 2005-11-16" in irregularity_figure(result, time="2005-11").get_suptitle()  # a noleap date
    with pytest.raises(GeoanomError, match="no time step at '1990'; it runs from 2000-01-16 to 2005-12-16"):
        irregularity_figure(result, time="1990")
    assert "fitted on 2000-01-16 to 2003-12-16" in result.attrs["history"]
    irregularity, anomaly = [ax for ax in fig.axes if ax.get_title()]
    assert "cells flagged" in irregularity.get_title()
    assert coastline(irregularity) and coastline(anomaly)
    # the right panel: the signed standardised anomaly, diverging colours centred on 0
    [cells] = [c for c in anomaly.collections if c.get_array() is not None]
    assert isinstance(cells.norm, TwoSlopeNorm) and cells.norm.vcenter == 0
    assert cells.cmap.name == "RdBu_r"
    expected = model.anomalies(cube).isel(time=-2).sel(variable="tas").values
    np.testing.assert_allclose(np.sort(cells.get_array()), np.sort(expected.ravel()), rtol=1e-5)
    assert (expected > 1).any() and (expected < -1).any()  # warm and cold cells both drawn


def test_result_carries_the_signed_anomaly_and_tiles_as_flags(noleap_scores, tmp_path):
    cube, model, result = noleap_scores
    anomaly = result["tas_anomaly"]
    assert anomaly.dtype == np.float32 and anomaly.attrs["geoanom_variable_units"] == "K"
    np.testing.assert_allclose(anomaly.values, model.anomalies(cube).sel(variable="tas").values, rtol=1e-5)
    tile = result["tile"]
    assert tile.dtype.kind == "i"
    meanings = tile.attrs["flag_meanings"].split()
    assert list(tile.attrs["flag_values"]) == list(range(len(meanings)))
    np.testing.assert_array_equal(tile_names(result).values, model.labels.values)
    # Zarr v3 specifies integers (not fixed-length strings): no warning, and the tiles round-trip
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ga.write_dataset(result, tmp_path / "scores.zarr", zarr_format=3)
    stored = xr.open_zarr(tmp_path / "scores.zarr", consolidated=False)
    np.testing.assert_array_equal(tile_names(stored).values, model.labels.values)
    assert list(top_tiles(stored, n=50).index.sort_values()) == sorted(model.tiles)
    ga.write_dataset(result, tmp_path / "scores.nc")
    with xr.open_dataset(tmp_path / "scores.nc") as stored:
        np.testing.assert_array_equal(tile_names(stored).values, model.labels.values)


def test_tile_names_refuses_codes_its_flags_do_not_name(noleap_scores):
    result = noleap_scores[2][["tile"]].copy()
    result["tile"] = result["tile"].copy(data=result["tile"].values + 1000)
    with pytest.raises(GeoanomError, match="not all named by its flag_values"):
        tile_names(result)
    with pytest.raises(GeoanomError, match="no 'tile' variable"):
        tile_names(result.drop_vars("tile"))


@pytest.mark.parametrize("shape, width", [((1, 1), 1.0), ((1, 5), 50.0), ((4, 1), 10.0)])
def test_maps_of_one_cell_one_row_and_one_column(shape, width, tmp_path):
    cube, _ = synthetic_cube(n_years=10, n_lat=shape[0], n_lon=shape[1], seed=7)
    path = tmp_path / "tiny.nc"
    cube.to_netcdf(path)
    cube = ga.open_cube(path)
    model = ga.fit(cube.isel(time=slice(None, 108)), detectors="gmm", precision=1)
    result = model.score(cube)
    assert result["fused_irregularity"].isel(time=-1).notnull().all()
    assert irregularity_map(result, tmp_path / "map.png") is not None  # the Figure; the file written too
    image = matplotlib.image.imread(tmp_path / "map.png")
    assert image.shape[0] > 300 and image[..., :3].std() > 0.05
    fig = irregularity_figure(result)
    assert overlaps(layout_boxes(fig)) == []
    assert all(ax.get_window_extent().height >= MIN_MAP_HEIGHT_INCHES * fig.dpi for ax in map_axes(fig))
    [cells] = [c for c in fig.axes[0].collections if c.get_array() is not None]
    assert len(cells.get_array()) == shape[0] * shape[1]  # every cell drawn, each its own quadrilateral
    # cells 10 degrees wide (the grid's spacing); a lone cell, whose size nothing tells, 1 degree
    west, east = fig.axes[0].get_xlim()
    assert east - west == pytest.approx(width)


def test_an_all_nan_step_is_a_clear_picture_and_bad_steps_one_sentence(tmp_path):
    cube, _ = synthetic_cube(n_years=4, n_lat=4, n_lon=5, seed=8)
    cube["tas"][-1] = np.nan
    model = ga.fit(cube.isel(time=slice(None, 36)), detectors="gmm", precision=1)
    result = model.score(cube)
    fig = irregularity_figure(result, time=-1)
    notes = [text.get_text() for ax in fig.axes for text in ax.texts]
    assert f"no cell has a score at {iso_date(cube['time'].values[-1])}" in notes
    fig.savefig(tmp_path / "empty.png")
    with pytest.raises(GeoanomError, match="time step 48 is out of range: the result has 48 steps"):
        irregularity_figure(result, time=48)
    with pytest.raises(GeoanomError, match="no variable 'pr'"):
        irregularity_figure(result, variable="pr")
    with pytest.raises(GeoanomError, match="no 'fused_irregularity'"):
        irregularity_figure(result[["tile"]])


def test_iso_date_in_any_calendar():
    assert iso_date(np.datetime64("2010-09-16T00:00:00.000000000")) == "2010-09-16"
    assert iso_date(np.datetime64("2010-09-16T06:00:00", "ns")) == "2010-09-16T06:00"
    assert iso_date(cftime.Datetime360Day(2000, 2, 30)) == "2000-02-30"
    assert iso_date(cftime.DatetimeNoLeap(1860, 1, 16, 12)) == "1860-01-16T12:00"
    assert iso_date(np.datetime64("2010-09-16"), with_time=True) == "2010-09-16T00:00"
    assert iso_date(xr.DataArray(pd.date_range("2001-03-01", periods=1)).values[0]) == "2001-03-01"


# -- layout from the domain's shape ------------------------------------------------------

def layout_boxes(fig):
    """(name, window extent) of every title, axis label, tick label in view, legend and axes, rendered."""
    FigureCanvasAgg(fig).draw()
    boxes = [("suptitle", fig._suptitle)] if fig._suptitle else []
    boxes += [(f"figure legend {i}", legend) for i, legend in enumerate(fig.legends)]
    for n, ax in enumerate(fig.axes):
        boxes.append((f"axes {n}", ax))
        boxes += [(f"axes {n} title", title) for title in (ax.title, ax._left_title, ax._right_title)]
        if ax.get_legend():
            boxes.append((f"axes {n} legend", ax.get_legend()))
        for axis in (ax.xaxis, ax.yaxis):
            boxes.append((f"axes {n} {axis.axis_name} label", axis.label))
            low, high = sorted(axis.get_view_interval())
            span = high - low
            for loc, label in zip(axis.get_ticklocs(), axis.get_ticklabels()):
                if low - 1e-9 * span <= loc <= high + 1e-9 * span:
                    boxes.append((f"axes {n} {axis.axis_name} tick {label.get_text()}", label))
    renderer = fig.canvas.get_renderer()
    return [(name, artist.get_window_extent(renderer)) for name, artist in boxes
            if artist.get_visible() and (not hasattr(artist, "get_text") or artist.get_text())]


def overlaps(boxes):
    """Pairs of boxes that overlap by more than a pixel each way."""
    found = []
    for i, (name, box) in enumerate(boxes):
        for other, second in boxes[i + 1:]:
            width = min(box.x1, second.x1) - max(box.x0, second.x0)
            height = min(box.y1, second.y1) - max(box.y0, second.y0)
            if width > 1 and height > 1:
                found.append((name, other))
    return found


def map_axes(fig):
    return [ax for ax in fig.axes if any(c.get_gid() == "coastline" for c in ax.collections)]


MIN_MAP_HEIGHT_INCHES = 1.2


@pytest.fixture(scope="module")
def ostia_scores():
    """OSTIA monthly sea surface temperature (iris-sample-data): global in longitude, 10 degrees of latitude."""
    cube = ga.open_cube(os.path.join(SAMPLES, "ostia_monthly.nc"))
    model = ga.fit(cube.isel(time=slice(None, 36)), detectors="gmm")
    return model.score(cube)


def test_a_global_strip_stacks_its_panels_and_no_text_overlaps(ostia_scores, tmp_path, no_network):
    fig = irregularity_figure(ostia_scores)
    boxes = layout_boxes(fig)
    assert len([name for name, _ in boxes if " y tick " in name]) >= 6  # latitude labels are drawn ...
    assert overlaps(boxes) == []  # ... and nothing overlaps: titles, tick labels, colour bars, legend
    irregularity, anomaly = map_axes(fig)
    for ax in (irregularity, anomaly):  # not a thin strip
        assert ax.get_window_extent().height >= MIN_MAP_HEIGHT_INCHES * fig.dpi
    # stacked: the anomaly below the irregularity, each colour bar below its own panel
    assert anomaly.get_window_extent().y1 < irregularity.get_window_extent().y0
    colour_bars = [ax for ax in fig.axes if ax not in (irregularity, anomaly)]
    assert len(colour_bars) == 2
    for bar, panel in zip(colour_bars, (irregularity, anomaly)):
        assert bar.get_window_extent().y1 < panel.get_window_extent().y0
        assert bar.get_window_extent().width > bar.get_window_extent().height
    # latitude stretched to read, and said so; longitude still the whole globe
    assert "stretched" in irregularity.get_ylabel()
    assert irregularity.get_xlim()[1] - irregularity.get_xlim()[0] > 355
    # the legend of the outline is outside both maps
    [legend] = fig.legends
    box = legend.get_window_extent()
    assert all(box.y1 < ax.get_window_extent().y0 for ax in (irregularity, anomaly))
    irregularity_map(ostia_scores, tmp_path / "ostia.png")
    image = matplotlib.image.imread(tmp_path / "ostia.png")
    assert image.shape[0] > 700 and image.shape[1] > 1000


@pytest.mark.parametrize("file, stacked, stretched", [
    ("ostia_monthly.nc", True, True),  # 360 x 10 degrees
    ("orca2_votemper.nc", True, False),  # the globe, on a curvilinear grid
    ("A1B_north_america.nc", False, False),  # a region about as wide as high: side by side, true shapes
])
def test_layout_follows_the_shape_of_real_domains(file, stacked, stretched):
    from geoanom.plot.cells import map_cells
    from geoanom.plot.layout import map_layout

    cube = ga.open_cube(os.path.join(SAMPLES, file))
    layout = map_layout(map_cells(cube), 2)
    assert layout.stacked == stacked
    assert (layout.stretch > 1.01) == stretched
    width, height = layout.figsize
    assert height > 2 * MIN_MAP_HEIGHT_INCHES and (stacked or width > height)


def test_flags_across_the_seam_of_a_global_grid_are_outlined_as_one_patch():
    import matplotlib.pyplot as plt

    from geoanom.plot.cells import map_cells, outline_cells

    cells = map_cells(xr.Dataset(coords={"lat": [0.0, 10.0], "lon": np.arange(-175.0, 180.0, 10.0)}))
    mask = np.zeros((2, 36), dtype=bool)
    mask[:, [0, -1]] = True  # a 2 x 2 patch across 180 degrees
    counts = {}
    for wrap in (False, True):
        figure, ax = plt.subplots()
        outline_cells(ax, cells, mask, wrap)
        counts[wrap] = len(ax.collections[0].get_segments())
        plt.close(figure)
    assert counts == {False: 12, True: 8}  # the patch's perimeter; without wrapping, two false edges per row
