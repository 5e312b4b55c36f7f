"""A hash-chained, append-only audit log of federated training, one JSON object a line.

Every line is ``{"seq", "time", "event", <fields>, "prev", "hash"}``:

``seq``
    The line's number, from 1.
``time``
    When it was written, ISO 8601 in UTC.
``prev``
    The previous line's ``hash``; 64 zeros on the first line.
``hash``
    SHA-256 (hex) of the line's canonical JSON without ``hash``: keys
    sorted, no spaces, ASCII only (``json.dumps(..., sort_keys=True,
    separators=(",", ":"), ensure_ascii=True)``).

Each line also must be byte for byte what :class:`AuditLog` writes for it
(keys in the order above, the same separators), so a change of any byte shows.

Events the federated engine records, with their fields:

========================  ==========================================================
``round_start``           ``round``, ``sampled`` (the sampled clients)
``update_accepted``       ``round``, ``client``, ``digest`` (hex), ``weight``, ``worker``
``update_refused``        ``round``, ``client``, ``reason`` (see ``signing.REFUSALS``)
``worker_lost``           ``round``, ``clients`` whose rows were lost, ``workers`` (each
                          client's workers that were lost), ``action`` ("retry",
                          "skip", or "abort" past ``max_retries``), ``attempt``
                          (the round's losses so far)
``round_failed``          ``round``, ``clients``, ``reason``: training stopped there
``aggregation``           ``round``, ``aggregator``, ``participants``, ``update_norm``
``privacy``               ``round``, ``epsilon``
``training_end``          ``state``
========================  ==========================================================

Values are written as JSON: numpy scalars and arrays as numbers and lists,
bytes as hex, non-finite floats as the strings "NaN", "Infinity" and
"-Infinity" (strict JSON has no such numbers).

What the chain proves: any edit, deletion or reordering of lines, a
half-written line, or a line appended without its correct hash is found by
:func:`check_audit`, which names the first bad line. What it cannot prove
alone: whoever can write the file can also cut whole lines off its end, or
rewrite every line from some point on with fresh hashes. Keep the hash
:meth:`AuditLog.record` returns last (the *head*; after training,
``FederatedResult.audit_head``) somewhere else — with the result, or sent to
every institution — and pass it as ``expected_head``.

So the two checks say different things, and neither can be mistaken for the
other: :func:`verify_audit` *requires* the expected head and is True only when
the log is intact and ends exactly there; :func:`check_audit` without a head
checks the chain alone, and its ``truncation_checked`` is False and its message
says "truncation not checked".
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from ..errors import GeoanomError, InputFileError
from ..jsonable import to_jsonable

GENESIS = "0" * 64
RESERVED = ("seq", "time", "event", "prev", "hash")


class AuditLogError(GeoanomError, ValueError):
    """An audit log is broken, changed behind the writer's back, or given a field it cannot hold."""


@dataclass(frozen=True)
class AuditCheck:
    """The outcome of :func:`check_audit`; true exactly when the log is intact.

    Attributes
    ----------
    path : str
    ok : bool
    records : int
        Intact lines before the first bad one (all of them when ``ok``).
    head : str
        Hash of the last intact line; 64 zeros if there is none.
    first_bad_line : int or None
        1-based; None when ``ok``.
    reason : str or None
        "truncated line", "bad json", "malformed", "edited", "deleted or
        reordered", and, with an expected head, "lines after the expected
        head" or "truncated or rewritten"; None when ``ok``.
    truncation_checked : bool
        Whether an expected head was given, so that whole lines cut off the
        end (or a rewritten tail) would have been found. Without it ``ok``
        means only that the lines present form an intact chain.
    """

    path: str
    ok: bool
    records: int
    head: str
    first_bad_line: int | None = None
    reason: str | None = None
    truncation_checked: bool = False

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        if not self.ok:
            return f"Audit log {self.path} is broken at line {self.first_bad_line}: {self.reason}."
        if self.truncation_checked:
            return f"Audit log {self.path} is intact ({self.records} records) and ends at the expected head."
        return (f"Audit log {self.path} has an intact chain of {self.records} records; truncation not checked: "
                "no expected head given.")


def verify_audit(path: str | os.PathLike, expected_head: str) -> bool:
    """True exactly when the audit log is intact and ends at `expected_head`.

    The head is required: without it, lines cut off the end of the log cannot
    be told from a log that was never longer, and a True would overstate what
    was checked. To check the chain alone, use :func:`check_audit`, whose
    message then says "truncation not checked".

    Parameters
    ----------
    path : str or path-like
        The audit log.
    expected_head : str
        The last hash the writer returned, kept elsewhere, e.g.
        ``FederatedResult.audit_head`` (64 hex digits).

    Returns
    -------
    bool

    Raises
    ------
    AuditLogError
        If `expected_head` is missing or not 64 hex digits.

    Examples
    --------
    >>> result = ga.federated.train(X, y, clients=c, security=Security(audit_log="audit.jsonl"))  # doctest: +SKIP
    >>> ga.federated.verify_audit("audit.jsonl", result.audit_head)  # doctest: +SKIP
    True
    """
    if not _is_hash(expected_head):
        raise AuditLogError(f"verify_audit needs the head of audit log {path} kept at training time (64 hex digits, "
                            f"got {expected_head!r}); check_audit({str(path)!r}) checks the chain alone, "
                            "without finding lines cut off its end.")
    return check_audit(path, expected_head).ok


def check_audit(path: str | os.PathLike, expected_head: str | None = None) -> AuditCheck:
    """Check every line of an audit log and the chain between them.

    Parameters
    ----------
    path : str or path-like
    expected_head : str, optional
        The last hash :meth:`AuditLog.record` returned, kept elsewhere; the
        log must end exactly there, which also catches lines cut off its end.

    Returns
    -------
    AuditCheck
        Truthy when intact; else names the first bad line and the reason.
        ``truncation_checked`` says whether an end cut off would have shown.

    Examples
    --------
    >>> print(check_audit("audit.jsonl"))  # doctest: +SKIP
    Audit log audit.jsonl has an intact chain of 12 records; truncation not checked: no expected head given.
    """
    if expected_head is not None and not _is_hash(expected_head):
        raise AuditLogError(f"The expected head of audit log {path} must be 64 hex digits, got {expected_head!r}.")
    return _scan(Path(path), expected_head)[0]


class AuditLog:
    """Append-only writer of a hash-chained audit log (format in the module docstring).

    Parameters
    ----------
    path : str or path-like
        Created if missing. An existing log is checked first and its chain
        continued; a broken one is refused with :class:`AuditLogError`
        (a half-written last line after a crash included: cut it off by hand
        once you have looked at it).
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()  # the engine may record from callbacks
        if self.path.exists():
            check, self._size = _scan(self.path, None)
            if not check:
                raise AuditLogError(f"Audit log {self.path} is broken at line {check.first_bad_line} "
                                    f"({check.reason}); refusing to extend it.")
            self._records, self._head = check.records, check.head
        else:
            self._create()
            self._records, self._head, self._size = 0, GENESIS, 0

    @property
    def records(self) -> int:
        """How many lines the log holds."""
        return self._records

    @property
    def head(self) -> str:
        """The last line's hash (64 zeros while empty): keep it elsewhere to catch a cut-off end."""
        return self._head

    def record(self, event: str, **fields: Any) -> str:
        """Append one line and wait until it is on disk.

        Parameters
        ----------
        event : str
            What happened, e.g. "round_start" (see the module docstring).
        **fields
            Its details; any name but ``seq``, ``time``, ``event``, ``prev``
            and ``hash``.

        Returns
        -------
        str
            The line's hash, the log's new head.
        """
        if not isinstance(event, str) or not event:
            raise AuditLogError(f"An audit event must be a non-empty string, got {event!r}.")
        clashes = sorted(set(fields) & set(RESERVED))
        if clashes:
            raise AuditLogError(f"Audit field names {', '.join(clashes)} are reserved for the chain.")
        details = {name: _jsonable(value, name) for name, value in fields.items()}
        with self._lock:
            body = {"seq": self._records + 1, "time": datetime.now(timezone.utc).isoformat(), "event": event,
                    **details, "prev": self._head}
            digest = _hash(body)
            line = _line_bytes({**body, "hash": digest})
            self._append(line)
            self._records, self._head, self._size = self._records + 1, digest, self._size + len(line)
        return digest

    def _append(self, line: bytes) -> None:
        # One unbuffered write then fsync: nothing sits in a buffer, and a
        # crash leaves at worst a half line, which the check reports.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | getattr(os, "O_BINARY", 0))
        try:
            if os.fstat(fd).st_size != self._size:
                raise AuditLogError(f"Audit log {self.path} changed since it was opened; refusing to extend it.")
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)

    def _create(self) -> None:
        try:
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except OSError as error:
            raise AuditLogError(f"Cannot create audit log {self.path}: {error.strerror}.") from error
        try:  # make the new directory entry durable too (POSIX only)
            directory = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(directory)
        except OSError:
            pass
        finally:
            os.close(directory)

    def __repr__(self) -> str:
        return f"AuditLog({str(self.path)!r}, records={self.records}, head={self.head[:16]}...)"


def _scan(path: Path, expected_head: str | None) -> tuple[AuditCheck, int]:
    """The log's check, and the bytes read up to the end of its last intact line."""
    if not path.is_file():
        raise InputFileError(f"Audit log {path} does not exist or is not a file.")
    heads, size = [GENESIS], 0
    with open(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            reason, digest = _line_problem(raw, number, heads[-1])
            if reason:
                return AuditCheck(str(path), False, number - 1, heads[-1], number, reason), size
            heads.append(digest)
            size += len(raw)
    records = len(heads) - 1
    if expected_head is not None and expected_head != heads[-1]:
        if expected_head in heads:
            known = heads.index(expected_head)
            return AuditCheck(str(path), False, known, expected_head, known + 1, "lines after the expected head"), size
        return AuditCheck(str(path), False, records, heads[-1], records + 1, "truncated or rewritten"), size
    return AuditCheck(str(path), True, records, heads[-1], truncation_checked=expected_head is not None), size


def _line_problem(raw: bytes, number: int, prev: str) -> tuple[str | None, str]:
    """Why line ``number`` is bad (or None), and its hash."""
    if not raw.endswith(b"\n"):
        return "truncated line", ""
    try:
        record = json.loads(raw.decode("utf-8"), object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError):
        return "bad json", ""
    if not _well_formed(record):
        return "malformed", ""
    digest = record.pop("hash")
    if _hash(record) != digest or _line_bytes({**record, "hash": digest}) != raw:
        return "edited", ""
    if record["seq"] != number or record["prev"] != prev:
        return "deleted or reordered", ""
    return None, digest


def _is_hash(text: Any) -> bool:
    return isinstance(text, str) and len(text) == 64 and set(text) <= set("0123456789abcdef")


def _well_formed(record: Any) -> bool:
    if not isinstance(record, dict) or any(key not in record for key in RESERVED):
        return False
    hex_ok = all(_is_hash(record[k]) for k in ("prev", "hash"))
    seq = record["seq"]
    return hex_ok and isinstance(seq, int) and not isinstance(seq, bool) and isinstance(record["time"], str) \
        and isinstance(record["event"], str)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # A repeated key would let two JSON readers see two different lines.
    record = dict(pairs)
    if len(record) != len(pairs):
        raise ValueError("repeated key")
    return record


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _hash(body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def _line_bytes(record: Mapping[str, Any]) -> bytes:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode("ascii") + b"\n"


def _jsonable(value: Any, name: str) -> Any:
    """``value`` as strict JSON (see the module docstring); refuses what has no faithful JSON form."""
    try:
        return to_jsonable(value, strict=True)
    except TypeError as error:
        raise AuditLogError(f"Audit field {name!r}: {error}.") from None
