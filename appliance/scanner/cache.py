"""The layer-result cache: what a layer walk found, kept in SQLite and keyed by the layer's
digest and the analyzers' versions, so a second image sharing a base layer reuses it.

It lives in its own database (``$STELLA_HOME/scan-cache.db``), apart from ``state.db``: it
holds nothing that was decided, can be deleted at any time, and is rebuilt by the next scan.
``stella scan`` keeps it even before ``stella init`` (as trivy keeps its cache in the user's
cache directory): an uninitialised home gets its directory (mode 0700) and this one file, which
``stella init`` later keeps.
An entry is written once per (layer digest, key) and never changed; the key is the SHA-256 of
the walk version and every analyzer's name and version, so bumping any of them makes old
entries unreachable (:meth:`LayerCache.prune` deletes them). A second table keeps a whole
image's merged result, keyed by its config digest, its layer digests and the same versions,
so scanning the same image again reads one row.

A third table keeps the facts of the Python files the function-level trace parsed
(:mod:`appliance.scanner.pyfacts`), one row per (layer digest, key, path): the layer is the one
the file's text comes from in the image, so a second image sharing that layer (or the same
image whose merged row is gone) reads them instead of parsing again. Each row also names the
SHA-256 of the text it was read from and is used only when that matches and its facts have
the shape :func:`~appliance.scanner.pyfacts.valid_facts` expects; a row is at most
:data:`FACTS_ENTRY_BYTES` once inflated (larger facts are not kept), and a layer has at most
one row per Python source file it holds.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import types
import zlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from appliance.home import Home
from appliance.scanner.analyzers.table import AnalyzerTable
from appliance.scanner.layers import WALK_VERSION, LayerRecord
from appliance.scanner.pyfacts import python_facts, valid_facts
from appliance.store.db import Database, Schema, SqliteDatabase, StoreError
from bundles import limits
from bundles.digest import Digest

CACHE_FILE: Final = "scan-cache.db"

_zlib: types.ModuleType
try:  # ISA-L writes and reads the same zlib streams three to five times as fast as zlib
    from isal import isal_zlib

    _zlib = isal_zlib
except ImportError:  # pragma: no cover - depends on the installation
    _zlib = zlib


def _loads(data: bytes) -> Any:
    """A cached record's JSON: read with orjson (a cached image result is megabytes, read once
    per gate), or with the standard parser for what orjson refuses and the writer may have
    written (a lone surrogate, from a file name that is not UTF-8; an integer beyond 64 bits)."""
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        return json.loads(data)


_DAMAGED: Final[tuple[type[Exception], ...]] = (zlib.error, _zlib.error, ValueError)
_DAMAGED_RECORD: Final[tuple[type[Exception], ...]] = (*_DAMAGED, KeyError, TypeError)

SCHEMA: Final = Schema(
    "scan_cache",
    (
        """
        CREATE TABLE layer_results (
            layer TEXT NOT NULL,
            analyzers TEXT NOT NULL,
            record BLOB NOT NULL,
            PRIMARY KEY (layer, analyzers)
        ) STRICT
        """,
        """
        CREATE TABLE image_results (
            key TEXT PRIMARY KEY,
            analyzers TEXT NOT NULL,
            record BLOB NOT NULL
        ) STRICT
        """,
        """
        CREATE TABLE layer_facts (
            layer TEXT NOT NULL,
            analyzers TEXT NOT NULL,
            path TEXT NOT NULL,
            record BLOB NOT NULL,
            PRIMARY KEY (layer, analyzers, path)
        ) STRICT
        """,
    ),
)

FACTS_ENTRY_BYTES: Final = 4 << 20
"""The most one cached file's facts may take, as JSON (a row inflating past it is damaged)."""


def open_home_cache(home: Home) -> LayerCache | None:
    """The home's cache, created on first use. An initialised home's cache must open (its
    failure is the home's problem to report); an uninitialised home's is best effort: a
    directory that cannot be created or written scans without a cache, as before."""
    path = home.root / CACHE_FILE
    if home.initialized:
        return LayerCache.open(path)
    try:
        home.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return LayerCache.open(path)
    except (OSError, StoreError):
        return None


def analyzers_key(registry: AnalyzerTable) -> str:
    """The part of a cache key the analyzers contribute (walk version included), and the
    scan caps in force: what a layer over a cap yields changes when the cap is raised."""
    versions: Mapping[str, int] = registry.versions()
    caps = {name: cap.value() for name, cap in limits.CAPS.items() if name.startswith("scan.")}
    text = json.dumps({"walk": WALK_VERSION, "analyzers": versions, "caps": caps}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def encode(record: LayerRecord) -> bytes:
    data: bytes = _zlib.compress(json.dumps(record.to_dict(), separators=(",", ":")).encode(), 1)
    return data


def decode(blob: bytes) -> LayerRecord:
    return LayerRecord.from_dict(_loads(_zlib.decompress(blob)))


class LayerCache:
    """One open cache database. Not shared between threads."""

    __slots__ = ("db",)

    def __init__(self, db: Database) -> None:
        self.db = db

    @classmethod
    def open(cls, path: Path) -> LayerCache:
        path.parent.mkdir(parents=True, exist_ok=True)
        db = SqliteDatabase.open(path)
        db.ensure(SCHEMA)
        return cls(db)

    def get(self, layer: Digest, key: str) -> LayerRecord | None:
        rows = self.db.query(
            "SELECT record FROM layer_results WHERE layer = ? AND analyzers = ?",
            (str(layer), key),
        )
        if not rows:
            return None
        try:
            return decode(rows[0][0])
        except _DAMAGED_RECORD:
            return None  # a damaged entry is a miss; the next put replaces it

    def put(self, layer: Digest, key: str, record: LayerRecord) -> None:
        data = encode(record)
        with self.db.transaction("cache a layer's scan results") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO layer_results (layer, analyzers, record) VALUES (?, ?, ?)",
                (str(layer), key, sqlite3.Binary(data)),
            )

    def get_image(self, key: str) -> dict[str, Any] | None:
        """A whole image's merged result (see ``service``), by a key naming its config, its
        layers and the analyzers' versions."""
        rows = self.db.query("SELECT record FROM image_results WHERE key = ?", (key,))
        if not rows:
            return None
        try:
            value = _loads(_zlib.decompress(rows[0][0]))
        except _DAMAGED:
            return None
        return value if isinstance(value, dict) else None

    def put_image(self, key: str, analyzers: str, record: Mapping[str, Any]) -> None:
        data = _zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 1)
        with self.db.transaction("cache an image's scan result") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO image_results (key, analyzers, record) VALUES (?, ?, ?)",
                (key, analyzers, sqlite3.Binary(data)),
            )

    def get_facts(self, layer: Digest, key: str, path: str, source: str) -> dict[str, Any] | None:
        """The facts cached for ``path`` of ``layer``, when they were read from the text whose
        SHA-256 is ``source``; a damaged, oversized or foreign row is a miss."""
        rows = self.db.query(
            "SELECT record FROM layer_facts WHERE layer = ? AND analyzers = ? AND path = ?",
            (str(layer), key, path),
        )
        if not rows:
            return None
        try:
            inflate = zlib.decompressobj()
            data = inflate.decompress(rows[0][0], FACTS_ENTRY_BYTES)
            if inflate.unconsumed_tail or not inflate.eof:
                return None  # over the bound, or cut short
            value = json.loads(data)
        except (zlib.error, ValueError, TypeError):
            return None
        if not isinstance(value, dict) or value.get("source") != source:
            return None
        facts = value.get("facts")
        return facts if valid_facts(facts) else None

    def put_facts(
        self, key: str, entries: Iterable[tuple[Digest, str, str, Mapping[str, Any]]]
    ) -> None:
        """Keep each (layer, path, SHA-256 of the text, facts) entry; facts over
        :data:`FACTS_ENTRY_BYTES` are left out (they are read again when needed)."""
        rows = []
        for layer, path, source, facts in entries:
            data = json.dumps({"source": source, "facts": facts}, separators=(",", ":")).encode()
            if len(data) <= FACTS_ENTRY_BYTES:
                rows.append((str(layer), key, path, sqlite3.Binary(zlib.compress(data, 1))))
        if not rows:
            return
        with self.db.transaction("cache Python files' facts") as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO layer_facts (layer, analyzers, path, record)"
                " VALUES (?, ?, ?, ?)",
                rows,
            )

    def prune(self, keep_key: str) -> int:
        """Delete entries made with other analyzer versions; returns how many."""
        with self.db.transaction("prune the layer cache") as conn:
            conn.execute("DELETE FROM image_results WHERE analyzers != ?", (keep_key,))
            conn.execute("DELETE FROM layer_facts WHERE analyzers != ?", (keep_key,))
            cursor = conn.execute("DELETE FROM layer_results WHERE analyzers != ?", (keep_key,))
            return cursor.rowcount

    def clear(self) -> int:
        with self.db.transaction("clear the layer cache") as conn:
            conn.execute("DELETE FROM image_results")
            conn.execute("DELETE FROM layer_facts")
            return conn.execute("DELETE FROM layer_results").rowcount

    def count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM layer_results")[0][0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> LayerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class CachedFacts:
    """The facts of one image's Python files for the function-level trace, each read from
    ``cache`` under the layer the file's text comes from (``origin``: path -> index into
    ``layers``, the topmost layer that has the file) or parsed and kept for :meth:`save`.

    Merging follows the layers: an upper layer's copy of a file replaces a lower one's (its
    own row, under its own digest), and a file an upper layer deletes is not in the image, so
    no lower layer's row for it is ever asked for."""

    __slots__ = ("cache", "key", "layers", "new", "origin")

    def __init__(
        self,
        cache: LayerCache,
        key: str,
        layers: Sequence[Digest],
        origin: Mapping[str, int],
    ) -> None:
        self.cache = cache
        self.key = key
        self.layers = layers
        self.origin = origin
        self.new: list[tuple[Digest, str, str, Mapping[str, Any]]] = []

    def __call__(self, path: str, text: str) -> Mapping[str, Any]:
        index = self.origin.get(path)
        if index is None or not 0 <= index < len(self.layers):
            return python_facts(text)
        layer = self.layers[index]
        source = source_digest(text)
        found = self.cache.get_facts(layer, self.key, path, source)
        if found is None:
            found = python_facts(text)
            self.new.append((layer, path, source, found))
        return found

    def save(self) -> None:
        """Write the facts parsed since the last save."""
        new, self.new = self.new, []
        self.cache.put_facts(self.key, new)


def source_digest(text: str) -> str:
    """What a facts row is checked against: the SHA-256 of the text its facts were read from."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
