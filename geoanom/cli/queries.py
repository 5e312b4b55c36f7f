"""The anomaly queries of the command line: ``geoanom events`` and the query outputs of ``detect``.

Both read a result already written (Zarr or NetCDF), so the catalogue and
its pictures never score the cube a second time.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

from ..atomic import replacing
from ..errors import GeoanomError, GeoanomWarning
from ..reporting import say, stage
from . import checks
from .paths import CUBE, Output, check_outputs, make_parents, overwrite_mode

EVENT_DEFAULTS = {"flag": "ensemble", "connectivity": 1, "min_cells": 1}  # --bridge-gaps: off


def add_event_options(parser: argparse.ArgumentParser, given_only: bool = False) -> None:
    """How events are found: --flag, --connectivity, --min-cells, --bridge-gaps (see ``ga.event_labels``).

    ``given_only``: the defaults are None, so that ``detect`` can refuse
    these options without --events; :func:`event_defaults` fills them in.
    """
    def default(name: str) -> object:
        return None if given_only else EVENT_DEFAULTS[name]

    parser.add_argument("--flag", default=default("flag"),
                        help="the flag whose connected cells are events: ensemble (the majority vote, the default), "
                        "another flag variable of the result, or a detector's name (e.g. gmm) for its own flags")
    parser.add_argument("--connectivity", type=int, choices=(1, 2), default=default("connectivity"),
                        help="1: cells sharing an edge, or the same cell in the next step; 2: corners too "
                        "(default: 1)")
    parser.add_argument("--min-cells", type=int, default=default("min_cells"), metavar="N",
                        help="drop events of fewer than N flagged cell-steps (default: 1)")
    parser.add_argument("--bridge-gaps", action="store_true",
                        help="join a cell's flags separated by one unflagged step")


def event_outputs(args: argparse.Namespace) -> list[Output | None]:
    """Every path ``geoanom events`` writes."""
    return [
        Output("--out", args.out, (".csv",), what="the event table"),
        args.labels_out and Output("--labels-out", args.labels_out, CUBE, what="the event label cube",
                                   force=getattr(args, "overwrite", False)),
        args.map and Output("--map", args.map, (".png",), what="the event map"),
        args.shares and Output("--shares", args.shares, (".png",), what="the map of flagged shares"),
    ]


def run_events(args: argparse.Namespace) -> None:
    """``geoanom events RESULT --out events.csv``: the event catalogue of a written result."""
    check_outputs(event_outputs(args), [args.result])
    if args.event is not None and not args.map:
        raise GeoanomError("--event needs --map PNG: the picture that draws it.")
    checks.events(args)
    with open_result(args.result) as result:
        table, labels = find_events(result, args)
        if args.event is not None and args.event not in set(table["event"]):
            raise GeoanomError(f"--event {args.event}: {args.result} has no such event; its ids run from 1 to "
                               f"{len(table)}.")
        make_parents(event_outputs(args))
        write_catalogue(table, labels, args.out, args.labels_out, overwrite_mode(args))
        if args.map:
            draw_event_map(result, labels, table, args.map, args.event)
        if args.shares:
            draw_shares(result, args.shares)


def add_detect_query_options(parser: argparse.ArgumentParser) -> None:
    """``detect``'s anomaly queries: consensus, the event catalogue and its pictures."""
    parser.add_argument("--consensus", default=None, metavar="SCOPE",
                        help="also score each observation with other tiles' ensembles and write the share that "
                        "agree (consensus): neighbours, similar (the 5 most similar tiles) or region:PREFIX; "
                        "costs one more scoring per partner tile")
    parser.add_argument("--events", default=None, metavar="CSV", help="also write the event catalogue (.csv)")
    parser.add_argument("--event-map", default=None, metavar="PNG",
                        help="also draw the largest event's footprint through time (needs --events)")
    parser.add_argument("--event-series", default=None, metavar="PNG",
                        help="also draw the largest event's values against the expected value (needs --events)")
    parser.add_argument("--scatter", default=None, metavar="TILE",
                        help="also draw this tile's features with its fitted model (OUT_STEM.TILE.scatter.png)")
    parser.add_argument("--shares", default=None, metavar="PNG",
                        help="also map the share of flagged observations per geohash tile")
    add_event_options(parser, given_only=True)


def event_defaults(args: argparse.Namespace) -> None:
    """The event options not given (None, see :func:`add_event_options`) set to their defaults."""
    for name, value in EVENT_DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def detect_query_outputs(args: argparse.Namespace) -> list[Output | None]:
    """Every path the query options of ``detect`` write; refuses pictures of events without --events."""
    for option in ("event_map", "event_series"):
        if getattr(args, option) and not args.events:
            raise GeoanomError(f"--{option.replace('_', '-')} needs --events CSV: the catalogue it draws from.")
    return [
        args.events and Output("--events", args.events, (".csv",), what="the event table"),
        args.event_map and Output("--event-map", args.event_map, (".png",), what="the event map"),
        args.event_series and Output("--event-series", args.event_series, (".png",), what="the event's series"),
        args.scatter and Output("--scatter", scatter_path(args), (".png",), what="the feature scatter"),
        args.shares and Output("--shares", args.shares, (".png",), what="the map of flagged shares"),
    ]


def scatter_path(args: argparse.Namespace) -> str:
    """Where ``--scatter TILE`` draws: next to --out, ``OUT_STEM.TILE.scatter.png``."""
    return str(Path(args.out).with_suffix(f".{args.scatter}.scatter.png"))


def check_fitted(model: Any, args: argparse.Namespace) -> None:
    """Refuse, once fitted and before anything is scored or written, a --scatter tile the fit skipped.

    The input's tiles were checked before the fit (:func:`geoanom.cli.checks.detect_on_grid`); a tile
    with too little data has no model to draw.
    """
    if args.scatter and args.scatter in model.skipped:  # the input holds it: say why it has no model
        raise GeoanomError(f"--scatter {args.scatter}: the fit skipped that tile ({model.skipped[args.scatter]}), "
                           f"so it has no model to draw; choose a fitted tile, e.g. {model.tiles[0]}.")
    if args.scatter and args.scatter not in model.ensembles:
        raise GeoanomError(f"--scatter {args.scatter}: the model has no fitted tile of that name "
                           f"(precision {model.precision}; e.g. {model.tiles[0]}).")


def write_detect_queries(model: Any, cube: Any, args: argparse.Namespace) -> None:
    """``detect``'s query outputs, from the result just written to ``--out``."""
    if args.scatter:
        from ..plot import feature_scatter

        save(feature_scatter(model, cube, args.scatter), scatter_path(args), f"the features of tile {args.scatter}")
    if not (args.events or args.shares):
        return
    with open_result(args.out) as result:
        if args.events:
            table, labels = find_events(result, args)
            write_catalogue(table, labels, args.events, None)
            if args.event_map:
                draw_event_map(result, labels, table, args.event_map, None)
            if args.event_series:
                draw_event_series(model, cube, result, labels, table, args.event_series)
        if args.shares:
            draw_shares(result, args.shares)


def open_result(path: str):
    """A written result, opened lazily (Zarr or NetCDF); a missing or foreign file is refused."""
    import xarray as xr

    if not Path(path).exists():
        raise GeoanomError(f"{path} does not exist: give a result written by geoanom detect or model.score.")
    try:
        result = xr.open_zarr(path) if Path(path).suffix == ".zarr" else xr.open_dataset(path, chunks={})
    except (OSError, ValueError) as error:
        raise GeoanomError(f"{path} is not a readable Zarr store or NetCDF file ({error}).") from None
    from ..io.safety import refuse_incomplete

    try:
        refuse_incomplete(result, path)  # a store left unfinished by a killed write is not a result
    except GeoanomError:
        result.close()
        raise
    if "ensemble" not in result or "tile" not in result:
        result.close()
        raise GeoanomError(f"{path} is not a geoanom result: it has no 'ensemble' and 'tile' variables.")
    return result


def find_events(result: Any, args: argparse.Namespace):
    """The event table and the computed label cube, the events found once."""
    from ..queries import event_labels, events

    result, flag = flag_variable(result, args.flag)
    with stage("finding events"):
        labels = event_labels(result, flag=flag, connectivity=args.connectivity, min_cells=args.min_cells,
                              bridge_gaps=args.bridge_gaps).compute()
        return events(result, labels=labels), labels


def flag_variable(result: Any, flag: str) -> tuple[Any, str]:
    """The result and the name of the flag ``--flag`` names: a flag variable, or a detector's own flags.

    A detector's name (``gmm``) selects its slice of ``anomalous``, added as
    ``anomalous_gmm``; anything else is refused naming ``--flag`` and the
    flags the result holds (the library's refusal names ``flag=``).

    Examples
    --------
    >>> flag_variable(result, "gmm")[1]  # doctest: +SKIP
    'anomalous_gmm'
    """
    detectors = [str(name) for name in result["detector"].values] if "detector" in result.coords else []
    if flag in detectors and "anomalous" in result.data_vars:
        name = f"anomalous_{flag}"
        return result.assign({name: result["anomalous"].sel(detector=flag, drop=True)}), name
    variable = result.data_vars.get(flag)
    if variable is not None and "detector" not in variable.dims:
        return result, flag
    flags = [str(name) for name, var in result.data_vars.items()
             if var.attrs.get("flag_meanings") == "normal anomalous" and "detector" not in var.dims]
    choices = ", ".join(flags) or "none"
    if detectors:
        choices += f"; or a detector's name for its own flags: {', '.join(detectors)}"
    what = ("holds one flag per detector: give a detector's name instead" if variable is not None
            else "is not a flag of the result")
    raise GeoanomError(f"--flag {flag} {what}; the result's flags: {choices}.")


def write_catalogue(table, labels, out: str, labels_out: str | None, overwrite: bool | str = True) -> None:
    """Write the event table (and the label cube)."""
    with replacing(out, make_folder=True) as tmp:
        readable_times(table).to_csv(tmp, index=False)
    say(f"wrote {out}: {len(table):,} events" + (f", the largest {largest(table)['cells']:,} cell-steps"
                                                   if len(table) else ""))
    if labels_out:
        from ..io import write_dataset

        write_dataset(labels.to_dataset(), labels_out, overwrite=overwrite)
        say(f"wrote {labels_out}")


def readable_times(table):
    """The table with ``start`` and ``end`` as ISO dates, in any calendar."""
    from ..formatting import iso_date

    out = table.copy()
    for column in ("start", "end"):
        out[column] = [iso_date(value) for value in out[column]]
    return out


def largest(table):
    """The row of the event with the most flagged cell-steps (the first such, by id)."""
    return table.loc[table["cells"].idxmax()]


def draw_event_map(result, labels, table, path: str, event: int | None) -> None:
    """The footprint of ``event`` (default: the largest) through time."""
    from ..plot import event_map

    if event is None:
        if not len(table):
            warnings.warn(f"no event to draw: {path} is not written.", GeoanomWarning, stacklevel=2)
            return
        event = int(largest(table)["event"])
    save(event_map(result, labels, event), path, f"event {event}")


def draw_event_series(model, cube, result, labels, table, path: str) -> None:
    """The largest event's values against the expected value and spread."""
    from ..plot import event_timeseries

    if not len(table):
        warnings.warn(f"no event to draw: {path} is not written.", GeoanomWarning, stacklevel=2)
        return
    event = int(largest(table)["event"])
    save(event_timeseries(model, cube, result, event=event, labels=labels), path, f"the series of event {event}")


def draw_shares(result, path: str) -> None:
    """The share of flagged observations per geohash tile."""
    from ..plot import flagged_share_map

    save(flagged_share_map(result), path, "flagged shares per tile")


def save(figure, path: str, what: str) -> None:
    """Write a figure, close it, and say so."""
    import matplotlib.pyplot as plt

    try:
        with replacing(path, make_folder=True) as tmp:
            figure.savefig(tmp, dpi=110)
    finally:
        plt.close(figure)
    say(f"wrote {path}: {what}")
