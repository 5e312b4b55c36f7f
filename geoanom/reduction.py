"""Tree reduction of dask delayed values."""

from __future__ import annotations

from typing import Any, Callable

import dask


def tree_reduce(parts: list, combine: Callable, split_every: int) -> Any:
    """Reduce delayed ``parts`` with ``combine``, ``split_every`` at a time.

    The depth is ceil(log_split_every(len(parts))): no task receives more
    than ``split_every`` inputs, so no worker gathers every part.
    """
    split_every = max(2, int(split_every))
    while len(parts) > 1:
        parts = [dask.delayed(combine, pure=True)(*parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]
