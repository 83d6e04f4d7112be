"""The shared store helpers: connection settings, per-component migrations, transactions; the
tests of store semantics run on both backends (``backend``), the SQLite and PostgreSQL
specifics apart."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import pytest

from appliance.store.db import (
    LAYOUT_VERSION,
    Connection,
    Database,
    DatabaseBusyError,
    DatabaseError,
    MigrationStep,
    Schema,
    SchemaTooNewError,
    SqliteDatabase,
    split_statements,
)
from tests.appliance.store.conftest import Opener

V1 = "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
V2 = "ALTER TABLE items ADD COLUMN note TEXT; CREATE INDEX items_name ON items (name);"
PG = {V1: "CREATE TABLE items (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT);"}


def items(*steps: MigrationStep, component: str = "items") -> Schema:
    """The test table's schema, with its PostgreSQL twin where the SQL differs."""
    return Schema(
        component, steps, postgres=tuple(PG.get(s, s) if isinstance(s, str) else s for s in steps)
    )


@pytest.fixture
def db(open_db: Opener) -> Database:
    return open_db()


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Iterator[Database]:
    with SqliteDatabase.open(tmp_path / "state.db") as database:
        yield database


class Boom(Exception):
    pass


def insert_then_fail(db: Database, name: str) -> None:
    with db.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES (?)", (name,))
        raise Boom("after the insert")


def write_nothing(db: Database, what: str) -> None:
    with db.transaction(what):
        pass


def columns(db: Database, table: str) -> list[str]:
    cursor = db.connection.execute(f"SELECT * FROM {table} LIMIT 0")  # noqa: S608
    return [str(column[0]) for column in cursor.description]  # type: ignore[attr-defined]


def missing_table(backend: str, name: str) -> str:
    return f"no such table: {name}" if backend == "sqlite" else f'relation "{name}" does not exist'


def test_open_configures_wal_foreign_keys_durability_and_busy_timeout(tmp_path: Path) -> None:
    with SqliteDatabase.open(tmp_path / "s.db", busy_timeout=7.5) as db:
        assert db.query("PRAGMA journal_mode")[0][0] == "wal"
        assert db.query("PRAGMA foreign_keys")[0][0] == 1
        assert db.query("PRAGMA synchronous")[0][0] == 2  # FULL
        assert db.query("PRAGMA busy_timeout")[0][0] == 7500
        assert not db.in_transaction


def test_ensure_creates_then_upgrades_one_component(db: Database, backend: str) -> None:
    assert db.schema_version("items") == 0
    assert db.ensure(items(V1)) == 1
    db.connection.execute("INSERT INTO items (name) VALUES ('kept')")
    assert db.ensure(items(V1, V2)) == 2
    assert columns(db, "items") == ["id", "name", "note"]
    assert [r["name"] for r in db.query("SELECT name FROM items")] == ["kept"]
    assert db.schema_version("items") == 2
    layout = "PRAGMA user_version" if backend == "sqlite" else "SELECT version FROM stella_layout"
    assert db.query(layout)[0][0] == LAYOUT_VERSION
    assert db.ensure(items(V1, V2)) == 2  # idempotent


def test_components_are_versioned_independently(db: Database) -> None:
    db.ensure(items(V1, V2))
    db.ensure(Schema("other", ("CREATE TABLE other (x INTEGER);",)))
    versions = {r["component"]: r["version"] for r in db.query("SELECT * FROM schema_versions")}
    assert versions == {"items": 2, "other": 1}


def test_callable_migration_runs_inside_the_transaction(db: Database) -> None:
    seen: list[bool] = []

    def fill(conn: Connection) -> None:
        seen.append(db.in_transaction)
        conn.executemany("INSERT INTO items (name) VALUES (?)", [("a",), ("b",)])

    db.ensure(items(V1, fill))
    assert seen == [True]
    assert [r[0] for r in db.query("SELECT name FROM items ORDER BY id")] == ["a", "b"]


def test_failed_migration_leaves_the_previous_version(db: Database, backend: str) -> None:
    db.ensure(items(V1))
    broken = items(V1, "ALTER TABLE items ADD COLUMN note TEXT; SELECT * FROM nope;")
    with pytest.raises(DatabaseError) as info:
        db.ensure(broken)
    assert info.value.message == (
        f"{db.where}: cannot migrate the items tables: {missing_table(backend, 'nope')}"
    )
    assert db.schema_version("items") == 1
    assert columns(db, "items") == ["id", "name"]


def test_component_newer_than_the_program_is_refused(db: Database) -> None:
    db.ensure(items(V1, V2))
    with pytest.raises(SchemaTooNewError) as info:
        db.ensure(items(V1))
    assert info.value.message == (
        f"{db.where}: the items tables are at schema version 2, newer than this program "
        "understands (1)"
    )


def test_layout_newer_than_the_program_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {LAYOUT_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaTooNewError, match=r"database layout version 2 is newer"):
        SqliteDatabase.open(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseError) as info:
        SqliteDatabase.open(path)
    assert info.value.message.startswith(f"{path}: is not an SQLite database")


def test_transaction_commits_or_rolls_back(db: Database) -> None:
    db.ensure(items(V1))
    with db.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('one')")
    with pytest.raises(Boom, match="after the insert"):
        insert_then_fail(db, "two")
    assert [r[0] for r in db.query("SELECT name FROM items")] == ["one"]
    assert not db.in_transaction


def test_nested_transaction_is_a_savepoint(db: Database) -> None:
    db.ensure(items(V1))
    with db.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES ('outer')")
        with pytest.raises(Boom, match="after the insert"):
            insert_then_fail(db, "inner")
        assert db.in_transaction
    assert [r[0] for r in db.query("SELECT name FROM items")] == ["outer"]


def test_outer_rollback_undoes_the_nested_change(db: Database) -> None:
    db.ensure(items(V1))

    def nested_then_fail() -> None:
        with db.transaction() as conn:
            with db.transaction() as inner:
                inner.execute("INSERT INTO items (name) VALUES ('inner')")
            conn.execute("INSERT INTO items (name) VALUES ('outer')")
            raise Boom("outer fails")

    with pytest.raises(Boom, match="outer fails"):
        nested_then_fail()
    assert db.query("SELECT COUNT(*) FROM items")[0][0] == 0


def test_errors_in_a_transaction_name_the_database(db: Database, backend: str) -> None:
    with pytest.raises(DatabaseError) as info, db.transaction("add an item") as conn:
        conn.execute("INSERT INTO missing VALUES (?)", (1,))
    assert info.value.message == (
        f"{db.where}: cannot add an item: {missing_table(backend, 'missing')}"
    )
    assert not db.in_transaction


def test_no_writes_inside_a_read_snapshot(db: Database) -> None:
    with (
        db.snapshot(),
        pytest.raises(RuntimeError, match="cannot write inside a read snapshot"),
        db.transaction(),
    ):
        pass
    assert not db.in_transaction


def test_busy_database_is_a_clear_error(open_db: Opener) -> None:
    holder, waiter = open_db(), open_db(busy_timeout=0.05)
    with holder.transaction(), pytest.raises(DatabaseBusyError) as info:
        write_nothing(waiter, "append")
    assert info.value.message == f"{waiter.where}: database is locked by another process (append)"
    with waiter.transaction():  # free again once the holder committed
        pass


def test_two_writers_take_turns_and_readers_see_one_state(open_db: Opener) -> None:
    """A second connection's write waits for the first to commit (and then sees it); a read
    snapshot keeps seeing the state it started with while another connection commits."""
    first, second = open_db(), open_db()
    first.ensure(items(V1))
    with first.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES (?)", ("first",))
        waiter = threading.Thread(target=lambda: insert_counted(open_db(keep=False)))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()  # blocked on the write lock, not failed
    waiter.join(30)
    assert not waiter.is_alive()
    assert [r[0] for r in first.query("SELECT name FROM items ORDER BY id")] == [
        "first",
        "second saw 1",
    ]
    with first.snapshot() as conn:
        before = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        with second.transaction() as other:
            other.execute("INSERT INTO items (name) VALUES (?)", ("later",))
        assert conn.execute("SELECT COUNT(*) FROM items").fetchone()[0] == before
    assert first.query("SELECT COUNT(*) FROM items")[0][0] == before + 1


def insert_counted(db: Database) -> None:
    with db, db.transaction() as conn:
        seen = conn.execute("SELECT COUNT(*) FROM items").fetchone()[0]
        conn.execute("INSERT INTO items (name) VALUES (?)", (f"second saw {seen}",))


def test_rows_read_by_index_and_by_name(db: Database) -> None:
    db.ensure(items(V1))
    with db.transaction() as conn:
        conn.execute("INSERT INTO items (name) VALUES (?)", ("it's 100% ?",))
    row = db.query("SELECT id, name FROM items WHERE name LIKE '%?'")[0]
    assert (row[1], row["name"], row["id"]) == ("it's 100% ?", "it's 100% ?", row[0])
    assert [tuple(r) for r in db.query("SELECT name, ? FROM items", ("x",))] == [
        ("it's 100% ?", "x")
    ]


def test_split_statements_keeps_triggers_and_strings_whole() -> None:
    script = """
        CREATE TABLE t (x TEXT);
        INSERT INTO t VALUES ('a;b');
        CREATE TRIGGER t_guard BEFORE DELETE ON t
        BEGIN SELECT RAISE(ABORT, 'no; never'); END;
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert statements[1] == "INSERT INTO t VALUES ('a;b');"
    assert statements[2].startswith("CREATE TRIGGER")
    assert statements[2].endswith("END;")


def test_split_statements_refuses_an_unfinished_statement() -> None:
    with pytest.raises(ValueError, match="incomplete SQL statement"):
        split_statements("CREATE TABLE t (x TEXT); CREATE TRIGGER g BEFORE DELETE ON t BEGIN")


@pytest.mark.parametrize(
    ("component", "migrations", "message"),
    [
        ("", (V1,), "schema component name '' is not allowed"),
        ("bad name", (V1,), "schema component name 'bad name' is not allowed"),
        ("items", (), "schema 'items' has no migrations"),
    ],
)
def test_schema_is_validated(component: str, migrations: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Schema(component, migrations)


class _LockedAtFirst:
    """A connection whose WAL switch is refused ``times`` times, as SQLite refuses one of two
    processes converting the same new file (failure injection)."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.calls = 0

    def execute(self, sql: str) -> sqlite3.Cursor:
        self.calls += 1
        if self.calls <= self.times:
            raise sqlite3.OperationalError("database is locked")
        return sqlite3.connect(":memory:").execute("SELECT 'wal'")


def test_wal_switch_waits_for_the_other_process() -> None:
    from appliance.store.db import _switch_to_wal

    conn = _LockedAtFirst(times=3)
    # the stand-in answers execute() only, all the switch asks of a connection
    assert _switch_to_wal(cast(sqlite3.Connection, conn), busy_timeout=5.0) == "wal"
    assert conn.calls == 4


def test_wal_switch_gives_up_at_the_busy_timeout() -> None:
    from appliance.store.db import _switch_to_wal

    conn = _LockedAtFirst(times=10**9)
    with pytest.raises(sqlite3.OperationalError, match="database is locked"):
        _switch_to_wal(cast(sqlite3.Connection, conn), busy_timeout=0.05)
    assert 1 < conn.calls < 100


def test_bulk_insert_skips_conflicts_inside_or_outside_a_transaction(db: Database) -> None:
    db.ensure(Schema("pairs", ("CREATE TABLE pairs (k TEXT PRIMARY KEY, v BLOB);",),
                     postgres=("CREATE TABLE pairs (k TEXT PRIMARY KEY, v BYTEA);",)))  # fmt: skip
    db.bulk_insert("pairs", ("k", "v"), [("a", b"1"), ("b", b"\x00\n")])
    with db.transaction():
        db.bulk_insert("pairs", ("k", "v"), [("a", b"2"), ("c", b"3")], ignore_conflicts=True)
    rows = db.query("SELECT k, v FROM pairs ORDER BY k")
    assert [(r[0], bytes(r[1])) for r in rows] == [("a", b"1"), ("b", b"\x00\n"), ("c", b"3")]
    with pytest.raises(DatabaseError), db.transaction():
        db.bulk_insert("pairs", ("k", "v"), [("a", b"9")])  # a conflict not asked to be skipped
    assert db.query("SELECT COUNT(*) FROM pairs")[0][0] == 3
