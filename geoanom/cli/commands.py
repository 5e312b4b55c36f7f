"""What each ``geoanom`` command does, once its options are parsed.

Every output path is checked (:mod:`geoanom.cli.paths`) before any data are
read; heavy packages are imported inside the commands, not at import time.
"""

from __future__ import annotations

import argparse
import errno
import warnings
from pathlib import Path

from ..atomic import replacing
from ..errors import CoordinateError, GeoanomError, GeoanomWarning, OptionError, TrainingPeriodError
from ..reporting import detail, model_summary, report_skipped, say, stage, write_outputs
from . import checks
from .paths import CUBE, Output, check_outputs, check_replaced, make_parents, overwrite_mode
from .queries import check_fitted, detect_query_outputs, event_defaults, write_detect_queries

FEDERATE_FILES = ("model.npz", "history.csv", "learning_curve.png", "audit_head.txt")
PRIVACY_DEFAULTS = {"delta": 1e-5, "clip": 1.0}  # federate's --delta and --clip when --epsilon is given alone


def run_demo(args: argparse.Namespace) -> None:
    """``geoanom demo`` (see :mod:`geoanom.demo`)."""
    check_outputs([Output("--out", args.out, kind="folder", what="the demo's output")])
    checks.detector_names("--detectors", args.detectors)  # before the demo makes its folder
    from ..demo import run

    run(Path(args.out), args.detectors)


def detect_outputs(args: argparse.Namespace) -> list[Output | None]:
    """Every path ``detect`` writes."""
    explain = None
    if args.explain is not None:
        explain = Output("--explain-out", explain_path(args), (".png",), what="the picture of --explain")
    return [
        Output("--out", args.out, CUBE, what="the result", force=args.overwrite),
        args.model_out and Output("--model-out", args.model_out, (".npz", ".zarr"), what="the model"),
        args.plot and Output("--plot", args.plot, (".png",), what="the map"),
        args.top_tiles and Output("--top-tiles", args.top_tiles, (".csv",), what="the table of tiles"),
        explain,
        *detect_query_outputs(args),
    ]


def explain_path(args: argparse.Namespace) -> str:
    """Where ``--explain`` draws: ``--explain-out``, or next to --out as ``OUT_STEM.cell.png``."""
    return args.explain_out or str(Path(args.out).with_suffix(".cell.png"))


def run_detect(args: argparse.Namespace) -> None:
    """``geoanom detect``."""
    if args.explain is None and args.explain_out is not None:
        raise GeoanomError("--explain-out needs --explain LAT,LON: the cell to draw.")
    if args.plot is None and args.plot_time is not None:
        raise GeoanomError("--plot-time needs --plot PNG: the map to draw.")
    checks.detect(args)
    event_defaults(args)
    outputs = detect_outputs(args)
    check_outputs(outputs, args.inputs)
    point = checks.parse_point(args.explain) if args.explain is not None else None
    from .. import fit
    from ..tiling import tile_labels

    with connect(args) as client:
        with stage("opening the input", watch=False):
            cube = open_input(args.inputs, args.variables, args.level)
        check_replaced(outputs[0], cube["time"].values)  # a result holding other steps (appended months)
        checks.drawn_variable(args, list(cube.data_vars))  # --var not given: the input's variables are fitted
        if point is not None:  # a point off the grid is refused from the coordinates alone, before any work
            check_explained_point(args, point, cube)
        if args.plot_time is not None:  # a date the input does not hold is refused before any work
            from ..plot.panels import step_index

            step_index(cube, args.plot_time, what=f"--plot-time {args.plot_time}: the input")
        training = select_training(cube, args.train_start, args.train_end)
        warn_in_sample(cube, training)
        detail(describe_work(cube, training, client))
        labels = tile_labels(training, args.precision)  # coordinates only: names the work before it starts
        checks.detect_on_grid(args, labels)  # --scatter's tile and --consensus' region, before the fit
        tiles = len(set(labels.values.ravel().tolist()))
        detail(f"tiles: {labels.attrs.get('precision_reason') or 'precision ' + str(labels.attrs['precision'])}")
        with stage(f"fitting {tiles:,} tiles", client), warnings.catch_warnings():
            # the whole input's count of ±inf is reported once the result is written; not the training part first
            warnings.filterwarnings("ignore", INFINITE_IN_TRAINING, GeoanomWarning)
            model = fit(training, variables=args.variables, precision=args.precision,
                        detectors=args.detectors, client=client, features=args.features.split(",") if args.features else None,
                        federated=args.federated, **{name: getattr(args, name) for name in
                                                     ("federated_rounds", "federated_relevance")
                                                     if getattr(args, name) is not None},
                        trend=None if args.trend == "none" else args.trend, contamination=args.contamination)
        say(model_summary(model))
        report_skipped(model)
        check_fitted(model, args)
        if point is not None:  # a point on land, far from every cell with data, is refused before scoring
            check_explained_point(args, point, model=model)
        result = model.score(cube, client=client, consensus=args.consensus)
        make_parents(outputs)  # every output's folder: --out's writer makes its own, --plot's and the rest's do not
        from ..io import count_infinite

        # the whole input's ±inf counted in the computation that scores and writes it, not in a pass after it
        infinite = write_outputs(result, model, Path(args.out), args.plot, client, table_path=args.top_tiles,
                                 model_path=args.model_out, also=count_infinite(cube, compute=False),
                                 plot_time=args.plot_time, overwrite=overwrite_mode(args), variable=args.variable)
        warn_infinite(infinite, cube, args.inputs)
        if point is not None:
            explain_cell(model, cube, point, Path(args.out), Path(explain_path(args)), args.variable)
        write_detect_queries(model, cube, args)


INFINITE_IN_TRAINING = r".*infinite values? in the training period"  # geoanom.fit's warning (see warn_infinite)


def warn_in_sample(cube, training) -> None:
    """Warn when the training period is the whole input: every score is then in-sample."""
    if training.sizes["time"] == cube.sizes["time"]:
        from ..formatting import iso_date

        times = cube["time"].values
        warnings.warn(f"the training period covers the whole input ({iso_date(times[0])} to {iso_date(times[-1])}), "
                      "so every score is in-sample; end it earlier with --train-end to score unseen data.",
                      GeoanomWarning, stacklevel=2)


def warn_infinite(counts, cube, inputs) -> None:
    """One warning for the ±inf values of the whole input (treated as missing), naming the variable and file.

    It replaces :func:`geoanom.fit`'s warning about the training period
    alone: both at once would count the same values twice.
    """
    from ..io import infinite_message

    source = cube.attrs.get("geoanom_source") or ", ".join(map(str, inputs))
    if message := infinite_message({name: int(n) for name, n in counts.items()}, source):
        warnings.warn(message, GeoanomWarning, stacklevel=2)


def describe_work(cube, training, client) -> str:
    """What -v says before the fit: the cube's size and chunks, the training period, where it runs."""
    from ..formatting import iso_date

    times = training["time"].values
    first = next(iter(cube.data_vars.values()))
    chunks = "x".join(str(c[0]) for c in first.chunks) if first.chunks else "none"
    where = f"on {client.scheduler.address}" if client is not None else "on this machine's threads"
    return (f"input: {dict(cube.sizes)}, chunks {chunks}; training {iso_date(times[0])} to {iso_date(times[-1])} "
            f"({times.size} steps); computing {where}")


def open_input(inputs, variables, level=None):
    """The input cube, at one level when ``--level`` is given."""
    from .. import open_cube
    from ..io.levels import LEVEL_ADVICE

    try:
        return open_cube(inputs, variables=variables, level=level)
    except CoordinateError as error:  # the library's advice names its keyword; here the option is --level
        if LEVEL_ADVICE not in str(error):
            raise
        raise CoordinateError(str(error).replace(LEVEL_ADVICE, "give --level VALUE to choose one")) from None


def explain_cell(model, cube, point: tuple[float, float], out: Path, picture: Path,
                 variable: str | None = None) -> None:
    """Draw ``variable`` (default: the first) at the cell nearest to ``point``, its flags read from ``out``."""
    import xarray as xr

    from ..plot import cell
    from ..plot.layout import SAVE_DPI

    opened = xr.open_zarr(out) if out.suffix == ".zarr" else xr.open_dataset(out)
    with opened as result:
        figure = cell(model, cube, lat=point[0], lon=point[1], result=result, variable=variable)
    with replacing(picture, make_folder=True) as tmp:
        figure.savefig(tmp, dpi=SAVE_DPI)
    title = figure.axes[0].get_title().splitlines()
    note = f"; {title[2]}" if len(title) > 2 else ""  # why the cell has no scores (plot.explain.unscored_note)
    say(f"the cell drawn for {point[0]:g}, {point[1]:g}: {picture} ({title[0]}){note}")  # the title says how far


def check_explained_point(args: argparse.Namespace, point: tuple[float, float], cube=None, model=None) -> None:
    """Refuse ``--explain`` off the ``cube``'s grid, or more than two grid spacings from the ``model``'s cells with data."""
    from ..plot import nearest_cell, nearest_grid_cell

    try:
        nearest_grid_cell(cube, *point) if model is None else nearest_cell(model, *point, args.variable)
    except GeoanomError as error:
        raise OptionError(f"--explain {args.explain}: {error}") from None


def run_regions(args: argparse.Namespace) -> None:
    """``geoanom regions``."""
    check_outputs([Output("--out", args.out, (".csv",), what="the table"),
                   args.labels_out and Output("--labels-out", args.labels_out, CUBE, what="the label cube",
                                                     force=args.overwrite)],
                  args.inputs)
    checks.regions(args)
    from .. import write_dataset
    from ..features import RegionParams, region_features, region_labels, tune_region_params

    params = RegionParams(args.sigma, args.median_size, args.threshold, args.tail).to_dict()
    cube = open_input(args.inputs, [args.variable], args.level)
    if args.tune:
        with stage(f"tuning in {args.tune} trials", watch=False):
            tuning = tune_region_params(cube, variable=args.variable, n_trials=args.tune, tail=args.tail)
        params = tuning.params.to_dict()
        say(f"tuned in {args.tune} trials ({tuning.objective} {tuning.score:.3f}): "
            + ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.items()))
    with stage(f"region features of {args.variable}"):
        table = region_features(cube, variable=args.variable, precision=args.precision, **params)
    make_parents([Output("--out", args.out), args.labels_out and Output("--labels-out", args.labels_out)])
    with replacing(args.out, make_folder=True) as tmp:
        iso_times(table).to_csv(tmp)
    say(f"wrote {args.out}: {len(table)} rows, {int(table['n_regions'].sum())} regions")
    if args.labels_out:
        with stage(f"labelling and writing {args.labels_out}"):
            write_dataset(region_labels(cube, variable=args.variable, **params).to_dataset(), args.labels_out,
                          overwrite=overwrite_mode(args))
        say(f"wrote {args.labels_out}")
    # A second read of the variable, only to count ±inf: region_features computes inside the library and
    # hands back no lazy result to join, and this pass costs one scan of the input, little beside the
    # smoothing and labelling of every time step.
    from ..io import count_infinite

    with stage(f"counting infinite values of {args.variable}", watch=False):
        warn_infinite(count_infinite(cube), cube, args.inputs)


def iso_times(table):
    """`table` with its ``time`` index as ISO dates (``2006-05-16T12:00``), in any calendar.

    Examples
    --------
    >>> import pandas as pd
    >>> iso_times(pd.DataFrame({"n": [1]}, index=pd.Index(pd.to_datetime(["2006-05-16 12:00"]), name="time")))
    ... # doctest: +NORMALIZE_WHITESPACE
                      n
    time
    2006-05-16T12:00  1
    """
    import pandas as pd

    from ..formatting import iso_date

    index = table.index
    names = list(index.names)
    if "time" not in names:
        return table
    times = index.levels[names.index("time")] if isinstance(index, pd.MultiIndex) else index
    with_time = any("T" in iso_date(value) for value in times)  # one form for every row
    dates = pd.Index([iso_date(value, with_time=with_time) for value in times], name="time")
    out = table.copy()
    out.index = index.set_levels(dates, level="time") if isinstance(index, pd.MultiIndex) else dates
    return out


def federate_outputs(args: argparse.Namespace) -> list[Output | None]:
    """Every path ``federate`` writes: its folder, the files in it and the audit log."""
    files = [Output("--out", str(Path(args.out) / name), what=f"the federated {name}") for name in FEDERATE_FILES]
    return [Output("--out", args.out, kind="folder", what="the federated output"), *files,
            args.audit_log and Output("--audit-log", args.audit_log, what="the audit log")]


def run_federate(args: argparse.Namespace) -> None:
    """``geoanom federate``."""
    folder, *files, audit = federate_outputs(args)
    inputs = [*args.inputs, *([args.clients] if args.clients != "tile" else [])]
    check_outputs([folder], inputs)
    check_outputs([audit], inputs)
    check_outputs([*files, audit])  # the audit log may live in the output folder, but not as one of its files
    checks.federate(args)
    from .. import open_cube
    from ..federated import GaussianDP, RoundOptions, Security, cube_rows, make_aggregator, train
    from ..federated.privacy import calibrate_noise
    from ..plot import learning_curve

    out = Path(args.out)
    try:
        make_aggregator(args.aggregator)  # refuse bad options before reading any data
    except GeoanomError as error:
        raise OptionError(f"--aggregator {args.aggregator}: {error}") from None
    if args.rounds < 1 or not 0 < args.client_fraction <= 1:
        raise OptionError(f"--rounds must be at least 1 and --client-fraction in (0, 1], got {args.rounds} "
                          f"and {args.client_fraction}.")
    privacy = None
    if args.epsilon is not None:  # before reading any data, like every other option
        for name, value in PRIVACY_DEFAULTS.items():
            setattr(args, name, value if getattr(args, name) is None else getattr(args, name))
        try:
            noise = calibrate_noise(args.epsilon, args.client_fraction, args.rounds, args.delta)
            privacy = GaussianDP(noise, args.clip, args.delta, max_epsilon=args.epsilon)
        except GeoanomError as error:
            raise OptionError(f"--epsilon {args.epsilon:g} --delta {args.delta:g}: {error}") from None
        say(f"differential privacy: noise multiplier {noise:.3g} keeps {args.rounds} rounds within "
            f"epsilon {args.epsilon:g} at delta {args.delta:g}")
    clients = args.clients if args.clients == "tile" else _client_grid(args.clients)  # small: read first
    cube = open_cube(args.inputs, variables=[args.variable])
    with stage("features of every observation"):
        rows = cube_rows(cube, args.variable, clients, precision=args.precision)
    clients_ = len(set(rows.clients))
    say(f"{len(rows.features):,} observations of {clients_} client{'' if clients_ == 1 else 's'}; "
        f"features {', '.join(rows.names)}")
    make_parents([audit])  # the log is written from the first round on
    with connect(args) as client:
        if args.cluster is not None:
            from ..cluster import wait_for_jobs

            with stage(f"waiting for {args.jobs.split(':')[0]} {args.cluster} jobs to start", watch=False):
                detail(f"{wait_for_jobs(client, args.jobs)} workers")
        with stage(f"training {args.rounds} rounds", client):
            result = train(rows.features, None, clients=rows.clients, aggregator=args.aggregator,
                           schedule=RoundOptions(rounds=args.rounds, client_fraction=args.client_fraction,
                                                 on_lost_worker=args.on_lost_worker, max_retries=args.max_retries),
                           privacy=privacy, security=Security(signed=args.signed, audit_log=args.audit_log),
                           client=client)
    out.mkdir(parents=True, exist_ok=True)
    result.save(out / "model.npz")
    with replacing(out / "history.csv", make_folder=True) as tmp:
        result.history.to_csv(tmp)
    with replacing(out / "learning_curve.png", make_folder=True) as tmp:
        learning_curve(result.history, tmp)
    spent = f", epsilon {result.epsilon:.3g}" if result.epsilon is not None else ""
    say(f"{len(result.history)} rounds ({result.state}{spent}); wrote {out}/model.npz, history.csv, "
        "learning_curve.png")
    if args.audit_log:
        report_audit_head(result.audit_head, out / "audit_head.txt", args.audit_log)


def connect(args: argparse.Namespace):
    """The client of the command's --workers, --scheduler, --scheduler-file or --cluster (None: this process)."""
    from ..cluster import connect as connect_

    return connect_(args.workers, args.scheduler, scheduler_file=args.scheduler_file, cluster=args.cluster,
                    jobs=args.jobs, options=args.cluster_options)


def report_audit_head(head: str | None, path: Path, log: str) -> None:
    """Print the audit log's chain head and keep it apart from the log: only it shows a truncated log."""
    if not head:
        raise GeoanomError(f"the audit log '{log}' was written but its chain head is unknown; it cannot be "
                           "checked for truncation.")
    with replacing(path, make_folder=True) as tmp:
        tmp.write_text(f"{head}\n")
    print(f"audit chain head: {head} (also in {path}; check the log with "
          f"geoanom.federated.verify_audit('{log}', '{head}'))")


def _client_grid(path: str):
    """The first variable of a NetCDF or Zarr grid file: each cell's client."""
    import xarray as xr

    from ..errors import InputFileError

    try:
        grid = xr.open_zarr(path) if str(path).rstrip("/").endswith(".zarr") else xr.open_dataset(path)
    except (OSError, ValueError) as error:
        raise InputFileError(f"cannot read the client grid '{path}': {error}".rstrip(".") + ".") from None
    if not grid.data_vars:
        raise InputFileError(f"the client grid '{path}' holds no variable.")
    return grid[next(iter(grid.data_vars))].load()


def select_training(cube, start: str | None, end: str):
    """The training period of a cube, or a TrainingPeriodError naming the data's span."""
    from ..formatting import calendar_of, iso_date
    from .dates import calendar_date

    for option, date in (("--train-start", start), ("--train-end", end)):  # 2003-02-30: not in most calendars
        calendar_date(option, date, calendar_of(cube["time"]))
    times = cube["time"].values
    span = f"{iso_date(times[0])} to {iso_date(times[-1])}" if len(times) else "no time steps"
    options = f"--train-start {start} --train-end {end}" if start is not None else f"--train-end {end}"
    try:
        try:
            training = cube.sel(time=slice(start, end))
        except (ValueError, OverflowError):  # a date past what the time index can hold, e.g. 3000 in nanoseconds
            first, last = (iso_date(t) for t in times[[0, -1]]) if len(times) else ("", "")
            training = cube.sel(time=slice(_within(start, first, before=True), _within(end, last, before=False)))
    except (KeyError, ValueError, TypeError, OverflowError) as error:
        raise TrainingPeriodError(f"{options}: cannot read the training period {start or 'start'} to {end}: "
                                  f"{str(error).rstrip('.')}.") from None
    if training.sizes["time"] == 0:
        raise TrainingPeriodError(
            f"{options}: the training period {start or 'start'} to {end} selects no data in "
            f"{cube.attrs.get('geoanom_source', 'the input')}, which runs from {span}."
        )
    return training


def _within(date: str | None, bound: str, before: bool) -> str | None:
    """None (open-ended) for an ISO date past the data's `bound` on its side, else the date unchanged."""
    import re

    if date is None or not re.fullmatch(r"\d{4}(-\d\d){0,2}", date.strip()):
        return date
    beyond = date.strip() < bound[:len(date.strip())] if before else date.strip() > bound[:len(date.strip())]
    return None if beyond else date


def run_info(args: argparse.Namespace) -> None:
    """``geoanom info``."""
    from .info import describe

    describe(args.inputs)


def os_error_sentence(error: OSError) -> str:
    """One sentence for an operating-system error met while writing, naming the path.

    Examples
    --------
    >>> import errno
    >>> os_error_sentence(FileExistsError(errno.EEXIST, "File exists", "t.csv"))
    "cannot write 't.csv': something is already there that could not be replaced."
    """
    where = f"'{error.filename}'" if error.filename else "an output"
    why = {
        errno.EEXIST: "something is already there that could not be replaced",
        errno.EACCES: "permission denied",
        errno.EPERM: "the operation is not permitted",
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.ENOENT: "a folder on the way does not exist",
        errno.ENOTDIR: "a part of the path is a file, not a folder",
        errno.EISDIR: "it is a folder, not a file",
        errno.ENAMETOOLONG: "the name is too long",
    }.get(error.errno, (error.strerror or str(error)).rstrip(".").lower())
    if error.filename2:
        where += f" to '{error.filename2}'"
    return f"cannot write {where}: {why}."
