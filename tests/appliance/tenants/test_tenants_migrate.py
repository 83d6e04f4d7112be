"""``stella migrate`` of a home with tenants, through the real command line and a real server:
the shared knowledge moves once, the home's state into ``state``, each tenant's state into its
own schema, all in one transaction; every tenant then answers from PostgreSQL as it did from its
files. A failure in a later tenant leaves nothing in the database, and the run that follows the
repair starts clean; what cannot move is refused before anything is written. Then each tenant
gets a role of its own (``stella tenants roles --apply``), and the server refuses it every
schema but its own and the shared knowledge."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appliance import tenancy
from appliance.home import DATABASE_URL_ENV, Home
from appliance.store import components
from appliance.store.db import SqliteDatabase
from appliance.store.migrate import tenant_url
from appliance.store.postgres import PostgresDatabase
from tests.appliance.homes import SITE, install_knowledge
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.appliance.tenants.test_tenants import AT, ok, run
from tests.postgres import SUPERUSER

TENANTS = ("acme", "globex", "initech")


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded home with shared knowledge and three tenants: acme and globex each gated
    an image (FAIL, from the shared knowledge); initech was created and did nothing since."""
    monkeypatch.delenv(tenancy.ENV, raising=False)
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    base = tmp_path / "home"
    ok(base, "init")
    install_knowledge(Home(base))
    for name in TENANTS:
        ok(base, "--tenant", name, "init")
    layout = tmp_path / "layout"
    build_image(layout, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    for name in ("acme", "globex"):
        ok(base, "--tenant", name, "images", "load", f"oci:{layout}", "--tag", "app:1")
        code, _, err = run(base, "--tenant", name, "gate", "app:1", "--at", AT)
        assert code == 3, err
    return base


def tables(url: str) -> dict[str, int]:
    """Every table the database holds, as ``schema.table``: its row count."""
    with psycopg.connect(url) as conn:
        names = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')"
            " ORDER BY 1, 2"
        ).fetchall()
        counts = {}
        for schema, table in names:
            row = conn.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchone()  # noqa: S608 - names from the catalog
            counts[f"{schema}.{table}"] = int(row[0]) if row is not None else 0
        return counts


def settings(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def configs(base: Path) -> list[Path]:
    return [base / "config.json", *(base / "tenants" / n / "config.json" for n in TENANTS)]


def one_error(err: str) -> str:
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.startswith("stella: error: ")]
    assert len(lines) == 1, err
    return lines[0].removeprefix("stella: error: ")


def test_migrate_moves_the_shared_knowledge_once_and_each_tenant_to_its_schema(
    embedded: Path, pg_url: str
) -> None:
    base = embedded
    before = {
        name: (
            ok(base, "--tenant", name, "audit", "verify"),
            ok(base, "--tenant", name, "audit", "list")["records"],
            ok(base, "--tenant", name, "images", "list")["images"],
        )
        for name in TENANTS
    }
    dry = ok(base, "migrate", "--to", pg_url, "--dry-run")
    assert dry["dryRun"] is True
    assert [t["tenant"] for t in dry["tenants"]] == list(TENANTS)
    assert {t["tenant"]: t["auditRecords"] for t in dry["tenants"]} == {
        name: before[name][0]["records"] for name in TENANTS
    }
    assert tables(pg_url) == {}  # rolled back, every store
    assert all("databaseUrl" not in settings(p) for p in configs(base))

    moved = ok(base, "migrate", "--to", pg_url)
    assert [(s["store"], s["schema"], s["tenant"]) for s in moved["stores"]] == [
        ("knowledge", "knowledge", None),
        ("state", "state", None),
    ]
    assert [(t["store"], t["schema"], t["tenant"]) for t in moved["tenants"]] == [
        ("state", tenancy.pg_schema(name), name) for name in TENANTS
    ]
    for tenant, rehearsed in zip(moved["tenants"], dry["tenants"], strict=True):
        assert tenant["tables"] == rehearsed["tables"]
        assert tenant["digests"] == rehearsed["digests"]
        assert set(tenant["digests"]) == set(tenant["tables"])
        assert tenant["source"] == str(base / "tenants" / tenant["tenant"] / "state.db")
    held = tables(pg_url)
    for tenant in moved["tenants"]:
        for table, rows in tenant["tables"].items():
            assert held[f"{tenant['schema']}.{table}"] == rows
    assert held["tenant_acme.verdicts"] == held["tenant_globex.verdicts"] == 1
    assert held["tenant_initech.verdicts"] == held["state.verdicts"] == 0
    # the knowledge exists once, in its own schema: no tenant schema holds a copy of it
    knowledge = {t.split(".", 1)[1] for t in held if t.startswith("knowledge.")}
    for name in TENANTS:
        own = {t.split(".", 1)[1] for t in held if t.startswith(f"tenant_{name}.")}
        assert not (own & knowledge - {"schema_versions", "stella_layout"})
    for path in configs(base):
        assert settings(path)["databaseUrl"] == pg_url, path

    # the files are kept but no longer read: each tenant answers from PostgreSQL alike
    for db in [base / "knowledge.db", base / "state.db"] + [
        base / "tenants" / n / "state.db" for n in TENANTS
    ]:
        if db.exists():
            db.rename(db.with_suffix(".db.moved"))
    for name in TENANTS:
        assert ok(base, "--tenant", name, "audit", "verify") == before[name][0]
        assert ok(base, "--tenant", name, "audit", "list")["records"] == before[name][1]
        assert ok(base, "--tenant", name, "images", "list")["images"] == before[name][2]
    # and keeps working: the shared knowledge still fails the image, in the tenant's schema
    code, _, err = run(base, "--tenant", "acme", "gate", "app:1", "--at", AT)
    assert code == 3, err
    assert tables(pg_url)["tenant_acme.verdicts"] == 2
    assert tables(pg_url)["tenant_globex.verdicts"] == 1
    code, _, err = run(base, "migrate", "--to", pg_url)
    assert code == 1
    assert "the home already uses the database" in one_error(err)


def test_a_failure_in_a_later_tenant_leaves_nothing_and_the_next_run_starts_clean(
    embedded: Path, pg_url: str
) -> None:
    """A damaged row in globex's store (a NUL character, which SQLite keeps and PostgreSQL
    refuses) fails the copy after the knowledge, the home's state and acme were copied."""
    damaged = embedded / "tenants" / "globex" / "state.db"
    with SqliteDatabase.open(damaged) as db:
        db.ensure(components.SCHEMA)  # the component index, as the first rescan makes it
    raw = sqlite3.connect(damaged, isolation_level=None)
    try:
        raw.execute(
            "INSERT INTO component_images (subject, snapshot, vex, indexed) "
            "VALUES ('sha256:damaged', NULL, 'a' || char(0) || 'b', '2026-12-01T00:00:00Z')"
        )
    finally:
        raw.close()
    code, _, err = run(embedded, "migrate", "--to", pg_url)
    assert code == 1
    line = one_error(err)
    assert line.startswith("tenant 'globex' (4 of 5 stores): "), line
    assert "cannot copy table component_images: " in line, line
    assert "0x00" in line, line
    assert "nothing was committed" in line, line
    assert "run stella migrate again" in line, line
    assert tables(pg_url) == {}  # knowledge, state and acme's copies went with it
    assert all("databaseUrl" not in settings(p) for p in configs(embedded))

    raw = sqlite3.connect(damaged, isolation_level=None)
    try:
        raw.execute("DELETE FROM component_images WHERE subject = 'sha256:damaged'")
    finally:
        raw.close()
    moved = ok(embedded, "migrate", "--to", pg_url)  # no --force needed: nothing stayed
    assert [t["tenant"] for t in moved["tenants"]] == list(TENANTS)
    assert ok(embedded, "--tenant", "globex", "audit", "verify")["ok"] is True


def test_what_cannot_move_is_refused_before_anything_is_written(
    embedded: Path, pg_url: str
) -> None:
    # a tenant cannot run the move of the whole home
    code, _, err = run(embedded, "--tenant", "acme", "migrate", "--to", pg_url)
    assert code == 1
    assert one_error(err).startswith("tenant 'acme': stella migrate moves the whole home")

    # a tenant's audit log that does not verify (with that tenant's key) is evidence: the
    # last tenant's refusal comes before the first store is written
    state = embedded / "tenants" / "globex" / "state.db"
    saved = state.read_bytes()
    raw = sqlite3.connect(state, isolation_level=None)
    try:
        raw.execute("DROP TRIGGER audit_log_no_update")
        raw.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    finally:
        raw.close()
    code, _, err = run(embedded, "migrate", "--to", pg_url)
    assert code == 1
    assert one_error(err).startswith(
        f"{state}: the audit log does not verify: record 1: hash mismatch"
    )
    assert tables(pg_url) == {}
    state.write_bytes(saved)

    # a tenant with knowledge of its own: on PostgreSQL the knowledge is shared
    own = embedded / "tenants" / "globex" / "knowledge.db"
    own.write_bytes(b"")
    code, _, err = run(embedded, "migrate", "--to", pg_url)
    assert code == 1
    assert one_error(err).startswith(
        f"{own}: tenant 'globex' has knowledge of its own; on PostgreSQL every tenant reads "
        "the shared knowledge"
    )
    own.unlink()
    assert tables(pg_url) == {}

    # a tenant's schema that already holds tables: refused, then replaced with --force
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA tenant_initech")
        conn.execute("CREATE TABLE tenant_initech.leftover (x int)")
    code, _, err = run(embedded, "migrate", "--to", pg_url)
    assert code == 1
    assert one_error(err).startswith(
        f"{pg_url} (schema tenant_initech): is not empty (tables leftover)"
    )
    assert set(tables(pg_url)) == {"tenant_initech.leftover"}
    forced = ok(embedded, "migrate", "--to", pg_url, "--force")
    assert [t["tenant"] for t in forced["tenants"]] == list(TENANTS)
    assert "tenant_initech.leftover" not in tables(pg_url)


def denied(url: str, sql: str) -> bool:
    """Whether the server refuses ``sql`` to the role of ``url`` for want of privileges."""
    with psycopg.connect(url) as conn:
        try:
            conn.execute(sql)
        except psycopg.errors.InsufficientPrivilege:
            return True
    return False


def test_each_tenant_gets_a_role_that_reaches_its_schema_and_the_knowledge_only(
    embedded: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The stores are moved, and the roles given, by a role that owns the database and may
    create roles, not a superuser (as docs/scale-out.md sets a site up)."""
    server, database = pg_url.rsplit("/", 1)
    owner = f"owner_{database}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f'CREATE ROLE "{owner}" LOGIN')
        conn.execute(f'ALTER DATABASE "{database}" OWNER TO "{owner}"')
    site = server.replace(f"//{SUPERUSER}@", f"//{owner}@", 1) + "/" + database
    ok(embedded, "migrate", "--to", site)
    printed = ok(embedded, "tenants", "roles")
    assert printed["applied"] is False
    assert [
        (t["tenant"], t["role"], t["schema"], t["queueSchema"]) for t in printed["tenants"]
    ] == [
        (name, f"stella_tenant_{name}", f"tenant_{name}", f"tenant_{name}_queue")
        for name in TENANTS
    ]
    code, text, _ = run(embedded, "tenants", "roles", "acme")  # the statements, for a DBA
    assert code == 0
    assert text.startswith(
        "-- tenant acme: role stella_tenant_acme, schema tenant_acme, queue tenant_acme_queue\n"
    )
    assert 'ALTER SCHEMA "tenant_acme_queue" OWNER TO "stella_tenant_acme"' in text
    assert 'GRANT SELECT ON ALL TABLES IN SCHEMA "knowledge" TO "stella_tenant_acme"' in text
    assert "globex" not in text
    assert all("databaseUrl" in settings(p) for p in configs(embedded))
    assert settings(embedded / "tenants" / "acme" / "config.json")["databaseUrl"] == site

    code, _, err = run(embedded, "tenants", "roles", "--apply")  # not allowed to create roles
    assert code == 1
    line = one_error(err)
    assert line.startswith(f"tenant 'acme': {site} (schema knowledge): cannot give tenant"), line
    assert "permission denied to create role" in line, line
    assert "nothing was changed" in line, line
    with psycopg.connect(pg_url, autocommit=True) as conn:
        made = conn.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'stella_tenant%'")
        assert made.fetchall() == []  # the failed run created no role
        conn.execute(f'ALTER ROLE "{owner}" CREATEROLE')
    applied = ok(embedded, "tenants", "roles", "--apply")
    assert applied["applied"] is True
    again = ok(embedded, "tenants", "roles", "--apply")  # re-running changes nothing
    assert again["tenants"] == applied["tenants"]
    host = pg_url.split("@", 1)[1]
    acme, globex = (f"postgresql://stella_tenant_{n}@{host}" for n in ("acme", "globex"))
    assert settings(embedded / "tenants" / "acme" / "config.json")["databaseUrl"] == acme
    assert settings(embedded / "config.json")["databaseUrl"] == site

    # the server, not the program, keeps acme out of the others' schemas
    assert not denied(acme, "SELECT count(*) FROM tenant_acme.verdicts")
    assert not denied(acme, "SELECT count(*) FROM knowledge.schema_versions")
    assert denied(acme, "SELECT count(*) FROM tenant_globex.verdicts")
    assert denied(acme, "SELECT count(*) FROM state.audit_log")
    assert denied(acme, "DELETE FROM knowledge.schema_versions")
    assert denied(globex, "SELECT count(*) FROM tenant_acme.audit_log")

    # each tenant works through its own role: the gate reads the shared knowledge and writes
    # the tenant's schema; its audit log still verifies
    code, _, err = run(embedded, "--tenant", "acme", "gate", "app:1", "--at", AT)
    assert code == 3, err
    assert tables(pg_url)["tenant_acme.verdicts"] == 2
    assert ok(embedded, "--tenant", "acme", "audit", "verify")["ok"] is True
    # and a process that names the wrong tenant is refused by the server itself
    monkeypatch.setenv(DATABASE_URL_ENV, acme)
    code, _, err = run(embedded, "--tenant", "globex", "audit", "verify")
    assert code == 1
    assert one_error(err) == (
        f"{acme} (schema tenant_globex): the database role stella_tenant_acme may not use this "
        "schema (each tenant's role reaches only its own schema and the shared knowledge "
        "('stella tenants roles'): connect with the role of the tenant whose store this is)"
    )


def test_a_copy_whose_content_differs_from_the_file_is_not_committed(
    embedded: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Failure injection: the copy of globex's verdicts alters one value on the way (same
    row count); the digest read back from PostgreSQL differs from the file's."""
    real = PostgresDatabase.bulk_insert

    def altering(
        self: PostgresDatabase, table: str, columns: Any, rows: Any, **options: Any
    ) -> None:
        if self.schema == "tenant_globex" and table == "verdicts":
            first = list(rows[0])
            first[list(columns).index("name")] = "other"
            rows = [tuple(first), *rows[1:]]
        real(self, table, columns, rows, **options)

    monkeypatch.setattr(PostgresDatabase, "bulk_insert", altering)
    code, _, err = run(embedded, "migrate", "--to", pg_url)
    assert code == 1
    line = one_error(err)
    assert line.startswith("tenant 'globex' (4 of 5 stores): "), line
    assert "(schema tenant_globex): table verdicts holds other values after the copy than" in line
    assert tables(pg_url) == {}


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://stella@db:5432/site", "postgresql://stella_tenant_acme@db:5432/site"),
        ("postgresql://db/site", "postgresql://stella_tenant_acme@db/site"),
        (
            "postgresql://stella:s3cret@db/site?sslmode=verify-full&password=x",
            "postgresql://stella_tenant_acme@db/site?sslmode=verify-full",
        ),
    ],
    ids=["user", "no-user", "password-and-parameters"],
)
def test_a_tenants_url_names_its_role_and_keeps_no_password(url: str, expected: str) -> None:
    assert tenant_url(url, "acme") == expected
