"""The hidden sibling a write goes to, and what is left of it when the write dies.

:func:`temporary_for` names the sibling ``.{name}.tmp-<host>-<pid>-<random>``
so that its owner can be told: :func:`remove_stale_temporaries` removes only
those of dead processes on this host (SIGKILL leaves them), and
:func:`removed_on_sigterm` removes the sibling before a SIGTERM ends the
process. The writer (:mod:`geoanom.io.write`) only asks for a temporary and
removes it on failure; who owns a leftover and when it may go is decided here.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import secrets
import shutil
import signal
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .opening import PathLike

# The temporary's name says who owns it (see remove_stale_temporaries).
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:32] or "host"
_TMP_NAME = re.compile(r"(?P<host>[A-Za-z0-9]+)-(?P<pid>[0-9]+)-[0-9a-f]{8}")
_OLD_TMP = re.compile(r"[0-9a-f]{8}")  # before the owner was in the name


def temporary_for(target: Path) -> Path:
    """A new hidden sibling of `target` for this process to write into, named after its owner."""
    return target.with_name(f".{target.name}.tmp-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}")


def remove_stale_temporaries(target: PathLike) -> list[Path]:
    """Remove the temporaries earlier, killed writes to `target` left behind.

    Only siblings ``.{name}.tmp-<host>-<pid>-<random>`` written on this host
    by a process that no longer exists are removed: a live writer's, or one
    on another host of a shared file system (whose pid says nothing here),
    is left alone. Temporaries of older geoanom versions (no pid in the name)
    are removed too: they are marked or unreadable, never a result.

    Parameters
    ----------
    target : str or path
        The output path whose leftovers to remove.

    Returns
    -------
    list of pathlib.Path
        What was removed.

    Examples
    --------
    >>> remove_stale_temporaries("anomalies.zarr")  # doctest: +SKIP
    []
    """
    target = Path(target)
    removed = []
    for sibling in target.parent.glob(f".{glob.escape(target.name)}.tmp-*"):
        suffix = sibling.name[len(target.name) + 6:]
        owner = _TMP_NAME.fullmatch(suffix)
        stale = owner["host"] == _HOST and not _alive(int(owner["pid"])) if owner else _OLD_TMP.fullmatch(suffix)
        if stale:
            remove_path(sibling)
            removed.append(sibling)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


class _Terminated(BaseException):
    """Raised by our SIGTERM handler to unwind a write (BaseException: no `except Exception` swallows it)."""


@contextlib.contextmanager
def removed_on_sigterm(tmp: Path) -> Iterator[None]:
    """On SIGTERM, stop the write, remove `tmp`, and end as the previous handler would have.

    Handlers can only be set from the main thread; elsewhere (and when SIGTERM
    is ignored) nothing changes, and the next write removes what is left.
    """
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGTERM"):
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous is signal.SIG_IGN:
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        _remove_while_written(tmp)
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)  # the default action ends the process here
        # A Python handler returned: still stop. Threads of the dask pool may
        # finish a chunk into tmp meanwhile; remove it again once they are joined.
        atexit.register(remove_path, tmp)
        raise SystemExit(128 + signal.SIGTERM) from None
    finally:
        if signal.getsignal(signal.SIGTERM) is handler:
            signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


def _remove_while_written(path: Path, attempts: int = 20) -> None:
    """Remove `path` that threads of the dask pool may still be writing into.

    A task in flight when the signal came can recreate a chunk's folder while
    rmtree walks it (seen once in 13 SIGTERM runs): remove until it stays gone.
    """
    for _ in range(attempts):
        remove_path(path)
        time.sleep(0.02)  # a chunk already being written lands now, not after the check
        if not os.path.lexists(path):
            return


def remove_path(path: Path) -> None:
    """Remove a file, a link or a folder and all it holds; nothing if it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        path.unlink()
