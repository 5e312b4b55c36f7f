"""``geoanom score``: score new files with a saved model, into a new result or appended to one.

The operational half of ``detect``: fit once (``detect --model-out``), then
each month score the new file and append it (``--append``). Both writes go
region by region along time with a progress mark (see
:mod:`geoanom.io.append`), so the same command run again after a kill
continues where it stopped; a repeated append is refused before anything is
written.
"""

from __future__ import annotations

import argparse

from ..errors import GeoanomError
from ..flagged import warn_flagged_share_of
from ..reporting import command_line_advice, say, stage
from .paths import CUBE, Output, add_overwrite, check_appendable, check_outputs, check_replaced, overwrite_mode


def add_score(subparsers, talk: argparse.ArgumentParser, add_level, add_cluster_options) -> None:
    """``geoanom score``."""
    score = subparsers.add_parser(
        "score", parents=[talk], help="score new files with a saved model; write or append the result",
        description="Score every observation of the input with a model saved by detect --model-out, and write "
        "a new result (--out) or append the new time steps to an existing result store (--append). A run killed "
        "while writing continues where it stopped when run again; an append of dates already stored is refused.")
    score.add_argument("model", metavar="MODEL", help="a model saved by detect --model-out (.npz or .zarr)")
    score.add_argument("inputs", nargs="+", metavar="INPUT", help="NetCDF files, Zarr stores or globs")
    score.add_argument("--var", action="append", default=None, dest="variables",
                       help="variable (repeatable; default: the model's variables)")
    add_level(score)
    where = score.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", default=None, help="a new result (.zarr or .nc)")
    where.add_argument("--append", default=None, metavar="RESULT.zarr",
                       help="an existing result store to append the new time steps to")
    add_overwrite(score)
    add_cluster_options(score)
    score.set_defaults(run=run_score)


def run_score(args: argparse.Namespace) -> None:
    """``geoanom score``: check the output, load the model, score and write."""
    if args.append is not None:
        output = Output("--append", args.append, (".zarr",), what="the result appended to")
        check_appendable(output)
    else:
        output = Output("--out", args.out, CUBE, what="the result", force=args.overwrite)
    check_outputs([output], [*args.inputs, args.model])
    from . import checks

    checks.score(args)  # before the model is loaded
    from .. import load_model, write_dataset
    from ..formatting import iso_date
    from .commands import connect, open_input

    model = load_model(args.model)
    variables = args.variables or list(model.variables)
    if sorted(variables) != sorted(model.variables):
        raise GeoanomError(f"the model '{args.model}' scores {', '.join(model.variables)}, not "
                           f"{', '.join(variables)}; give --var for each of its variables.")
    with connect(args) as client:
        with stage("opening the input", watch=False):
            cube = open_input(args.inputs, variables, args.level)
        if args.append is None:
            check_replaced(output, cube["time"].values)  # a result holding other steps (appended months)
        result = model.score(cube, client=client)
        times = result["time"].values
        verb = "appending to" if args.append else "scoring and writing"
        with stage(f"{verb} {output.path}", client):
            # resume: a store this command left unfinished is continued, not started again
            write_dataset(result, output.path, append=args.append is not None, resume=output.is_store,
                          overwrite=overwrite_mode(args),
                          warn_flags=False)  # warned below, in the command line's terms
        warn_flagged_share_of(output.path, command_line_advice(model), last_steps=len(times))
    span = f"{len(times)} time step{'s' if len(times) != 1 else ''} ({iso_date(times[0])} to {iso_date(times[-1])})"
    say(f"{'appended' if args.append else 'wrote'} {span} {'to' if args.append else 'in'} {output.path}")
