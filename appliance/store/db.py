"""What every store of the appliance shares: how a database is opened, how its schema grows,
and how a change becomes one transaction, on either backend.

A database (``state.db``, ``knowledge.db``, or a schema of a PostgreSQL database) is shared by
several stores, each owning its own tables: the audit log, images, scans, VEX, verdicts. Each
store declares a :class:`Schema`, an ordered list of migrations under a component name, and
calls :meth:`Database.ensure` before using its tables; stores are developed and upgraded
independently, so no central list of every table is needed. The version each component
reached is kept in the ``schema_versions`` table; the version of that bookkeeping itself (the
layout) is kept apart, so a database written by a newer program (with a layout this one does
not understand) is refused instead of misread.

:class:`Database` is what the stores are written against, once: a :class:`Connection` whose
``execute`` takes ``?`` placeholders and gives rows readable by index and by column name,
:meth:`Database.transaction` (one atomic change, a savepoint when nested),
:meth:`Database.snapshot` (consistent reads) and :meth:`Database.ensure`. Two backends
implement it: :class:`SqliteDatabase` here (the embedded default) and
:class:`appliance.store.postgres.PostgresDatabase` (scale-out). Stores keep to the SQL both
understand (``INSERT ... ON CONFLICT``, ``RETURNING``, no ``PRAGMA``); where DDL differs a
:class:`Schema` carries a PostgreSQL list of migrations beside the SQLite one.

Every SQLite connection runs in WAL mode (readers never block the one writer), with foreign
keys enforced, ``synchronous=FULL`` (a committed decision survives a power cut) and a busy
timeout (concurrent processes wait for each other instead of failing). Writes go through
:meth:`Database.transaction`: ``BEGIN IMMEDIATE`` takes the write lock up front, so a
read-then-write sequence (the next audit sequence number, for example) cannot interleave with
another process; a nested call becomes a savepoint of the outer transaction, so a store's
change and its audit record commit together or not at all.
"""

from __future__ import annotations

import sqlite3
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar, Final, Protocol

from appliance import tenancy
from bundles.errors import StellaError

LAYOUT_VERSION: Final = 1
"""``PRAGMA user_version`` of a database whose components are versioned in
``schema_versions``."""

DEFAULT_BUSY_TIMEOUT: Final = 30.0
"""Seconds a connection waits for another process's write lock before giving up."""


class Cursor(Protocol):
    """What a statement gives back, on either backend (``sqlite3.Cursor`` is one)."""

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...

    @property
    def rowcount(self) -> int: ...


class Connection(Protocol):
    """The connection a store runs its statements on: ``?`` placeholders, rows readable by
    index and by column name (``sqlite3.Connection`` is one)."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Cursor: ...

    def executemany(self, sql: str, parameters: Iterable[Sequence[Any]], /) -> Cursor: ...


MigrationStep = str | Callable[[Connection], None]
"""One migration: an SQL script (one or more statements), or a function given the connection
inside the migration's transaction (for changes SQL alone cannot express)."""


class Dialect(StrEnum):
    """The SQL a backend speaks."""

    SQLITE = "sqlite"
    POSTGRES = "postgresql"


class StoreError(StellaError):
    """A store on the appliance cannot be opened, read or written."""


class DatabaseError(StoreError):
    """The database refused an operation; the message names the database file or URL."""


class DatabaseBusyError(DatabaseError):
    """Another process held the database's write lock for longer than the busy timeout."""


class SchemaTooNewError(StoreError):
    """The database was written by a newer program than this one."""


@dataclass(frozen=True, slots=True)
class Schema:
    """The tables of one store, as the ordered migrations that create and change them.

    Migration *n* (1-based) brings the component from version *n - 1* to *n*. Migrations are
    only ever appended: a released migration is never edited, since databases in the field
    have already applied it. ``postgres`` is the same list in PostgreSQL's SQL (``BYTEA``,
    ``BIGINT``, identity columns, trigger functions), one step per SQLite step; without it the
    SQLite steps run on both backends (for SQL both understand).
    """

    component: str
    migrations: tuple[MigrationStep, ...]
    postgres: tuple[MigrationStep, ...] | None = None

    def __post_init__(self) -> None:
        if not self.component or not self.component.replace(".", "").replace("_", "").isalnum():
            raise ValueError(f"schema component name {self.component!r} is not allowed")
        if not self.migrations:
            raise ValueError(f"schema {self.component!r} has no migrations")
        if self.postgres is not None and len(self.postgres) != len(self.migrations):
            raise ValueError(
                f"schema {self.component!r} has {len(self.migrations)} SQLite migrations and "
                f"{len(self.postgres)} PostgreSQL ones; give one of each per version"
            )

    def steps(self, dialect: Dialect) -> tuple[MigrationStep, ...]:
        """The migrations in ``dialect``'s SQL."""
        if dialect is Dialect.POSTGRES and self.postgres is not None:
            return self.postgres
        return self.migrations

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


class Database(ABC):
    """One connection to one store database, configured as every store needs it; the stores
    are written against this class once and run on either backend.

    Not shared between threads; each process or thread opens its own.
    """

    __slots__ = ("_depth", "_reading")
    dialect: ClassVar[Dialect]

    def __init__(self) -> None:
        self._depth = 0  # open transaction() and snapshot() blocks
        self._reading = False  # the outermost block is a snapshot()

    @property
    @abstractmethod
    def where(self) -> str:
        """The database as error messages name it: a file path, or a URL without its
        password (and the schema)."""

    @property
    @abstractmethod
    def connection(self) -> Connection:
        """The connection, for the store modules' own queries."""

    @property
    @abstractmethod
    def in_transaction(self) -> bool: ...

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def _driver_errors(self) -> tuple[type[Exception], ...]:
        """The driver's error classes, which :meth:`_wrap` turns into :class:`DatabaseError`."""

    @abstractmethod
    def _wrap(self, error: Exception, doing: str) -> DatabaseError: ...

    @abstractmethod
    def _begin(self, *, write: bool) -> None:
        """Start the outermost block: a write transaction that holds the store's write lock,
        or a read-only one that sees one consistent state."""

    @abstractmethod
    def _control(self, statement: str) -> None:
        """Run a transaction-control statement (``COMMIT``, ``SAVEPOINT sp0``...)."""

    @abstractmethod
    def _has_versions_table(self) -> bool: ...

    @abstractmethod
    def _layout(self) -> int:
        """The layout version the database was written with (0 when new)."""

    @abstractmethod
    def _prepare_versions(self, conn: Connection) -> None:
        """Inside :meth:`ensure`'s transaction: create ``schema_versions`` and record
        :data:`LAYOUT_VERSION` when missing."""

    @abstractmethod
    def _run_script(self, conn: Connection, script: str) -> None:
        """Run a migration's SQL script, every statement, inside the open transaction."""

    def bulk_insert(
        self,
        table: str,
        columns: Sequence[str],
        rows: Sequence[Sequence[Any]],
        *,
        ignore_conflicts: bool = False,
    ) -> None:
        """Insert many rows into ``table`` inside the open transaction (what a snapshot
        import spends its time on); with ``ignore_conflicts``, rows clashing with a
        uniqueness constraint are skipped. ``table`` and ``columns`` come from the store's
        code, never from input."""
        if not rows:
            return
        if not self.in_transaction:  # all the rows or none
            with self.transaction(f"insert into {table}"):
                self.bulk_insert(table, columns, rows, ignore_conflicts=ignore_conflicts)
            return
        names = ", ".join(columns)
        marks = ", ".join("?" for _ in columns)
        conflict = " ON CONFLICT DO NOTHING" if ignore_conflicts else ""
        self.connection.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks}){conflict}",  # noqa: S608
            rows,
        )

    def set_cache(self, mib: int) -> None:  # noqa: B027 - optional for a backend
        """Ask for a page cache of ``mib`` MiB on this connection, where the backend has one
        per connection (SQLite); a server keeps its own."""

    def _check_layout(self) -> None:
        layout = self._layout()
        if layout > LAYOUT_VERSION:
            raise SchemaTooNewError(
                f"{self.where}: database layout version {layout} is newer than this program "
                f"understands ({LAYOUT_VERSION})",
                hint="use the stella version that wrote it, or a newer one",
            )

    @contextmanager
    def transaction(self, what: str = "write") -> Iterator[Connection]:
        """One atomic change, rolled back on any exception; the store's write lock is taken
        up front (``BEGIN IMMEDIATE`` on SQLite, an advisory lock on PostgreSQL), so writers
        of one store run one at a time and a read-then-write cannot interleave.

        Inside another transaction this is a savepoint, so the inner change is undone on its
        own error while the outer one decides whether everything commits. ``what`` names the
        change in error messages.
        """
        conn = self.connection
        errors = self._driver_errors()
        if self._reading:
            raise RuntimeError(
                f"{self.where}: cannot {what} inside a read snapshot; start a transaction instead"
            )
        outer = self._depth == 0
        name = f"sp{self._depth}"
        try:
            if outer:
                self._begin(write=True)
            else:
                self._control(f"SAVEPOINT {name}")
        except errors as e:
            raise self._wrap(e, what) from e
        self._depth += 1
        try:
            yield conn
        except BaseException as e:
            self._depth -= 1
            try:
                if outer:
                    self._control("ROLLBACK")
                else:
                    self._control(f"ROLLBACK TO SAVEPOINT {name}")
                    self._control(f"RELEASE SAVEPOINT {name}")
            except errors:
                pass  # the original error says more than the failed rollback
            if isinstance(e, errors):
                raise self._wrap(e, what) from e
            raise
        self._depth -= 1
        try:
            self._control("COMMIT" if outer else f"RELEASE SAVEPOINT {name}")
        except errors as e:
            if outer and self.in_transaction:
                self._control("ROLLBACK")
            raise self._wrap(e, what) from e

    @contextmanager
    def snapshot(self, what: str = "read") -> Iterator[Connection]:
        """Reads that see one consistent state of the database (writers carry on meanwhile).
        Inside a transaction it simply joins it."""
        conn = self.connection
        errors = self._driver_errors()
        if self._depth > 0:
            yield conn
            return
        try:
            self._begin(write=False)
        except errors as e:
            raise self._wrap(e, what) from e
        self._depth += 1
        self._reading = True
        try:
            yield conn
        except errors as e:
            raise self._wrap(e, what) from e
        finally:
            self._depth -= 1
            self._reading = False
            try:
                self._control("COMMIT")
            except errors:
                self._control("ROLLBACK")

    def query(self, sql: str, params: Sequence[Any] = (), *, what: str = "read") -> list[Any]:
        """Run one read-only statement and return all its rows, wrapping the driver's errors."""
        try:
            return self.connection.execute(sql, params).fetchall()
        except self._driver_errors() as e:
            raise self._wrap(e, what) from e

    def schema_version(self, component: str) -> int:
        """The version ``component``'s tables are at (0 when it has never been created)."""
        try:
            if not self._has_versions_table():
                return 0
        except self._driver_errors() as e:
            raise self._wrap(e, "read the schema versions") from e
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
        steps = schema.steps(self.dialect)
        with self.transaction(what) as conn:
            self._check_layout()
            self._prepare_versions(conn)
            row = conn.execute(
                "SELECT version FROM schema_versions WHERE component = ?", (schema.component,)
            ).fetchone()
            current = int(row[0]) if row else 0
            if current > schema.version:
                raise SchemaTooNewError(
                    f"{self.where}: the {schema.component} tables are at schema version "
                    f"{current}, newer than this program understands ({schema.version})",
                    hint="use the stella version that wrote them, or a newer one",
                )
            for number in range(current + 1, schema.version + 1):
                step = steps[number - 1]
                if isinstance(step, str):
                    self._run_script(conn, step)
                else:
                    step(conn)
            conn.execute(
                "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
                " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
                (schema.component, schema.version),
            )
        return schema.version

    def __enter__(self) -> Database:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class SqliteDatabase(Database):
    """One connection to one SQLite database file: the embedded default."""

    __slots__ = ("_conn", "path")
    dialect = Dialect.SQLITE

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        super().__init__()
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path: Path, *, busy_timeout: float = DEFAULT_BUSY_TIMEOUT) -> SqliteDatabase:
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

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for the store modules' own queries."""
        return self._conn

    @property
    def in_transaction(self) -> bool:
        return self._conn.in_transaction

    def _driver_errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)

    def _wrap(self, error: Exception, doing: str) -> DatabaseError:
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

    def _begin(self, *, write: bool) -> None:
        self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN DEFERRED")

    def _control(self, statement: str) -> None:
        self._conn.execute(statement)

    def _has_versions_table(self) -> bool:
        return bool(
            self._conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'"
            ).fetchall()
        )

    def _layout(self) -> int:
        return int(self._conn.execute("PRAGMA user_version").fetchone()[0])

    def _prepare_versions(self, conn: Connection) -> None:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_versions ("
            " component TEXT PRIMARY KEY,"
            " version INTEGER NOT NULL CHECK (version >= 0)"
            ") STRICT"
        )
        if self._layout() < LAYOUT_VERSION:
            conn.execute(f"PRAGMA user_version = {LAYOUT_VERSION}")

    def _run_script(self, conn: Connection, script: str) -> None:
        for statement in split_statements(script):
            conn.execute(statement)

    def set_cache(self, mib: int) -> None:
        self._conn.execute(f"PRAGMA cache_size = -{int(mib) * 1024}")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SqliteDatabase:
        return self
