"""``geoanom detect --explain`` and the demo, run as a user runs them: in a subprocess (refusals in-process)."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from geoanom.features.detrend import running_climate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def geoanom(*args, cwd=None):
    """Run ``geoanom ARGS`` and return the completed process."""
    return subprocess.run([sys.executable, "-m", "geoanom.cli", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd, timeout=600)


def assert_user_error(process, *fragments):
    assert process.returncode == 2, process.stderr
    lines = process.stderr.strip().splitlines()
    assert len(lines) == 1, process.stderr
    assert lines[0].startswith("geoanom: error: ") and "Traceback" not in process.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_png(path, min_bytes=20_000):
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > min_bytes


def test_explain_writes_the_picture_of_the_nearest_cell_next_to_the_output(cube_file, tmp_path):
    out = tmp_path / "scores.zarr"
    process = geoanom("detect", cube_file, "--var", "tas", "--train-end", "2005-12", "--precision", "2",
                      "--detectors", "gmm", "--out", out, "--explain", "35.3,-80.2")
    assert process.returncode == 0, process.stderr
    assert_png(tmp_path / "scores.cell.png")
    cube = xr.open_dataset(cube_file)
    lats, lons = xr.broadcast(cube["lat"], cube["lon"])
    distance = np.hypot(lats.values - 35.3, (lons.values + 80.2) * np.cos(np.radians(35.3)))
    row, col = np.unravel_index(np.argmin(distance), distance.shape)
    line = process.stdout.strip().splitlines()[-1]
    assert str(tmp_path / "scores.cell.png") in line
    assert f"{float(cube['lat'][row]):.2f}\u00b0N {abs(float(cube['lon'][col])):.2f}\u00b0W" in line


def test_explain_out_goes_where_asked_in_a_new_folder(cube_file, tmp_path):
    picture = tmp_path / "pictures" / "charlotte.png"
    process = geoanom("detect", cube_file, "--var", "tas", "--train-end", "2005-12", "--precision", "2",
                      "--detectors", "gmm", "--out", tmp_path / "scores.nc", "--explain", "35.2, -80.8",
                      "--explain-out", picture)
    assert process.returncode == 0, process.stderr
    assert_png(picture)
    assert not (tmp_path / "scores.cell.png").exists()


@pytest.mark.parametrize("value, fragment", [
    ("abc", "--explain takes LAT,LON"),
    ("35", "--explain takes LAT,LON"),
    ("35,-80,1", "--explain takes LAT,LON"),
    ("north,west", "'north,west'"),
    ("95,10", "latitude must be in [-90, 90]"),
])
def test_a_bad_explain_value_is_one_sentence_before_any_work(tmp_path, refused, value, fragment):
    # the input does not exist: the option is refused before the data are read
    process = refused("detect", tmp_path / "missing.nc", "--var", "tas", "--train-end", "2005",
                      "--out", tmp_path / "o.zarr", f"--explain={value}")
    assert_user_error(process, fragment)


def test_a_bad_picture_path_is_refused_before_any_work(tmp_path, refused):
    a_file = tmp_path / "taken"
    a_file.write_text("")
    common = ("detect", tmp_path / "missing.nc", "--var", "tas", "--train-end", "2005", "--out", tmp_path / "o.zarr")
    assert_user_error(refused(*common, "--explain", "35,-80", "--explain-out", tmp_path / "cell.jpg"),
                      "cell.jpg", ".png")
    assert_user_error(refused(*common, "--explain", "35,-80", "--explain-out", a_file / "cell.png"),
                      "'", "taken' is a file, not a folder")
    (tmp_path / "pictures.png").mkdir()
    assert_user_error(refused(*common, "--explain", "35,-80", "--explain-out", tmp_path / "pictures.png"),
                      "it is a folder")
    assert_user_error(refused(*common, "--explain-out", tmp_path / "cell.png"), "--explain-out needs --explain")


def test_a_point_off_the_grid_is_refused_before_fitting(cube_file, tmp_path, refused):
    out = tmp_path / "o.zarr"
    process = refused("detect", cube_file, "--var", "tas", "--train-end", "2005", "--out", out, "--explain=-40,20")
    assert_user_error(process, "-40, 20", "outside the grid", "km away")
    assert "Completed" not in process.stdout  # nothing was fitted
    assert not out.exists()


def test_running_climate_removes_a_curved_trend_and_keeps_the_training_level():
    years = np.arange(1860, 2100)
    rng = np.random.default_rng(0)
    trend = 0.0004 * np.clip(years - 1950, 0, None) ** 2  # flat, then accelerating
    noise = rng.normal(0, 0.3, (years.size, 2, 3))
    values = 280 + trend[:, None, None] + noise
    cube = xr.Dataset({"t": (("time", "lat", "lon"), values.astype("float32"))},
                      coords={"time": pd.to_datetime([f"{y}-07-01" for y in years]), "lat": [10.0, 20.0],
                              "lon": [0.0, 1.0, 2.0]})
    detrended = running_climate(cube, slice(None, "1959"))["t"].values.astype(float)
    late = years >= 2050
    assert abs(values[late].mean() - values[~late].mean()) > 5  # the raw data warm by 9 K
    assert abs(detrended[late].mean() - detrended[years < 1960].mean()) < 0.1
    np.testing.assert_allclose(detrended[years < 1960].mean(axis=0), values[years < 1960].mean(axis=0), atol=0.1)
    # what is left is the year-to-year noise, not smoothed away
    assert np.corrcoef((detrended - 280).ravel(), noise.ravel())[0, 1] > 0.9


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "demo"
    process = geoanom("demo", "--out", out)
    assert process.returncode == 0, process.stderr
    return out, process.stdout, process.stderr


def test_demo_flags_far_less_against_the_running_climate(demo):
    out, stdout, _ = demo
    shares = pd.read_csv(out / "flagged_share.csv", index_col="year")
    fixed, running = shares["fixed 1860-1959 climate"], shares["running 31-year climate"]
    assert list(shares.index) == list(range(1960, 2100))
    assert fixed.loc[2070:].min() > 0.8  # against a fixed climate the warming is flagged everywhere
    assert running.mean() < 0.02 < 0.3 < fixed.mean()
    assert running.mean() < fixed.mean() / 20
    year = int(running.idxmax())
    assert 0.02 < running.loc[year] < fixed.loc[year]  # a few regions stand out that year
    assert f"most in {year}: {running.loc[year]:.1%} of the cells" in stdout
    assert f"flags {fixed.loc[year]:.1%} of the cells in {year}" in stdout


def test_demo_writes_its_pictures_result_and_table(demo):
    out, stdout, stderr = demo
    assert_png(out / "most_anomalous_year.png", 50_000)
    assert_png(out / "warming.png", 50_000)
    result = xr.open_zarr(out / "result.zarr")
    assert "running climate" in result.attrs["geoanom_demo_expectation"]
    assert result.sizes["time"] == 140 and str(result.time.values[0])[:4] == "1960"
    assert set(result.detector.values) == {"gmm", "kmeans", "dpmm", "iforest", "event"}
    table = pd.read_csv(out / "top_tiles.csv", index_col="tile")
    assert len(table) == 10 and table["mean_irregularity"].is_monotonic_decreasing
    assert "the ten most anomalous tiles" in stdout
    # progress on standard error, in plain labelled lines: it is not a terminal here
    assert f"scoring and writing {out / 'result.zarr'}: done" in stderr and "\r" not in stderr
    assert "What the demo shows:" in stdout and "warming.png" in stdout
