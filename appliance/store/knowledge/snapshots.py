"""The snapshot registry of ``knowledge.db``: which snapshots were imported (their exact
manifests), which is active, and the last accepted sequence of each channel."""

from __future__ import annotations

from appliance.store.knowledge.datasets import Datasets
from appliance.store.knowledge.schema import (
    KnowledgeError,
    SnapshotRow,
)
from bundles.digest import Digest
from bundles.snapshot import Manifest


class Snapshots(Datasets):
    """Snapshots: add, activate, list."""

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
            "INSERT INTO snapshots VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
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
            "INSERT INTO snapshot_datasets "
            "SELECT ?, ?, id, ? FROM datasets WHERE digest = ? ON CONFLICT DO NOTHING",
            [(str(digest), d.name, d.type.value, str(d.digest)) for d in manifest.datasets],
        )
        return digest

    def activate(self, digest: Digest, channel: str, sequence: int) -> None:
        conn = self._conn
        upsert = (
            "INSERT INTO knowledge_state VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
        )
        conn.execute(upsert, ("active", str(digest)))
        conn.execute(upsert, (f"sequence:{channel}", str(sequence)))

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
