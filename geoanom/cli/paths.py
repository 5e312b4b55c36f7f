"""Every path a command writes, checked before it reads any data.

A run that has computed for an hour and then cannot write, or worse writes over
its own input, is the costliest mistake a command line can make. So each output
is checked first: its name, its kind (file, store or folder), a parent that can
be made, and that it is neither an input, inside one, nor holding one, nor the
same place as another output.
"""

from __future__ import annotations

import glob
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..errors import GeoanomError

CUBE = (".zarr", ".nc")  # the suffixes of a cube or result written


@dataclass(frozen=True)
class Output:
    """One path a command will write.

    Attributes
    ----------
    option : str
        The option that names it, e.g. ``"--out"``, for the messages.
    path : str
        The path as given.
    suffixes : tuple of str
        The names it may end in (lower case); empty: any name.
    kind : {"file", "store", "folder"}
        What it is on disk: a file, a ``.zarr`` store or a folder, chosen by
        the suffix when ``suffixes`` mixes files and stores.
    what : str
        What it holds, for the messages ("the result", "the model").
    force : bool
        ``--overwrite`` was given: it may replace a file or store geoanom did
        not write, or a result holding other time steps.
    """

    option: str
    path: str
    suffixes: tuple[str, ...] = ()
    kind: str = "file"
    what: str = "the output"
    force: bool = False

    @property
    def is_folder(self) -> bool:
        """A folder on disk (a folder output or a Zarr store)."""
        return self.kind == "folder" or self.is_store

    @property
    def is_store(self) -> bool:
        """A Zarr store, replaced as a whole (a folder output is written into instead)."""
        return self.kind != "folder" and Path(self.path).suffix.lower() == ".zarr"


def check_outputs(outputs: Iterable[Output | None], inputs: Sequence[str] = ()) -> None:
    """Refuse, in one sentence, any output that cannot or must not be written.

    Parameters
    ----------
    outputs : iterable of Output or None
        The outputs of one run (None: an option not given).
    inputs : sequence of str
        The inputs as given: files, Zarr stores, globs or URLs.

    Raises
    ------
    GeoanomError
        A wrong suffix, a file where a folder is needed or the reverse, a
        parent that cannot be made, an output that is an input, inside one
        or holding one, or two outputs at the same place.

    Examples
    --------
    >>> check_outputs([Output("--out", "in.nc", (".nc", ".zarr"))], ["in.nc"])
    Traceback (most recent call last):
    ...
    geoanom.errors.GeoanomError: cannot write --out 'in.nc': it is the input 'in.nc', which would be lost.
    """
    given = [output for output in outputs if output is not None]
    sources = input_paths(inputs)
    for output in given:
        check_not_an_input(output, sources)  # first: the worst mistake gets the message
        check_output(output)
    check_distinct(given)


def check_appendable(output: Output) -> None:
    """Refuse, before any data are read, an append to something that is not a result store geoanom wrote.

    Examples
    --------
    >>> check_appendable(Output("--append", "missing.zarr", (".zarr",)))
    Traceback (most recent call last):
    ...
    geoanom.errors.GeoanomError: cannot append to --append 'missing.zarr': no result store is there; write the \
first result with --out.
    """
    from ..io.overwrite import written_by_geoanom

    path = Path(output.path).expanduser()
    name = f"{output.option} '{output.path}'"
    if output.suffixes and path.suffix.lower() not in output.suffixes:
        raise GeoanomError(f"cannot append to {name}: {output.what} must end in {_either(output.suffixes)}.")
    if not path.is_dir():
        raise GeoanomError(f"cannot append to {name}: no result store is there; write the first result with --out.")
    if not written_by_geoanom(path):
        raise GeoanomError(f"cannot append to {name}: it is not a result geoanom wrote.")


def check_output(output: Output) -> None:
    """The suffix, the kind and the parent of one output."""
    path = Path(output.path).expanduser()
    name = f"{output.option} '{output.path}'"
    if "://" in output.path:  # file:// was made a local path by local_path; s3:// and the like are not written
        raise GeoanomError(f"cannot write {name}: outputs must be local paths, not URLs.")
    if output.suffixes and path.suffix.lower() not in output.suffixes:
        raise GeoanomError(f"cannot write {name}: {output.what} must end in {_either(output.suffixes)}.")
    if output.is_folder and path.exists() and not path.is_dir():
        raise GeoanomError(f"cannot write {name}: it is a file, and {output.what} is a folder.")
    if not output.is_folder and path.is_dir():
        raise GeoanomError(f"cannot write {name}: it is a folder, and {output.what} is a file.")
    check_replaced(output)
    folder = next(parent for parent in path.absolute().parents if parent.exists())  # missing folders are made
    if not folder.is_dir():
        raise GeoanomError(f"cannot write {name}: '{folder}' is a file, not a folder.")
    check_writable(folder, name)


def check_replaced(output: Output, times=None) -> None:
    """Refuse an output whose replacement would lose what is there (:func:`geoanom.io.overwrite.replace_problem`).

    Called once with the paths (a file or store geoanom did not write), and
    again once the input's time steps are known (a result holding steps the
    new one will not: months appended since), both before the fit.

    Examples
    --------
    >>> check_replaced(Output("--out", "appended.zarr", (".zarr",)), times)  # doctest: +SKIP
    Traceback (most recent call last):
    geoanom.errors.GeoanomError: cannot write --out 'appended.zarr': it holds 3 time steps (2019-01-16 to \
2019-03-16) the new result does not, which would be lost; give --overwrite to replace it.
    """
    from ..io.overwrite import replace_problem

    if output.kind == "folder":  # written into, not replaced
        return
    path = Path(output.path).expanduser()
    if problem := replace_problem(path, times, force=output.force):
        forced = replace_problem(path, times, force=True) is None
        advice = "give --overwrite to replace it" if forced else "choose a new path or remove it first"
        raise GeoanomError(f"cannot write {output.option} '{output.path}': it {problem}; {advice}.")


def add_overwrite(parser) -> None:
    """The ``--overwrite`` option of a command that writes a result or label cube (.nc or .zarr)."""
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the output cube even when geoanom did not write it, or when it holds time "
                        "steps this run does not write (months appended to it)")


def overwrite_mode(args) -> bool | str:
    """What :func:`geoanom.write_dataset` is told to replace: ``"force"`` with ``--overwrite``."""
    return "force" if getattr(args, "overwrite", False) else True


def make_parents(outputs: Iterable[Output | None]) -> None:
    """Make the missing folders on the way to each output, as writing starts (:func:`check_output` saw they can be).

    Not when the paths are checked: a run refused later, before it writes,
    leaves no empty folder behind.

    Examples
    --------
    >>> make_parents([Output("--plot", "maps/2010/map.png", (".png",))])  # doctest: +SKIP
    """
    for output in outputs:
        if output is not None:
            Path(output.path).expanduser().absolute().parent.mkdir(parents=True, exist_ok=True)


def check_writable(folder: Path, name: str) -> None:
    """Refuse `folder` unless a file can really be made in it.

    ``os.access`` is not enough: for root it says yes to almost anything
    (``/proc``, a read-only mount), so a probe file is created and removed.
    """
    try:
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".geoanom-probe-")
    except OSError as error:
        why = (error.strerror or str(error)).rstrip(".").lower()
        raise GeoanomError(f"cannot write {name}: no file can be made in the folder '{folder}' ({why}).") from None
    os.close(handle)
    os.remove(probe)


def local_path(given: str | None) -> str | None:
    """A ``file://`` URL as the local path it names; any other text unchanged.

    Examples
    --------
    >>> local_path("file:///tmp/x/fo.nc")
    '/tmp/x/fo.nc'
    >>> local_path("file://localhost/tmp/a%20b.zarr")
    '/tmp/a b.zarr'
    >>> local_path("out.nc")
    'out.nc'
    """
    if given is None or not given.lower().startswith("file://"):
        return given
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(given)
    if parts.netloc not in ("", "localhost"):
        return given  # another host's file: refused as a URL
    return unquote(parts.path)


def check_not_an_input(output: Output, sources: dict[Path, str]) -> None:
    """Refuse an output that would replace an input, or a folder output that holds one."""
    where = real(output.path)
    for source, given in sources.items():
        if where == source:
            problem = f"it is the input '{given}'"
        elif source in where.parents:
            problem = f"it lies inside the input '{given}'"
        elif output.is_folder and where in source.parents:
            problem = f"it holds the input '{given}'"
        else:
            continue
        raise GeoanomError(f"cannot write {output.option} '{output.path}': {problem}, which would be lost.")


def check_distinct(outputs: Sequence[Output]) -> None:
    """Refuse two outputs at the same place, or one inside the other's store or folder."""
    for i, first in enumerate(outputs):
        for second in outputs[i + 1:]:
            a, b = real(first.path), real(second.path)
            inside = (first.is_folder and a in b.parents) or (second.is_folder and b in a.parents)
            if a == b or inside:
                relation = "the same path" if a == b else "inside the other"
                raise GeoanomError(f"{first.option} '{first.path}' and {second.option} '{second.path}' are "
                                   f"{relation}: give each output its own place.")


def input_paths(inputs: Sequence[str]) -> dict[Path, str]:
    """The real path of every local input (globs expanded), mapped to the name given.

    Remote URLs (``s3://...``) are left out: they cannot be a local output;
    ``file://`` URLs are local paths.
    """
    found: dict[Path, str] = {}
    for given in map(str, inputs):
        given = local_path(given)
        if "://" in given:
            continue
        pattern = os.path.expanduser(given)
        for match in glob.glob(pattern) or [pattern]:
            found[real(match)] = match
    return found


def real(path: str | os.PathLike) -> Path:
    """The absolute path with symbolic links resolved (also for a path that does not exist yet)."""
    return Path(os.path.realpath(os.path.expanduser(path)))


def _either(suffixes: Sequence[str]) -> str:
    return suffixes[0] if len(suffixes) == 1 else ", ".join(suffixes[:-1]) + f" or {suffixes[-1]}"
