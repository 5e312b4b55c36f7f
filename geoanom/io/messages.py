"""Messages: the reason a backend gave, shortened to fit one sentence of ours."""

from __future__ import annotations

import os


def short_reason(exc: BaseException, path: str | None = None) -> str:
    """The first line of an error message, without the path it repeats, errno or final period."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    for form in (path, os.path.abspath(path)) if path else ():  # backends often make it absolute
        text = text.replace(f": '{form}'", "").replace(f"'{form}'", "the file")
    if text.startswith("[Errno"):
        text = text.split("] ", 1)[-1]
    return text[:160].rstrip(" .")
