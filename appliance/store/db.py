"""What every SQLite store of the appliance shares: how a database is opened, how its schema
grows, and how a change becomes one transaction.

A database (``state.db``, ``knowledge.db``) is shared by several stores, each owning its own
tables: the audit log, images, scans, VEX, verdicts. Each store declares a :class:`Schema`, an
ordered list of migrations under a component name, and calls :meth:`Database.ensure` before
using its tables; stores are developed and upgraded independently, so no central list of every
table is needed. The version each component reached is kept in the ``schema_versions`` table;
``PRAGMA user_version`` holds the version of that bookkeeping itself, so a database written by
a newer program (with a layout this one does not understand) is refused instead of misread.

Every connection runs in WAL mode (readers never block the one writer), with foreign keys
enforced, ``synchronous=FULL`` (a committed decision survives a power cut) and a busy timeout
(concurrent processes wait for each other instead of failing). Writes go through
:meth:`Database.transaction`: ``BEGIN IMMEDIATE`` takes the write lock up front, so a
read-then-write sequence (the next audit sequence number, for example) cannot interleave with
another process; a nested call becomes a savepoint of the outer transaction, so a store's
change and its audit record commit together or not at all.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from appliance import tenancy
from bundles.errors import StellaError

LAYOUT_VERSION: Final = 1
"""``PRAGMA user_version`` of a database whose components are versioned in
``schema_versions``."""

DEFAULT_BUSY_TIMEOUT: Final = 30.0
"""Seconds a connection waits for another process's write lock before giving up."""

MigrationStep = str | Callable[[sqlite3.Connection], None]
"""One migration: an SQL script (one or more statements), or a function given the connection
inside the migration's transaction (for changes SQL alone cannot express)."""


class StoreError(StellaError):
    """A store on the appliance cannot be opened, read or written."""


class DatabaseError(StoreError):
    """SQLite refused an operation; the message names the database file."""


class DatabaseBusyError(DatabaseError):
    """Another process held the database's write lock for longer than the busy timeout."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer program than this one."""


@dataclass(frozen=True, slots=True)
class Schema:
    """The tables of one store, as the ordered migrations that create and change them.

    Migration *n* (1-based) brings the component from version *n - 1* to *n*. Migrations are
    only ever appended: a released migration is never edited, since databases in the field
    have already applied it.
    """

    component: str
    migrations: tuple[MigrationStep, ...]

    def __post_init__(self) -> None:
        if not self.component or not self.component.replace(".", "").replace("_", "").isalnum():
            raise ValueError(f"schema component name {self.component!r} is not allowed")
        if not self.migrations:
            raise ValueError(f"schema {self.component!r} has no migrations")

    @property
    def version(self) -> int:
        """The version a database has once every migration has been applied."""
        return len(self.migrations)


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (semicolons inside strings and trigger
    bodies included), because ``executescript`` would commit the open transaction."""
    statements: list[str] = []
    pending = ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \t\r\n;"):
                statements.append(pending.strip())
            pending = ""
    if pending.strip(" \t\r\n;"):
        raise ValueError(f"incomplete SQL statement at the end of the script: {pending.strip()!r}")
    return statements


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout: float) -> str:
    """Set WAL mode and return the journal mode now in force.

    When two processes convert the same new file at once, both hold a shared lock and want
    an exclusive one; SQLite refuses one of them "database is locked" at once, without the
    busy handler (waiting could deadlock), so two commands starting together on a new home
    saw one of them fail. Retry here, up to the busy timeout, as for any other lock.
    """
    deadline = time.monotonic() + busy_timeout
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


class Database:
    """One connection to one SQLite database file, configured as every store needs it.

    Not shared between threads; each process or thread opens its own.
    """

    __slots__ = ("_conn", "_depth", "_reading", "path")

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._depth = 0  # open transaction() and snapshot() blocks
        self._reading = False  # the outermost block is a snapshot()

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> Database:
        """Open (creating when missing) the database at ``path``.

        The connection is in autocommit mode: nothing is written outside an explicit
        :meth:`transaction`.
        """
        try:
            if tenancy.opens_read_only(path):  # a tenant reading the shared knowledge store
                conn = sqlite3.connect(
                    tenancy.read_only_uri(path),
                    timeout=busy_timeout,
                    isolation_level=None,
                    uri=True,
                )
            else:
                conn = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None)
        except sqlite3.Error as e:
            raise DatabaseError(
                f"{path}: cannot open database: {e}",
                hint="check that the directory exists and is writable by the appliance user",
            ) from e
        db = cls(conn, path)
        try:
            conn.row_factory = sqlite3.Row
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            mode = _switch_to_wal(conn, busy_timeout)
            if str(mode).lower() != "wal":
                raise DatabaseError(
                    f"{path}: cannot switch the database to WAL mode (journal mode is {mode})",
                    hint="the file system may not support shared memory; keep the home on a "
                    "local disk",
                )
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA synchronous = FULL")
            db._check_layout()
        except sqlite3.Error as e:
            conn.close()
            raise db._wrap(e, "configure") from e
        except StoreError:
            conn.close()
            raise
        return db

    def _wrap(self, error: sqlite3.Error, doing: str) -> DatabaseError:
        text = str(error)
        if isinstance(error, sqlite3.OperationalError) and "locked" in text:
            return DatabaseBusyError(
                f"{self.path}: database is locked by another process ({doing})",
                hint="another stella command is writing; retry when it has finished",
            )
        if isinstance(error, sqlite3.DatabaseError) and "not a database" in text:
            return DatabaseError(
                f"{self.path}: is not an SQLite database ({text})",
                hint="the file is damaged or is not the appliance's database; restore it "
                "from a backup",
            )
        return DatabaseError(f"{self.path}: cannot {doing}: {text}")

    def _check_layout(self) -> None:
        layout = self._conn.execute("PRAGMA user_version").fetchone()[0]
        if layout > LAYOUT_VERSION:
            raise SchemaTooNewError(
                f"{self.path}: database layout version {layout} is newer than this program "
                f"understands ({LAYOUT_VERSION})",
                hint="use the stella version that wrote it, or a newer one",
            )

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for the store modules' own queries."""
        return self._conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    @contextmanager
    def transaction(self, what: str = "write") -> Iterator[sqlite3.Connection]:
        """One atomic change: ``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.

        Inside another transaction this is a savepoint, so the inner change is undone on its
        own error while the outer one decides whether everything commits. ``what`` names the
        change in error messages.
        """
        conn = self._conn
        if self._reading:
            raise RuntimeError(
                f"{self.path}: cannot {what} inside a read snapshot; start a transaction instead"
            )
        outer = self._depth == 0
        name = f"sp{self._depth}"
        try:
            conn.execute("BEGIN IMMEDIATE" if outer else f"SAVEPOINT {name}")
        except sqlite3.Error as e:
            raise self._wrap(e, what) from e
        self._depth += 1
        try:
            yield conn
        except BaseException as e:
            self._depth -= 1
            try:
                if outer:
                    conn.execute("ROLLBACK")
                else:
                    conn.execute(f"ROLLBACK TO {name}")
                    conn.execute(f"RELEASE {name}")
            except sqlite3.Error:
                pass  # the original error says more than the failed rollback
            if isinstance(e, sqlite3.Error):
                raise self._wrap(e, what) from e
            raise
        self._depth -= 1
        try:
            conn.execute("COMMIT" if outer else f"RELEASE {name}")
        except sqlite3.Error as e:
            if outer and conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._wrap(e, what) from e

    @contextmanager
    def snapshot(self, what: str = "read") -> Iterator[sqlite3.Connection]:
        """Reads that see one consistent state of the database (a deferred read transaction;
        under WAL, writers carry on meanwhile). Inside a transaction it simply joins it."""
        conn = self._conn
        if self._depth > 0:
            yield conn
            return
        try:
            conn.execute("BEGIN DEFERRED")
        except sqlite3.Error as e:
            raise self._wrap(e, what) from e
        self._depth += 1
        self._reading = True
        try:
            yield conn
        except sqlite3.Error as e:
            raise self._wrap(e, what) from e
        finally:
            self._depth -= 1
            self._reading = False
            try:
                conn.execute("COMMIT")
            except sqlite3.Error:
                conn.execute("ROLLBACK")

    def query(
        self, sql: str, params: Sequence[Any] = (), *, what: str = "read"
    ) -> list[sqlite3.Row]:
        """Run one read-only statement and return all its rows, wrapping SQLite's errors."""
        try:
            return self._conn.execute(sql, params).fetchall()
        except sqlite3.Error as e:
            raise self._wrap(e, what) from e

    def schema_version(self, component: str) -> int:
        """The version ``component``'s tables are at (0 when it has never been created)."""
        rows = self.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'"
        )
        if not rows:
            return 0
        found = self.query("SELECT version FROM schema_versions WHERE component = ?", (component,))
        return int(found[0][0]) if found else 0

    def ensure(self, schema: Schema) -> int:
        """Bring ``schema.component``'s tables to ``schema.version``; returns that version.

        Idempotent and safe when several processes open a new database at once: the versions
        are re-read under the write lock, and all pending migrations apply in one transaction
        (a failed migration leaves the previous version in place).
        """
        if self.schema_version(schema.component) == schema.version:
            return schema.version
        what = f"migrate the {schema.component} tables"
        with self.transaction(what) as conn:
            self._check_layout()
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_versions ("
                " component TEXT PRIMARY KEY,"
                " version INTEGER NOT NULL CHECK (version >= 0)"
                ") STRICT"
            )
            if conn.execute("PRAGMA user_version").fetchone()[0] < LAYOUT_VERSION:
                conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (schema.component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > schema.version:
                raise SchemaTooNewError(
                    f"{self.path}: the {schema.component} tables are at schema version "
                    f"{current}, newer than this program understands ({schema.version})",
                    hint="use the stella version that wrote them, or a newer one",
                )
            for number in range(current + 1, schema.version + 1):
                step = schema.migrations[number - 1]
                if isinstance(step, str):
                    for statement in split_statements(step):
                        conn.execute(statement)
                else:
                    step(conn)
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (schema.component, schema.version),
            )
        return schema.version

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
