"""The ``geoanom`` command: demo, detect and info.

Every user mistake ends in one sentence on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path
from typing import Sequence

from .errors import GeoanomError, TrainingPeriodError
from .features.regions import RegionParams
from .reporting import progress, write_outputs

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
    """``geoanom demo`` (see :mod:`geoanom.demo`)."""
    from .demo import run

    run(Path(args.out), args.detectors)


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
        with progress(client):
            model = fit(training, variables=args.variables, precision=args.precision,
                        detectors=args.detectors, client=client, features=args.features.split(","),
                        federated=args.federated, federated_rounds=args.federated_rounds,
                        federated_relevance=args.federated_relevance,
                        trend=None if args.trend == "none" else args.trend)
        print(f"{model}")
        result = model.score(cube, client=client)
        table = Path(args.out).with_suffix(".top_tiles.csv")
        write_outputs(result, model, Path(args.out), args.plot, client, table_path=table, model_path=args.model_out)
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
