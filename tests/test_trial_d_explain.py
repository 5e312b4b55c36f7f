"""Trial D, finding 13a: --explain (and ga.plot.cell) on land of a curvilinear grid says how far the cell drawn is.

A point on a strip of land three cells wide drew the sea cell 256 km away,
titled "nearest cell to 55.5, -38"; a point 318 km from the sea on a grid of
127 km cells was drawn too (the limit was two cell diagonals). Now the title
says "nearest cell with data to 55.5, -38, 256 km away", and a point more
than two grid spacings from every cell with data is refused, naming the
point and the distance.
"""

import numpy as np
import pytest

import geoanom as ga
from geoanom.errors import GeoanomError
from geoanom.plot import cell
from geoanom.testing import synthetic_cube


def great_circle_km(lat1, lon1, lat2, lon2):
    """The distance by the chord of the unit sphere, as an angle times the Earth's radius."""
    def unit(lat, lon):
        lat, lon = np.radians(lat), np.radians(lon)
        return np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])

    chord = np.linalg.norm(unit(lat1, lon1) - unit(lat2, lon2))
    return 2 * 6371.0 * np.arcsin(chord / 2)


@pytest.fixture(scope="module")
def coast():
    """Monthly data on a slanted curvilinear grid near 55 N (2 x 1.2 degree cells) whose first three columns are land."""
    cube, _ = synthetic_cube(n_years=4, n_lat=8, n_lon=10, seed=3)
    y, x = np.meshgrid(np.arange(8), np.arange(10), indexing="ij")
    flat = cube.rename(lat="y", lon="x").drop_vars(["y", "x"])
    cube = flat.assign_coords(lat=(("y", "x"), 55 + 1.2 * y + 0.06 * x), lon=(("y", "x"), -40 + 2.0 * x + 0.5 * y))
    cube["tas"][:, :, :3] = np.nan
    model = ga.fit(cube.isel(time=slice(None, 24)), detectors="gmm", precision=1)
    return cube, model


def test_a_point_on_land_says_how_far_the_cell_drawn_is(coast):
    cube, model = coast
    figure = cell(model, cube, lat=55.5, lon=-38.0)
    km = great_circle_km(55.5, -38.0, float(cube["lat"][0, 3]), float(cube["lon"][0, 3]))  # the row's first sea cell
    assert 250 < km < 260
    title = figure.axes[0].get_title().splitlines()[0]
    assert f"(nearest cell with data to 55.5, -38, {km:,.0f} km away)" in title, title


def test_a_point_at_sea_is_its_own_cell_with_its_distance(coast):
    cube, model = coast
    title = cell(model, cube, lat=56.3, lon=-30.6).axes[0].get_title().splitlines()[0]
    assert "(nearest cell to 56.3, -30.6, " in title and " km away)" in title, title


def test_a_point_far_inland_is_refused_naming_it_and_the_distance(coast):
    cube, model = coast
    with pytest.raises(GeoanomError, match=r"^the point 55.5, -39 is on a cell without data .* the nearest cell with "
                                           r"data \(55.18, -34.00\) is 318 km away, more than two grid spacings"):
        cell(model, cube, lat=55.5, lon=-39.0)


def test_the_command_line_refuses_it_before_scoring_and_says_the_distance(coast, tmp_path, refused):
    cube = coast[0]
    path = tmp_path / "coast.nc"
    cube.to_netcdf(path)
    common = ("detect", path, "--var", "tas", "--train-end", "2001", "--detectors", "gmm", "--precision", "1")
    run = refused(*common, "--out", tmp_path / "far.nc", "--explain", "55.5,-39")
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "--explain 55.5,-39: the point 55.5, -39 is on a cell without data" in run.stderr
    assert "318 km away" in run.stderr and not (tmp_path / "far.nc").exists()
    run = refused(*common, "--out", tmp_path / "near.nc", "--explain", "55.5,-38")
    assert run.returncode == 0, run.stderr
    assert "nearest cell with data to 55.5, -38, 255 km away" in run.stdout
    assert (tmp_path / "near.cell.png").exists()
