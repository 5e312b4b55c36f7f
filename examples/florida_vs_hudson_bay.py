"""Florida versus Hudson Bay: each tile's model knows only its own region.

This reproduces the idea of Table III of the reference paper (Budgaga et al.,
"A framework for scalable real-time anomaly detection over voluminous,
geospatial data streams", Concurrency and Computation: Practice and
Experience, 2017, section 6.5 "Impact of Geospatial Scope on Model Accuracy").
There, two models were trained, one on observations from Florida (geohash
``djjs``) and one on observations from Hudson Bay (``f4du``), and each was fed
observations from both regions. If the models have specialised to their own
regions, the other region's observations should be classified as definitively
anomalous, while observations from the model's own region should be
considered normal, which is what the paper's table shows. That is the argument
for running many detector instances, one per spatial region, rather than one
model for the whole domain.

Here the data are the embedded HadCM3 A1B annual air temperature over North
America (``ga.sample_cube("north_america")``, 1860-2099, 360-day calendar).
One detector ensemble (Gaussian mixture fitted by EM, isolation forest) is
fitted per geohash tile on 1860-1959. The Florida tile and the Hudson Bay tile
are the tiles of the grid cells nearest the paper's two geohashes (``dj`` and
``f4`` at precision 2). Each region's cells are then scored by their own
tile's model and by the other tile's model (``model.score(cube, tile=...)``).

The comparison uses the training years 1860-1959: that is where "normal for
its own model" is expected. Later years are warmed by the A1B scenario, so
even the own model rightly flags many of them.

The table gives, for each combination, the share of observations flagged as
anomalous by each detector family and by the ensemble (a strict majority of
the families), with the median irregularity in brackets (1 is the family's
threshold; for the ensemble, the fused irregularity).

Run::

    python examples/florida_vs_hudson_bay.py                # precision 2
    python examples/florida_vs_hudson_bay.py --precision 1  # continental tiles
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import xarray as xr

import geoanom as ga

# The geohashes of the reference paper's two sample locations (Table III).
PAPER_LOCATIONS = {"Florida": "djjs", "Hudson Bay": "f4du"}


def region_tile(model: ga.AnomalyModel, paper_geohash: str) -> str:
    """The model's tile holding the grid cell nearest the centre of ``paper_geohash``."""
    lat, lon = (float(v) for v in ga.geohash.decode(paper_geohash))
    return str(model.labels.sel(lat=lat, lon=lon, method="nearest").values)


def summarise(scores: xr.Dataset, cells: xr.DataArray) -> dict[str, tuple[float, float]]:
    """(share flagged, median irregularity) of the observations of ``cells``, per family and ensemble."""
    out = {}
    for detector in scores["detector"].values:
        irregularity = scores["irregularity"].sel(detector=detector).where(cells)
        flagged = scores["anomalous"].sel(detector=detector).where(cells)
        out[str(detector)] = (float(flagged.mean()), float(irregularity.median()))
    fused = scores["fused_irregularity"].where(cells)
    out["ensemble"] = (float(scores["ensemble"].where(cells).mean()), float(fused.median()))
    return out


def florida_vs_hudson_bay(precision: int = 2, train_end: str = "1959") -> tuple[str, list[dict]]:
    """Fit, score both regions by both models, and return (header, rows) of the table."""
    cube = ga.sample_cube("north_america")
    train = cube.sel(time=slice(None, train_end))
    model = ga.fit(train, precision=precision, features="values")  # values: judge one tile by another
    tiles = {region: region_tile(model, geohash) for region, geohash in PAPER_LOCATIONS.items()}
    if len(set(tiles.values())) == 1:
        raise ga.GeoanomError(
            f"at precision {precision} Florida and Hudson Bay fall in the same tile "
            f"'{tiles['Florida']}'; use a precision of 2 or more."
        )
    scored_by = {region: model.score(train, tile=tile).compute() for region, tile in tiles.items()}
    rows = []
    for observed, tile in tiles.items():
        cells = model.labels == tile
        for judge in (observed, *(r for r in tiles if r != observed)):
            rows.append(
                {
                    "observations": f"{observed} ({tile})",
                    "model": f"{judge} ({tiles[judge]})" + (" own" if judge == observed else ""),
                    **summarise(scored_by[judge], cells),
                }
            )
    years = train["time"].dt.year.values
    header = (
        f"geohash precision {model.precision}; trained and tested on {years[0]}-{years[-1]} "
        f"({train.sizes['time']} years); "
        + "; ".join(f"{r} = tile {t} ({int((model.labels == t).sum())} cells)" for r, t in tiles.items())
    )
    return header, rows


def format_table(header: str, rows: list[dict]) -> str:
    families = [key for key in rows[0] if key not in ("observations", "model")]
    cell = lambda v: f"{v[0]:5.3f} ({v[1]:.3g})"  # noqa: E731
    table = [["observations", "scored by model", *families]]
    table += [[row["observations"], row["model"], *(cell(row[f]) for f in families)] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
    lines = ["  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip() for line in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    title = "Share of observations flagged anomalous (median irregularity; anomalous above 1)"
    return "\n".join([title, header, "", *lines])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--precision", type=int, default=2, help="geohash precision of the tiles (default 2)")
    parser.add_argument("--train-end", default="1959", help="last training year (default 1959)")
    args = parser.parse_args(argv)
    try:
        header, rows = florida_vs_hudson_bay(args.precision, args.train_end)
    except (ga.GeoanomError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(format_table(header, rows))
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    sys.exit(main())
