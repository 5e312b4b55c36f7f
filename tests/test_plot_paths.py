"""One convention for every figure of geoanom.plot: it returns the Figure, and ``path=`` also writes it there."""

import inspect

import pandas as pd
import pytest
from matplotlib.figure import Figure
from test_plot_events import curvilinear  # noqa: F401 (a fixture)

import geoanom.plot as P
from geoanom.queries.events import event_labels, events

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
FIGURES = ["cell", "event_map", "event_timeseries", "feature_scatter", "flagged_share_and_change", "flagged_share_map",
           "irregularity_figure", "irregularity_map", "irregularity_maps", "learning_curve"]


@pytest.fixture(scope="module")
def scored(curvilinear):  # noqa: F811 (the imported fixture, by name)
    """A small curvilinear grid (2-D lat/lon on y, x), one family, scored whole, with its events."""
    cube, model, result = curvilinear
    labels = event_labels(result).compute()
    return cube, model, result, labels, events(result, labels=labels)


def calls(scored):
    cube, model, result, labels, table = scored
    event = int(table.sort_values("cells")["event"].iloc[-1])
    lat, lon = float(cube["lat"][5, 5]), float(cube["lon"][5, 5])
    shares = pd.DataFrame({"a": [0.1, 0.2]}, index=[2000, 2001])
    change = result["fused_irregularity"].mean("time")
    return {"cell": lambda path: P.cell(model, cube, lat=lat, lon=lon, path=path),
            "event_map": lambda path: P.event_map(result, labels, event, path=path),
            "event_timeseries": lambda path: P.event_timeseries(model, cube, result, event=event, labels=labels,
                                                                path=path),
            "feature_scatter": lambda path: P.feature_scatter(model, cube, model.tiles[0], path=path),
            "flagged_share_and_change": lambda path: P.flagged_share_and_change(shares, change, path=path),
            "flagged_share_map": lambda path: P.flagged_share_map(result, path=path),
            "irregularity_figure": lambda path: P.irregularity_figure(result, path=path),
            "learning_curve": lambda path: P.learning_curve(pd.DataFrame({"update_norm": [0.4, 0.3]},
                                                                         index=pd.Index([1, 2], name="round")),
                                                            path=path),
            "irregularity_map": lambda path: P.irregularity_map(result, path=path),
            "irregularity_maps": lambda path: P.irregularity_maps({"a": result, "b": result}, path=path)}


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_takes_path_as_a_keyword_and_returns_the_figure(name):
    parameter = inspect.signature(getattr(P, name)).parameters["path"]
    assert parameter.default is None and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    doc = getattr(P, name).__doc__
    assert "path : str or path-like, optional" in doc and "matplotlib.figure.Figure" in doc and "path=" in doc


def test_every_figure_writes_its_path_and_returns_the_figure(scored, tmp_path):
    for name, draw in calls(scored).items():
        path = tmp_path / f"{name}.png"
        figure = draw(path)
        assert isinstance(figure, Figure), name
        assert path.read_bytes()[:8] == PNG_SIGNATURE, name
    assert isinstance(draw(None), Figure)  # no path: nothing written, the figure still returned


def test_irregularity_map_keeps_its_positional_path(scored, tmp_path):
    result = scored[2]
    figure = P.irregularity_map(result, tmp_path / "map.png", time=-1)
    assert isinstance(figure, Figure) and (tmp_path / "map.png").read_bytes()[:8] == PNG_SIGNATURE
    figure = P.irregularity_maps({"a": result}, tmp_path / "maps.png", -1)
    assert isinstance(figure, Figure) and (tmp_path / "maps.png").exists()


def test_a_result_cut_to_one_step_maps_that_step(scored, tmp_path):
    result = scored[2]
    one = result.isel(time=30)  # no time dimension left: raised "it has no time steps or no 'time'"
    figure = P.irregularity_map(one, path=tmp_path / "one.png")
    assert figure.get_suptitle() == P.irregularity_figure(result, time=30).get_suptitle()
    assert (tmp_path / "one.png").read_bytes()[:8] == PNG_SIGNATURE
    assert isinstance(P.irregularity_maps({"a": one, "b": result.isel(time=30)}), Figure)
