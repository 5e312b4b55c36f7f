"""The ``geoanom`` command: demo, detect and info.

Every user mistake ends in one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .errors import GeoanomError, TrainingPeriodError
from .features.regions import RegionParams

EXIT_USER_ERROR = 2


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USER_ERROR
    try:
        args.run(args)
    except GeoanomError as error:
        print(f"geoanom: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as error:  # a path that cannot be created or written
        where = f" ({error.filename})" if error.filename else ""
        print(f"geoanom: error: {error.strerror or error}{where}.", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("geoanom: interrupted", file=sys.stderr)
        return 130
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="geoanom", description="Find anomalies in climate and ocean cubes (NetCDF, Zarr)."
    )
    commands = parser.add_subparsers(title="commands")

    demo = commands.add_parser("demo", help="the whole job on embedded real data",
                               description="What 'anomalous' means depends on what you expect. On the A1B "
                               "North America air temperature, fit on 1860-1959 once as it was (a fixed climate) and "
                               "once with each cell's running 31-year climate removed; score 1960-2099 against both; "
                               "write the second's Zarr result, model and table of tiles, the flagged share per year "
                               "(flagged_share.csv), maps of the year most flagged against the running climate "
                               "(most_anomalous_year.png) and the warming (warming.png).")
    demo.add_argument("--out", default="geoanom-demo", help="output folder (default: geoanom-demo)")
    demo.add_argument("--detectors", default="gmm,kmeans,dpmm,iforest",
                      help="comma-separated families among gmm, kmeans, dpmm, iforest (default: all four)")
    demo.set_defaults(run=run_demo)

    detect = commands.add_parser("detect", help="fit on a training period and score the whole input",
                                 description="Fit one detector ensemble per geohash tile on the training "
                                 "period and score every observation of the input.")
    detect.add_argument("inputs", nargs="+", metavar="INPUT", help="NetCDF files, Zarr stores or globs")
    detect.add_argument("--var", action="append", required=True, dest="variables", help="variable (repeatable)")
    detect.add_argument("--train-end", required=True, help="last date of the training period, e.g. 1990")
    detect.add_argument("--train-start", default=None, help="first date of the training period")
    detect.add_argument("--precision", type=int, default=None, help="geohash precision (default: chosen)")
    detect.add_argument("--detectors", default="gmm,kmeans,dpmm,iforest",
                        help="comma-separated families among gmm, kmeans, dpmm, iforest (default: all four)")
    detect.add_argument("--features", default="anomalies,neighbours",
                        help="comma-separated feature sets: anomalies, neighbours, values, regions "
                        "(default: anomalies,neighbours; values to judge one tile by another's model)")
    detect.add_argument("--trend", choices=("none", "linear"), default="none",
                        help="expected values: the training period's seasonal cycle (none, the default), or that "
                        "plus each cell's linear trend (linear: anomalies about the trend)")
    detect.add_argument("--federated", action="store_true",
                        help="federate the gmm and kmeans families across tiles: region models by federated EM, "
                        "and every tile's model adapted towards its region's")
    detect.add_argument("--federated-rounds", type=int, default=5, help="federated EM / Lloyd rounds (default: 5)")
    detect.add_argument("--federated-relevance", type=float, default=16.0,
                        help="weight of the region's model in observations (default: 16; 0 keeps each tile's own)")
    detect.add_argument("--out", required=True, help="output .zarr or .nc")
    detect.add_argument("--plot", default=None, help="also write a PNG map of the last time step")
    detect.add_argument("--model-out", default=None, help="also save the model (.npz or .zarr)")
    detect.add_argument("--explain", default=None, metavar="LAT,LON",
                        help="also draw the grid cell nearest to LAT,LON (degrees): its observations, expected "
                        "value +- 2 spreads, the ensemble's flags and the training period; write "
                        "--explain=-33.9,18.4 for a southern latitude")
    detect.add_argument("--explain-out", default=None, metavar="PNG",
                        help="where --explain writes its picture (default: next to --out, OUT_STEM.cell.png)")
    add_cluster_options(detect)
    detect.set_defaults(run=run_detect)

    regions = commands.add_parser("regions", help="anomalous regions of each time step: a feature table",
                                  description="Smooth, threshold and label each time step of one variable; "
                                  "write one row of region features per time step (and tile).")
    regions.add_argument("inputs", nargs="+", metavar="INPUT", help="NetCDF files, Zarr stores or globs")
    regions.add_argument("--var", required=True, dest="variable", help="the variable")
    regions.add_argument("--precision", type=int, default=None, help="one row per geohash tile of this precision")
    regions.add_argument("--sigma", type=float, default=RegionParams.sigma, help="Gaussian sigma, in cells")
    regions.add_argument("--median-size", type=int, default=RegionParams.median_size, help="median window, cells")
    regions.add_argument("--threshold", type=float, default=RegionParams.threshold,
                         help="threshold on the smoothed standardised anomaly")
    regions.add_argument("--tail", choices=["both", "upper", "lower"], default=RegionParams.tail)
    regions.add_argument("--tune", type=int, default=0, metavar="N",
                         help="choose sigma, median size and threshold first, in N optuna trials (no labels)")
    regions.add_argument("--out", required=True, help="output table (.csv)")
    regions.add_argument("--labels-out", default=None, help="also write the label cube (.nc or .zarr)")
    regions.set_defaults(run=run_regions)

    federate = commands.add_parser(
        "federate", help="train one anomaly classifier across clients; raw data stay on their workers",
        description="Federated training on each observation's value and region features, clients by geohash tile "
        "or a grid file; without labels each client labels its rows with its own detector ensemble.")
    federate.add_argument("inputs", nargs="+", metavar="INPUT", help="NetCDF files, Zarr stores or globs")
    federate.add_argument("--var", required=True, dest="variable", help="the variable")
    federate.add_argument("--clients", default="tile",
                          help="'tile' (geohash tiles) or a NetCDF/Zarr grid of client ids (default: tile)")
    federate.add_argument("--precision", type=int, default=None, help="geohash precision of tile clients")
    federate.add_argument("--rounds", type=int, default=30)
    federate.add_argument("--aggregator", default="fedavg",
                          help="fedavg, fedprox(mu), median, trimmed_mean(beta), krum(f), multi_krum(f)")
    federate.add_argument("--client-fraction", type=float, default=1.0, help="chance a client takes part in a round")
    federate.add_argument("--epsilon", type=float, default=None, help="differential privacy: total epsilon")
    federate.add_argument("--delta", type=float, default=1e-5, help="differential privacy: delta (default 1e-5)")
    federate.add_argument("--clip", type=float, default=1.0, help="differential privacy: L2 clip of an update")
    federate.add_argument("--signed", action="store_true", help="sign and verify every update (Ed25519)")
    federate.add_argument("--audit-log", default=None, help="hash-chained JSON-lines log of every round")
    federate.add_argument("--out", required=True, help="output folder: model.npz, history.csv, learning_curve.png")
    add_cluster_options(federate)
    federate.set_defaults(run=run_federate)

    info = commands.add_parser("info", help="describe a cube: dims, variables, chunks, calendar, tiles",
                               description="Describe a cube as geoanom opens it.")
    info.add_argument("inputs", nargs="+", metavar="INPUT")
    info.set_defaults(run=run_info)
    return parser


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """--workers N or --scheduler ADDRESS: where a command computes."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local cluster of N worker processes")
    where.add_argument("--scheduler", default=None, help="address of a running dask scheduler")


def run_demo(args: argparse.Namespace) -> None:
    """``geoanom demo``: what "anomalous" means depends on what you expect.

    One ensemble learns 1860-1959 as it was (a fixed climate), another the
    same years with every cell's running 31-year climate removed (its own
    slow trend, see :func:`running_climate`). Both score 1960-2099. Against
    the fixed climate the map is the warming; against the running one it
    shows the year whose weather stood out, and where.
    """
    from . import fit, sample_cube
    from .features.detrend import RUNNING_WINDOW_YEARS, running_climate
    from .plot import flagged_share_and_change, irregularity_maps

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise GeoanomError(f"--out '{out}' is a file; give a folder for the demo's outputs.")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    cube = sample_cube("north_america").load()  # 2 MB
    name = next(iter(cube.data_vars))
    training, scored = slice(None, "1959"), slice("1960", None)
    print("geoanom demo: HadCM3 A1B air temperature over North America, 1860-2099 (iris-sample-data)")
    print("1. the fixed climate: one ensemble per geohash tile learns 1860-1959 as it was ...")
    with _progress(None):
        fixed = fit(cube.sel(time=training), detectors=args.detectors)
    print(f"  {fixed}")
    print(f"  {fixed.labels.attrs['precision_reason']}")
    fixed_result = fixed.score(cube.sel(time=scored)).compute()
    print("2. the running climate: the same years, each cell's own 31-year trend removed ...")
    running = running_climate(cube, training)
    with _progress(None):
        model = fit(running.sel(time=training), detectors=args.detectors, precision=fixed.precision)
    print(f"  {model}")
    result = model.score(running.sel(time=scored)).compute()
    result.attrs["geoanom_demo_expectation"] = (
        f"each cell's running climate: its 1860-1959 climatology plus its {RUNNING_WINDOW_YEARS}-year local linear "
        "trend (tricube weights), so anomalies are departures from the cell's own slow change")
    _write_outputs(result, model, out / "result.zarr", None, None,
                   table_path=out / "top_tiles.csv", model_path=out / "model.npz")

    years = result["time"].dt.year.values
    shares = pd.DataFrame({"fixed 1860-1959 climate": _flagged_share(fixed_result),
                           f"running {RUNNING_WINDOW_YEARS}-year climate": _flagged_share(result)},
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


def _flagged_share(result) -> np.ndarray:
    """Share of the valid cells the ensemble flags, per time step."""
    from .tiling import spatial_dims

    dims = spatial_dims(result)
    valid = result["fused_irregularity"].notnull()
    return (result["ensemble"].where(valid, False).sum(dims) / valid.sum(dims)).values


def _where(field, row: int, col: int) -> str:
    from .tiling import cell_centres

    lat, lon = (float(np.asarray(c.values)[row, col]) for c in cell_centres(field))
    return f"{_degrees(lat, 'N', 'S')} {_degrees(lon, 'E', 'W')}"


def _flagged_regions(model, cube, result, other, k: int, name: str, n: int = 3) -> list[str]:
    """The tiles with the most flagged cells at time step ``k``: where, how many, how far from expected,
    and how many of them ``other`` (a result against another expectation) flags."""
    from .tiling import cell_centres

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
        lines.append(f"tile {tile} around {_degrees(mean['lat'], 'N', 'S')} {_degrees(mean['lon'], 'E', 'W')}: "
                     f"{len(group)} cells, {abs(mean['departure']):.1f} K "
                     f"{'warmer' if mean['departure'] > 0 else 'colder'} than expected "
                     f"({abs(mean['spreads']):.1f} spreads); the fixed climate flags "
                     f"{int(group['other'].sum())} of them")
    return lines


def _degrees(value: float, positive: str, negative: str) -> str:
    return f"{abs(value):.0f}\u00b0{positive if value >= 0 else negative}"


def run_detect(args: argparse.Namespace) -> None:
    """``geoanom detect``."""
    from . import fit, open_cube
    from .cluster import make_client

    if Path(args.out).suffix not in (".zarr", ".nc"):
        raise GeoanomError(f"cannot write '{args.out}': the output must end in .zarr or .nc.")
    point, explain_out = explain_options(args)
    client = make_client(args.workers, args.scheduler)
    with client if client is not None else contextlib.nullcontext():
        cube = open_cube(args.inputs, variables=args.variables)
        if point is not None:  # a point off the grid is refused from the coordinates alone, before any work
            from .plot import nearest_grid_cell

            nearest_grid_cell(cube, *point)
        training = select_training(cube, args.train_start, args.train_end)
        with _progress(client):
            model = fit(training, variables=args.variables, precision=args.precision,
                        detectors=args.detectors, client=client, features=args.features.split(","),
                        federated=args.federated, federated_rounds=args.federated_rounds,
                        federated_relevance=args.federated_relevance,
                        trend=None if args.trend == "none" else args.trend)
        print(f"{model}")
        result = model.score(cube, client=client)
        table = Path(args.out).with_suffix(".top_tiles.csv")
        _write_outputs(result, model, Path(args.out), args.plot, client, table_path=table, model_path=args.model_out)
        if point is not None:
            explain_cell(model, cube, point, Path(args.out), explain_out)


def explain_options(args: argparse.Namespace) -> tuple[tuple[float, float] | None, Path | None]:
    """The point and picture of ``--explain LAT,LON`` / ``--explain-out``, checked before any work."""
    if args.explain is None:
        if args.explain_out is not None:
            raise GeoanomError("--explain-out needs --explain LAT,LON: the cell to draw.")
        return None, None
    point = parse_point(args.explain)
    out = Path(args.explain_out) if args.explain_out is not None else Path(args.out).with_suffix(".cell.png")
    if out.suffix.lower() != ".png":
        raise GeoanomError(f"cannot write '{out}': the picture of --explain must end in .png.")
    if out.is_dir():
        raise GeoanomError(f"cannot write '{out}': it is a folder, not a file.")
    folder = next(parent for parent in out.parents if parent.exists())  # missing folders are made, as for --out
    if not folder.is_dir():
        raise GeoanomError(f"cannot write '{out}': '{folder}' is a file, not a folder.")
    return point, out


def parse_point(text: str) -> tuple[float, float]:
    """``"LAT,LON"`` in degrees as two floats, or a GeoanomError in one sentence."""
    parts = text.replace(" ", "").split(",")
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        raise GeoanomError(f"--explain takes LAT,LON in degrees, e.g. 35.2,-80.8; got '{text}'.") from None
    if not (-90.0 <= lat <= 90.0 and -360.0 <= lon <= 360.0):
        raise GeoanomError(f"--explain {text}: the latitude must be in [-90, 90] and the longitude in "
                           "[-360, 360] degrees.")
    return lat, lon


def explain_cell(model, cube, point: tuple[float, float], out: Path, picture: Path) -> None:
    """Draw the cell nearest to ``point``, its flags read from the result just written to ``out``."""
    import xarray as xr

    from .plot import cell

    picture.parent.mkdir(parents=True, exist_ok=True)
    opened = xr.open_zarr(out) if out.suffix == ".zarr" else xr.open_dataset(out)
    with opened as result:
        figure = cell(model, cube, lat=point[0], lon=point[1], result=result, path=picture)
    print(f"the cell nearest to {point[0]:g}, {point[1]:g}: {picture} ({figure.axes[0].get_title().splitlines()[0]})")


def run_regions(args: argparse.Namespace) -> None:
    """``geoanom regions``."""
    from . import open_cube, write_dataset
    from .features import region_features, region_labels, tune_region_params

    if Path(args.out).suffix != ".csv":
        raise GeoanomError(f"cannot write '{args.out}': the table must end in .csv.")
    if args.labels_out and Path(args.labels_out).suffix not in (".zarr", ".nc"):
        raise GeoanomError(f"cannot write '{args.labels_out}': the label cube must end in .zarr or .nc.")
    cube = open_cube(args.inputs, variables=[args.variable])
    params = RegionParams(args.sigma, args.median_size, args.threshold, args.tail).to_dict()
    if args.tune:
        tuning = tune_region_params(cube, variable=args.variable, n_trials=args.tune, tail=args.tail)
        params = tuning.params.to_dict()
        print(f"tuned in {args.tune} trials ({tuning.objective} {tuning.score:.3f}): "
              + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()))
    table = region_features(cube, variable=args.variable, precision=args.precision, **params)
    table.to_csv(args.out)
    print(f"wrote {args.out}: {len(table)} rows, {int(table['n_regions'].sum())} regions")
    if args.labels_out:
        labels = region_labels(cube, variable=args.variable, **params)
        write_dataset(labels.to_dataset(), args.labels_out)
        print(f"wrote {args.labels_out}")


def run_federate(args: argparse.Namespace) -> None:
    """``geoanom federate``."""
    from . import open_cube
    from .cluster import make_client
    from .federated import GaussianDP, cube_rows, make_aggregator, train
    from .federated.privacy import calibrate_noise
    from .plot import learning_curve

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise GeoanomError(f"cannot write to '{out}': it is a file, not a folder.")
    make_aggregator(args.aggregator)  # refuse bad options before reading any data
    if args.rounds < 1 or not 0 < args.client_fraction <= 1:
        raise GeoanomError(f"--rounds must be at least 1 and --client-fraction in (0, 1], got {args.rounds} "
                           f"and {args.client_fraction}.")
    privacy = None
    if args.epsilon is not None:  # before reading any data, like every other option
        noise = calibrate_noise(args.epsilon, args.client_fraction, args.rounds, args.delta)
        privacy = GaussianDP(noise, args.clip, args.delta, max_epsilon=args.epsilon)
        print(f"differential privacy: noise multiplier {noise:.3g} keeps {args.rounds} rounds within "
              f"epsilon {args.epsilon:g} at delta {args.delta:g}")
    cube = open_cube(args.inputs, variables=[args.variable])
    clients = args.clients if args.clients == "tile" else _client_grid(args.clients)
    rows = cube_rows(cube, args.variable, clients, precision=args.precision)
    print(f"{len(rows.features):,} observations of {len(set(rows.clients))} clients; "
          f"features {', '.join(rows.names)}")
    client = make_client(args.workers, args.scheduler)
    with client if client is not None else contextlib.nullcontext():
        result = train(rows.features, None, clients=rows.clients, rounds=args.rounds, aggregator=args.aggregator,
                       client_fraction=args.client_fraction, privacy=privacy, signed=args.signed,
                       audit_log=args.audit_log, client=client)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "model.npz")
    result.history.to_csv(out / "history.csv")
    learning_curve(result.history, out / "learning_curve.png")
    spent = f", epsilon {result.epsilon:.3g}" if result.epsilon is not None else ""
    print(f"{len(result.history)} rounds ({result.state}{spent}); wrote {out}/model.npz, history.csv, "
          f"learning_curve.png")


def _client_grid(path: str):
    """The first variable of a NetCDF or Zarr grid file: each cell's client."""
    import xarray as xr

    from .errors import InputFileError

    try:
        grid = xr.open_zarr(path) if str(path).rstrip("/").endswith(".zarr") else xr.open_dataset(path)
    except (OSError, ValueError) as error:
        raise InputFileError(f"cannot read the client grid '{path}': {error}".rstrip(".") + ".") from None
    if not grid.data_vars:
        raise InputFileError(f"the client grid '{path}' holds no variable.")
    return grid[next(iter(grid.data_vars))].load()


def select_training(cube, start: str | None, end: str):
    """The training period of a cube, or a TrainingPeriodError naming the data's span."""
    times = cube["time"].values
    span = f"{times[0]} to {times[-1]}" if len(times) else "no time steps"
    try:
        training = cube.sel(time=slice(start, end))
    except (KeyError, ValueError, TypeError) as error:
        raise TrainingPeriodError(f"cannot read the training period {start or 'start'} to {end}: {error}.") from None
    if training.sizes["time"] == 0:
        raise TrainingPeriodError(
            f"the training period {start or 'start'} to {end} selects no data in "
            f"{cube.attrs.get('geoanom_source', 'the input')}, which runs from {span}."
        )
    return training


def _write_outputs(result, model, out_path, plot_path, client, *, table_path=None, model_path=None) -> None:
    from .io import write_dataset
    from .plot import irregularity_map, top_tiles

    print(f"scoring and writing {out_path} ...")
    if client is not None:
        from distributed import progress

        result = result.persist()
        progress(result)
        print()
    with _progress(client):
        write_dataset(result, out_path)
    if model_path is not None:
        model.save(model_path)
        print(f"model saved to {model_path}")
    if plot_path is not None:
        print(f"map of the last time step: {irregularity_map(result, plot_path)}")
    table = top_tiles(result)
    if table_path is not None:
        table.to_csv(table_path)
    print("the ten most anomalous tiles (mean fused irregularity over the scored period):")
    print(table.to_string(float_format=lambda value: f"{value:.3f}"))


@contextlib.contextmanager
def _progress(client):
    """A progress bar for the local scheduler (the distributed one has its own)."""
    if client is None:
        from dask.diagnostics import ProgressBar

        with ProgressBar(dt=0.5):
            yield
    else:
        yield


def run_info(args: argparse.Namespace) -> None:
    """``geoanom info``."""
    from . import geohash, open_cube
    from .tiling import choose_precision, spatial_dims, tile_labels

    cube = open_cube(args.inputs)
    print(f"source:     {cube.attrs.get('geoanom_source')}")
    print(f"dims:       {dict(cube.sizes)}")
    times = cube["time"]
    calendar = times.dt.calendar if hasattr(times.dt, "calendar") else "standard"
    print(f"time:       {times.values[0]} to {times.values[-1]} ({times.size} steps, calendar {calendar})")
    print(f"grid:       {' x '.join(spatial_dims(cube))}, lat {float(cube.lat.min()):g} to {float(cube.lat.max()):g}, "
          f"lon {float(cube.lon.min()):g} to {float(cube.lon.max()):g}")
    for name, var in cube.data_vars.items():
        chunks = "x".join(str(c[0]) for c in var.chunks) if var.chunks else "in memory"
        print(f"variable:   {name} {var.dims} {var.dtype}, chunks {chunks}, units {var.attrs.get('units', '?')}")
    precision, reason = choose_precision(cube)
    print(f"tiles:      chosen {reason}")
    for p in range(1, min(precision + 2, geohash.MAX_PRECISION) + 1):
        labels = tile_labels(cube, p)
        n = len(set(labels.values.ravel()))
        print(f"  precision {p}: {n} tiles, {labels.size / n:.1f} cells per tile")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
