"""Every option's value checked before any work: its form and range, then what the input's grid decides.

A value that cannot be right (a count below 1, a date that is no date, an
unknown detector, a tile that is no geohash) is refused in one sentence
naming the option and the value, before the input is opened; a value that
the input's grid decides (a tile the input does not hold, a region with no
tile in it) is refused right after the input is opened, before the fit. So
a mistake never costs the minutes a fit takes, and nothing is written. Like
the rest of the command, this module imports only the standard library at
import time.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Collection

from ..errors import OptionError
from .dates import date, period


def whole(option: str, value: int | None, least: int) -> None:
    """Refuse a count below ``least`` (None: the option was not given).

    Examples
    --------
    >>> whole("--min-cells", 0, 1)
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --min-cells must be a whole number of at least 1, got 0.
    """
    if value is not None and value < least:
        raise OptionError(f"{option} must be a whole number of at least {least}, got {value}.")


def number(option: str, value: float | None, *, least: float | None = None, above: float | None = None,
           most: float | None = None) -> None:
    """Refuse a number that is not finite or lies outside ``[least, most]`` (or at or below ``above``).

    Examples
    --------
    >>> number("--clip", 0.0, above=0)
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --clip must be a finite number above 0, got 0.
    """
    if value is None:
        return
    bounds = [f"of at least {least:g}" if least is not None else "", f"above {above:g}" if above is not None else "",
              f"of at most {most:g}" if most is not None else ""]
    wanted = " and ".join(bound for bound in bounds if bound)
    if not (math.isfinite(value) and (least is None or value >= least) and (above is None or value > above)
            and (most is None or value <= most)):
        raise OptionError(f"{option} must be a finite number{' ' + wanted if wanted else ''}, got {value:g}.")


def precision(option: str, value: int | None) -> None:
    """Refuse a geohash precision outside 1 to 12 (:data:`geoanom.geohash.MAX_PRECISION`)."""
    from ..geohash import MAX_PRECISION

    if value is not None and not 1 <= value <= MAX_PRECISION:
        raise OptionError(f"{option} must be a geohash precision from 1 to {MAX_PRECISION}, got {value}.")


def detector_names(option: str, text: str) -> tuple[str, ...]:
    """The families of a comma-separated ``--detectors``, or the library's refusal naming the option.

    Examples
    --------
    >>> detector_names("--detectors", "gmm, kmeans")
    ('gmm', 'kmeans')
    """
    from ..detectors.families import check_detector_names
    from ..errors import GeoanomError

    try:
        return check_detector_names(text)
    except GeoanomError as error:
        raise OptionError(f"{option} {text}: {error}") from None


def feature_sets(option: str, text: str | None) -> None:
    """Refuse an unknown feature set, or sets that describe no cell, naming the option."""
    if text is None:
        return
    from ..errors import GeoanomError
    from ..features.vectors import check_feature_sets

    try:
        check_feature_sets(text.split(","))
    except GeoanomError as error:
        raise OptionError(f"{option} {text}: {error}") from None


def geohash(option: str, text: str, given: str, length: int | None = None) -> None:
    """Refuse ``text`` unless it is a geohash (of ``length`` characters when given); ``given`` is the value quoted.

    Examples
    --------
    >>> geohash("--scatter", "9G", "9G")
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --scatter 9G: '9G' is not a geohash: 'G' is not one of its characters \
0123456789bcdefghjkmnpqrstuvwxyz (geohashes are lower case).
    """
    from ..geohash import ALPHABET, MAX_PRECISION

    bad = [char for char in text if char not in ALPHABET]
    if bad:
        hint = " (geohashes are lower case)" if bad[0].lower() in ALPHABET else ""
        raise OptionError(f"{option} {given}: '{text}' is not a geohash: '{bad[0]}' is not one of its characters "
                          f"{ALPHABET}{hint}.")
    if not 1 <= len(text) <= MAX_PRECISION:
        raise OptionError(f"{option} {given}: a geohash has 1 to {MAX_PRECISION} characters, '{text}' has "
                          f"{len(text)}.")
    if length is not None and len(text) != length:
        raise OptionError(f"{option} {given}: the tiles have {length} character{'s' * (length != 1)} "
                          f"(--precision {length}), '{text}' has {len(text)}.")


def consensus(text: str | None, precision_: int | None) -> None:
    """``--consensus``: its form, and a region's geohash (shorter than the tiles when --precision is given)."""
    if text is None:
        return
    from ..errors import GeoanomError
    from ..queries.consensus import parse_consensus

    try:
        spec = parse_consensus(text)
    except GeoanomError as error:
        raise OptionError(f"--consensus {text}: {error}") from None
    if spec.mode == "region":
        geohash("--consensus", spec.prefix, text)
        if precision_ is not None and len(spec.prefix) >= precision_:
            region_in(text, spec.prefix, (), precision_)  # the library's refusal of a region as long as a tile


def region_in(text: str, prefix: str, tiles: Collection[str], precision_: int) -> None:
    """Refuse a consensus region not shorter than the tiles, or holding none of ``tiles`` (the input's)."""
    from ..errors import GeoanomError
    from ..queries.consensus import region_partners

    try:
        region_partners(prefix, tiles, precision_)
    except GeoanomError as error:
        raise OptionError(f"--consensus {text}: {error}") from None


def flag(text: str, detectors: Collection[str]) -> None:
    """``detect --flag``: the ensemble's flag or a fitted family's (the result holds no other flag).

    Examples
    --------
    >>> flag("kmeans", ("gmm",))
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --flag kmeans: no kmeans model is fitted (--detectors gmm); the result's flags: \
ensemble; or a detector's name for its own flags: gmm.
    """
    if text == "ensemble" or text in detectors:
        return
    from ..detectors.families import FAMILIES

    what = f"no {text} model is fitted (--detectors {','.join(detectors)})" if text in FAMILIES else \
        "it is not a flag of the result"
    raise OptionError(f"--flag {text}: {what}; the result's flags: ensemble; or a detector's name for its own "
                      f"flags: {', '.join(detectors)}.")


def cluster(args: argparse.Namespace) -> None:
    """Where the command computes (--workers, --scheduler(-file), --cluster, --jobs, --cluster-option), before any
    data are read: :func:`geoanom.cluster.check_options`' refusals, made first (``federate`` and ``score`` read data
    before they connect).
    """
    from ..cluster import check_options
    from ..errors import GeoanomError

    whole("--workers", args.workers, 1)
    try:
        check_options(args.workers, getattr(args, "scheduler", None), scheduler_file=args.scheduler_file,
                      cluster=args.cluster, jobs=args.jobs, options=args.cluster_options)
    except GeoanomError as error:
        raise OptionError(str(error)) from None


def detect(args: argparse.Namespace) -> None:
    """``detect``'s options, before the input is opened."""

    precision("--precision", args.precision)
    number("--level", args.level)
    detectors = detector_names("--detectors", args.detectors)
    feature_sets("--features", args.features)
    federated(args)
    date("--train-start", args.train_start)
    date("--train-end", args.train_end)
    period(args.train_start, args.train_end)
    date("--plot-time", args.plot_time)
    if args.explain is not None:
        parse_point(args.explain)
    if args.scatter is not None:
        geohash("--scatter", args.scatter, args.scatter, args.precision)
    drawn_variable(args)
    consensus(args.consensus, args.precision)
    given = [name for name in ("flag", "connectivity", "min_cells", "bridge_gaps") if getattr(args, name)]
    if given and not args.events:  # they shape a catalogue that is not made: surely not what was meant
        options = " and ".join(f"--{name.replace('_', '-')}" for name in given)
        raise OptionError(f"{options} need{'s' * (len(given) == 1)} --events CSV: the catalogue "
                          f"{'it shapes' if len(given) == 1 else 'they shape'}.")
    if args.flag is not None:
        flag(args.flag, detectors)
    whole("--min-cells", args.min_cells, 1)
    cluster(args)


def drawn_variable(args: argparse.Namespace, variables=None) -> None:
    """``--variable``: one of the variables fitted (``--var``, or the input's once opened), and only with a picture.

    Examples
    --------
    >>> drawn_variable(argparse.Namespace(variable="pr", variables=["tos", "so"], plot="m.png", explain=None))
    Traceback (most recent call last):
    ...
    geoanom.errors.OptionError: --variable pr: it is not one of the variables fitted (tos, so).
    """
    if args.variable is None:
        return
    if args.plot is None and args.explain is None:
        raise OptionError(f"--variable {args.variable} needs --plot PNG or --explain LAT,LON: the picture it "
                          "chooses the variable of.")
    given = variables if variables is not None else args.variables
    if given and args.variable not in given:
        raise OptionError(f"--variable {args.variable}: it is not one of the variables fitted "
                          f"({', '.join(map(str, given))}).")


def federated(args: argparse.Namespace) -> None:
    """With --federated, its rounds and relevance as :func:`geoanom.fit` checks them, named as its keywords too."""
    if not args.federated:
        given = [f"--{name.replace('_', '-')}" for name in ("federated_rounds", "federated_relevance")
                 if getattr(args, name) is not None]
        if given:
            raise OptionError(f"{' and '.join(given)} need{'s' * (len(given) == 1)} --federated: without it "
                              "every tile keeps its own model.")
        return
    try:
        whole("federated_rounds", args.federated_rounds, 1)
    except OptionError as error:
        raise OptionError(f"--federated-rounds: {error}") from None
    try:
        number("federated_relevance", args.federated_relevance, least=0)
    except OptionError as error:
        raise OptionError(f"--federated-relevance: {error}") from None


def detect_on_grid(args: argparse.Namespace, labels) -> None:
    """``detect``'s options the input's tiles decide (``labels``: each cell's tile), before the fit."""
    tiles = set(labels.values.ravel().tolist())
    size = int(labels.attrs["precision"])
    if args.scatter is not None and args.scatter not in tiles:
        some = ", ".join(sorted(tiles)[:5])
        raise OptionError(f"--scatter {args.scatter}: the input has no tile of that name at precision {size} "
                          f"(its tiles: {some}{', ...' if len(tiles) > 5 else ''}).")
    if args.consensus is not None and args.consensus.strip().startswith("region:"):
        from ..queries.consensus import parse_consensus

        region_in(args.consensus, parse_consensus(args.consensus).prefix, tiles, size)


def regions(args: argparse.Namespace) -> None:
    """``regions``' options, before the input is opened."""
    precision("--precision", args.precision)
    number("--level", args.level)
    number("--sigma", args.sigma, least=0)
    number("--threshold", args.threshold, least=0)
    if args.median_size < 1 or args.median_size % 2 == 0:
        raise OptionError(f"--median-size must be a positive odd number of cells, got {args.median_size}.")
    whole("--tune", args.tune, 0)


def federate(args: argparse.Namespace) -> None:
    """``federate``'s options, before any data are read (the aggregator's and privacy's are the library's)."""
    from ..errors import GeoanomError
    from ..federated.options import RoundOptions

    precision("--precision", args.precision)
    try:  # the library's own check of what a round survives, made before the data are read
        RoundOptions(on_lost_worker=args.on_lost_worker, max_retries=args.max_retries)
    except GeoanomError as error:
        raise OptionError(f"--max-retries {args.max_retries}: {error}") from None
    given = [f"--{name}" for name in ("delta", "clip") if getattr(args, name) is not None]
    if given and args.epsilon is None:  # a user who believes the training private, when it is not
        raise OptionError(f"{' and '.join(given)} need{'s' * (len(given) == 1)} --epsilon: without a privacy "
                          "budget no update is clipped or noised.")
    number("--clip", args.clip, above=0)
    cluster(args)
    if args.cluster is not None:
        from ..cluster import parse_jobs

        count, adapt = parse_jobs(args.jobs)
        if adapt is not None and count == 0:  # geoanom.cluster.wait_for_jobs' refusal, before the data are read
            raise OptionError(f"--jobs {args.jobs}: federated training places every client on a worker from the "
                              "start: give --jobs N, or MIN:MAX with MIN at least 1.")


def score(args: argparse.Namespace) -> None:
    """``score``'s options, before the model is loaded (--var is checked against it once loaded)."""
    number("--level", args.level)
    cluster(args)


def events(args: argparse.Namespace) -> None:
    """``events``' options, before the result is opened (--flag needs the result)."""
    whole("--min-cells", args.min_cells, 1)
    whole("--event", args.event, 1)


def parse_point(text: str) -> tuple[float, float]:
    """``"LAT,LON"`` in degrees as two floats, or a GeoanomError in one sentence.

    Examples
    --------
    >>> parse_point("25, -80.5")
    (25.0, -80.5)
    """
    parts = text.replace(" ", "").split(",")
    try:
        lat, lon = (float(part) for part in parts)
    except ValueError:
        raise OptionError(f"--explain takes LAT,LON in degrees, e.g. 35.2,-80.8; got '{text}'.") from None
    if not (-90.0 <= lat <= 90.0 and -360.0 <= lon <= 360.0):
        raise OptionError(f"--explain {text}: the latitude must be in [-90, 90] and the longitude in "
                           "[-360, 360] degrees.")
    return lat, lon
