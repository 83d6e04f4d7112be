"""The PostgreSQL backend's own parts (placeholders, URLs without passwords, schemas, a lost
connection) and the state stores' semantics on both backends."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from appliance.home import DATABASE_URL_ENV, Home
from appliance.store import open_state
from appliance.store.audit import AuditAction, AuditLog
from appliance.store.components import SCHEMA, ComponentIndex
from appliance.store.db import Database, DatabaseError, Schema, SchemaTooNewError
from appliance.store.postgres import PostgresDatabase, redact, translate
from appliance.store.verdicts import VerdictRow, VerdictStore
from appliance.store.vex import StatementRow, StoredDocument, VexStore, VexStoreError
from bundles.keys import KeyType, PrivateKey
from tests.appliance.store.conftest import Opener
from tests.appliance.store.test_audit import fill


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT ? , ?", "SELECT %s , %s"),
        ("WHERE id LIKE 'GHSA-%' AND x = ?", "WHERE id LIKE 'GHSA-%%' AND x = %s"),
        (
            "SELECT 'why?', \"odd?\" FROM t WHERE a = ?",
            "SELECT 'why?', \"odd?\" FROM t WHERE a = %s",
        ),
        ("SELECT 'it''s ?' || ?", "SELECT 'it''s ?' || %s"),
    ],
)
def test_placeholders_are_translated_outside_quotes(sql: str, expected: str) -> None:
    assert translate(sql) == expected


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://stella:s3cret@db:5432/stella", "postgresql://stella@db:5432/stella"),
        ("postgresql://stella@db/stella?password=s3cret&sslmode=verify-full",
         "postgresql://stella@db/stella?sslmode=verify-full"),
        ("postgresql://:s3cret@db/stella", "postgresql://db/stella"),
        ("postgresql://db/stella", "postgresql://db/stella"),
    ],
)  # fmt: skip
def test_urls_are_shown_without_their_password(url: str, shown: str) -> None:
    assert redact(url) == shown


def test_a_layout_newer_than_the_program_is_refused(pg_url: str) -> None:
    with PostgresDatabase.connect(pg_url, schema="state") as db, db.transaction() as conn:
        conn.execute("CREATE TABLE stella_layout (version BIGINT PRIMARY KEY)")
        conn.execute("INSERT INTO stella_layout VALUES (?)", (2,))
    with pytest.raises(SchemaTooNewError) as info:
        PostgresDatabase.connect(pg_url, schema="state")
    assert info.value.message == (
        f"{pg_url} (schema state): database layout version 2 is newer than this program "
        "understands (1)"
    )


def test_a_bad_schema_name_is_refused_before_connecting() -> None:
    with pytest.raises(DatabaseError, match=r"schema name 'State; DROP' is not allowed"):
        PostgresDatabase.connect("postgresql://nobody@127.0.0.1:1/x", schema="State; DROP")


def _killed_mid_transaction(db: Database, pg_url: str) -> None:
    """Start a change, have the server end this connection (as a restart would), go on."""
    pid = db.query("SELECT pg_backend_pid()")[0][0]
    with db.transaction("append") as conn:
        conn.execute("CREATE TABLE scratch (x BIGINT)")
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.execute("SELECT 1")


def test_a_lost_connection_is_a_clear_error_and_nothing_is_committed(pg_url: str) -> None:
    key = PrivateKey.generate(KeyType.ECDSA_P256)
    with PostgresDatabase.connect(pg_url, schema="state") as db:
        fill(AuditLog(db, key=key), 2)
        with pytest.raises(DatabaseError) as info:
            _killed_mid_transaction(db, pg_url)
    assert info.value.message.startswith(f"{pg_url} (schema state): connection lost (append): ")
    with PostgresDatabase.connect(pg_url, schema="state") as db:
        assert AuditLog(db, public_key=key.public_key).verify().records == 2
        assert db.query("SELECT to_regclass('scratch')")[0][0] is None


def test_state_schemas_keep_tenants_apart(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    home = Home(tmp_path / "home")
    home.init()
    key = PrivateKey.generate(KeyType.ECDSA_P256)
    with open_state(home, schema="tenant_a") as a:
        fill(AuditLog(a, key=key), 3)
        assert a.where.endswith("(schema tenant_a)")
    with open_state(home, schema="tenant_b") as b:
        assert AuditLog(b, key=key).count() == 0
    with open_state(home) as default, open_state(home, schema="tenant_a") as a:
        assert (AuditLog(default).count(), AuditLog(a).count()) == (0, 3)


# --- the state stores, on both backends -------------------------------------------------------


def test_vex_documents_are_stored_once_and_never_changed(open_db: Opener) -> None:
    db = open_db()
    store = VexStore(db)
    document = StoredDocument("sha256:aa", "doc-1", "operator", "", b"{}", "2026-01-01", "me")
    statement = StatementRow(
        "doc-1#0", "cve-2024-1", "not_affected", "2026-01-01", None, "", {"a": 1}
    )
    assert store.add(document, [statement]) is True
    assert store.add(document, [statement]) is False
    assert store.statement("doc-1#0") == {"a": 1}
    other = StoredDocument("sha256:bb", "doc-2", "operator", "", b"{}", "2026-01-02", "me")
    with pytest.raises(VexStoreError, match="VEX statement doc-1#0 is already stored"):
        store.add(other, [statement])
    assert [d.digest for d in store.documents()] == ["sha256:aa"]
    assert store.documents()[0].envelope == b"{}"
    for sql, message in (
        ("UPDATE vex_statements SET status = 'affected'", "VEX statements are never changed"),
        ("DELETE FROM vex_documents", "VEX documents are never deleted"),
    ):
        with pytest.raises(DatabaseError, match=message), db.transaction() as conn:
            conn.execute(sql)


def test_verdicts_take_increasing_ids_and_are_never_deleted(open_db: Opener) -> None:
    db = open_db()
    store = VerdictStore(db)
    row = VerdictRow(
        "sha256:img", "app", "PASS", "2026-01-01T00:00:00Z", "sha256:p", None,
        "sha256:pr", "sha256:b", "sha256:r", ("RISK.NONE",), 1,
    )  # fmt: skip
    first, second = store.add(row), store.add(row)
    assert second > first
    assert [r.reason_codes for r in store.history("sha256:img")] == [("RISK.NONE",)] * 2
    with pytest.raises(DatabaseError, match="verdicts are never deleted"), db.transaction() as c:
        c.execute("DELETE FROM verdicts")


def test_the_component_index_replaces_an_entry_whole(open_db: Opener) -> None:
    index = ComponentIndex(open_db())
    index.put(
        "sha256:a", snapshot="s1", vex="v", indexed="t",
        keys=[("PyPI", "requests"), ("PyPI", "requests")], cves=["CVE-1"],
    )  # fmt: skip
    index.put("sha256:b", snapshot=None, vex="v", indexed="t", keys=[("npm", "x")], cves=[])
    assert index.holders([("PyPI", "requests"), ("npm", "x")], ["CVE-1"]) == {
        "sha256:a": "PyPI/requests",
        "sha256:b": "npm/x",
    }
    index.put("sha256:a", snapshot="s2", vex="v", indexed="t2", keys=[], cves=["CVE-2"])
    assert index.keys_of("sha256:a") == frozenset()
    assert index.cves_of("sha256:a") == frozenset({"CVE-2"})
    assert index.images()["sha256:a"].snapshot == "s2"
    assert index.images()["sha256:b"].snapshot is None
    assert not index.images()["sha256:a"].probed  # no versions given: selected by key

    # versions: each key's probes, read back by key and by subject, replaced whole
    probes = [
        ("PyPI", "requests", "2.19.0", False, None),
        ("Red Hat:9", "nodejs", "1:20.1-1", True, "nodejs:20"),
    ]
    index.put("sha256:c", snapshot="s2", vex="v", indexed="t", keys=[], cves=[], probes=probes)
    index.put("sha256:d", snapshot="s2", vex="v", indexed="t", keys=[], cves=[], probes=probes[:1])
    assert index.images()["sha256:c"].probed
    assert index.keys_of("sha256:c") == {("PyPI", "requests"), ("Red Hat:9", "nodejs")}
    assert index.probes_of("sha256:c") == frozenset(probes)
    assert index.probes([("PyPI", "requests")]) == {probes[0]: {"sha256:c", "sha256:d"}}
    index.put("sha256:c", snapshot="s3", vex="v", indexed="t", keys=[], cves=[], probes=[])
    assert index.probes_of("sha256:c") == frozenset()
    assert index.images()["sha256:c"].probed


def test_an_entry_indexed_before_versions_were_kept_is_selected_by_key(open_db: Opener) -> None:
    db: Database = open_db()
    first = Schema("components", SCHEMA.migrations[:1], postgres=(SCHEMA.postgres or ())[:1])
    assert db.ensure(first) == 1
    with db.transaction() as conn:
        conn.execute("INSERT INTO component_images VALUES ('sha256:old', 's1', 'v', 't')")
        conn.execute("INSERT INTO component_keys VALUES ('PyPI', 'urllib3', 'sha256:old')")
    index = ComponentIndex(db)  # migrates to version 2
    assert db.schema_version("components") == SCHEMA.version == 2
    assert not index.images()["sha256:old"].probed
    assert index.keys_of("sha256:old") == {("PyPI", "urllib3")}
    assert index.probes([("PyPI", "urllib3")]) == {}
    probe = ("PyPI", "urllib3", "1.26.5", False, None)
    index.put("sha256:old", snapshot="s2", vex="v", indexed="t", keys=[], cves=[], probes=[probe])
    assert index.images()["sha256:old"].probed
    assert index.probes([("PyPI", "urllib3")]) == {probe: {"sha256:old"}}


def test_the_audit_log_filters_and_limits_alike(open_db: Opener) -> None:
    db: Database = open_db()
    log = AuditLog(db, key=PrivateKey.generate(KeyType.ECDSA_P256))
    fill(log, 5)
    assert [r.seq for r in log.records(limit=2)] == [4, 5]
    assert [r.seq for r in log.records(limit=0)] == []
    assert len(log.records(action=AuditAction.SCAN.value)) == len(
        [r for r in log.records() if r.action == "scan"]
    )


@pytest.mark.parametrize(
    ("statement", "kind", "seq"),
    [
        ('UPDATE audit_log SET result = \'{"outcome":"forged"}\' WHERE seq = 2', "hash", 2),
        ("DELETE FROM audit_log WHERE seq > 3", "truncated", 4),
        ("UPDATE audit_log SET subject = 'other' WHERE seq = 4", "hash", 4),
    ],
    ids=["edited", "truncated", "last-replaced"],
)
def test_tampering_in_postgresql_is_named(pg_url: str, statement: str, kind: str, seq: int) -> None:
    """An intruder with the database owner's rights turns the append-only triggers off and
    edits the rows: verification names what was done, as it does for the file."""
    key = PrivateKey.generate(KeyType.ECDSA_P256)
    with PostgresDatabase.connect(pg_url, schema="state") as db:
        log = AuditLog(db, key=key)
        fill(log, 5)
        with psycopg.connect(pg_url, autocommit=True) as intruder:
            intruder.execute("SET search_path = state")
            intruder.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
            intruder.execute(statement.encode())
        outcome = log.verify()
    assert outcome.problem is not None
    assert (str(outcome.problem.kind), outcome.problem.seq) == (kind, seq)
