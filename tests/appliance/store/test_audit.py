"""The audit log: appends, queries, and verification against every kind of tampering.

Tampering is done the way an intruder would: with raw sqlite3 on the database file, after
dropping the append-only triggers.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from appliance.store.audit import (
    GENESIS,
    HEAD_PAYLOAD_TYPE,
    LOG_NAME,
    AuditAction,
    AuditError,
    AuditHead,
    AuditKeyError,
    AuditLog,
    AuditPage,
    AuditRecord,
    HeadError,
    ProblemKind,
    format_time,
    parse_time,
)
from appliance.store.db import Database, DatabaseError
from bundles import canonical, dsse
from bundles.digest import Digest
from bundles.keys import KeyType, PrivateKey
from tests.appliance.store.conftest import Opener

REPO = Path(__file__).resolve().parents[3]
T0 = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
IMAGE = "sha256:" + "ab" * 32
RULES = "sha256:" + "cd" * 32


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate(KeyType.ECDSA_P256)


@pytest.fixture
def db_path(tmp_path: Path, backend: str) -> Path:
    """The SQLite file, for the tests that tamper with it as an intruder would."""
    if backend != "sqlite":
        pytest.skip("edits the SQLite file with raw sqlite3")
    return tmp_path / "state.db"


@pytest.fixture
def db(open_db: Opener) -> Database:
    return open_db()


@pytest.fixture
def log(db: Database, key: PrivateKey) -> AuditLog:
    return AuditLog(db, key=key)


def fill(log: AuditLog, n: int = 5) -> list[AuditRecord]:
    actions = [AuditAction.IMPORT, AuditAction.SCAN, AuditAction.VEX_ADD, AuditAction.GATE]
    return [
        log.append(
            actions[i % len(actions)],
            IMAGE if i % 2 else f"bundle-{i}",
            actor="alice (stella test)",
            time=T0 + timedelta(minutes=i),
            inputs={"image": IMAGE, "n": i},
            versions={"engine": "1.0.0"},
            rule_digest=RULES if actions[i % len(actions)] is AuditAction.GATE else None,
            result={"outcome": f"result-{i}"},
        )
        for i in range(n)
    ]


# --- appending -------------------------------------------------------------------------------


def test_records_chain_from_the_genesis(log: AuditLog) -> None:
    records = fill(log, 4)
    assert [r.seq for r in records] == [1, 2, 3, 4]
    assert str(Digest.of_bytes(b"stella-ops audit log v1")) == GENESIS
    assert records[0].prev == GENESIS
    for before, after in itertools.pairwise(records):
        assert after.prev == before.hash
    for record in records:
        assert record.hash == str(canonical.digest(record.body()))
        assert set(record.body()) == {
            "seq", "time", "actor", "action", "subject", "inputs", "versions", "ruleDigest",
            "result", "prev",
        }  # fmt: skip
    assert records[3].rule_digest == RULES
    assert records[3].action == "gate"
    assert log.records() == records


def test_append_signs_a_head_checkpoint(log: AuditLog, key: PrivateKey) -> None:
    assert log.head() is None
    records = fill(log, 3)
    head = log.head()
    assert head is not None
    assert (head.seq, head.hash, head.time) == (3, records[2].hash, "2026-11-23T06:02:00Z")
    assert head.keyids == (key.keyid,)
    verified = dsse.verify(head.envelope, [key.public_key], payload_type=HEAD_PAYLOAD_TYPE)
    assert canonical.loads(verified.payload) == {
        "log": LOG_NAME,
        "seq": 3,
        "hash": records[2].hash,
        "time": "2026-11-23T06:02:00Z",
    }


def test_verify_an_intact_log(log: AuditLog) -> None:
    empty = log.verify()
    assert (empty.ok, empty.records, empty.verified, empty.head) == (True, 0, 0, None)
    fill(log, 6)
    outcome = log.verify()
    assert outcome.ok
    assert outcome.problem is None
    assert (outcome.records, outcome.verified) == (6, 6)
    assert outcome.head is not None
    assert outcome.head.seq == 6
    assert outcome.to_dict()["problem"] is None


def test_time_is_stored_as_utc_seconds() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert (
        format_time(datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=plus_two)) == "2026-01-02T01:04:05Z"
    )
    with pytest.raises(AuditError, match=r"audit time 2026-01-02T03:04:05 has no time zone"):
        format_time(datetime(2026, 1, 2, 3, 4, 5))
    assert parse_time("2026-01-02T03:04:05Z") == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    with pytest.raises(AuditError, match=r"time: 'yesterday' is not an RFC 3339 time"):
        parse_time("yesterday")
    with pytest.raises(AuditError, match=r"time: '2026-01-02T03:04:05' has no time zone"):
        parse_time("2026-01-02T03:04:05")


def test_append_needs_the_signing_key(db: Database, key: PrivateKey) -> None:
    reader = AuditLog(db, public_key=key.public_key)
    with pytest.raises(AuditKeyError, match="without the appliance signing key"):
        reader.append(
            AuditAction.SCAN, IMAGE, actor="a", time=T0, inputs={}, versions={}, result={}
        )
    with pytest.raises(AuditKeyError, match="without the appliance public key"):
        AuditLog(db).verify()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"action": "scan"}, "audit action 'scan' is not an AuditAction"),
        ({"subject": " "}, "audit field 'subject' must be a non-empty string, got ' '"),
        ({"actor": ""}, "audit field 'actor' must be a non-empty string, got ''"),
        ({"inputs": ["x"]}, "audit field 'inputs' must be a JSON object with string keys"),
        ({"result": {1: "x"}}, "audit field 'result' must be a JSON object with string keys"),
        ({"versions": {"x": float("nan")}}, "audit field 'versions': value cannot be written"),
        ({"rule_digest": "md5:abc"}, "audit field 'rule_digest': unsupported digest algorithm"),
        ({"time": datetime(2026, 1, 1)}, "has no time zone"),
    ],
)
def test_bad_appends_are_refused(log: AuditLog, change: dict[str, object], message: str) -> None:
    args: dict[str, Any] = {
        "action": AuditAction.SCAN,
        "subject": IMAGE,
        "actor": "alice",
        "time": T0,
        "inputs": {},
        "versions": {},
        "result": {},
        "rule_digest": None,
    } | change
    with pytest.raises(AuditError, match=message.replace("(", r"\(")):
        log.append(**args)
    assert log.count() == 0


def test_the_log_refuses_update_and_delete(log: AuditLog, db: Database) -> None:
    fill(log, 2)
    for sql in ("UPDATE audit_log SET actor = 'mallory'", "DELETE FROM audit_log"):
        with pytest.raises(DatabaseError, match="the audit log is append-only"), db.transaction():
            db.connection.execute(sql)
    assert log.verify().ok


def test_append_commits_with_the_callers_transaction(log: AuditLog, db: Database) -> None:
    fill(log, 1)
    before = log.head()

    def record_then_fail() -> None:
        with db.transaction():
            fill(log, 2)
            raise RuntimeError("the import failed after recording")

    with pytest.raises(RuntimeError, match="the import failed"):
        record_then_fail()
    assert log.count() == 1
    assert log.head() == before
    assert log.verify().ok


def test_records_filters(log: AuditLog) -> None:
    records = fill(log, 8)  # actions: import, scan, vex.add, gate, import, scan, vex.add, gate
    assert [r.seq for r in log.records(action="gate")] == [4, 8]
    assert [r.seq for r in log.records(action="vex")] == [3, 7]
    assert log.records(action="ve") == []  # a family is a whole name, not a prefix
    assert [r.seq for r in log.records(since=T0 + timedelta(minutes=5))] == [6, 7, 8]
    assert [r.seq for r in log.records(subject=IMAGE)] == [2, 4, 6, 8]
    assert [r.seq for r in log.records(limit=3)] == [6, 7, 8]
    assert [r.seq for r in log.records(action="scan", limit=1)] == [6]
    assert log.records(limit=0) == []
    assert log.records()[4] == records[4]
    with pytest.raises(AuditError, match=r"action filter 'vex%' is not an action name"):
        log.records(action="vex%")


def test_page_walks_the_log_by_sequence_number(log: AuditLog) -> None:
    fill(log, 11)
    newest = log.page(limit=4)
    assert [r.seq for r in newest.records] == [8, 9, 10, 11]
    assert (newest.total, newest.newer, newest.older) == (11, 0, 7)
    middle = log.page(before=8, limit=4)
    assert [r.seq for r in middle.records] == [4, 5, 6, 7]
    assert (middle.newer, middle.older) == (4, 3)
    oldest = log.page(before=4, limit=4)
    assert [r.seq for r in oldest.records] == [1, 2, 3]
    assert (oldest.newer, oldest.older) == (8, 0)
    assert log.page(after=3, limit=4) == middle
    assert log.page(after=7, limit=4) == newest
    # short of a full page towards the head: the newest page instead
    assert log.page(after=9, limit=4) == newest
    assert log.page(before=1, limit=4) == AuditPage((), 11, 11, 0)
    assert log.page(limit=4).records[-1] == log.records()[-1]


def test_page_of_an_empty_log_and_bad_arguments(log: AuditLog) -> None:
    empty = log.page(limit=10)
    assert (empty.records, empty.total, empty.newer, empty.older) == ((), 0, 0, 0)
    with pytest.raises(AuditError, match="page: give 'before' or 'after', not both"):
        log.page(before=5, after=2, limit=10)
    with pytest.raises(AuditError, match="page: limit must be at least 1, got 0"):
        log.page(limit=0)


def test_records_read_under_a_new_action_name(log: AuditLog, db_path: Path) -> None:
    """A record written by a newer version, with an action this one does not know, is still
    listed and verified."""
    fill(log, 1)
    with sqlite3.connect(db_path) as raw:
        raw.execute("DROP TRIGGER audit_log_no_update")
    body = {
        "seq": 2,
        "time": "2026-11-23T07:00:00Z",
        "actor": "bob",
        "action": "future.thing",
        "subject": "x",
        "inputs": {},
        "versions": {},
        "ruleDigest": None,
        "result": {},
        "prev": log.records()[0].hash,
    }
    digest = AuditRecord.hash_of(body)
    with log.db.transaction() as conn:
        conn.execute(
            "INSERT INTO audit_log VALUES (2, 2, ?, 'bob', 'future.thing', 'x', '{}', '{}', NULL,"
            " '{}', ?, ?)",
            (body["time"], body["prev"], digest),
        )
    assert log.records(action="future")[0].action == "future.thing"
    # Added without the key: the chain is fine, the head does not cover it.
    problem = log.verify().problem
    assert problem is not None
    assert problem.kind is ProblemKind.UNANCHORED


# --- tampering -------------------------------------------------------------------------------


def raw_edit(path: Path, *statements: str) -> None:
    """Change the database file directly, as an intruder with file access would."""
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        raw.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        raw.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            raw.execute(statement)
    finally:
        raw.close()


def _body(row: sqlite3.Row, prev: str) -> dict[str, object]:
    return {
        "seq": row["seq"],
        "time": row["time"],
        "actor": row["actor"],
        "action": row["action"],
        "subject": row["subject"],
        "inputs": canonical.loads(row["inputs"]),
        "versions": canonical.loads(row["versions"]),
        "ruleDigest": row["rule_digest"],
        "result": canonical.loads(row["result"]),
        "prev": prev,
    }


def rehash_one(path: Path, seq: int) -> None:
    """Recompute one record's hash over its (edited) fields, leaving the others alone."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.row_factory = sqlite3.Row
    try:
        row = raw.execute("SELECT * FROM audit_log WHERE seq = ?", (seq,)).fetchone()
        digest = AuditRecord.hash_of(_body(row, row["prev"]))
        raw.execute("UPDATE audit_log SET hash = ? WHERE seq = ?", (digest, seq))
    finally:
        raw.close()


def rechain(path: Path, signer: PrivateKey | None) -> None:
    """Recompute every hash and link after an edit, and re-sign the head when ``signer`` is
    given: what an intruder does to hide an edit."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.row_factory = sqlite3.Row
    try:
        prev = GENESIS
        rows = raw.execute("SELECT * FROM audit_log ORDER BY pos").fetchall()
        for row in rows:
            body = _body(row, prev)
            prev = AuditRecord.hash_of(body)
            raw.execute(
                "UPDATE audit_log SET prev = ?, hash = ? WHERE pos = ?",
                (body["prev"], prev, row["pos"]),
            )
        if signer is not None:
            last = rows[-1]
            payload = {"log": LOG_NAME, "seq": last["seq"], "hash": prev, "time": last["time"]}
            envelope = dsse.sign(canonical.dumps(payload), HEAD_PAYLOAD_TYPE, signer)
            raw.execute("UPDATE audit_head SET envelope = ?", (envelope.to_json(),))
    finally:
        raw.close()


def edit_head_payload(path: Path) -> None:
    raw = sqlite3.connect(path, isolation_level=None)
    try:
        envelope = dsse.Envelope.from_json(
            raw.execute("SELECT envelope FROM audit_head").fetchone()[0]
        )
        payload = canonical.loads(envelope.payload)
        payload["seq"] = 4
        forged = dsse.Envelope(canonical.dumps(payload), envelope.payload_type, envelope.signatures)
        raw.execute("UPDATE audit_head SET envelope = ?", (forged.to_json(),))
    finally:
        raw.close()


OTHER_KEY = PrivateKey.generate(KeyType.ED25519)

Step = Callable[[Path], None]


def sql(*statements: str) -> Step:
    return lambda path: raw_edit(path, *statements)


def rehash(seq: int) -> Step:
    return lambda path: rehash_one(path, seq)


def resign(signer: PrivateKey | None) -> Step:
    return lambda path: rechain(path, signer)


CASES: list[tuple[str, tuple[Step, ...], ProblemKind, int | None, str]] = [
    (
        "edited field",
        (sql("""UPDATE audit_log SET result = '{"outcome":"forged"}' WHERE seq = 3"""),),
        ProblemKind.HASH,
        3,
        "record 3: hash mismatch (edited)",
    ),
    (
        "edited field, its own hash recomputed",
        (
            sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"),
            rehash(3),
        ),
        ProblemKind.LINK,
        4,
        "record 4: prev does not match the hash of record 3 "
        "(a record before it was edited or replaced)",
    ),
    (
        "first record's link forged",
        (
            sql("UPDATE audit_log SET prev = 'sha256:' || hash WHERE seq = 1"),
            rehash(1),
        ),
        ProblemKind.LINK,
        1,
        "record 1: prev does not match the hash of the log's genesis",
    ),
    (
        "edited time",
        (sql("UPDATE audit_log SET time = '2020-01-01T00:00:00Z' WHERE seq = 2"),),
        ProblemKind.HASH,
        2,
        "record 2: hash mismatch (edited)",
    ),
    (
        "non-canonical JSON",
        (sql("""UPDATE audit_log SET inputs = '{"n": 0, "image": "x"}' WHERE seq = 1"""),),
        ProblemKind.MALFORMED,
        1,
        "record 1: field inputs is not a canonical JSON object (edited)",
    ),
    (
        "removed middle record",
        (sql("DELETE FROM audit_log WHERE seq = 3"),),
        ProblemKind.SEQUENCE,
        3,
        "record 3: seq 4 found (a record was removed or reordered)",
    ),
    (
        "removed first record",
        (sql("DELETE FROM audit_log WHERE seq = 1"),),
        ProblemKind.SEQUENCE,
        1,
        "record 1: seq 2 found (a record was removed or reordered)",
    ),
    (
        "removed last record",
        (sql("DELETE FROM audit_log WHERE seq = 5"),),
        ProblemKind.TRUNCATED,
        5,
        "head checkpoint says 5 records, log has 4 (records removed from the end)",
    ),
    (
        "removed last records, chain consistent",
        (sql("DELETE FROM audit_log WHERE seq >= 3"),),
        ProblemKind.TRUNCATED,
        3,
        "head checkpoint says 5 records, log has 2 (records removed from the end)",
    ),
    (
        "reordered records (swapped seq)",
        (
            sql(
                "UPDATE audit_log SET seq = -1 WHERE seq = 2",
                "UPDATE audit_log SET seq = 2 WHERE seq = 3",
                "UPDATE audit_log SET seq = 3 WHERE seq = -1",
            ),
        ),
        ProblemKind.SEQUENCE,
        2,
        "record 2: seq 3 found (a record was removed or reordered)",
    ),
    (
        "reordered records (swapped rows)",
        (
            sql(
                "UPDATE audit_log SET pos = -1 WHERE pos = 2",
                "UPDATE audit_log SET pos = 2 WHERE pos = 3",
                "UPDATE audit_log SET pos = 3 WHERE pos = -1",
            ),
        ),
        ProblemKind.SEQUENCE,
        2,
        "record 2: seq 3 found (a record was removed or reordered)",
    ),
    (
        "last record replaced, chain recomputed, head not re-signed",
        (
            sql("UPDATE audit_log SET actor = 'mallory' WHERE seq = 5"),
            resign(None),
        ),
        ProblemKind.HEAD_HASH,
        5,
        "record 5: hash differs from the head checkpoint (the last record was replaced)",
    ),
    (
        "edited head signature",
        (edit_head_payload,),
        ProblemKind.HEAD_SIGNATURE,
        None,
        "head checkpoint signature is invalid (the checkpoint was edited after signing)",
    ),
    (
        "head signed by another key",
        (
            sql("DELETE FROM audit_log WHERE seq = 5"),
            resign(OTHER_KEY),
        ),
        ProblemKind.HEAD_KEY,
        None,
        f"head checkpoint is signed by key {OTHER_KEY.keyid[:16]}, not the appliance key "
        "{appliance} (it was re-signed by another key)",
    ),
    (
        "head deleted",
        (sql("DELETE FROM audit_head"),),
        ProblemKind.HEAD_MISSING,
        None,
        "head checkpoint is missing, log has 5 records (the checkpoint was deleted)",
    ),
    (
        "head replaced by garbage",
        (sql("UPDATE audit_head SET envelope = X'7b7d'"),),
        ProblemKind.HEAD_MALFORMED,
        None,
        "head checkpoint: required field 'payload' is missing",
    ),
]


@pytest.mark.parametrize(
    ("tamper", "kind", "seq", "message"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_tampering_is_named(
    log: AuditLog,
    db_path: Path,
    key: PrivateKey,
    tamper: tuple[Step, ...],
    kind: ProblemKind,
    seq: int | None,
    message: str,
) -> None:
    fill(log, 5)
    assert log.verify().ok
    for step in tamper:
        step(db_path)
    outcome = log.verify()
    assert outcome.problem is not None
    assert outcome.problem.message.startswith(message.format(appliance=key.keyid[:16]))
    assert (outcome.problem.kind, outcome.problem.seq) == (kind, seq)
    assert not outcome.ok
    assert outcome.to_dict()["problem"]["kind"] == str(kind)


# --- anchoring with an exported checkpoint ---------------------------------------------------


def test_an_exported_checkpoint_exposes_a_rewrite_by_the_key_holder(
    log: AuditLog, db_path: Path, key: PrivateKey, tmp_path: Path
) -> None:
    fill(log, 5)
    exported = tmp_path / "head.json"
    head = log.head()
    assert head is not None
    exported.write_bytes(head.to_json())
    anchor = AuditHead.load(exported, key.public_key)
    assert (anchor.seq, anchor.hash) == (5, head.hash)
    fill(log, 2)
    assert log.verify(anchor=anchor).ok  # later appends extend the anchored log

    # Someone holding the appliance key rewrites record 2 and re-signs: only the anchor shows it.
    raw_edit(db_path, 'UPDATE audit_log SET result = \'{"outcome":"forged"}\' WHERE seq = 2')
    rechain(db_path, key)
    assert log.verify().ok
    outcome = log.verify(anchor=anchor)
    assert outcome.problem is not None
    assert (outcome.problem.kind, outcome.problem.seq) == (ProblemKind.ANCHOR, 5)
    assert outcome.problem.message == (
        "record 5: hash differs from the exported checkpoint of 2026-11-23T06:04:00Z "
        "(the log was rewritten since it was exported)"
    )

    # ... or truncates the log below the anchored length and re-signs.
    raw_edit(db_path, "DELETE FROM audit_log WHERE seq > 3")
    rechain(db_path, key)
    assert log.verify().ok
    outcome = log.verify(anchor=anchor)
    assert outcome.problem is not None
    assert outcome.problem.message == (
        "exported checkpoint of 2026-11-23T06:04:00Z says 5 records, log has 3 "
        "(records removed since it was exported)"
    )


def test_an_exported_checkpoint_must_verify(log: AuditLog, key: PrivateKey, tmp_path: Path) -> None:
    fill(log, 1)
    head = log.head()
    assert head is not None
    exported = tmp_path / "head.json"
    exported.write_bytes(head.to_json())
    with pytest.raises(HeadError) as info:
        AuditHead.load(exported, OTHER_KEY.public_key)
    assert info.value.kind is ProblemKind.HEAD_KEY
    assert info.value.message.startswith(f"{exported} is signed by key {key.keyid[:16]}, not")
    exported.write_bytes(b"{}")
    with pytest.raises(HeadError, match="required field 'payload' is missing"):
        AuditHead.load(exported, key.public_key)
    with pytest.raises(AuditError, match="cannot read head checkpoint"):
        AuditHead.load(tmp_path / "missing.json", key.public_key)


# --- concurrency -----------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys
    import time
    from datetime import UTC, datetime
    from pathlib import Path

    from appliance.store.audit import AuditAction, AuditLog
    from appliance.store.db import SqliteDatabase
    from appliance.store.postgres import PostgresDatabase
    from bundles.keys import PrivateKey

    target, key_path, name = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
    key = PrivateKey.load(key_path)
    (key_path.parent / f"ready-{name}").touch()
    deadline = time.monotonic() + 60
    while not (key_path.parent / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.005)
    if target.startswith("postgresql://"):
        opened = PostgresDatabase.connect(target, schema="state")
    else:
        opened = SqliteDatabase.open(Path(target))
    with opened as db:
        log = AuditLog(db, key=key)
        for i in range(50):
            log.append(
                AuditAction.SCAN,
                f"{name}-{i:02d}",
                actor=name,
                time=datetime(2026, 11, 23, tzinfo=UTC),
                inputs={},
                versions={},
                result={"i": i},
            )
            time.sleep(0.005)  # let the other writer in between appends
    """
)


def test_concurrent_processes_keep_one_chain(
    tmp_path: Path, key: PrivateKey, backend: str, open_db: Opener, request: pytest.FixtureRequest
) -> None:
    # not created yet: both writers race to create the schema and migrate it too
    if backend == "sqlite":
        target = str(tmp_path / "state.db")
    else:
        target = str(request.getfixturevalue("pg_url"))
    key_path = tmp_path / "appliance.key"
    key.save(key_path)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("STELLA_KEY_PASSPHRASE", None)
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, target, str(key_path), name],
            cwd=REPO,
            env=env,
            stderr=subprocess.PIPE,
        )
        for name in ("left", "right")
    ]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{n}").exists() for n in ("left", "right")):
        assert time.monotonic() < deadline, "writers did not start"
        assert all(w.poll() is None for w in writers), "a writer exited early"
        time.sleep(0.005)
    (tmp_path / "go").touch()  # both start appending at the same moment
    for writer in writers:
        _, err = writer.communicate(timeout=120)
        assert writer.returncode == 0, err.decode()
    with open_db() as db:
        log = AuditLog(db, key=key)
        outcome = log.verify()
        assert outcome.ok, outcome.problem
        assert outcome.records == 100
        records = log.records()
        assert [r.seq for r in records] == list(range(1, 101))
        for name in ("left", "right"):
            mine = [r.subject for r in records if r.actor == name]
            assert mine == [f"{name}-{i:02d}" for i in range(50)]
        switches = sum(a.actor != b.actor for a, b in itertools.pairwise(records))
        assert switches >= 2, "the writers never interleaved: concurrency was not exercised"
