"""Pictures for anomaly queries: event maps, event time series, feature scatters, binned flagged shares."""

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

import geoanom as ga
from geoanom import geohash
from geoanom.detectors import GMMDetector
from geoanom.errors import GeoanomError, TileError
from geoanom.features.calendar import decimal_year
from geoanom.formatting import iso_date
from geoanom.model.result import tile_names
from geoanom.model.trajectory import feature_trajectory
from geoanom.plot import (
    event_map,
    event_timeseries,
    feature_scatter,
    flagged_share_map,
    flagged_shares,
    nearest_cell,
)
from geoanom.plot.scatter import component_ellipses, threshold_fields
from geoanom.queries.events import event_labels, events
from geoanom.testing import synthetic_cube

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(fig, path):
    fig.savefig(path, dpi=60)
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 10_000
    image = matplotlib.image.imread(path)
    assert min(image.shape[:2]) > 150 and image[..., :3].std() > 0.05  # not a blank canvas


def by_gid(ax, prefix):
    return [artist for artist in ax.get_children() if str(artist.get_gid() or "").startswith(prefix)]


def line(ax, gid):
    [found] = [artist for artist in ax.get_lines() if artist.get_gid() == gid]
    return found


def boundary_edges(mask, wrap=False):
    """Edges between a cell of the mask and a cell outside it (or the grid's edge), counted directly.

    With ``wrap`` the last column meets the first (a global grid)."""
    padded = np.pad(mask, ((1, 1), (0, 0) if wrap else (1, 1)))
    inner = padded[1:-1] if wrap else padded[1:-1, 1:-1]
    count = 0
    for shift, axis in ((1, 0), (-1, 0), (1, 1), (-1, 1)):
        neighbour = np.roll(padded, shift, axis)
        count += (inner & ~(neighbour[1:-1] if wrap else neighbour[1:-1, 1:-1])).sum()
    return int(count)


@pytest.fixture(scope="module")
def north_america():
    """16 x 20 cells of the A1B sample, 16 tiles of three families, scored 1940-2000 (warming flags plenty)."""
    cube = ga.sample_cube("north_america").isel(lat=slice(8, 24), lon=slice(10, 30))
    model = ga.fit(cube.sel(time=slice(None, "1959")), detectors=("gmm", "kmeans", "dpmm"), precision=2)
    result = model.score(cube.sel(time=slice("1940", "2000"))).compute()
    labels = event_labels(result).compute()
    return cube, model, result, labels, events(result, labels=labels)


@pytest.fixture(scope="module")
def sst():
    """Eight rows of the global SST strip (432 longitudes, land, skipped tiles), one family, two scored years."""
    cube = ga.sample_cube("sst").isel(lat=slice(5, 13))
    model = ga.fit(cube.isel(time=slice(None, 36)), detectors="gmm")
    return cube, model, model.score(cube.isel(time=slice(30, None))).compute()


@pytest.fixture(scope="module")
def curvilinear():
    """A rotated curvilinear grid (2-D lat/lon on y, x) with one model family."""
    cube, _ = synthetic_cube(n_years=4, n_lat=12, n_lon=10, seed=3)
    y, x = np.meshgrid(np.arange(12), np.arange(10), indexing="ij")
    cube = cube.rename({"lat": "y", "lon": "x"}).drop_vars(["y", "x"])
    cube = cube.assign_coords(lat=(("y", "x"), 30 + 1.6 * y + 0.7 * x, {"standard_name": "latitude"}),
                              lon=(("y", "x"), -90 + 1.8 * x - 0.9 * y, {"standard_name": "longitude"}))
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=2)
    return cube, model, model.score(cube).compute()


def moderate_event(table, steps=(2, 6)):
    """The largest event lasting a few steps."""
    chosen = table[table["duration"].between(*steps)].sort_values("cells")
    return int(chosen["event"].iloc[-1])


# -- event_map ---------------------------------------------------------------------------------------------------

def test_event_map_outlines_each_step_of_the_event_and_fills_its_first_step(north_america, tmp_path):
    _, _, result, labels, table = north_america
    event = moderate_event(table)
    row = table.set_index("event").loc[event]
    hits = labels.values == event
    steps = np.flatnonzero(hits.any(axis=(1, 2)))
    assert steps.size == row["duration"] and hits.sum() == row["cells"]
    fig = event_map(result, labels, event)
    ax = fig.axes[0]
    outlines = sorted(by_gid(ax, "event-step-"), key=lambda c: int(c.get_gid().rsplit("-", 1)[1]))
    assert len(outlines) == steps.size  # one contour per step
    colours = [tuple(c.get_colors()[0]) for c in outlines]
    assert len(set(colours)) == steps.size  # each step its own colour
    for outline, step in zip(outlines, steps):
        assert len(outline.get_segments()) == boundary_edges(hits[step])
    [fill] = by_gid(ax, "event-first-step")
    first = np.argmax(hits[steps], axis=0)[hits.any(axis=0)]
    np.testing.assert_array_equal(np.sort(fill.get_array()), np.sort(first))
    assert by_gid(ax, "coastline")
    title = ax.get_title().replace("\n", " ")  # wrapped to the panel's width
    assert f"event {event}: {iso_date(row['start'])} to {iso_date(row['end'])} ({steps.size} steps)" in title
    assert_png(fig, tmp_path / "event.png")


def test_event_map_across_the_antimeridian_is_drawn_in_one_piece(sst, tmp_path):
    cube, _, result = sst
    labels = np.zeros(result["ensemble"].shape, dtype=np.int32)
    n_lon = result.sizes["lon"]
    seam = np.r_[n_lon - 3:n_lon, 0:3]  # three columns each side of 180 degrees
    labels[2, 2:6, seam] = 1
    labels[3, 3:7, seam[1:]] = 1
    fig = event_map(result, labels, 1)
    ax = fig.axes[0]
    west, east = ax.get_xlim()
    assert east - west < 40 and west < 180 < east  # a narrow map centred on the seam, not the whole globe
    outlines = by_gid(ax, "event-step-")
    assert len(outlines) == 2
    # every segment is short: nothing drawn across the map
    segments = np.concatenate([np.asarray(c.get_segments()) for c in outlines])
    assert np.abs(np.diff(segments[:, :, 0], axis=1)).max() < 2
    # the seam joins both halves: no outline along it
    assert len(by_gid(ax, "event-step-0")[0].get_segments()) == boundary_edges(labels[2] == 1, wrap=True) == 20
    peak = np.nanmax(np.where(labels == 1, result["fused_irregularity"].values, np.nan))
    assert ax.get_title().replace("\n", " ").endswith(f"peak fused irregularity {peak:.3g}")  # wrapped to the panel
    assert_png(fig, tmp_path / "seam.png")


def test_event_map_on_a_curvilinear_grid(curvilinear, tmp_path):
    _, _, result = curvilinear
    labels = event_labels(result)
    table = events(result, labels=labels)
    event = int(table.sort_values("cells")["event"].iloc[-1])
    hits = labels.values == event
    fig = event_map(result, labels, event, fill=False)
    outlines = by_gid(fig.axes[0], "event-step-")
    assert len(outlines) == hits.any(axis=(1, 2)).sum() and not by_gid(fig.axes[0], "event-first-step")
    lat, lon = result["lat"].values, result["lon"].values
    ends = np.concatenate([np.asarray(c.get_segments()).reshape(-1, 2) for c in outlines])
    inside = hits.any(axis=0)
    # the outline's corners lie within a cell of the event's centres (rotated cells, no axis-aligned box)
    distance = np.hypot(ends[:, None, 0] - lon[inside][None], ends[:, None, 1] - lat[inside][None]).min(axis=1)
    assert distance.max() < 1.5
    assert_png(fig, tmp_path / "curvilinear.png")


def test_event_timeseries_and_shares_on_a_curvilinear_grid(curvilinear):
    cube, model, result = curvilinear
    labels = event_labels(result)
    event = int(events(result, labels=labels).sort_values("cells")["event"].iloc[-1])
    region = (labels.values == event).any(axis=0)
    fig = event_timeseries(model, cube, result, event=event, labels=labels)
    np.testing.assert_allclose(line(fig.axes[0], "observations").get_ydata(),
                               cube["tas"].values[:, region].mean(axis=1), rtol=1e-6)
    table = flagged_shares(result)
    frame = pd.DataFrame({"tile": tile_names(result).values.ravel(),
                          "flagged": result["ensemble"].sum("time").values.ravel(),
                          "valid": result["fused_irregularity"].notnull().sum("time").values.ravel()})
    sums = frame.groupby("tile").sum()
    scored = sums[sums["valid"] > 0]  # tiles too small to fit score nothing, and are not drawn
    assert len(scored) < len(sums)
    assert list(table.index) == list(scored.index)
    np.testing.assert_allclose(table["share"], (scored["flagged"] / scored["valid"]).to_numpy())


def test_event_map_refuses_unknown_events_and_foreign_labels(north_america):
    _, _, result, labels, _ = north_america
    highest = int(labels.max())
    with pytest.raises(GeoanomError, match=f"event {highest + 1} is not in the label cube: its ids run from 1 to "
                                           f"{highest}"):
        event_map(result, labels, highest + 1)
    with pytest.raises(GeoanomError, match="positive integer"):
        event_map(result, labels, 0)
    with pytest.raises(GeoanomError, match="not on the result's grid"):
        event_map(result, labels.isel(lat=slice(1, None)), 1)


# -- event_timeseries --------------------------------------------------------------------------------------------

def test_event_timeseries_of_a_cell_against_its_climatology(north_america, tmp_path):
    cube, model, result, _, _ = north_america
    counts = result["ensemble"].sum("time").values
    busiest = np.unravel_index(np.argmax(np.where(counts < counts.max(), counts, -1)), counts.shape)  # some unflagged
    lat, lon = float(cube["lat"][busiest[0]]) + 0.3, float(cube["lon"][busiest[1]]) - 0.2  # off the centre
    row, col = nearest_cell(model, lat, lon)
    assert (row, col) == busiest
    fig = event_timeseries(model, cube, result, cell=(lat, lon))
    ax = fig.axes[0]
    values = cube["air_temperature"].values[:, row, col]
    np.testing.assert_array_equal(line(ax, "observations").get_ydata(), values)
    climatology = model.climatology.block(slice(row, row + 1), slice(col, col + 1))
    np.testing.assert_allclose(line(ax, "expected").get_ydata(), climatology.expected(cube["time"])[0, :, 0, 0])
    flags = result["ensemble"].values[:, row, col]
    assert 0 < flags.sum() < flags.size
    flagged = np.isin(cube["time"].values, result["time"].values[flags])
    np.testing.assert_array_equal(line(ax, "flagged").get_ydata(), values[flagged])
    np.testing.assert_allclose(line(fig.axes[1], "fused").get_ydata(), result["fused_irregularity"].values[:, row, col])
    assert f"tile {model.labels.values[row, col]}" in ax.get_title()
    assert_png(fig, tmp_path / "cell.png")
    figure = Figure()
    left, right = figure.subplots(1, 2)
    assert event_timeseries(model, cube, result, cell=(lat, lon), ax=right) is figure
    np.testing.assert_array_equal(line(right, "flagged").get_ydata(), values[flagged])
    assert not left.get_lines() and "air_temperature (K)" in right.get_title() and len(figure.axes) == 2


def test_event_timeseries_of_an_event_region(north_america, tmp_path):
    cube, model, result, labels, table = north_america
    event = moderate_event(table)
    hits = labels.values == event
    region = hits.any(axis=0)
    fig = event_timeseries(model, cube, result, event=event, labels=labels)
    ax = fig.axes[0]
    values = cube["air_temperature"].values
    np.testing.assert_allclose(line(ax, "observations").get_ydata(), values[:, region].mean(axis=1), rtol=1e-6)
    expected = model.climatology.expected(cube["time"])[0][:, region].mean(axis=1)
    np.testing.assert_allclose(line(ax, "expected").get_ydata(), expected)
    event_times = result["time"].values[hits.any(axis=(1, 2))]
    np.testing.assert_allclose(line(ax, "flagged").get_xdata(),
                               decimal_year(cube["time"].sel(time=event_times), "dayofyear"))
    peak = np.nanmax(np.where(region, result["fused_irregularity"].values, np.nan), axis=(1, 2))
    np.testing.assert_allclose(line(fig.axes[1], "fused").get_ydata(), peak)
    assert f"mean of the {region.sum()} cells of event {event}" in ax.get_title()
    assert_png(fig, tmp_path / "region.png")


def test_event_timeseries_refuses_what_it_cannot_draw(north_america):
    cube, model, result, labels, _ = north_america
    with pytest.raises(GeoanomError, match="not neither"):
        event_timeseries(model, cube, result)
    with pytest.raises(GeoanomError, match="not both"):
        event_timeseries(model, cube, result, cell=(40, -100), event=1, labels=labels)
    with pytest.raises(GeoanomError, match="needs the label cube"):
        event_timeseries(model, cube, result, event=1)
    with pytest.raises(GeoanomError, match="outside the grid"):
        event_timeseries(model, cube, result, cell=(-40, 20))
    with pytest.raises(GeoanomError, match="is not in the label cube"):
        event_timeseries(model, cube, result, event=int(labels.max()) + 5, labels=labels)


# -- feature_scatter ---------------------------------------------------------------------------------------------

def test_component_ellipses_recover_a_known_gaussian():
    rng = np.random.default_rng(0)
    angle = np.radians(30.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    covariance = rotation @ np.diag([9.0, 1.0]) @ rotation.T
    X = rng.multivariate_normal([10.0, -4.0], covariance, size=4000)
    X = np.column_stack([X, rng.normal(size=4000)])  # a third feature, left out of the picture
    [part] = component_ellipses(GMMDetector(n_components=1).fit(X), 0, 1)
    np.testing.assert_allclose(part.centre, [10.0, -4.0], atol=0.15)
    assert part.width == pytest.approx(2 * 2 * 3.0, rel=0.05) and part.height == pytest.approx(2 * 2 * 1.0, rel=0.05)
    assert np.mod(part.angle, 180.0) == pytest.approx(30.0, abs=2.0)


def test_feature_scatter_draws_the_tiles_model_over_its_vectors(north_america, tmp_path):
    cube, model, _, _, _ = north_america
    tile = "9t"
    ensemble = model.scoring_ensemble(tile)
    fig = feature_scatter(model, cube, tile)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "air_temperature_anomaly" and ax.get_ylabel() == "air_temperature_neighbours"
    gmm = ensemble.detectors_["gmm"]
    means = gmm.center_ + gmm.means_ * gmm.scale_  # the components' means in the data's units
    centres = np.array([patch.center for patch in by_gid(ax, "gmm-component-")])
    np.testing.assert_allclose(centres, means[:, :2])
    kmeans = ensemble.detectors_["kmeans"]
    centroid_line = line(ax, "kmeans-centroids")
    np.testing.assert_allclose(np.column_stack([centroid_line.get_xdata(), centroid_line.get_ydata()]),
                               (kmeans.center_ + kmeans.means_ * kmeans.scale_)[:, :2])
    # every observation is drawn, the flagged ones in red: as many as scoring flags
    table = feature_trajectory(model, cube, tile=tile)
    points = {c.get_gid(): len(c.get_offsets()) for c in by_gid(ax, "points-")}
    assert points == {"points-False": int((~table["ensemble"]).sum()), "points-True": int(table["ensemble"].sum())}
    # the ensemble's boundary: where two of the three families' irregularity crosses 1
    [boundary] = by_gid(ax, "threshold-ensemble")
    vertices = np.concatenate([path.vertices for path in boundary.get_paths()])
    assert len(vertices) > 20
    base = np.median(table[["air_temperature_anomaly", "air_temperature_neighbours"]].to_numpy(), axis=0)
    crossing = [threshold_fields(ensemble, base, 0, 1, np.array([vx]), np.array([vy]))["ensemble"].item()
                for vx, vy in vertices[::max(len(vertices) // 40, 1)]]
    miss = np.abs(np.asarray(crossing) - 1.0)  # linear interpolation on a grid: close, not exact, at kinks
    assert np.median(miss) < 0.03 and np.quantile(miss, 0.9) < 0.15
    # that field exceeds 1 exactly where the ensemble flags: it is the majority's decision
    features = table[["air_temperature_anomaly", "air_temperature_neighbours"]].to_numpy()
    picked = np.r_[np.flatnonzero(table["ensemble"])[:60], np.flatnonzero(~table["ensemble"])[:60]]
    above = [threshold_fields(ensemble, features[k], 0, 1, features[k, :1], features[k, 1:])["ensemble"].item() > 1
             for k in picked]
    np.testing.assert_array_equal(above, table["ensemble"].to_numpy()[picked])
    assert by_gid(ax, "threshold-gmm") and by_gid(ax, "threshold-kmeans")
    assert_png(fig, tmp_path / "scatter.png")


def test_feature_scatter_refuses_unknown_and_unfitted_tiles_and_features(north_america, sst):
    cube, model, _, _, _ = north_america
    with pytest.raises(TileError, match="'zz' is not a tile"):
        feature_scatter(model, cube, "zz")
    with pytest.raises(GeoanomError, match="no feature 'tas'"):
        feature_scatter(model, cube, "9t", x="tas")
    with pytest.raises(GeoanomError, match="the same feature"):
        feature_scatter(model, cube, "9t", x="air_temperature_anomaly", y="air_temperature_anomaly")
    sst_cube, sst_model, _ = sst
    skipped = next(iter(sst_model.skipped))
    with pytest.raises(GeoanomError, match=f"tile '{skipped}' has no fitted model"):
        feature_scatter(sst_model, sst_cube, skipped)


# -- flagged_share_map -------------------------------------------------------------------------------------------

def direct_shares(result, names):
    """Flagged share per bin by a plain pandas groupby over every observation."""
    frame = result[["ensemble", "fused_irregularity"]].to_dataframe().reset_index()
    cells = pd.DataFrame({"lat": np.repeat(result["lat"].values, result.sizes["lon"]),
                          "lon": np.tile(result["lon"].values, result.sizes["lat"]), "bin": names.ravel()})
    frame = frame.merge(cells, on=["lat", "lon"])
    frame = frame[frame["fused_irregularity"].notna()]
    return frame.groupby("bin")["ensemble"].mean()


@pytest.mark.parametrize("precision", [None, 1])
def test_flagged_share_map_bins_equal_a_direct_groupby(north_america, precision, tmp_path):
    _, _, result, _, _ = north_america
    tiles = tile_names(result).values
    names = tiles if precision is None else geohash.parent(tiles, precision)
    expected = direct_shares(result, names)
    fig = flagged_share_map(result, precision)
    [bins] = by_gid(fig.axes[0], "geohash-bins")
    table = flagged_shares(result, precision)
    assert list(table.index) == list(expected.index)
    np.testing.assert_allclose(table["share"], expected.to_numpy())
    np.testing.assert_allclose(bins.get_array()[:len(table)], expected.to_numpy())
    # each bin drawn as its geohash rectangle
    width, height = geohash.cell_size(precision or 2)[::-1]
    for path in bins.get_paths()[:len(table)]:
        assert np.ptp(path.vertices[:, 0]) == pytest.approx(width) and np.ptp(path.vertices[:, 1]) == pytest.approx(height)
    assert by_gid(fig.axes[0], "coastline")
    assert_png(fig, tmp_path / "bins.png")


def test_flagged_share_map_on_a_global_grid_with_land(sst, tmp_path):
    _, _, result = sst
    table = flagged_shares(result)
    expected = direct_shares(result, tile_names(result).values)
    np.testing.assert_allclose(table["share"], expected.to_numpy())
    assert table.index.str.len().unique().tolist() == [int(result["tile"].attrs["geoanom_precision"])]
    fig = flagged_share_map(result)
    west, east = fig.axes[0].get_xlim()
    assert east - west > 350  # the whole strip
    assert_png(fig, tmp_path / "global_bins.png")


def test_flagged_shares_refuse_bad_precision_and_non_results(north_america):
    _, _, result, _, _ = north_america
    with pytest.raises(GeoanomError, match="from 1 to 12, got 13"):
        flagged_share_map(result, 13)
    with pytest.raises(GeoanomError, match="no 'tile' variable"):
        flagged_share_map(result.drop_vars("tile"))
