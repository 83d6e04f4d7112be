"""``stella migrate``: move an embedded home's stores (``knowledge.db``, ``state.db``) into
PostgreSQL, the scale-out backend (docs/scale-out.md).

Each store is copied in one PostgreSQL transaction: its schema is created at the current
version of every component, every table is copied (parents before the tables whose foreign
keys name them; large tables streamed in batches with ``COPY``), identity counters are moved
past the copied ids, and before the commit the copy is checked: every table holds as many rows
as its source, and the audit log's signed chain verifies in PostgreSQL to the same head as in
the file. Any failure, or ``--dry-run``, rolls the transaction back: nothing half-copied stays.

A target schema that already holds tables is refused unless ``force`` (then it is dropped and
rebuilt, in the same transaction). Both refusals that can be known beforehand (a target not
empty, an audit log that does not verify) are checked before the first store is copied, so a
refused move leaves the database as it was. The SQLite files are left as they were; once
both stores are copied the home's ``databaseUrl`` setting names the database (without a
password), so no command falls back to the files by mistake.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from appliance import tenancy
from appliance.home import Home
from appliance.store import (
    DATABASE_URL_SETTING,
    KNOWLEDGE_SCHEMA,
    STATE_SCHEMA,
    audit,
    components,
    verdicts,
    vex,
)
from appliance.store.db import Database, Schema, SqliteDatabase, StoreError
from appliance.store.knowledge import SCHEMA as KNOWLEDGE
from appliance.store.postgres import PostgresDatabase, redact

STATE_SCHEMAS: Final = (audit.SCHEMA, vex.SCHEMA, verdicts.SCHEMA, components.SCHEMA)
KNOWLEDGE_SCHEMAS: Final = (KNOWLEDGE,)
_BATCH: Final = 20_000


class MigrateError(StoreError):
    """The home's stores cannot be moved into PostgreSQL as asked."""


class _DryRun(Exception):
    """Raised inside the transaction to roll a verified dry run back."""


@dataclass(frozen=True, slots=True)
class TableCopy:
    table: str
    rows: int


@dataclass(frozen=True, slots=True)
class StoreCopy:
    """One store copied (or, in a dry run, copied and rolled back) and checked."""

    store: str  # "knowledge" or "state"
    source: str  # the SQLite file
    schema: str  # the PostgreSQL schema
    tables: tuple[TableCopy, ...]
    audit_records: int | None = None  # state: records whose chain verified after the copy
    copied: bool = True  # False: the home never wrote this store; its tables were made empty

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "source": self.source,
            "schema": self.schema,
            "rows": self.rows,
            "tables": {t.table: t.rows for t in self.tables},
            "auditRecords": self.audit_records,
            "copied": self.copied,
        }


@dataclass(frozen=True, slots=True)
class Migration:
    url: str  # without its password
    stores: tuple[StoreCopy, ...]
    dry_run: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "to": self.url,
            "dryRun": self.dry_run,
            "stores": [s.to_dict() for s in self.stores],
        }


def _tables(source: SqliteDatabase) -> list[str]:
    """The source's tables, parents before children (by their foreign keys)."""
    names = [
        str(r[0])
        for r in source.query(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
            "AND name != 'schema_versions' ORDER BY name"
        )
    ]
    parents = {
        name: {
            str(r["table"])
            for r in source.query(f"PRAGMA foreign_key_list({name})")
            if str(r["table"]) != name
        }
        for name in names
    }
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and parents[n] <= set(ordered)]
        if not ready:
            raise MigrateError(f"{source.where}: the tables' foreign keys run in a circle")
        ordered.extend(ready)
    return ordered


def _batches(source: SqliteDatabase, table: str) -> Iterator[tuple[list[str], list[Any]]]:
    cursor = source.connection.execute(f"SELECT * FROM {table}")  # noqa: S608 - names from the file's catalog
    columns = [str(d[0]) for d in cursor.description]
    while True:
        rows = cursor.fetchmany(_BATCH)
        if not rows:
            return
        yield columns, [tuple(r) for r in rows]


def _target_tables(target: PostgresDatabase) -> list[str]:
    rows = target.query(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = ? "
        "ORDER BY table_name",
        (target.schema,),
    )
    return [str(r[0]) for r in rows]


def _reset_identity(target: PostgresDatabase, table: str) -> None:
    """Move identity columns' counters past the copied ids (``datasets``, ``verdicts``)."""
    for (column,) in target.query(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? "
        "AND table_name = ? AND is_identity = 'YES'",
        (target.schema, table),
    ):
        target.connection.execute(
            f"SELECT setval(pg_get_serial_sequence(?, ?), "  # noqa: S608 - catalog names
            f"COALESCE((SELECT max({column}) FROM {table}), 0) + 1, false)",
            (table, str(column)),
        )


def _copy_store(
    store: str,
    path: Path,
    target: PostgresDatabase,
    schemas: Sequence[Schema],
    *,
    home: Home,
    dry_run: bool,
    force: bool,
) -> StoreCopy:
    source = SqliteDatabase.open(path)
    try:
        for schema in schemas:
            source.ensure(schema)  # an older file is brought to the current version first
        known = {s.component for s in schemas}
        stored = {str(r[0]) for r in source.query("SELECT component FROM schema_versions")}
        if stored - known:
            raise MigrateError(
                f"{path}: holds tables of {', '.join(sorted(stored - known))}, which this "
                "program cannot move",
                hint="use the stella version that wrote them",
            )
        existing = _target_tables(target)
        if existing and not force:
            shown = ", ".join(existing[:4]) + (" ..." if len(existing) > 4 else "")
            raise MigrateError(
                f"{target.where}: is not empty (tables {shown})",
                hint="migrate into an empty database or schema, or pass --force to replace "
                "what it holds",
            )
        copied: list[TableCopy] = []
        audit_records: int | None = None
        try:
            with source.snapshot("read the store to copy"), target.transaction("copy the store"):
                expected_log = (
                    audit.AuditLog(source, public_key=home.public_key()).verify()
                    if store == STATE_SCHEMA
                    else None
                )
                if expected_log is not None and expected_log.problem is not None:
                    raise MigrateError(
                        f"{path}: the audit log does not verify: {expected_log.problem.message}",
                        hint="run 'stella audit verify'; a log that fails is evidence: keep "
                        "the file as it is",
                    )
                if existing:
                    target.connection.execute(f'DROP SCHEMA "{target.schema}" CASCADE')
                    target.connection.execute(f'CREATE SCHEMA "{target.schema}"')
                for schema in schemas:
                    target.ensure(schema)
                for table in _tables(source):
                    count = 0
                    for columns, rows in _batches(source, table):
                        target.bulk_insert(table, columns, rows)
                        count += len(rows)
                    _reset_identity(target, table)
                    copied.append(TableCopy(table, count))
                for item in copied:
                    have = int(target.query(f"SELECT COUNT(*) FROM {item.table}")[0][0])  # noqa: S608
                    if have != item.rows:
                        raise MigrateError(
                            f"{target.where}: table {item.table} holds {have} rows after the "
                            f"copy, {path} holds {item.rows}; nothing was committed"
                        )
                if expected_log is not None:
                    moved = audit.AuditLog(target, public_key=home.public_key()).verify()
                    same = (
                        moved.head is not None
                        and expected_log.head is not None
                        and (moved.head.seq, moved.head.hash)
                        == (expected_log.head.seq, expected_log.head.hash)
                    ) or (moved.head is None and expected_log.head is None)
                    if not moved.ok or not same or moved.records != expected_log.records:
                        problem = moved.problem.message if moved.problem else "another head"
                        raise MigrateError(
                            f"{target.where}: the copied audit log does not verify to the "
                            f"file's head ({problem}); nothing was committed"
                        )
                    audit_records = moved.records
                if dry_run:
                    raise _DryRun
        except _DryRun:
            pass
        return StoreCopy(store, str(path), target.schema, tuple(copied), audit_records)
    finally:
        source.close()


def migrate(
    home: Home,
    url: str,
    *,
    dry_run: bool = False,
    force: bool = False,
    schemas: tuple[str, str] = (KNOWLEDGE_SCHEMA, STATE_SCHEMA),
) -> Migration:
    """Copy the embedded home's knowledge and state stores into the PostgreSQL database at
    ``url`` (schemas ``knowledge`` and ``state``), one checked transaction per store; unless
    ``dry_run``, then record the URL (without its password) as the home's ``databaseUrl``."""
    home = home.require()
    if home.tenant is not None or tenancy.list_tenants(home.base):
        raise MigrateError(
            f"{home.base}: has tenants ({', '.join(tenancy.list_tenants(home.base))}); moving a "
            "home with tenants into PostgreSQL is not supported yet",
            hint="keep a home with tenants embedded; docs/scale-out.md says what moves",
        )
    if home.settings().get(DATABASE_URL_SETTING) is not None:
        raise MigrateError(
            f"{home.config}: the home already uses the database "
            f"{home.settings()[DATABASE_URL_SETTING]}",
            hint="migrate copies an embedded home's knowledge.db and state.db; this one has "
            "moved already",
        )
    _preflight(home, url, schemas, force=force)
    done: list[StoreCopy] = []
    for store, path, schema, parts in (
        ("knowledge", home.knowledge_db, schemas[0], KNOWLEDGE_SCHEMAS),
        (STATE_SCHEMA, home.state_db, schemas[1], STATE_SCHEMAS),
    ):
        with PostgresDatabase.connect(url, schema=schema) as target:
            if not path.is_file():
                _create_empty(target, parts, force=force, dry_run=dry_run)
                done.append(StoreCopy(store, str(path), schema, (), copied=False))
                continue
            done.append(
                _copy_store(store, path, target, parts, home=home, dry_run=dry_run, force=force)
            )
    if not dry_run:
        home.write_settings({**home.settings(), DATABASE_URL_SETTING: redact(url)})
    return Migration(redact(url), tuple(done), dry_run)


def _preflight(home: Home, url: str, schemas: Sequence[str], *, force: bool) -> None:
    """What would refuse the second store is found before the first is copied: a target
    that is not empty, an audit log that does not verify."""
    for schema in schemas:
        with PostgresDatabase.connect(url, schema=schema) as target:
            existing = _target_tables(target)
            if existing and not force:
                shown = ", ".join(existing[:4]) + (" ..." if len(existing) > 4 else "")
                raise MigrateError(
                    f"{target.where}: is not empty (tables {shown})",
                    hint="migrate into an empty database or schema, or pass --force to "
                    "replace what it holds",
                )
    if home.state_db.is_file():
        with SqliteDatabase.open(home.state_db) as source:
            verified = audit.AuditLog(source, public_key=home.public_key()).verify()
        if verified.problem is not None:
            raise MigrateError(
                f"{home.state_db}: the audit log does not verify: {verified.problem.message}",
                hint="run 'stella audit verify'; a log that fails is evidence: keep the file "
                "as it is",
            )


def _create_empty(
    target: Database, schemas: Sequence[Schema], *, force: bool, dry_run: bool
) -> None:
    """A store the home never wrote: its tables are created empty (nothing to copy)."""
    assert isinstance(target, PostgresDatabase)
    existing = _target_tables(target)
    if existing and not force:
        raise MigrateError(
            f"{target.where}: is not empty (tables {', '.join(existing[:4])})",
            hint="migrate into an empty database or schema, or pass --force",
        )
    try:
        with target.transaction("create the store"):
            if existing:
                target.connection.execute(f'DROP SCHEMA "{target.schema}" CASCADE')
                target.connection.execute(f'CREATE SCHEMA "{target.schema}"')
            for schema in schemas:
                target.ensure(schema)
            if dry_run:
                raise _DryRun
    except _DryRun:
        pass
