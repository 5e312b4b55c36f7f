"""What the command line reports: results written with progress, skipped tiles, places and dates.

How much is said is set once by the command line (``-q``, ``-v``): see :func:`set_verbosity`.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Iterator

from .atomic import replacing
from .flagged import flag_counts, has_flags, outside_training, reopened, warn_flagged_counts
from .formatting import iso_date

# The key of the flag counts among the lazy values computed with a write (the others are keyed by variable names).
FLAGS = ("geoanom", "flag counts")

QUIET, NORMAL, VERBOSE = -1, 0, 1
_verbosity = NORMAL  # the command line's -q / -v; the library itself prints nothing


def set_verbosity(level: int) -> None:
    """How much the command reports: QUIET (errors and warnings), NORMAL or VERBOSE (details and timings).

    Examples
    --------
    >>> set_verbosity(VERBOSE); detail("chosen precision 2"); set_verbosity(NORMAL)
    chosen precision 2
    """
    global _verbosity
    _verbosity = level


def say(text: str) -> None:
    """Print a line of a normal run (not with -q)."""
    if _verbosity >= NORMAL:
        print(text)


def detail(text: str) -> None:
    """Print a detail only asked for with -v."""
    if _verbosity >= VERBOSE:
        print(text)


@contextlib.contextmanager
def stage(label: str, client: Any = None, *, watch: bool = True) -> Iterator[None]:
    """Run a block under a label: its dask work with labelled progress (not with -q), or only its time with -v.

    Examples
    --------
    >>> with stage("reading nothing", watch=False):
    ...     pass
    """
    if watch:  # the progress's closing line gives the time
        from .progress import progress

        with progress(label, client, enabled=_verbosity >= NORMAL):
            yield
        return
    started = time.perf_counter()
    yield
    detail(f"{label}: {time.perf_counter() - started:.1f} s")


@contextlib.contextmanager
def progress(client: Any = None, label: str = "computing") -> Iterator[None]:
    """Labelled progress of the dask work inside the block (see :mod:`geoanom.progress`)."""
    from .progress import progress as follow

    with follow(label, client, enabled=_verbosity >= NORMAL):
        yield


def write_outputs(result, model, out_path, plot_path, client, *, table_path=None, model_path=None,
                  also=None, plot_time=None, overwrite=True, variable=None) -> dict:
    """Write a result with labelled progress, and on request the model, a map and the table of tiles.

    The result is written chunk by chunk as it is scored, also on a cluster:
    it is never held whole in memory. Paths are checked by the caller, before
    any work. The ten most anomalous tiles are printed, and written to
    ``table_path`` when given. ``also`` (a dict of lazy values, e.g. the
    counts of ±inf) is computed in the same dask computation as the result
    (see :func:`geoanom.io.write.write_and_compute`); the computed dict is
    returned. The map shows ``plot_time`` (a date), by default the last
    step with scores, and the line printed names its date. ``overwrite`` is
    :func:`geoanom.write_dataset`'s (``"force"``: the command's ``--overwrite``);
    ``variable`` is the one whose anomaly the map draws (default: the first).

    Examples
    --------
    >>> counts = write_outputs(model.score(cube), model, Path("a.zarr"), None, None,
    ...                        also=count_infinite(cube, compute=False))  # doctest: +SKIP
    """
    from .io.write import write_and_compute
    from .plot import top_tiles

    judged = has_flags(result)
    with stage(f"scoring and writing {out_path}", client):  # the flags are counted as they are written
        computed = write_and_compute(result, out_path, {**(also or {}), **(
            {FLAGS: flag_counts(result, compute=False)} if judged else {})}, overwrite=overwrite)[1]
    say(f"wrote {out_path}")
    if judged:
        warn_flagged_counts(*computed.pop(FLAGS), out_path, command_line_advice(model), outside=outside_training(result))
    if model_path is not None:
        model.save(model_path)
        say(f"model saved to {model_path}")
    with reopened(out_path) as written:  # the map and the table read the scores written, not score again
        if plot_path is not None:
            with stage(f"drawing {plot_path}", client):
                say(draw_map(written, plot_path, plot_time, variable))
        with stage("ranking tiles", client):
            table = top_tiles(written)
    if table_path is not None:
        with replacing(table_path) as tmp:  # a failed write leaves an earlier table whole
            table.to_csv(tmp)
        say(f"table of the most anomalous tiles: {table_path}")
    say("the ten most anomalous tiles (mean fused irregularity over the scored period):")
    say(table.to_string(float_format=lambda value: f"{value:.3f}"))
    return computed


def draw_map(result, path, when=None, variable=None) -> str:
    """Write the map of one step of ``result`` (``when``: a date; default the last with scores) and say which.

    Examples
    --------
    >>> draw_map(result, "map.png")  # doctest: +SKIP
    'map of 2010-09-16, the last time step: map.png'
    >>> draw_map(result, "map.png", "2010-03")  # doctest: +SKIP
    'map of 2010-03-16, the step at 2010-03: map.png'
    """
    from .plot import irregularity_map
    from .plot.panels import last_scored_step, step_index

    size = result.sizes["time"]
    index = last_scored_step(result) if when is None else step_index(result, when)
    date = iso_date(result["time"].values[index])
    if when is not None:
        which = f"the step at {when}" if date.startswith(str(when)) else f"the step nearest to {when}"
    elif index == size - 1:
        which = "the last time step"
    else:
        after = size - 1 - index
        which = f"the last step with scores ({'the last step has' if after == 1 else f'the last {after} steps have'} none)"
    irregularity_map(result, path, time=index, variable=variable)
    return f"map of {date}, {which}: {path}"


def command_line_advice(model) -> str:
    """What to do about many flags, in the command line's terms (its options, and Python only where it has none)."""
    # a model already judging anomalies about a trend is pointed to adaptation only
    if model.attrs.get("trend") == "linear":
        return "score adaptively in Python (model.adapt; the command line has no option for it)"
    return "fit with --trend linear, or score adaptively in Python (model.adapt)"


def model_summary(model) -> str:
    """One line about a fitted model, its dates in ISO form (the repr keeps numpy's nanoseconds).

    Examples
    --------
    >>> model_summary(fitted)  # doctest: +SKIP
    'fitted 24 tiles (0 skipped) at precision 2 on tas with gmm, trained 2000-01-01 to 2005-12-01'
    """
    start, end = (iso_date(model.attrs.get(key, "?")) for key in ("training_start", "training_end"))
    return (f"fitted {len(model.ensembles)} tiles ({len(model.skipped)} skipped) at precision {model.precision} "
            f"on {', '.join(model.variables)} with {', '.join(model.detectors)}, trained {start} to {end}")


def report_skipped(model, shown: int = 20) -> None:
    """Print the tiles a model skipped and why (``model.skipped``), the first ``shown`` with -v all."""
    if not model.skipped:
        return
    federated = bool(model.attrs.get("federated_rounds"))
    one = len(model.skipped) == 1
    its = "its" if one else "their"
    scored = "scored by the smallest region's model" if federated else f"{its} cells score NaN"
    say(f"{len(model.skipped)} {'tile' if one else 'tiles'} skipped ({scored}):")
    limit = None if _verbosity >= VERBOSE else shown
    for tile, reason in sorted(model.skipped.items())[:limit]:
        say(f"  {tile}: {reason}")
    if limit is not None and len(model.skipped) > limit:
        say(f"  ... and {len(model.skipped) - limit} more (-v lists all; model.skipped holds them)")
