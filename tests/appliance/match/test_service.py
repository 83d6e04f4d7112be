"""The store-backed source: same findings as in memory, record digests as the store keeps
them, KEV/EPSS from the snapshot, and a clear error without a snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.match import Inventory, MemoryAdvisories, match
from appliance.match.service import KnowledgeAdvisories, NoKnowledge, match_inventory
from appliance.store.knowledge import KnowledgeStore, install_snapshot
from bundles import canonical
from bundles.digest import Digest
from bundles.snapshot import DatasetType, build_dataset
from tests.appliance.match.data import debian12, npm, pypi
from tests.appliance.match.test_app_image import APP
from tests.appliance.match.test_distro import BOOKWORM, IMAGE

KEV = [
    {
        "id": "CVE-2023-4911",
        "cveID": "CVE-2023-4911",
        "dateAdded": "2023-11-21",
        "dueDate": "2023-12-12",
        "knownRansomwareCampaignUse": "Unknown",
    }
]
EPSS = [{"id": "CVE-2018-18074", "epss": "0.00587", "percentile": "0.77926"}]


@pytest.fixture
def store(tmp_path: Path):
    s = KnowledgeStore.open(tmp_path / "knowledge.db")
    parts = [
        build_dataset("osv-pypi", DatasetType.OSV, pypi()),
        build_dataset("npm", DatasetType.OSV, npm()),
        build_dataset("debian", DatasetType.OSV, debian12()),
        build_dataset("kev", DatasetType.KEV, KEV),
        build_dataset("epss", DatasetType.EPSS, EPSS),
    ]
    install_snapshot(s, parts, sequence=1, channel="c", created="2026-01-01T00:00:00Z")
    yield s
    s.close()


def test_store_and_memory_agree_and_digests_are_the_stored_lines(store: KnowledgeStore) -> None:
    snap = store.active()
    inventory = Inventory.of([*APP, *IMAGE], BOOKWORM)
    from_store = match_inventory(store, inventory)
    memory = MemoryAdvisories(
        [*pypi(), *npm(), *debian12()], kev=KEV, epss=EPSS, snapshot=str(snap)
    )
    assert canonical.dumps(from_store.to_dict()) == canonical.dumps(
        match(inventory, memory).to_dict()
    )
    lines = {
        Digest.of_bytes(line).hex
        for name in ("osv-pypi", "npm", "debian")
        for line in store.dataset_lines(
            next(d.digest for d in store.manifest(snap).datasets if d.name == name)
        )
    }
    assert from_store.records()
    assert {r.digest for r in from_store.records()} <= lines
    glibc = next(f for f in from_store.findings if f.id == "CVE-2023-4911")
    assert glibc.kev is not None
    assert glibc.kev.date_added == "2023-11-21"
    requests = next(f for f in from_store.findings if f.id == "CVE-2018-18074")
    assert requests.epss is not None
    assert requests.epss.percentile == "0.77926"
    assert all(m.snapshot == str(snap) for f in from_store.findings for m in f.matches)


def test_no_snapshot_is_a_clear_error(tmp_path: Path) -> None:
    s = KnowledgeStore.open(tmp_path / "empty.db")
    with pytest.raises(NoKnowledge, match="no active snapshot"):
        KnowledgeAdvisories(s)
    with pytest.raises(NoKnowledge, match="is not in the knowledge store"):
        KnowledgeAdvisories(s, Digest.of_bytes(b"x"))
    s.close()


def test_a_release_the_snapshot_has_no_data_for_is_unknown_not_clean(tmp_path) -> None:
    """Regression: the store once could not say which ecosystems it covers, so bookworm
    packages matched against a snapshot without Debian 12 data came out clean."""
    from appliance.match.model import Inventory
    from appliance.match.service import match_inventory
    from appliance.scanner.model import OSInfo, Package, PackageType
    from appliance.store.knowledge import KnowledgeStore
    from bundles.snapshot import DatasetType, build_dataset

    store = KnowledgeStore.open(tmp_path / "k.db")
    record = {"id": "DSA-1", "affected": [{"package": {"ecosystem": "Debian:11", "name": "zlib"}}]}
    datasets = [build_dataset("debian", DatasetType.OSV, [record])]
    install_snapshot(store, datasets, sequence=1, channel="c", created="2026-01-01T00:00:00Z")
    zlib = Package(PackageType.DEB, "zlib1g", "1.2.13", source_name="zlib", source_version="1.2.13")
    report = match_inventory(store, Inventory.of([zlib], OSInfo("debian", "12", "bookworm")))
    store.close()
    assert report.findings == ()
    assert [u.kind.value for u in report.unknowns] == ["no-distro-data"]
