"""Loading datasets into ``knowledge.db`` and rebuilding their exact bytes: a full dataset
streamed from a bundle, or a delta's patch applied to its base; each checked against what its
signed manifest declares before the caller's transaction commits."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from appliance.store.blocks import pack_runs, unpack
from appliance.store.knowledge.lines import (
    _alias_rows,
    _check_order,
    _ids,
    _index_rows,
    _line_id,
    _out_of_order,
    _record_key,
    _tee,
    line_batches,
    split_lines,
)
from appliance.store.knowledge.schema import (
    BLOCK_TYPES,
    KnowledgeError,
    Layout,
    Patch,
    StoreBase,
)
from bundles.digest import Digest, Hasher
from bundles.snapshot import DatasetEntry, DatasetType

# Blocks per insert: a few MiB of compressed lines at a time.
_BLOCK_BATCH = 64


class Datasets(StoreBase):
    """Datasets: load, patch, rebuild."""

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
            "INSERT INTO datasets (digest, type, records, size, layout) VALUES (?, ?, ?, ?, ?)"
            " RETURNING id",
            (str(entry.digest), entry.type.value, entry.records, entry.size, layout.value),
        )
        return int(cursor.fetchone()[0])

    def _insert_blocks(self, dataset: int, runs: Iterable[tuple[list[str], list[bytes]]]) -> None:
        """Store a table dataset as blocks, from runs of consecutive ``(ids, lines)``."""
        db = self.db
        blocks: list[tuple[int, bytes, bytes]] = []
        members: list[tuple[int, str, int]] = []

        def flush() -> None:
            db.bulk_insert("blocks", ("id", "ids", "body"), blocks, ignore_conflicts=True)
            db.bulk_insert("dataset_blocks", ("dataset", "first_id", "block"), members)
            blocks.clear()
            members.clear()

        for block in pack_runs(runs):
            blocks.append((block.key, block.ids, block.body))
            members.append((dataset, block.first_id, block.key))
            if len(blocks) >= _BLOCK_BATCH:
                flush()
        flush()

    def _insert_records(
        self, dataset: int, dtype: DatasetType, runs: Iterable[Iterable[tuple[str, bytes, Any]]]
    ) -> int:
        """Store a dataset one row per record, from runs of consecutive ``(id, line, doc)``
        (each document is dropped once its match-index rows are taken); returns the count."""
        db = self.db
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
            db.bulk_insert("records", ("id", "body"), records, ignore_conflicts=True)
            db.bulk_insert("dataset_records", ("dataset", "record_id", "record"), members)
            db.bulk_insert(
                "affected",
                ("ecosystem", "name", "record_id", "record"),
                index,
                ignore_conflicts=True,
            )
            db.bulk_insert(
                "advisory_aliases", ("alias", "record_id", "record"), aliases, ignore_conflicts=True
            )
            ecosystems.update(row[0] for row in index)
            count += len(members)
        db.bulk_insert(
            "dataset_ecosystems",
            ("dataset", "ecosystem"),
            [(dataset, e) for e in sorted(ecosystems)],
            ignore_conflicts=True,
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
                yield from unpack(body, where=f"{self.db.where}: dataset {digest} block {first_id}")
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
