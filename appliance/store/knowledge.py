"""``knowledge.db``: every imported knowledge snapshot, deduplicated, indexed for matching.

Tables (component ``knowledge``):

- ``records(id, body)``: one row per distinct canonical record line, shared by every dataset
  and snapshot that contains it; ``id`` is the first 64 bits of the line's SHA-256, so linking
  a record needs no lookup (a collision could only corrupt a rebuilt dataset, and every rebuilt
  dataset is checked against its signed digest);
- ``datasets(digest, type, records, size)`` and ``dataset_records(dataset, record_id,
  record)``: a dataset is its ordered membership; because datasets are content-addressed, an
  unchanged dataset costs nothing when the next snapshot arrives, and its exact bytes can be
  rebuilt (``dataset_lines``) to apply a delta or to replay a verdict;
- ``snapshots`` and ``snapshot_datasets``: each imported snapshot (its exact manifest bytes,
  sequence, channel, the bundle it came in) and which dataset it calls what;
- ``blocks(id, ids, body)`` and ``dataset_blocks(dataset, first_id, block)``: the layout of
  table datasets (EPSS: a third of a million small records that change daily), a few hundred
  compressed blocks of consecutive lines instead of a row per record
  (:mod:`appliance.store.blocks`); ``datasets.layout`` says which layout a dataset has;
- ``affected(ecosystem, name, record_id, record)``: the match index, (ecosystem, normalized
  package name) → OSV record; a query joins it to a snapshot's datasets by (dataset,
  record_id), the primary key of the membership table;
- ``advisory_aliases(alias, record_id, record)``: GitHub advisories (``GHSA-…`` records) by
  each id they alias, so a finding known by a CVE reaches GitHub's rating of it;
- ``knowledge_state``: the active snapshot and, per channel, the last accepted sequence.

Loading a dataset verifies what the signed manifest says about it (digest, record count, ids
strictly increasing) before the caller's transaction commits; a failure rolls everything back.
Old snapshots are kept: replaying a verdict needs the snapshot it was made with.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import operator
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import orjson

from appliance.ecosystems import normalize_name
from appliance.store.blocks import find_many, pack_runs, unpack
from appliance.store.db import Database, Schema, StoreError
from bundles.digest import Digest, Hasher
from bundles.snapshot import DatasetEntry, DatasetType, Manifest

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
# Packages or ids per batch query: 2 parameters each stays under SQLite's oldest limit (999).
QUERY_CHUNK = 400


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


def line_batches(chunks: Iterable[bytes]) -> Iterator[list[bytes]]:
    """The lines (without their newline) of each chunk of a stream, a list per chunk; the
    stream must end in ``\\n``."""
    rest = b""
    for chunk in chunks:
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        if lines:
            yield lines
    if rest:
        raise KnowledgeError("dataset does not end with a newline (truncated?)")


def split_lines(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Lines (without their newline) from a stream of chunks; the stream must end in ``\\n``."""
    for lines in line_batches(chunks):
        yield from lines


def _line_id(line: bytes, where: str) -> tuple[str, Any]:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise KnowledgeError(f"{where}: a line is not JSON: {e}") from e
    rid = doc.get("id") if isinstance(doc, dict) else None
    if not isinstance(rid, str) or not rid:
        raise KnowledgeError(f"{where}: a record has no string id")
    return rid, doc


_ID_OF: Final = operator.itemgetter("id")


def _ids(lines: list[bytes], where: str) -> list[str]:
    """The ids of many lines, as :func:`_line_id` finds them but with the loop in C, each
    document dropped as soon as its id is taken (holding a chunk's documents alive makes the
    cyclic garbage collector scan them again and again); a bad line is reported as
    :func:`_line_id` reports it."""
    try:
        ids = list(map(_ID_OF, map(orjson.loads, lines)))
    except (orjson.JSONDecodeError, KeyError, TypeError):
        ids = []
    if len(ids) != len(lines) or not set(map(type, ids)) <= {str} or "" in ids:
        return [_line_id(line, where)[0] for line in lines]  # raises, naming what is wrong
    return ids


def _check_order(ids: list[str], previous: str | None, where: str) -> str | None:
    """Record ids must strictly increase, from ``previous`` (the id before them) on; returns
    the last."""
    if not (
        (previous is None or not ids or ids[0] > previous)
        and all(map(operator.lt, ids, itertools.islice(ids, 1, None)))
    ):
        for rid in ids:  # find the first out of order, to name it
            if previous is not None and rid <= previous:
                raise _out_of_order(rid, where)
            previous = rid
    return ids[-1] if ids else previous


def _out_of_order(rid: str, where: str) -> KnowledgeError:
    return KnowledgeError(f"{where}: record ids are not strictly increasing at {rid!r}")


def _record_key(line: bytes) -> int:
    """The signed 64-bit rowid of a record line: the first 8 bytes of its SHA-256."""
    return int.from_bytes(hashlib.sha256(line).digest()[:8], "big", signed=True)


def _alias_rows(doc: Any, rid: str, record: int) -> Iterator[tuple[str, str, int]]:
    """The alias index rows of a GitHub advisory (none for other records)."""
    if rid.startswith("GHSA-"):
        for alias in doc.get("aliases") or ():
            if isinstance(alias, str):
                yield alias, rid, record


def _index_rows(doc: Any, rid: str, record: int) -> Iterator[tuple[str, str, str, int]]:
    for affected in doc.get("affected") or ():
        package = affected.get("package") if isinstance(affected, dict) else None
        if not isinstance(package, dict):
            continue
        ecosystem, name = package.get("ecosystem"), package.get("name")
        if isinstance(ecosystem, str) and isinstance(name, str):
            yield ecosystem, normalize_name(ecosystem, name), rid, record


class KnowledgeStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        db.ensure(SCHEMA)
        # A 64 MiB page cache: loading a snapshot inserts hundreds of thousands of rows.
        db.connection.execute("PRAGMA cache_size = -65536")

    @classmethod
    def open(cls, path: Path) -> KnowledgeStore:
        return cls(Database.open(path))

    def close(self) -> None:
        self.db.close()

    @property
    def _conn(self) -> sqlite3.Connection:
        return self.db.connection

    # -- datasets --------------------------------------------------------------------------

    def has_dataset(self, digest: Digest) -> bool:
        return self._dataset_layout(digest) is not None

    def _dataset_layout(self, digest: Digest) -> tuple[int, Layout] | None:
        """The dataset's row id and layout, or None when it is not stored."""
        row = self._conn.execute(
            "SELECT id, layout FROM datasets WHERE digest = ?", (str(digest),)
        ).fetchone()
        return (int(row[0]), Layout(row[1])) if row else None

    def _new_dataset(self, entry: DatasetEntry) -> int:
        layout = Layout.BLOCKS if entry.type in BLOCK_TYPES else Layout.RECORDS
        cursor = self._conn.execute(
            "INSERT INTO datasets (digest, type, records, size, layout) VALUES (?, ?, ?, ?, ?)",
            (str(entry.digest), entry.type.value, entry.records, entry.size, layout.value),
        )
        return int(cursor.lastrowid or 0)

    def _insert_blocks(self, dataset: int, runs: Iterable[tuple[list[str], list[bytes]]]) -> None:
        """Store a table dataset as blocks, from runs of consecutive ``(ids, lines)``."""
        conn = self._conn
        for block in pack_runs(runs):
            conn.execute(
                "INSERT OR IGNORE INTO blocks VALUES (?, ?, ?)", (block.key, block.ids, block.body)
            )
            conn.execute(
                "INSERT INTO dataset_blocks VALUES (?, ?, ?)", (dataset, block.first_id, block.key)
            )

    def _insert_records(
        self, dataset: int, dtype: DatasetType, runs: Iterable[Iterable[tuple[str, bytes, Any]]]
    ) -> int:
        """Store a dataset one row per record, from runs of consecutive ``(id, line, doc)``
        (each document is dropped once its match-index rows are taken); returns the count."""
        conn = self._conn
        ecosystems: set[str] = set()
        count = 0
        for run in runs:
            records: list[tuple[int, bytes]] = []
            members: list[tuple[int, str, int]] = []
            index: list[tuple[str, str, str, int]] = []
            aliases: list[tuple[str, str, int]] = []
            for rid, line, doc in run:
                record = _record_key(line)
                records.append((record, line))
                members.append((dataset, rid, record))
                if dtype is DatasetType.OSV:
                    index.extend(_index_rows(doc, rid, record))
                    aliases.extend(_alias_rows(doc, rid, record))
            conn.executemany("INSERT OR IGNORE INTO records VALUES (?, ?)", records)
            conn.executemany("INSERT INTO dataset_records VALUES (?, ?, ?)", members)
            conn.executemany("INSERT OR IGNORE INTO affected VALUES (?, ?, ?, ?)", index)
            conn.executemany("INSERT OR IGNORE INTO advisory_aliases VALUES (?, ?, ?)", aliases)
            ecosystems.update(row[0] for row in index)
            count += len(members)
        conn.executemany(
            "INSERT OR IGNORE INTO dataset_ecosystems VALUES (?, ?)",
            [(dataset, e) for e in sorted(ecosystems)],
        )
        return count

    def load_dataset(self, entry: DatasetEntry, chunks: Iterable[bytes]) -> None:
        """Load a full dataset streamed as ``chunks``, inside the caller's transaction.

        Raises :class:`KnowledgeError` when the bytes do not match ``entry`` (digest, size,
        record count, id order); the caller's transaction must then roll back.
        """
        if self.has_dataset(entry.digest):
            for _ in chunks:  # still consume (and let the caller verify) the member
                pass
            return
        where = f"dataset {entry.name}"
        hasher = Hasher()
        batches = line_batches(_tee(chunks, hasher))
        dataset = self._new_dataset(entry)
        count = 0
        previous: str | None = None
        if entry.type in BLOCK_TYPES:

            def runs() -> Iterator[tuple[list[str], list[bytes]]]:
                nonlocal count, previous
                for lines in batches:
                    ids = _ids(lines, where)
                    previous = _check_order(ids, previous, where)
                    count += len(ids)
                    yield ids, lines

            self._insert_blocks(dataset, runs())
        else:

            def records(lines: list[bytes]) -> Iterator[tuple[str, bytes, Any]]:
                nonlocal previous
                for line in lines:
                    rid, doc = _line_id(line, where)
                    if previous is not None and rid <= previous:
                        raise _out_of_order(rid, where)
                    previous = rid
                    yield rid, line, doc

            count = self._insert_records(dataset, entry.type, map(records, batches))
        self._check(entry, hasher, count)

    def _check(self, entry: DatasetEntry, hasher: Hasher, count: int) -> None:
        where = f"dataset {entry.name}"
        if hasher.digest() != entry.digest or hasher.size != entry.size:
            raise KnowledgeError(
                f"{where}: content is {hasher.digest()} ({hasher.size} bytes), "
                f"the manifest declares {entry.digest} ({entry.size} bytes)"
            )
        if count != entry.records:
            raise KnowledgeError(f"{where}: {count} records, the manifest declares {entry.records}")

    def dataset_lines(self, digest: Digest) -> Iterator[bytes]:
        """The dataset's lines in id order: its exact canonical bytes, line by line."""
        found = self._dataset_layout(digest)
        if found is None:
            raise KnowledgeError(f"dataset {digest} is not in the knowledge store")
        dataset, layout = found
        if layout is Layout.BLOCKS:
            blocks = self._conn.execute(
                "SELECT x.first_id, b.body FROM dataset_blocks x JOIN blocks b ON b.id = x.block "
                "WHERE x.dataset = ? ORDER BY x.first_id",
                (dataset,),
            )
            for first_id, body in blocks:
                yield from unpack(body, where=f"{self.db.path}: dataset {digest} block {first_id}")
            return
        rows = self._conn.execute(
            "SELECT r.body FROM dataset_records dr JOIN records r ON r.id = dr.record "
            "WHERE dr.dataset = ? ORDER BY dr.record_id",
            (dataset,),
        )
        for (body,) in rows:
            yield bytes(body)

    def dataset_bytes(self, digest: Digest) -> bytes:
        return b"".join(line + b"\n" for line in self.dataset_lines(digest))

    @staticmethod
    def parse_patch(chunks: Iterable[bytes], where: str) -> Patch:
        lines = split_lines(chunks)
        try:
            header = json.loads(next(lines))
            base, target = Digest.parse(header["base"]), Digest.parse(header["target"])
            removed = frozenset(str(r) for r in header["removed"])
        except (StopIteration, ValueError, KeyError, TypeError) as e:
            raise KnowledgeError(f"{where}: malformed patch header: {e}") from e
        puts: dict[str, bytes] = {}
        for line in lines:
            rid, _ = _line_id(line, where)
            if rid in puts:
                raise KnowledgeError(f"{where}: record {rid!r} is put twice")
            puts[rid] = line
        return Patch(base, target, removed, puts)

    def apply_patch(self, entry: DatasetEntry, patch: Patch) -> None:
        """Build ``entry`` from its base dataset and ``patch``, inside the caller's transaction;
        the result must hash to exactly ``entry.digest``."""
        if patch.target != entry.digest:
            raise KnowledgeError(
                f"patch for {entry.name} targets {patch.target}, not {entry.digest}"
            )
        if self.has_dataset(entry.digest):
            return
        if not self.has_dataset(patch.base):
            raise KnowledgeError(
                f"dataset {entry.name}: base dataset {patch.base} is not in the knowledge store",
                hint="import the full bundle this delta was made against first",
            )
        hasher = Hasher()
        blocks = entry.type in BLOCK_TYPES

        def merged() -> Iterator[tuple[str, bytes, Any]]:
            puts = sorted(patch.puts.items())
            i = 0
            for line in self.dataset_lines(patch.base):
                rid, doc = _line_id(line, entry.name)
                if blocks:
                    doc = None  # not needed, and a third of a million kept alive cost GC time
                while i < len(puts) and puts[i][0] < rid:
                    yield self._hashed(hasher, *puts[i])
                    i += 1
                if i < len(puts) and puts[i][0] == rid:
                    yield self._hashed(hasher, *puts[i])
                    i += 1
                elif rid not in patch.removed:
                    hasher.update(line + b"\n")
                    yield rid, line, doc
            while i < len(puts):
                yield self._hashed(hasher, *puts[i])
                i += 1

        dataset = self._new_dataset(entry)
        rows = list(merged())  # materialize: reading and writing one table in one statement
        if blocks:
            self._insert_blocks(dataset, [([r[0] for r in rows], [r[1] for r in rows])])
        else:
            self._insert_records(dataset, entry.type, [rows])
        self._check(entry, hasher, len(rows))

    @staticmethod
    def _hashed(hasher: Hasher, rid: str, line: bytes) -> tuple[str, bytes, Any]:
        hasher.update(line + b"\n")
        return rid, line, orjson.loads(line)

    # -- snapshots -------------------------------------------------------------------------

    def add_snapshot(
        self,
        manifest_bytes: bytes,
        manifest: Manifest,
        *,
        sequence: int,
        channel: str,
        kind: str,
        base: Digest | None,
        bundle: Digest,
        created: str,
        imported: str,
    ) -> Digest:
        digest = Digest.of_bytes(manifest_bytes)
        missing = [d.name for d in manifest.datasets if not self.has_dataset(d.digest)]
        if missing:
            raise KnowledgeError(f"snapshot {digest}: datasets not loaded: {', '.join(missing)}")
        conn = self._conn
        conn.execute(
            "INSERT OR IGNORE INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(digest),
                manifest_bytes,
                sequence,
                channel,
                kind,
                str(base) if base else None,
                str(bundle),
                created,
                imported,
            ),
        )
        conn.executemany(
            "INSERT OR IGNORE INTO snapshot_datasets "
            "SELECT ?, ?, id, ? FROM datasets WHERE digest = ?",
            [(str(digest), d.name, d.type.value, str(d.digest)) for d in manifest.datasets],
        )
        return digest

    def activate(self, digest: Digest, channel: str, sequence: int) -> None:
        conn = self._conn
        conn.execute("INSERT OR REPLACE INTO knowledge_state VALUES ('active', ?)", (str(digest),))
        conn.execute(
            "INSERT OR REPLACE INTO knowledge_state VALUES (?, ?)",
            (f"sequence:{channel}", str(sequence)),
        )

    def _state(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM knowledge_state WHERE key = ?", (key,))
        found = row.fetchone()
        return str(found[0]) if found else None

    def active(self) -> Digest | None:
        value = self._state("active")
        return Digest.parse(value) if value else None

    def last_sequence(self, channel: str) -> int | None:
        value = self._state(f"sequence:{channel}")
        return int(value) if value is not None else None

    def has_snapshot(self, digest: Digest) -> bool:
        row = self._conn.execute("SELECT 1 FROM snapshots WHERE digest = ?", (str(digest),))
        return row.fetchone() is not None

    def manifest_bytes(self, digest: Digest) -> bytes:
        row = self._conn.execute("SELECT manifest FROM snapshots WHERE digest = ?", (str(digest),))
        found = row.fetchone()
        if found is None:
            raise KnowledgeError(f"snapshot {digest} is not in the knowledge store")
        return bytes(found[0])

    def manifest(self, digest: Digest) -> Manifest:
        return Manifest.from_bytes(self.manifest_bytes(digest), source=f"snapshot {digest}")

    def snapshots(self) -> list[SnapshotRow]:
        active = self.active()
        rows = self._conn.execute(
            "SELECT digest, sequence, channel, kind, base, bundle, created, imported "
            "FROM snapshots ORDER BY imported, sequence"
        )
        return [
            SnapshotRow(
                digest=Digest.parse(r[0]),
                sequence=int(r[1]),
                channel=str(r[2]),
                kind=str(r[3]),
                base=Digest.parse(r[4]) if r[4] else None,
                bundle=Digest.parse(r[5]),
                created=str(r[6]),
                imported=str(r[7]),
                active=active is not None and r[0] == str(active),
            )
            for r in rows
        ]

    # -- queries ---------------------------------------------------------------------------

    def advisory_lines(
        self, packages: Iterable[tuple[str, str]], snapshot: Digest | None = None
    ) -> dict[tuple[str, str], list[tuple[str, int, bytes]]]:
        """For many (ecosystem, name) packages at once, the OSV records of ``snapshot``
        (default: the active one) affecting each, as (record id, record key, canonical line)
        in record id order, each distinct line once; the key is the line's 64-bit content key
        (same key, same line). A package without records is absent from the answer. See
        :meth:`advisory_rows`."""
        answer: dict[tuple[str, str], list[tuple[str, int, bytes]]] = {}
        for package, record_id, record, line in self.advisory_rows(packages, snapshot):
            rows = answer.get(package)
            if rows is None:
                answer[package] = [(record_id, record, line)]
            else:
                rows.append((record_id, record, line))
        by_id = operator.itemgetter(0, 1)
        for rows in answer.values():
            rows.sort(key=by_id)  # never on the query plan's order
        return answer

    def advisory_rows(
        self, packages: Iterable[tuple[str, str]], snapshot: Digest | None = None
    ) -> Iterator[tuple[tuple[str, str], str, int, bytes]]:
        """The rows of :meth:`advisory_lines` as the database yields them, unordered: (the
        package as given, record id, record key, canonical line), once per package and
        distinct line. Names compare normalized; a package asked under two spellings gets
        the rows under both.

        One query per :data:`QUERY_CHUNK` packages instead of one per package: a scan asks
        for every component of an image at once."""
        snap = snapshot or self.active()
        wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for ecosystem, name in packages:
            wanted.setdefault((ecosystem, normalize_name(ecosystem, name)), []).append(
                (ecosystem, name)
            )
        if snap is None or not wanted:
            return
        keys = list(wanted)
        for start in range(0, len(keys), QUERY_CHUNK):
            chunk = keys[start : start + QUERY_CHUNK]
            values = ", ".join("(?, ?)" for _ in chunk)  # placeholders only
            # EXISTS, not a join: a record two datasets of the snapshot hold is one row, so
            # no set of rows seen is kept; the body is read only for the rows kept
            rows = self._conn.execute(
                f"WITH wanted(ecosystem, name) AS (VALUES {values}) "  # noqa: S608
                "SELECT a.ecosystem, a.name, a.record_id, a.record, r.body FROM wanted w "
                "JOIN affected a ON a.ecosystem = w.ecosystem AND a.name = w.name "
                "JOIN records r ON r.id = a.record "
                "WHERE EXISTS (SELECT 1 FROM snapshot_datasets sd "
                "JOIN dataset_records dr ON dr.dataset = sd.dataset "
                "AND dr.record_id = a.record_id AND dr.record = a.record "
                "WHERE sd.snapshot = ?)",
                [*(v for key in chunk for v in key), str(snap)],
            )
            # the columns are TEXT, INTEGER and BLOB: sqlite3 gives str, int and bytes
            for ecosystem, name, record_id, record, body in rows:
                for asked in wanted[(ecosystem, name)]:
                    yield asked, record_id, record, body

    def lookup_lines(
        self, dataset_type: DatasetType, record_ids: Iterable[str], snapshot: Digest | None = None
    ) -> dict[str, bytes]:
        """For many ids at once (KEV and EPSS by CVE), the line of the first dataset (by name)
        of this type in ``snapshot`` (default: the active one) that has a record with that
        id, unparsed, in one query per :data:`QUERY_CHUNK` ids (or per block). Ids without a
        record are absent."""
        answer: dict[str, bytes] = {}
        for lines in reversed(self._lookup_each(dataset_type, record_ids, snapshot)):
            answer.update(lines)  # the first dataset by name is applied last and wins
        return answer

    def lookup_all(
        self, dataset_type: DatasetType, record_ids: Iterable[str], snapshot: Digest | None = None
    ) -> dict[str, list[bytes]]:
        """Like :meth:`lookup_lines`, but the lines of every dataset of the type that has the
        id, in dataset name order (CVE ratings from NVD and from the CVE list add up)."""
        answer: dict[str, list[bytes]] = {}
        for lines in self._lookup_each(dataset_type, record_ids, snapshot):
            for rid, line in lines.items():
                answer.setdefault(rid, []).append(line)
        return answer

    def alias_lines(
        self, aliases: Iterable[str], snapshot: Digest | None = None
    ) -> dict[str, list[tuple[str, bytes]]]:
        """For many ids at once (CVEs), the GitHub advisories of ``snapshot`` (default: the
        active one) that alias each, as (record id, canonical line) in record id order, each
        distinct line once. Ids no advisory aliases are absent."""
        snap = snapshot or self.active()
        wanted = sorted(set(aliases))
        answer: dict[str, list[tuple[str, bytes]]] = {}
        if snap is None or not wanted:
            return answer
        for start in range(0, len(wanted), QUERY_CHUNK):
            chunk = wanted[start : start + QUERY_CHUNK]
            marks = ", ".join("?" for _ in chunk)  # placeholders only
            rows = self._conn.execute(
                "SELECT a.alias, a.record_id, r.body FROM advisory_aliases a "  # noqa: S608
                "JOIN records r ON r.id = a.record "
                f"WHERE a.alias IN ({marks}) AND EXISTS (SELECT 1 FROM snapshot_datasets sd "
                "JOIN dataset_records dr ON dr.dataset = sd.dataset "
                "AND dr.record_id = a.record_id AND dr.record = a.record "
                "WHERE sd.snapshot = ?)",
                [*chunk, str(snap)],
            )
            for alias, record_id, body in rows:
                answer.setdefault(str(alias), []).append((str(record_id), bytes(body)))
        for found in answer.values():
            found.sort()
        return answer

    def _lookup_each(
        self, dataset_type: DatasetType, record_ids: Iterable[str], snapshot: Digest | None
    ) -> list[dict[str, bytes]]:
        """Per dataset of the type in the snapshot, in name order: the lines of those ids."""
        snap = snapshot or self.active()
        ids = sorted(set(record_ids))
        if snap is None or not ids:
            return []
        datasets = self._conn.execute(
            "SELECT d.id, d.digest, d.layout FROM snapshot_datasets sd "
            "JOIN datasets d ON d.id = sd.dataset "
            "WHERE sd.snapshot = ? AND sd.type = ? ORDER BY sd.name",
            (str(snap), dataset_type.value),
        ).fetchall()
        return [
            self._block_lines(int(dataset), str(digest), ids)
            if Layout(layout) is Layout.BLOCKS
            else self._record_lines(int(dataset), ids)
            for dataset, digest, layout in datasets
        ]

    def _record_lines(self, dataset: int, ids: Sequence[str]) -> dict[str, bytes]:
        answer: dict[str, bytes] = {}
        for start in range(0, len(ids), QUERY_CHUNK):
            chunk = ids[start : start + QUERY_CHUNK]
            marks = ", ".join("?" for _ in chunk)  # placeholders only
            rows = self._conn.execute(
                f"SELECT dr.record_id, r.body FROM dataset_records dr "  # noqa: S608
                "JOIN records r ON r.id = dr.record "
                f"WHERE dr.dataset = ? AND dr.record_id IN ({marks})",
                [dataset, *chunk],
            )
            for record_id, body in rows:
                answer[str(record_id)] = bytes(body)
        return answer

    def _block_lines(self, dataset: int, digest: str, ids: Sequence[str]) -> dict[str, bytes]:
        """The lines of ``ids`` (sorted) in a block-stored dataset (row ``dataset``, named by
        ``digest`` in errors): each id belongs to the block with the greatest first id not
        above it; each block is read once."""
        starts = [
            str(first)
            for (first,) in self._conn.execute(
                "SELECT first_id FROM dataset_blocks WHERE dataset = ? ORDER BY first_id",
                (dataset,),
            )
        ]
        wanted: dict[str, list[str]] = {}
        for rid in ids:
            at = bisect.bisect_right(starts, rid) - 1
            if at >= 0:
                wanted.setdefault(starts[at], []).append(rid)
        answer: dict[str, bytes] = {}
        firsts = list(wanted)
        for start in range(0, len(firsts), QUERY_CHUNK):
            chunk = firsts[start : start + QUERY_CHUNK]
            marks = ", ".join("?" for _ in chunk)  # placeholders only
            rows = self._conn.execute(
                "SELECT x.first_id, b.ids, b.body FROM dataset_blocks x "  # noqa: S608
                "JOIN blocks b ON b.id = x.block "
                f"WHERE x.dataset = ? AND x.first_id IN ({marks})",
                [dataset, *chunk],
            )
            for first, block_ids, body in rows:
                where = f"{self.db.path}: dataset {digest} block {first}"
                answer.update(find_many(block_ids, body, wanted[first], where=where))
        return answer

    def ecosystems(self, snapshot: Digest | None = None) -> frozenset[str]:
        """Every ecosystem the snapshot's OSV datasets have at least one record for."""
        snap = snapshot or self.active()
        if snap is None:
            return frozenset()
        rows = self._conn.execute(
            "SELECT DISTINCT de.ecosystem FROM snapshot_datasets sd "
            "JOIN dataset_ecosystems de ON de.dataset = sd.dataset WHERE sd.snapshot = ?",
            (str(snap),),
        )
        return frozenset(str(e) for (e,) in rows)

    def counts(self, snapshot: Digest) -> dict[str, int]:
        rows = self._conn.execute(
            "SELECT sd.type, SUM(d.records) FROM snapshot_datasets sd "
            "JOIN datasets d ON d.id = sd.dataset WHERE sd.snapshot = ? GROUP BY sd.type",
            (str(snapshot),),
        )
        return {str(t): int(n) for t, n in rows}


def _tee(chunks: Iterable[bytes], hasher: Hasher) -> Iterator[bytes]:
    for chunk in chunks:
        hasher.update(chunk)
        yield chunk


DEFAULT_RETENTION_DAYS = 548  # 18 months: verdicts made with a snapshot can be replayed that long


@dataclass(frozen=True, slots=True)
class PruneResult:
    snapshots: tuple[Digest, ...]
    datasets: int
    records: int
    blocks: int = 0


def prune(
    store: KnowledgeStore, *, before: str, keep: frozenset[Digest] = frozenset()
) -> PruneResult:
    """Forget snapshots imported before ``before`` (RFC 3339), except the active one and
    ``keep`` (snapshots a retained verdict names); then datasets and records no remaining
    snapshot uses. One transaction."""
    active = store.active()
    conn = store.db.connection
    with store.db.transaction("prune snapshots"):
        rows = conn.execute("SELECT digest FROM snapshots WHERE imported < ?", (before,)).fetchall()
        doomed = [
            Digest.parse(r[0])
            for r in rows
            if Digest.parse(r[0]) != active and Digest.parse(r[0]) not in keep
        ]
        for digest in doomed:
            conn.execute("DELETE FROM snapshot_datasets WHERE snapshot = ?", (str(digest),))
            conn.execute("DELETE FROM snapshots WHERE digest = ?", (str(digest),))
        orphans = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM datasets WHERE id NOT IN (SELECT dataset FROM snapshot_datasets)"
            )
        ]
        for dataset in orphans:
            conn.execute("DELETE FROM dataset_ecosystems WHERE dataset = ?", (dataset,))
            conn.execute("DELETE FROM dataset_records WHERE dataset = ?", (dataset,))
            conn.execute("DELETE FROM dataset_blocks WHERE dataset = ?", (dataset,))
            conn.execute("DELETE FROM datasets WHERE id = ?", (dataset,))
        records = blocks = 0
        if orphans:
            conn.execute(
                "DELETE FROM affected WHERE record NOT IN (SELECT record FROM dataset_records)"
            )
            conn.execute(
                "DELETE FROM advisory_aliases "
                "WHERE record NOT IN (SELECT record FROM dataset_records)"
            )
            records = conn.execute(
                "DELETE FROM records WHERE id NOT IN (SELECT record FROM dataset_records)"
            ).rowcount
            blocks = conn.execute(
                "DELETE FROM blocks WHERE id NOT IN (SELECT block FROM dataset_blocks)"
            ).rowcount
    return PruneResult(tuple(doomed), len(orphans), records, blocks)


def install_snapshot(
    store: KnowledgeStore,
    datasets: Sequence[tuple[DatasetEntry, bytes]],
    *,
    sequence: int,
    channel: str,
    created: str,
    imported: str | None = None,
    bundle: Digest | None = None,
    activate: bool = True,
) -> Digest:
    """Load in-memory datasets as one snapshot (and activate it), in one transaction: what an
    import does, for snapshots that do not arrive in a bundle (tests, benchmarks, restores)."""
    manifest = Manifest(sources=(), datasets=tuple(entry for entry, _ in datasets))
    manifest_bytes = manifest.canonical()
    with store.db.transaction("install snapshot"):
        for entry, data in datasets:
            store.load_dataset(entry, [data])
        digest = store.add_snapshot(
            manifest_bytes,
            manifest,
            sequence=sequence,
            channel=channel,
            kind="full",
            base=None,
            bundle=bundle or Digest.of_bytes(manifest_bytes),
            created=created,
            imported=imported or created,
        )
        if activate:
            store.activate(digest, channel, sequence)
    return digest
