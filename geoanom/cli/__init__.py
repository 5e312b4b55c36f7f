"""The ``geoanom`` command: demo, detect, score, regions, federate, events and info.

Every user mistake ends in one sentence on stderr and exit status 2. This
module and :mod:`geoanom.cli.commands` import only the standard library at
import time, so ``geoanom --help`` answers at once; each command imports what
it needs when it runs.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import warnings
from typing import Sequence

from .. import __version__
from ..errors import GeoanomError, GeoanomWarning
from ..reporting import NORMAL, QUIET, VERBOSE, set_verbosity
from . import commands, queries, score
from .paths import add_overwrite, local_path

EXIT_USER_ERROR = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as the shell reports a filter cut short
DETECTORS = "gmm,kmeans,dpmm,iforest,event"
# geoanom.features.RegionParams' defaults, written out so that --help need not
# import scipy and dask (tests/test_cli_options.py checks they agree).
REGION_DEFAULTS = {"sigma": 1.0, "median_size": 3, "threshold": 1.5, "tail": "both"}
# geoanom.cluster.JOBQUEUE_CLASSES' keys (tests/test_cli_options.py checks they agree).
CLUSTER_KINDS = ("slurm", "pbs", "sge", "lsf")
# Options naming a path written: a file:// URL among them becomes the local path it names.
OUTPUT_OPTIONS = ("out", "append", "model_out", "plot", "top_tiles", "explain_out", "labels_out", "audit_log", "events",
                  "event_map", "event_series", "shares", "map")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Examples
    --------
    >>> main(["--version"])  # doctest: +SKIP
    geoanom 0.1.0
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return EXIT_USER_ERROR
    if args.quiet and args.verbose:
        print("geoanom: error: give either -q or -v, not both.", file=sys.stderr)
        return EXIT_USER_ERROR
    set_verbosity(QUIET if args.quiet else VERBOSE if args.verbose else NORMAL)
    for option in OUTPUT_OPTIONS:
        if isinstance(getattr(args, option, None), str):
            setattr(args, option, local_path(getattr(args, option)))
    try:
        # -q: nothing on standard output; warnings and errors still go to standard error
        with contextlib.redirect_stdout(io.StringIO()) if args.quiet else contextlib.nullcontext(), \
                one_line_warnings():
            args.run(args)
    except GeoanomError as error:
        print(f"geoanom: error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except BrokenPipeError:  # the reader went away (geoanom info ... | head): stop quietly, like any filter
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 -- Python flushes stdout at exit and would fail again
        return EXIT_BROKEN_PIPE
    except OSError as error:  # a path that cannot be created or written, found only while writing
        print(f"geoanom: error: {commands.os_error_sentence(error)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("geoanom: interrupted", file=sys.stderr)
        return 130
    finally:
        set_verbosity(NORMAL)  # main may run again in the same process (tests, notebooks)
    return 0


# Library warnings that say nothing a user of the command can act on: dask's distributed
# scheduler's advice about graph size (geoanom builds the graph, not the user), and its
# dashboard moving to another port when the default one is taken (another run on the machine).
NOISE = (
    r"Sending large graph of size",
    r"Port \d+ is already in use",
)


@contextlib.contextmanager
def one_line_warnings():
    """Within the block, print each warning once as one line on standard error, known library noise dropped.

    Python's own form names a source line and repeats it, which means
    nothing to someone at a command line. A GeoanomWarning reads
    ``geoanom: warning: <message>``; another library's warning (a real
    problem of the input, e.g. xarray's about conflicting fill values)
    reads ``geoanom: warning: <message> (xarray SerializationWarning)``,
    its lines joined. Each message is shown once, also with -q (quiet keeps
    errors and warnings); the messages of :data:`NOISE` are not shown.

    Examples
    --------
    >>> with one_line_warnings():  # doctest: +SKIP
    ...     warnings.warn("tas holds 3 infinite values in tas.nc", GeoanomWarning)
    geoanom: warning: tas holds 3 infinite values in tas.nc
    """
    with warnings.catch_warnings():
        warnings.simplefilter("default", GeoanomWarning)  # shown even if filtered as "ignore" before; once: show()
        for pattern in NOISE:
            warnings.filterwarnings("ignore", pattern)
        shown: set[str] = set()

        def show(message, category, filename, lineno, file=None, line=None):
            text = " ".join(str(message).split())
            if not issubclass(category, GeoanomWarning):
                text += f" ({_package_of(filename)} {category.__name__})"
            if text not in shown:
                shown.add(text)
                print(f"geoanom: warning: {text}", file=sys.stderr)

        warnings.showwarning = show  # catch_warnings puts the previous one back
        yield


def _package_of(filename: str) -> str:
    """The top-level package of a source file (``.../site-packages/xarray/conventions.py`` -> ``xarray``)."""
    parts = os.path.normpath(str(filename)).split(os.sep)
    for marker in ("site-packages", "dist-packages"):
        if marker in parts[:-1]:
            return parts[parts.index(marker) + 1].removesuffix(".py")
    return os.path.splitext(os.path.basename(str(filename)))[0] or "python"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="geoanom", description="Find anomalies in climate and ocean cubes (NetCDF, Zarr).",
        parents=[talk_options(False)])
    parser.add_argument("--version", action="version", version=f"geoanom {__version__}")
    commands_ = parser.add_subparsers(title="commands")
    talk = talk_options(argparse.SUPPRESS)
    add_demo(commands_, talk)
    add_detect(commands_, talk)
    score.add_score(commands_, talk, add_level, add_cluster_options)
    add_regions(commands_, talk)
    add_federate(commands_, talk)
    add_events(commands_, talk)
    info = commands_.add_parser("info", parents=[talk], help="describe a cube (dims, variables, chunks, calendar, "
                                "tiles), a result or a saved model",
                                description="Describe a cube as geoanom opens it; a result of detect or score (its "
                                "variables, per-detector ones too, and what scored it); or a model saved by "
                                "--model-out (variables, detectors, tiles, training period, precision).")
    info.add_argument("inputs", nargs="+", metavar="INPUT",
                      help="NetCDF files, Zarr stores or globs; or one result (.zarr, .nc) or model (.npz, .zarr)")
    info.set_defaults(run=commands.run_info)
    return parser


def talk_options(default: object) -> argparse.ArgumentParser:
    """-q and -v, accepted before the command and after it.

    The subcommands' copies default to argparse.SUPPRESS, so that a -v given
    before the command is not reset by the subcommand's own default.
    """
    options = argparse.ArgumentParser(add_help=False)
    options.add_argument("-q", "--quiet", action="store_true", default=default,
                         help="print only errors and warnings")
    options.add_argument("-v", "--verbose", action="store_true", default=default,
                         help="print more: the chosen precision, the tiles, each stage's time")
    return options


def add_demo(subparsers, talk: argparse.ArgumentParser) -> None:
    """``geoanom demo``."""
    demo = subparsers.add_parser(
        "demo", parents=[talk], help="the whole job on embedded real data",
        description="What 'anomalous' means depends on what you expect. On the A1B North America air temperature, "
        "fit on 1860-1959 once as it was (a fixed climate) and once with each cell's running 31-year climate "
        "removed; score 1960-2099 against both; write the second's Zarr result, model and table of tiles, the "
        "flagged share per year (flagged_share.csv), maps of the year most flagged against the running climate "
        "(most_anomalous_year.png) and the warming (warming.png).")
    demo.add_argument("--out", default="geoanom-demo", help="output folder (default: geoanom-demo)")
    demo.add_argument("--detectors", default=DETECTORS,
                      help="comma-separated families among gmm, kmeans, dpmm, iforest, event (default: all five)")
    demo.set_defaults(run=commands.run_demo)


def add_detect(subparsers, talk: argparse.ArgumentParser) -> None:
    """``geoanom detect``."""
    detect = subparsers.add_parser("detect", parents=[talk], help="fit on a training period and score the whole "
                                   "input", description="Fit one detector ensemble per geohash tile on the "
                                   "training period and score every observation of the input.")
    detect.add_argument("inputs", nargs="+", metavar="INPUT", help="NetCDF files, Zarr stores or globs")
    detect.add_argument("--var", action="append", required=True, dest="variables", help="variable (repeatable)")
    add_level(detect)
    detect.add_argument("--train-end", required=True, help="last date of the training period, e.g. 1990")
    detect.add_argument("--train-start", default=None, help="first date of the training period")
    detect.add_argument("--precision", type=int, default=None, help="geohash precision (default: chosen)")
    detect.add_argument("--detectors", default=DETECTORS,
                        help="comma-separated families among gmm, kmeans, dpmm, iforest, event (default: all five)")
    detect.add_argument("--features", default=None,
                        help="comma-separated feature sets: anomalies, neighbours, background, values, regions "
                        "(default: anomalies,neighbours, and background when --detectors includes event; "
                        "values to judge one tile by another's model)")
    detect.add_argument("--trend", choices=("none", "linear"), default="none",
                        help="expected values: the training period's seasonal cycle (none, the default), or that "
                        "plus each cell's linear trend (linear: anomalies about the trend)")
    detect.add_argument("--contamination", type=float, default=0.01,
                        help="share of normal observations each family's threshold is set to flag, above 0 and below 0.5 "
                        "(default: 0.01); a family keeps the reference paper's constant where that flags a tenth to "
                        "twice this share and within one percentage point of it")
    detect.add_argument("--federated", action="store_true",
                        help="federate the gmm and kmeans families across tiles: region models by federated EM, "
                        "and every tile's model adapted towards its region's")
    # None when not given (detect refuses them without --federated), then geoanom.fit's defaults
    detect.add_argument("--federated-rounds", type=int, default=None, help="federated EM / Lloyd rounds (default: 5)")
    detect.add_argument("--federated-relevance", type=float, default=None,
                        help="weight of the region's model in observations (default: 16; 0 keeps each tile's own)")
    detect.add_argument("--out", required=True, help="output .zarr or .nc")
    detect.add_argument("--plot", default=None, metavar="PNG",
                        help="also write a PNG map of one time step: the last with scores, or --plot-time's")
    detect.add_argument("--plot-time", default=None, metavar="DATE",
                        help="the time step --plot maps, e.g. 2010-09 (a partial date: its first step; default: "
                        "the last step with scores)")
    detect.add_argument("--model-out", default=None, help="also save the model (.npz or .zarr)")
    detect.add_argument("--top-tiles", default=None, metavar="CSV",
                        help="also write the table of the ten most anomalous tiles (.csv)")
    detect.add_argument("--explain", default=None, metavar="LAT,LON",
                        help="also draw the grid cell nearest to LAT,LON (degrees): its observations, expected "
                        "value +- 2 spreads, the ensemble's flags and the training period; write "
                        "--explain=-33.9,18.4 for a southern latitude")
    detect.add_argument("--variable", default=None, metavar="NAME",
                        help="the variable --plot's anomaly panel and --explain's picture draw (default: the first); "
                        "the flags judge every variable together, so a flag may come from another")
    detect.add_argument("--explain-out", default=None, metavar="PNG",
                        help="where --explain writes its picture (default: next to --out, OUT_STEM.cell.png)")
    queries.add_detect_query_options(detect)
    add_overwrite(detect)
    add_cluster_options(detect)
    detect.set_defaults(run=commands.run_detect)


def add_regions(subparsers, talk: argparse.ArgumentParser) -> None:
    """``geoanom regions``."""
    regions = subparsers.add_parser("regions", parents=[talk], help="anomalous regions of each time step: a "
                                    "feature table", description="Smooth, threshold and label each time step of "
                                    "one variable; write one row of region features per time step (and tile).")
    regions.add_argument("inputs", nargs="+", metavar="INPUT", help="NetCDF files, Zarr stores or globs")
    regions.add_argument("--var", required=True, dest="variable", help="the variable")
    add_level(regions)
    regions.add_argument("--precision", type=int, default=None, help="one row per geohash tile of this precision")
    regions.add_argument("--sigma", type=float, default=REGION_DEFAULTS["sigma"],
                         help="Gaussian sigma, in cells (default: %(default)s)")
    regions.add_argument("--median-size", type=int, default=REGION_DEFAULTS["median_size"],
                         help="median window, cells (default: %(default)s)")
    regions.add_argument("--threshold", type=float, default=REGION_DEFAULTS["threshold"],
                         help="threshold on the smoothed standardised anomaly (default: %(default)s)")
    regions.add_argument("--tail", choices=["both", "upper", "lower"], default=REGION_DEFAULTS["tail"],
                         help="which side of --threshold makes regions: smoothed anomalies above it (upper), below "
                         "minus it (lower), or either (both; default: %(default)s)")
    regions.add_argument("--tune", type=int, default=0, metavar="N",
                         help="choose sigma, median size and threshold first, in N optuna trials (no labels)")
    regions.add_argument("--out", required=True, help="output table (.csv)")
    regions.add_argument("--labels-out", default=None, help="also write the label cube (.nc or .zarr)")
    add_overwrite(regions)
    regions.set_defaults(run=commands.run_regions)


def add_federate(subparsers, talk: argparse.ArgumentParser) -> None:
    """``geoanom federate``."""
    federate = subparsers.add_parser(
        "federate", parents=[talk], help="train one anomaly classifier across clients; raw data stay on their "
        "workers", description="Federated training on each observation's value and region features, clients by "
        "geohash tile or a grid file; without labels each client labels its rows with its own detector ensemble.")
    federate.add_argument("inputs", nargs="+", metavar="INPUT", help="NetCDF files, Zarr stores or globs")
    federate.add_argument("--var", required=True, dest="variable", help="the variable")
    federate.add_argument("--clients", default="tile",
                          help="'tile' (geohash tiles) or a NetCDF/Zarr grid of client ids (default: tile)")
    federate.add_argument("--precision", type=int, default=None, help="geohash precision of tile clients")
    federate.add_argument("--rounds", type=int, default=30)
    federate.add_argument("--aggregator", default="fedavg",
                          help="fedavg, fedprox(mu), median, trimmed_mean(beta), krum(f), multi_krum(f)")
    federate.add_argument("--client-fraction", type=float, default=1.0, help="chance a client takes part in a round")
    federate.add_argument("--on-lost-worker", choices=("retry", "skip"), default="retry",
                          help="when a worker holding clients' rows dies: rebuild them elsewhere and retry the round "
                          "(the same model as without the loss), or run the round without them (default: retry)")
    federate.add_argument("--max-retries", type=int, default=3, metavar="N",
                          help="losses one round survives before training stops with an error (default: 3)")
    federate.add_argument("--epsilon", type=float, default=None, help="differential privacy: total epsilon")
    # None when not given (refused without --epsilon), then commands.PRIVACY_DEFAULTS
    federate.add_argument("--delta", type=float, default=None,
                          help=f"differential privacy: delta (default {commands.PRIVACY_DEFAULTS['delta']:g})")
    federate.add_argument("--clip", type=float, default=None,
                          help=f"differential privacy: L2 clip of an update (default {commands.PRIVACY_DEFAULTS['clip']:g})")
    federate.add_argument("--signed", action="store_true", help="sign and verify every update (Ed25519)")
    federate.add_argument("--audit-log", default=None, help="hash-chained JSON-lines log of every round; its "
                          "chain head is printed and written to OUT/audit_head.txt")
    federate.add_argument("--out", required=True, help="output folder: model.npz, history.csv, learning_curve.png")
    add_cluster_options(federate)
    federate.set_defaults(run=commands.run_federate)


def add_events(subparsers, talk: argparse.ArgumentParser) -> None:
    """``geoanom events``."""
    events = subparsers.add_parser(
        "events", parents=[talk], help="the event catalogue of a result: connected flagged cells in time and space",
        description="Label the connected flagged cells of a written result in (time, lat, lon) and write one row "
        "per event: start, end, duration, cells, largest area, peak and mean irregularity, sign and the variable "
        "that departs most, centroid, "
        "tiles and consensus.")
    events.add_argument("result", metavar="RESULT", help="a result written by geoanom detect (.zarr or .nc)")
    events.add_argument("--out", required=True, help="the event table (.csv)")
    events.add_argument("--labels-out", default=None, help="also write the event label cube (.nc or .zarr)")
    queries.add_event_options(events)
    events.add_argument("--map", default=None, metavar="PNG", help="also draw an event's footprint through time")
    events.add_argument("--event", type=int, default=None, metavar="ID",
                        help="the event --map draws (default: the one with the most flagged cell-steps)")
    events.add_argument("--shares", default=None, metavar="PNG",
                        help="also map the share of flagged observations per geohash tile")
    add_overwrite(events)
    events.set_defaults(run=queries.run_events)


def add_level(parser: argparse.ArgumentParser) -> None:
    """--level VALUE: one vertical level, by its coordinate value."""
    parser.add_argument("--level", type=float, default=None, metavar="VALUE",
                        help="select this vertical level by its coordinate value, e.g. 850 (hPa)")


def add_cluster_options(parser: argparse.ArgumentParser) -> None:
    """Where a command computes: --workers N, --scheduler ADDRESS, --scheduler-file PATH or --cluster KIND."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None, help="local cluster of N worker processes")
    where.add_argument("--scheduler", default=None, help="address of a running dask scheduler")
    where.add_argument("--scheduler-file", default=None, metavar="PATH",
                       help="the file a running dask scheduler wrote (dask scheduler --scheduler-file PATH)")
    where.add_argument("--cluster", choices=CLUSTER_KINDS, default=None,
                       help="run dask workers as batch jobs (dask-jobqueue), set by its jobqueue.yaml and "
                       "--cluster-option; leaving cancels the jobs")
    parser.add_argument("--jobs", default="1", metavar="N|MIN:MAX",
                        help="with --cluster: N batch jobs, or MIN:MAX for an adaptive cluster (default: 1)")
    parser.add_argument("--cluster-option", action="append", default=[], metavar="KEY=VALUE",
                        dest="cluster_options", help="with --cluster: an argument of dask-jobqueue's cluster "
                        "(repeatable), e.g. cores=4, memory=16GB, walltime=01:00:00, "
                        "job-extra-directives=--exclusive; overrides jobqueue.yaml")
