"""Keeping ``knowledge.db`` to size, and installing a snapshot that did not come in a bundle."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from appliance.store.knowledge.store import KnowledgeStore
from bundles.digest import Digest
from bundles.snapshot import DatasetEntry, Manifest

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
