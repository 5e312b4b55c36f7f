"""Files replaced only once written whole: a failed write leaves the earlier file as it was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def replacing(path: str | os.PathLike, *, make_folder: bool = False) -> Iterator[Path]:
    """A temporary path beside ``path`` (same suffix) to write to; it replaces ``path`` only once written whole.

    For tables, pictures and ``.npz`` files (the Zarr outputs have their own
    atomic writer, :func:`geoanom.io.write_dataset`): a write that fails, a
    full disk or an error while drawing, leaves an existing file as it was,
    and an error names ``path``, not the temporary. The file gets the
    permissions a plain ``open`` would give it. A missing folder is an
    error naming ``path``, or, with ``make_folder``, made (the command line's
    outputs).

    Examples
    --------
    >>> import pandas as pd, tempfile
    >>> folder = tempfile.mkdtemp()
    >>> with replacing(f"{folder}/table.csv") as tmp:
    ...     pd.DataFrame({"a": [1]}).to_csv(tmp)
    >>> sorted(os.listdir(folder))
    ['table.csv']
    """
    target = Path(path).expanduser()
    if make_folder:
        target.parent.mkdir(parents=True, exist_ok=True)
    try:
        handle, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=f".tmp{target.suffix}")
    except OSError as error:  # no such folder: name the path, not the temporary's
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    os.close(handle)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp's 0600 is not what a plain open gives
        os.replace(tmp, target)
    except OSError as error:  # name the path asked for, not the temporary (a full disk's error names none)
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def current_umask() -> int:
    """The process's umask (reading it means setting it: set it straight back).

    Examples
    --------
    >>> 0 <= current_umask() <= 0o777
    True
    """
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
