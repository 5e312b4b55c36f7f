"""``geoanom demo``: what "anomalous" means depends on what you expect.

On the A1B North America air temperature (iris-sample-data), one ensemble
learns 1860-1959 as it was, another the same years with each cell's running
31-year climate removed; both score 1960-2099. Against the fixed climate
the map is the warming; against the running one, the weather that stood out.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import GeoanomError
from .features.detrend import RUNNING_WINDOW_YEARS, running_climate
from .flagged import flagged_share
from .formatting import degrees
from .io import sample_cube
from .model import fit
from .plot import flagged_share_and_change, irregularity_maps
from .reporting import progress, write_outputs


def run(out: Path, detectors: str) -> None:
    """``geoanom demo``: what "anomalous" means depends on what you expect.

    One ensemble learns 1860-1959 as it was (a fixed climate), another the
    same years with every cell's running 31-year climate removed (its own
    slow trend, see :func:`running_climate`). Both score 1960-2099. Against
    the fixed climate the map is the warming; against the running one it
    shows the year whose weather stood out, and where.
    """
    if out.exists() and not out.is_dir():
        raise GeoanomError(f"--out '{out}' is a file; give a folder for the demo's outputs.")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cube = sample_cube("north_america").load()  # 2 MB
    name = next(iter(cube.data_vars))
    training, scored = slice(None, "1959"), slice("1960", None)
    print("geoanom demo: HadCM3 A1B air temperature over North America, 1860-2099 (iris-sample-data)")
    print("1. the fixed climate: one ensemble per geohash tile learns 1860-1959 as it was ...")
    with progress(None, "fitting the fixed climate"):
        fixed = fit(cube.sel(time=training), detectors=detectors)
    print(f"  {fixed}")
    print(f"  {fixed.labels.attrs['precision_reason']}")
    fixed_result = fixed.score(cube.sel(time=scored)).compute()
    print("2. the running climate: the same years, each cell's own 31-year trend removed ...")
    running = running_climate(cube, training)
    with progress(None, "fitting the running climate"):
        model = fit(running.sel(time=training), detectors=detectors, precision=fixed.precision)
    print(f"  {model}")
    result = model.score(running.sel(time=scored)).compute()
    result.attrs["geoanom_demo_expectation"] = (
        f"each cell's running climate: its 1860-1959 climatology plus its {RUNNING_WINDOW_YEARS}-year local linear "
        "trend (tricube weights), so anomalies are departures from the cell's own slow change")
    write_outputs(result, model, out / "result.zarr", None, None,
                   table_path=out / "top_tiles.csv", model_path=out / "model.npz")

    years = result["time"].dt.year.values
    shares = pd.DataFrame({"fixed 1860-1959 climate": flagged_share(fixed_result),
                           f"running {RUNNING_WINDOW_YEARS}-year climate": flagged_share(result)},
                          index=pd.Index(years, name="year"))
    shares.to_csv(out / "flagged_share.csv")
    fixed_share, running_share = (shares[c] for c in shares.columns)
    k = int(np.argmax(running_share.to_numpy()))
    year = int(years[k])
    irregularity_maps({"against the fixed 1860-1959 climate": fixed_result,
                       f"against each cell's running {RUNNING_WINDOW_YEARS}-year climate": result},
                      out / "most_anomalous_year.png", time=k,
                      title=f"{year}, the year with the most cells flagged against the running climate")
    late = cube[name].sel(time=slice("2070", "2099"))
    change = (late - fixed.climatology.expected(late["time"])[fixed.variables.index(name)]).mean("time")
    change.attrs.update(long_name="departure from the fixed climate", units=cube[name].attrs.get("units", ""),
                        title="2070-2099 mean departure from the 1860-1959 climate")
    flagged_share_and_change(shares, change, out / "warming.png", mark=year,
                             title="the warming: what a fixed climate flags, and where it is")

    print()
    print("What the demo shows:")
    warm_row, warm_col = np.unravel_index(int(np.nanargmax(change.values)), change.shape)
    print(f"  Against the fixed 1860-1959 climate the ensemble flags {fixed_share.iloc[k]:.1%} of the cells in "
          f"{year} and {fixed_share.iloc[-1]:.1%} in {years[-1]}: that map is the warming, not events. By 2070-2099 "
          f"the grid is {float(change.mean()):.1f} K warmer on average, up to {float(change.max()):.1f} K at "
          f"{_where(change, warm_row, warm_col)} (warming.png).")
    print(f"  Against each cell's running climate it flags {running_share.mean():.1%} of cell-years over "
          f"{years[0]}-{years[-1]}, close to the 1% the thresholds allow in training, and most in {year}: "
          f"{running_share.iloc[k]:.1%} of the cells (most_anomalous_year.png), mostly in")
    for line in _flagged_regions(model, running, result, fixed_result, k, name):
        print(f"    {line}")
    print("  A warming can hide a cold year, and the same departure in kelvin is ordinary where the climate varies "
          "a lot and anomalous where it is steady: the detectors judge it in spreads of the cell's own year-to-year "
          "variability, about the expectation you chose.")
    print(f"wrote {out}/: result.zarr, model.npz, top_tiles.csv, flagged_share.csv, most_anomalous_year.png, "
          "warming.png")
    print(f"done in {time.perf_counter() - started:.1f} s")


def _where(field, row: int, col: int) -> str:
    from .grid import cell_centres

    lat, lon = (float(np.asarray(c.values)[row, col]) for c in cell_centres(field))
    return f"{degrees(lat, 'N', 'S')} {degrees(lon, 'E', 'W')}"


def _flagged_regions(model, cube, result, other, k: int, name: str, n: int = 3) -> list[str]:
    """The tiles with the most flagged cells at time step ``k``: where, how many, how far from expected,
    and how many of them ``other`` (a result against another expectation) flags."""
    from .grid import cell_centres

    step = result.isel(time=k)
    flags = step["ensemble"].values.astype(bool)
    other_flags = other["ensemble"].isel(time=k).values.astype(bool)
    index = model.variables.index(name)
    time_step = step["time"].expand_dims("time")
    departure = cube[name].sel(time=time_step).values[0] - model.climatology.expected(time_step)[index, 0]
    spread = model.climatology.spread_at(time_step)[index, 0]
    lat, lon = (np.asarray(c.values) for c in cell_centres(result))
    tiles = pd.DataFrame({"tile": model.labels.values[flags], "lat": lat[flags], "lon": lon[flags],
                          "departure": departure[flags], "spreads": (departure / spread)[flags],
                          "other": other_flags[flags]})
    lines = []
    for tile, group in sorted(tiles.groupby("tile"), key=lambda item: -len(item[1]))[:n]:
        mean = group.mean(numeric_only=True)
        lines.append(f"tile {tile} around {degrees(mean['lat'], 'N', 'S')} {degrees(mean['lon'], 'E', 'W')}: "
                     f"{len(group)} cells, {abs(mean['departure']):.1f} K "
                     f"{'warmer' if mean['departure'] > 0 else 'colder'} than expected "
                     f"({abs(mean['spreads']):.1f} spreads); the fixed climate flags "
                     f"{int(group['other'].sum())} of them")
    return lines
