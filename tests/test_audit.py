"""The hash-chained audit log: an intact log verifies, and every edit, deletion or reordering is found."""

import hashlib
import json

import numpy as np
import pytest

from geoanom.errors import GeoanomError
from geoanom.federated.audit import GENESIS, AuditLog, check_audit, verify_audit

N_LINES = 6


def write_log(path, n_rounds=2):
    """A small log like one the engine writes: per round, a start, an update each way and an aggregation."""
    log = AuditLog(path)
    for number in range(1, n_rounds + 1):
        log.record("round_start", round=number, clients=np.array(["dj", "f4"]))
        log.record("update_accepted", round=np.int64(number), client="dj", digest=bytes(range(32)),
                   weight=np.float64(120.0))
        log.record("update_refused", round=number, client="f4", reason="bad signature")
    log.record("aggregation", round=n_rounds, aggregator="median", participants=1, update_norm=float("inf"))
    log.record("privacy", round=n_rounds, epsilon=np.float32(1.5))
    log.record("training_end", state="converged")
    return log


@pytest.fixture
def log_path(tmp_path):
    path = tmp_path / "audit.jsonl"
    write_log(path, n_rounds=1)
    return path


def lines(path):
    return path.read_bytes().splitlines(keepends=True)


def rewrite(path, new_lines):
    path.write_bytes(b"".join(new_lines))


def rehash(record):
    """What a careful forger would do: recompute the line's hash (anyone can)."""
    body = {key: value for key, value in record.items() if key != "hash"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {**body, "hash": hashlib.sha256(canonical.encode()).hexdigest()}


def as_line(record):
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def test_intact_log_verifies(log_path):
    head = json.loads(lines(log_path)[-1])["hash"]
    assert verify_audit(log_path, head) is True
    check = check_audit(log_path)
    assert check and check.ok and check.first_bad_line is None and check.reason is None
    assert check.records == N_LINES and "intact" in str(check)


def test_without_a_head_the_check_says_truncation_was_not_checked(log_path):
    check = check_audit(log_path)
    assert check.ok and not check.truncation_checked
    assert "truncation not checked: no expected head given" in str(check)
    head = json.loads(lines(log_path)[-1])["hash"]
    checked = check_audit(log_path, expected_head=head)
    assert checked.truncation_checked and "ends at the expected head" in str(checked)


@pytest.mark.parametrize("head", [None, "", "abc", "G" * 64])
def test_verify_audit_requires_a_real_head(log_path, head):
    """A bare True without the head would claim more than was checked (lines cut off the end)."""
    with pytest.raises(GeoanomError, match="verify_audit needs the head.*check_audit"):
        verify_audit(log_path, head)
    with pytest.raises(TypeError):
        verify_audit(log_path)  # no default: the head cannot be forgotten by accident


def test_deleting_the_last_lines_is_false_for_verify_audit(log_path):
    """The README's promise: verify_audit is False after any deletion, the end included."""
    head = json.loads(lines(log_path)[-1])["hash"]
    rewrite(log_path, lines(log_path)[:-2])
    assert check_audit(log_path).ok  # the chain alone cannot see it ...
    assert verify_audit(log_path, head) is False  # ... the kept head does
    check = check_audit(log_path, expected_head=head)
    assert (check.first_bad_line, check.reason) == (N_LINES - 1, "truncated or rewritten")


def test_lines_follow_the_documented_format(log_path):
    records = [json.loads(line) for line in lines(log_path)]
    assert [r["seq"] for r in records] == list(range(1, N_LINES + 1))
    assert records[0]["prev"] == GENESIS
    assert all(later["prev"] == earlier["hash"] for earlier, later in zip(records, records[1:]))
    assert list(records[1]) == ["seq", "time", "event", "round", "client", "digest", "weight", "prev", "hash"]
    assert records[0]["clients"] == ["dj", "f4"]
    assert records[1]["digest"] == bytes(range(32)).hex() and records[1]["weight"] == 120.0
    assert records[3]["update_norm"] == "Infinity" and records[4]["epsilon"] == 1.5
    assert records[0]["time"].endswith("+00:00")
    assert rehash(records[2])["hash"] == records[2]["hash"]


def test_record_returns_the_new_head(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    head = log.record("training_end", state="converged")
    assert head == log.head == json.loads(lines(log.path)[-1])["hash"]
    assert check_audit(log.path, expected_head=head)


@pytest.mark.parametrize("line", range(1, N_LINES + 1))
@pytest.mark.parametrize("field", ["seq", "time", "event", "round", "prev", "hash"])
def test_editing_any_field_of_any_line_is_found(log_path, line, field):
    original = lines(log_path)
    head = json.loads(original[-1])["hash"]
    record = json.loads(original[line - 1])
    if field not in record:
        field = "state" if "state" in record else "round"
    value = record[field]
    record[field] = value + 1 if isinstance(value, int) else "f" * 64 if field in ("prev", "hash") else value + "x"
    rewrite(log_path, original[: line - 1] + [as_line(record)] + original[line:])
    check = check_audit(log_path)
    assert not check and verify_audit(log_path, head) is False
    assert (check.first_bad_line, check.reason) == (line, "edited")
    assert f"line {line}" in str(check)


def test_edit_that_keeps_the_content_but_not_the_bytes_is_found(log_path):
    original = lines(log_path)
    spaced = json.dumps(json.loads(original[2])).encode() + b"\n"   # same content, default separators
    rewrite(log_path, original[:2] + [spaced] + original[3:])
    assert (check_audit(log_path).first_bad_line, check_audit(log_path).reason) == (3, "edited")


@pytest.mark.parametrize("line", range(1, N_LINES + 1))
def test_deleting_a_line_is_found(log_path, line):
    original = lines(log_path)
    rewrite(log_path, original[: line - 1] + original[line:])
    check = check_audit(log_path)
    if line == N_LINES:   # a cut-off end shows only against the head kept elsewhere
        assert check
        head = json.loads(original[-1])["hash"]
        check = check_audit(log_path, expected_head=head)
        assert (check.first_bad_line, check.reason) == (N_LINES, "truncated or rewritten")
    else:
        assert (check.first_bad_line, check.reason) == (line, "deleted or reordered")


@pytest.mark.parametrize("first, second", [(1, 2), (2, 5), (5, 6)])
def test_swapping_two_lines_is_found(log_path, first, second):
    changed = lines(log_path)
    changed[first - 1], changed[second - 1] = changed[second - 1], changed[first - 1]
    rewrite(log_path, changed)
    assert (check_audit(log_path).first_bad_line, check_audit(log_path).reason) == (first, "deleted or reordered")


def test_truncated_last_line_is_found(log_path):
    log_path.write_bytes(log_path.read_bytes()[:-20])
    check = check_audit(log_path)
    assert (check.first_bad_line, check.reason, check.records) == (N_LINES, "truncated line", N_LINES - 1)


def test_missing_final_newline_is_found(log_path):
    log_path.write_bytes(log_path.read_bytes()[:-1])
    assert (check_audit(log_path).first_bad_line, check_audit(log_path).reason) == (N_LINES, "truncated line")


def test_appended_forged_line_is_found(log_path):
    last = json.loads(lines(log_path)[-1])
    forged = {"seq": N_LINES + 1, "time": last["time"], "event": "update_accepted", "round": 1, "client": "evil",
              "prev": last["hash"], "hash": "f" * 64}
    with open(log_path, "ab") as out:
        out.write(as_line(forged))
    assert (check_audit(log_path).first_bad_line, check_audit(log_path).reason) == (N_LINES + 1, "edited")


def test_rechained_forgery_is_found_only_against_the_kept_head(log_path):
    """The chain alone cannot stop someone who recomputes hashes; the head kept elsewhere does."""
    last = json.loads(lines(log_path)[-1])
    forged = rehash({"seq": N_LINES + 1, "time": last["time"], "event": "update_accepted", "round": 1,
                     "client": "evil", "prev": last["hash"]})
    with open(log_path, "ab") as out:
        out.write(as_line(forged))
    assert check_audit(log_path)
    check = check_audit(log_path, expected_head=last["hash"])
    assert (check.first_bad_line, check.reason) == (N_LINES + 1, "lines after the expected head")


@pytest.mark.parametrize("garbage, reason", [(b"not json\n", "bad json"), (b"[1, 2]\n", "malformed"),
                                             (b'{"seq": 1, "seq": 1}\n', "bad json"), (b"\n", "bad json"),
                                             (b'{"a": NaN}\n', "bad json"), (b"\xff\xfe\n", "bad json")])
def test_garbage_lines_are_found(log_path, garbage, reason):
    original = lines(log_path)
    rewrite(log_path, original[:3] + [garbage] + original[3:])
    assert (check_audit(log_path).first_bad_line, check_audit(log_path).reason) == (4, reason)


def test_resuming_an_intact_log_continues_the_chain(log_path):
    before = check_audit(log_path)
    log = AuditLog(log_path)
    assert (log.records, log.head) == (N_LINES, before.head)
    log.record("round_start", round=2, clients=["dj"])
    records = [json.loads(line) for line in lines(log_path)]
    assert (records[-1]["seq"], records[-1]["prev"]) == (N_LINES + 1, before.head)
    assert check_audit(log_path, expected_head=log.head).records == N_LINES + 1


@pytest.mark.parametrize("damage", ["edit", "truncate"])
def test_resuming_a_broken_log_is_refused(log_path, damage):
    original = lines(log_path)
    if damage == "edit":
        rewrite(log_path, original[:1] + [original[1].replace(b'"dj"', b'"xx"')] + original[2:])
    else:
        log_path.write_bytes(log_path.read_bytes()[:-5])
    size = log_path.stat().st_size
    with pytest.raises(GeoanomError, match=rf"{log_path.name} is broken at line {2 if damage == 'edit' else 6}"):
        AuditLog(log_path)
    assert log_path.stat().st_size == size   # nothing appended


def test_writer_refuses_a_file_changed_behind_its_back(tmp_path):
    log = write_log(tmp_path / "audit.jsonl")
    with open(log.path, "ab") as out:
        out.write(b"{}\n")
    with pytest.raises(GeoanomError, match="changed since it was opened"):
        log.record("training_end", state="max_rounds")


def test_empty_file_is_an_empty_intact_log(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.touch()
    assert check_audit(path).records == 0 and check_audit(path).head == GENESIS
    head = AuditLog(path).record("training_end", state="not_run")
    assert verify_audit(path, head)


def test_bad_records_raise_geoanom_errors(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    with pytest.raises(GeoanomError, match="reserved"):
        log.record("round_start", hash="0" * 64)
    with pytest.raises(GeoanomError, match="no JSON form"):
        log.record("round_start", clients=object())
    with pytest.raises(GeoanomError, match="non-empty string"):
        log.record("")
    assert log.records == 0 and verify_audit(log.path, GENESIS)
    with pytest.raises(GeoanomError, match="does not exist"):
        check_audit(tmp_path / "missing.jsonl")
