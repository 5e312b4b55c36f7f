"""What the command line reports: results written with progress, and places named in degrees."""

from __future__ import annotations

import contextlib


def write_outputs(result, model, out_path, plot_path, client, *, table_path=None, model_path=None) -> None:
    """Write a result (with a progress bar), and on request the model, a map and the table of tiles; print the table."""
    from .io import write_dataset
    from .plot import irregularity_map, top_tiles

    print(f"scoring and writing {out_path} ...")
    if client is not None:
        from distributed import progress as distributed_progress

        result = result.persist()
        distributed_progress(result)
        print()
    with progress(client):
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
def progress(client):
    """A progress bar for the local scheduler (the distributed one has its own)."""
    if client is None:
        from dask.diagnostics import ProgressBar

        with ProgressBar(dt=0.5):
            yield
    else:
        yield


def degrees(value: float, positive: str, negative: str, digits: int = 0) -> str:
    """A latitude or longitude as text, e.g. ``degrees(-80.6, "E", "W") == "81°W"``.

    Examples
    --------
    >>> degrees(25.0, "N", "S", digits=2)
    '25.00°N'
    """
    return f"{abs(value):.{digits}f}\u00b0{positive if value >= 0 else negative}"


def iso_date(value, with_time: bool | None = None) -> str:
    """A time as an ISO date without seconds or nanoseconds, in any calendar.

    ``value`` may be a numpy ``datetime64``, a cftime or pandas date, or its
    text. The time of day is added (``T06:00``) when ``with_time`` is True, or
    by default when it is not midnight.

    Examples
    --------
    >>> import numpy as np
    >>> iso_date(np.datetime64("2010-09-16T00:00:00.000000000"))
    '2010-09-16'
    >>> iso_date("2010-09-16 06:00:00")
    '2010-09-16T06:00'
    """
    import re

    import numpy as np

    if isinstance(value, np.ndarray) and value.ndim == 0:  # one element of .values
        value = value[()]
    text = np.datetime_as_string(value) if isinstance(value, np.datetime64) else str(value)
    match = re.match(r"\s*(-?\d{1,6}-\d{1,2}-\d{1,2})(?:[T ](\d{1,2}):(\d{2}))?", text)
    if not match:  # not a date: say what it is rather than guess
        return text
    day, hour, minute = match.group(1), int(match.group(2) or 0), int(match.group(3) or 0)
    if with_time or (with_time is None and (hour, minute) != (0, 0)):
        return f"{day}T{hour:02d}:{minute:02d}"
    return day
