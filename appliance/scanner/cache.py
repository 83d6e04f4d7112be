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
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from appliance.home import Home
from appliance.scanner.analyzers.table import AnalyzerTable
from appliance.scanner.layers import WALK_VERSION, LayerRecord
from appliance.store.db import Database, Schema, SqliteDatabase, StoreError
from bundles import limits
from bundles.digest import Digest

CACHE_FILE: Final = "scan-cache.db"

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
    ),
)


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
    return zlib.compress(json.dumps(record.to_dict(), separators=(",", ":")).encode(), 1)


def decode(blob: bytes) -> LayerRecord:
    return LayerRecord.from_dict(json.loads(zlib.decompress(blob)))


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
        except (zlib.error, ValueError, KeyError, TypeError):
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
            value = json.loads(zlib.decompress(rows[0][0]))
        except (zlib.error, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def put_image(self, key: str, analyzers: str, record: Mapping[str, Any]) -> None:
        data = zlib.compress(json.dumps(record, separators=(",", ":")).encode(), 1)
        with self.db.transaction("cache an image's scan result") as conn:
            conn.execute(
                "INSERT OR REPLACE INTO image_results (key, analyzers, record) VALUES (?, ?, ?)",
                (key, analyzers, sqlite3.Binary(data)),
            )

    def prune(self, keep_key: str) -> int:
        """Delete entries made with other analyzer versions; returns how many."""
        with self.db.transaction("prune the layer cache") as conn:
            conn.execute("DELETE FROM image_results WHERE analyzers != ?", (keep_key,))
            cursor = conn.execute("DELETE FROM layer_results WHERE analyzers != ?", (keep_key,))
            return cursor.rowcount

    def clear(self) -> int:
        with self.db.transaction("clear the layer cache") as conn:
            conn.execute("DELETE FROM image_results")
            return conn.execute("DELETE FROM layer_results").rowcount

    def count(self) -> int:
        return int(self.db.query("SELECT count(*) FROM layer_results")[0][0])

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> LayerCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
