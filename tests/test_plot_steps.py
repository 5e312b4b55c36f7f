"""Which step a map draws: the last with scores by default, or a date; and titles that fit their figure."""

import pytest

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.plot import feature_scatter, irregularity_figure
from geoanom.plot.panels import last_scored_step, step_index
from geoanom.reporting import draw_map
from geoanom.testing import synthetic_cube


@pytest.fixture(scope="module")
def scored():
    cube, _ = synthetic_cube(n_years=4, n_lat=6, n_lon=6, seed=4)
    cube = cube.rename(tas="surface_temperature")  # long feature names make long titles
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=1,
                   features=["anomalies", "neighbours", "values"])
    return cube, model, model.score(cube).compute()


def without_last(result, n):
    """The result with its last ``n`` steps all missing (a month not yet delivered)."""
    cut = result.copy()
    for name in ("fused_irregularity", "surface_temperature_anomaly"):
        cut[name] = cut[name].where(cut["time"] < cut["time"][-n])
    return cut


def test_last_scored_step_reads_back_past_missing_steps(scored):
    result = scored[2]
    size = result.sizes["time"]
    assert last_scored_step(result) == size - 1
    for n in (1, 3, 7):
        assert last_scored_step(without_last(result, n)) == size - 1 - n
    assert last_scored_step(without_last(result, size)) == size - 1  # nothing scored: the last step, which says so


def test_the_map_draws_the_last_step_with_scores_and_names_its_date(scored, tmp_path):
    result = without_last(scored[2], 3)
    date = str(result["time"].values[-4])[:10]
    assert date in irregularity_figure(result)._suptitle.get_text()
    notes = [text.get_text() for text in irregularity_figure(result).axes[0].texts]
    assert not [note for note in notes if note.startswith("no cell has a score")]
    notes = [text.get_text() for text in irregularity_figure(result, time=-1).axes[0].texts]
    assert [note for note in notes if note.startswith("no cell has a score")]  # asked for: the empty step
    said = draw_map(result, tmp_path / "map.png")
    assert said == f"map of {date}, the last step with scores (the last 3 steps have none): {tmp_path / 'map.png'}"
    assert draw_map(scored[2], tmp_path / "map.png").endswith(f"the last time step: {tmp_path / 'map.png'}")
    assert draw_map(scored[2], tmp_path / "map.png", "2001-03").startswith("map of 2001-03-01, the step at 2001-03")


def test_a_step_is_found_by_index_or_date_in_any_calendar(scored):
    result = scored[2]
    assert step_index(result, "2001-03") == 14 and step_index(result, -1) == result.sizes["time"] - 1
    assert step_index(result, "2001-03-20") == 15  # between steps: the nearest
    noleap = result.convert_calendar("noleap")
    assert step_index(noleap, "2001-03") == 14
    with pytest.raises(GeoanomError, match="no time step at '2031-01'; it runs from 2000-01-01 to 2003-12-01"):
        step_index(result, "2031-01")
    with pytest.raises(GeoanomError, match="no time step at '2031-01'"):
        step_index(noleap, "2031-01")
    with pytest.raises(GeoanomError, match="out of range"):
        step_index(result, 48)


def test_plot_time_is_checked_before_any_work(cube_file, tmp_path, refused):
    detect = ("detect", cube_file, "--var", "tas", "--train-end", "2005-12", "--out", tmp_path / "o.zarr")
    process = refused(*detect, "--plot-time", "2010-01")
    assert process.returncode == 2 and "--plot-time needs --plot" in process.stderr
    process = refused(*detect, "--plot", tmp_path / "map.png", "--plot-time", "2031-01")
    assert process.returncode == 2, process.stderr
    assert "--plot-time 2031-01: the input has no time step at '2031-01'" in process.stderr
    assert not (tmp_path / "o.zarr").exists()


def test_a_date_between_steps_draws_the_nearest_and_one_past_half_a_step_is_refused(cube_file, tmp_path, refused):
    # the synthetic cube's steps are each month's first day, 2000-01 to 2011-12
    detect = ("detect", cube_file, "--var", "tas", "--train-end", "2003-12", "--precision", "1", "--detectors", "gmm",
              "--out", tmp_path / "o.zarr", "--plot", tmp_path / "map.png")
    process = refused(*detect, "--plot-time", "2011-12-20")  # the record's end is 2011-12-01, 19 days earlier
    assert process.returncode == 2, process.stderr
    assert "--plot-time 2011-12-20: the input has no time step at '2011-12-20'; it runs from 2000-01-01 to " \
           "2011-12-01, and its nearest step, 2011-12-01, is more than half a time step (15.5 days) from it." \
           in process.stderr and "Traceback" not in process.stderr
    assert not (tmp_path / "o.zarr").exists()
    process = refused(*detect, "--plot-time", "2011-11-20")
    assert process.returncode == 0, process.stderr
    assert "map of 2011-12-01, the step nearest to 2011-11-20: " in process.stdout
    assert (tmp_path / "map.png").stat().st_size > 0


def test_the_nearest_step_is_the_same_in_any_calendar_and_a_partial_date_is_not_rounded(scored):
    result = scored[2]
    noleap = result.convert_calendar("noleap")
    for data in (result, noleap):
        assert step_index(data, "2001-03-14") == 14 and step_index(data, "2001-03-17T06") == 15
        with pytest.raises(GeoanomError, match="its nearest step, 2003-12-01, is more than half a time step"):
            step_index(data, "2003-12-17")
    with pytest.raises(GeoanomError, match=r"no time step at '2004-01'; it runs from 2000-01-01 to 2003-12-01\.$"):
        step_index(result, "2004-01")  # a month of monthly data names the steps it spans: none


def test_the_scatter_title_fits_its_figure(scored):
    cube, model, result = scored
    tile = str(model.labels.values[0, 0])
    fig = feature_scatter(model, cube, tile)
    title = fig.axes[0].title
    assert "held at the tile's median" in title.get_text()
    fig.draw_without_rendering()
    box, page = title.get_window_extent(), fig.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and box.y1 <= page.y1
