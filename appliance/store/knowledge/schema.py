"""The tables of ``knowledge.db`` (see :mod:`appliance.store.knowledge`), the values read from
them, and the open database every part of the store works on."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, Self, TypeVar

from appliance.store.db import Database, Schema, StoreError
from bundles.digest import Digest
from bundles.snapshot import DatasetType

SCHEMA = Schema(
    "knowledge",
    (
        """
        CREATE TABLE records (
            id INTEGER PRIMARY KEY,         -- the first 64 bits of the line's SHA-256
            body BLOB NOT NULL
        );
        CREATE TABLE datasets (
            id INTEGER PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            type TEXT NOT NULL,
            records INTEGER NOT NULL,
            size INTEGER NOT NULL
        );
        CREATE TABLE dataset_records (
            dataset INTEGER NOT NULL REFERENCES datasets(id),
            record_id TEXT NOT NULL,
            record INTEGER NOT NULL REFERENCES records(id),
            PRIMARY KEY (dataset, record_id)
        ) WITHOUT ROWID;
        CREATE TABLE snapshots (
            digest TEXT PRIMARY KEY,
            manifest BLOB NOT NULL,
            sequence INTEGER NOT NULL,
            channel TEXT NOT NULL,
            kind TEXT NOT NULL,
            base TEXT,
            bundle TEXT NOT NULL,
            created TEXT NOT NULL,
            imported TEXT NOT NULL
        ) WITHOUT ROWID;
        CREATE TABLE snapshot_datasets (
            snapshot TEXT NOT NULL REFERENCES snapshots(digest),
            name TEXT NOT NULL,
            dataset INTEGER NOT NULL REFERENCES datasets(id),
            type TEXT NOT NULL,
            PRIMARY KEY (snapshot, name)
        ) WITHOUT ROWID;
        CREATE INDEX snapshot_datasets_by_dataset ON snapshot_datasets(dataset);
        CREATE TABLE affected (
            ecosystem TEXT NOT NULL,
            name TEXT NOT NULL,
            record_id TEXT NOT NULL,
            record INTEGER NOT NULL,
            PRIMARY KEY (ecosystem, name, record_id, record)
        ) WITHOUT ROWID;
        CREATE TABLE knowledge_state (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
        # 2: which ecosystems each OSV dataset has records for, so the matcher can tell "no
        # data for Debian:12" (unknown) from "no advisory for this package" (clean).
        """
        CREATE TABLE dataset_ecosystems (
            dataset INTEGER NOT NULL REFERENCES datasets(id),
            ecosystem TEXT NOT NULL,
            PRIMARY KEY (dataset, ecosystem)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO dataset_ecosystems
            SELECT DISTINCT dr.dataset, a.ecosystem
            FROM affected a JOIN dataset_records dr ON dr.record = a.record;
        """,
        # 3: table datasets (EPSS) stored as compressed blocks of records; datasets loaded
        # before keep the per-record layout, and both are read alike.
        """
        ALTER TABLE datasets ADD COLUMN layout TEXT NOT NULL DEFAULT 'records';
        CREATE TABLE blocks (
            id INTEGER PRIMARY KEY,         -- the first 64 bits of the SHA-256 of its lines
            ids BLOB NOT NULL,
            body BLOB NOT NULL
        );
        CREATE TABLE dataset_blocks (
            dataset INTEGER NOT NULL REFERENCES datasets(id),
            first_id TEXT NOT NULL,
            block INTEGER NOT NULL REFERENCES blocks(id),
            PRIMARY KEY (dataset, first_id)
        ) WITHOUT ROWID;
        """,
        # 4: GitHub advisories by the ids they alias (CVE -> GHSA), so a finding from any
        # feed reaches GitHub's rating of the same vulnerability.
        """
        CREATE TABLE advisory_aliases (
            alias TEXT NOT NULL,
            record_id TEXT NOT NULL,
            record INTEGER NOT NULL,
            PRIMARY KEY (alias, record_id, record)
        ) WITHOUT ROWID;
        INSERT OR IGNORE INTO advisory_aliases
            SELECT DISTINCT j.value, dr.record_id, dr.record
            FROM dataset_records dr
            JOIN datasets d ON d.id = dr.dataset AND d.type = 'osv'
            JOIN records r ON r.id = dr.record, json_each(CAST(r.body AS TEXT), '$.aliases') j
            WHERE dr.record_id LIKE 'GHSA-%' AND j.type = 'text';
        """,
    ),
)


class Layout(StrEnum):
    """How a dataset's records are stored: one row each (deduplicated across datasets, the
    match index points at them), or in compressed blocks (:mod:`appliance.store.blocks`)."""

    RECORDS = "records"
    BLOCKS = "blocks"


# Datasets of these types are hundreds of thousands of small records that change daily and
# are only ever read by id or whole (EPSS scores, CVE ratings): blocks make their import a
# few hundred rows.
BLOCK_TYPES: Final = frozenset({DatasetType.EPSS, DatasetType.CVE})
_T = TypeVar("_T")
# Packages or ids per batch query: 2 parameters each stays under SQLite's oldest limit (999).
QUERY_CHUNK = 400


def in_chunks(items: Sequence[_T], mark: str = "?") -> Iterator[tuple[Sequence[_T], str]]:
    """``items`` in batches of :data:`QUERY_CHUNK`, each with the placeholders of its batch
    (``mark`` once per item, comma-separated): only placeholders ever enter the SQL text."""
    for start in range(0, len(items), QUERY_CHUNK):
        chunk = items[start : start + QUERY_CHUNK]
        yield chunk, ", ".join(mark for _ in chunk)


class KnowledgeError(StoreError):
    """Knowledge data does not match what its signed manifest declares."""


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    digest: Digest
    sequence: int
    channel: str
    kind: str
    base: Digest | None
    bundle: Digest
    created: str
    imported: str
    active: bool


@dataclass(frozen=True, slots=True)
class Patch:
    """A delta bundle's change to one dataset: records to remove by id and lines to put."""

    base: Digest
    target: Digest
    removed: frozenset[str]
    puts: dict[str, bytes]


class StoreBase:
    """The open ``knowledge.db`` every part of :class:`KnowledgeStore` works on."""

    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure(SCHEMA)
        # A 64 MiB page cache: loading a snapshot inserts hundreds of thousands of rows.
        db.connection.execute("PRAGMA cache_size = -65536")

    @classmethod
    def open(cls, path: Path) -> Self:
        return cls(Database.open(path))

    def close(self) -> None:
        self.db.close()

    @property
    def _conn(self) -> sqlite3.Connection:
        return self.db.connection
