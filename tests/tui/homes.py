"""A real appliance home with one gated image, built through the appliance's own services:
``stella init``, an image in the local store, a knowledge snapshot (OSV + KEV) and a gate.
The TUI's end-to-end tests drive it through :class:`appliance.service.ApplianceService`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from appliance.home import Home
from appliance.rva.gate import gate
from appliance.store.knowledge import KnowledgeStore
from bundles import canonical
from bundles.digest import Digest
from bundles.snapshot import DatasetEntry, DatasetType, Manifest
from tests.appliance.scanner.layouts import build_image, dist_info

GATED_AT = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 7, 0, 0, tzinfo=UTC)
SITE = "usr/local/lib/python3.11/site-packages"
IMAGE = "app:1"
CVE = "CVE-2018-18074"
OSV = {
    "id": "PYSEC-2018-0001",
    "aliases": [CVE],
    "modified": "2026-01-01T00:00:00Z",
    "summary": "requests sends credentials on redirect",
    "affected": [
        {
            "package": {"ecosystem": "PyPI", "name": "requests"},
            "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]}],
        }
    ],
    "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
}
KEV = {"id": CVE, "cveID": CVE, "dateAdded": "2026-01-02"}


def _dataset(
    record: Mapping[str, object], name: str, dtype: DatasetType
) -> tuple[DatasetEntry, bytes]:
    data = canonical.dumps_lines([dict(record)])
    return DatasetEntry(name, dtype, name, Digest.of_bytes(data), 1, len(data)), data


def add_snapshot(home: Home, *, created: str = "2026-11-20T00:00:00Z") -> Digest:
    """Load and activate a snapshot holding one OSV record and its KEV entry."""
    store = KnowledgeStore.open(home.knowledge_db)
    parts = [
        _dataset(OSV, "osv-pypi", DatasetType.OSV),
        _dataset(KEV, "kev", DatasetType.KEV),
    ]
    try:
        with store.db.transaction():
            for entry, data in parts:
                store.load_dataset(entry, [data])
            manifest = Manifest(sources=(), datasets=tuple(e for e, _ in parts))
            snap = store.add_snapshot(
                manifest.canonical(),
                manifest,
                sequence=1,
                channel="stable",
                kind="full",
                base=None,
                bundle=Digest.of_bytes(b"bundle"),
                created=created,
                imported=created,
            )
            store.activate(snap, "stable", 1)
    finally:
        store.close()
    return snap


def gated_home(root: Path) -> Home:
    """A home whose image ``app:1`` (requests 2.19.0) was gated FAIL: its finding is in KEV."""
    home = Home(root)
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag=IMAGE)
    add_snapshot(home)
    result = gate(home, IMAGE, at=GATED_AT, now=lambda: GATED_AT)
    assert result.kind.value == "FAIL"
    return home
