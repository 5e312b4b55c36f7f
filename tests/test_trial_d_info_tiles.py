"""``geoanom info`` counts tiles' cells one way on every line: cells with data, what a tile's model sees."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import xarray as xr

from geoanom import geohash

iris_sample_data = pytest.importorskip("iris_sample_data")
OSTIA = os.path.join(iris_sample_data.path, "ostia_monthly.nc")


def tile_figures(stdout: str) -> tuple[str, dict[int, float]]:
    """The "tiles: chosen" line, and each precision's cells with data per tile."""
    chosen = next(line for line in stdout.splitlines() if line.startswith("tiles:"))
    each = {int(p): float(cells) for p, cells in
            re.findall(r"precision (\d): \d+ tiles, \d+ with data, ([\d.]+) cells with data per tile", stdout)}
    return chosen, each


def test_the_chosen_line_and_the_precision_lines_give_one_figure_on_the_ostia_sample(refused):
    process = refused("info", OSTIA)
    assert process.returncode == 0, process.stderr
    chosen, each = tile_figures(process.stdout)
    assert sorted(each) == [1, 2, 3, 4], process.stdout
    figure = float(re.search(r"chosen precision 2 .*: ([\d.]+) cells with data per tile", chosen).group(1))
    assert figure == each[2]  # 137 (a whole tile's grid cells) against 121.5 (land included) before
    # counted apart: 5721 of the 7776 cells are sea, in 58 of the 64 tiles of precision 2
    with xr.open_dataset(OSTIA) as ds:
        sea = ds["surface_temperature"].notnull().any("time").values
        lat, lon = np.meshgrid(ds["latitude"].values, ds["longitude"].values, indexing="ij")
    tiles = geohash.encode(lat[sea], lon[sea], 2)
    assert sea.sum() == 5721 and np.unique(tiles).size == 58
    assert each[2] == pytest.approx(sea.sum() / np.unique(tiles).size, abs=0.05)
    assert f"= {sea.sum() / 58 * 54:.0f} observations (target 1000)" in chosen and "fewer" not in chosen


def test_a_short_record_whose_tiles_hold_fewer_than_the_target_says_so(refused, tmp_path):
    with xr.open_dataset(OSTIA) as ds:
        ds.isel(time=slice(0, 8)).to_netcdf(tmp_path / "ostia_8.nc")
    process = refused("info", tmp_path / "ostia_8.nc")
    assert process.returncode == 0, process.stderr
    chosen, each = tile_figures(process.stdout)
    # precision 2 from the tile's size (137 grid cells x 8 = 1096), but its 98.6 cells with data hold 789
    assert f"{each[2]:.1f} cells with data per tile x 8 time steps = 789 observations" in chosen
    assert "fewer" in chosen and "--precision 1" in chosen
