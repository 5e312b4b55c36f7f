"""Tree reductions: of dask delayed values, and of futures on a distributed cluster."""

from __future__ import annotations

from typing import Any, Callable, Sequence

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


class TreeReducer:
    """A tree reduction on a distributed cluster, built while its parts are submitted.

    Each part is added as soon as its task is submitted; every ``split_every``
    parts of one group (for example, of one worker, whose data locality
    then draws the merge there) get a merge task at once, and every
    ``split_every`` merges of a level a merge on the next. Merge tasks have
    priority over the parts still queued (``prioritise``), so the tree folds
    parts as they finish, few unmerged parts wait at any time, and the root
    follows the last part by about one merge per level, instead of by every
    merge when the tree is submitted after all the parts. The depth is
    ceil(log_split_every(n)), plus at most one level when the first is split
    into groups.

    Parameters
    ----------
    dask_client : distributed.Client
    combine : callable
        Associative merge of up to ``split_every`` parts into one.
    split_every : int
        Fan-in of each merge task.
    prioritise : bool, default True
        False leaves merges in dask's default order (after earlier submissions).

    Examples
    --------
    >>> tree = TreeReducer(client, combine, 8)                     # doctest: +SKIP
    >>> for part in parts:                                         # doctest: +SKIP
    ...     tree.add(client.submit(work, part), group=worker_of(part))
    >>> total = tree.result().result()                             # doctest: +SKIP
    """

    def __init__(self, dask_client, combine: Callable, split_every: int, prioritise: bool = True):
        self.dask_client, self.combine, self.prioritise = dask_client, combine, prioritise
        self.split_every = max(2, int(split_every))
        self._pending: dict[tuple[int, Any], list] = {}

    def add(self, future: Any, group: Any = None) -> None:
        """Add a part; parts of one ``group`` share the first level's merges."""
        self._push(0, group, future)

    def result(self) -> Any:
        """Merge what is left and return the root's future (the only part, if one
        was added; None if none was). The tree is then empty."""
        level = 0
        while True:
            this_level = [(key, parts) for key, parts in self._pending.items() if key[0] == level]
            higher = any(key[0] > level for key in self._pending)
            if not this_level and not higher:
                return None
            if len(this_level) == 1 and len(this_level[0][1]) == 1 and not higher:
                return self._pending.pop(this_level[0][0])[0]
            for key, parts in this_level:
                del self._pending[key]
                self._push(level + 1, None, parts[0] if len(parts) == 1 else self._merge(level + 1, parts))
            level += 1

    def _push(self, level: int, group: Any, future: Any) -> None:
        parts = self._pending.setdefault((level, group), [])
        parts.append(future)
        if len(parts) == self.split_every:
            del self._pending[level, group]
            self._push(level + 1, None, self._merge(level + 1, parts))

    def _merge(self, level: int, parts: list) -> Any:
        priority = {"priority": level} if self.prioritise else {}
        return self.dask_client.submit(self.combine, *parts, pure=False, **priority)


def tree_reduce_futures(dask_client, futures: Sequence[Any], combine: Callable, split_every: int,
                        workers: Sequence[Any] | None = None, prioritise: bool = True) -> Any:
    """Reduce submitted ``futures`` on the cluster with a :class:`TreeReducer`.

    Parameters
    ----------
    dask_client : distributed.Client
    futures : sequence of Future
    combine : callable
        Associative merge of up to ``split_every`` parts into one.
    split_every : int
        Fan-in of each merge task.
    workers : sequence, optional
        The worker of each future: the first level merges only futures of
        one worker, so only the upper levels move data between workers.
    prioritise : bool, default True
        See :class:`TreeReducer`.

    Returns
    -------
    Future or None
        The root's future; None when ``futures`` is empty.
    """
    tree = TreeReducer(dask_client, combine, split_every, prioritise)
    for index, future in enumerate(futures):
        tree.add(future, None if workers is None else workers[index])
    return tree.result()
