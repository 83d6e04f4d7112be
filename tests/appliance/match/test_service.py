"""The store-backed source: same findings as in memory, record digests as the store keeps
them, KEV/EPSS from the snapshot, and a clear error without a snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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
def store(tmp_path: Path) -> Iterator[KnowledgeStore]:
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
    assert snap is not None
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


def test_a_release_the_snapshot_has_no_data_for_is_unknown_not_clean(tmp_path: Path) -> None:
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


def test_a_scan_reads_the_store_in_batches(
    store: KnowledgeStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One query batch for every package, one per table for the hits' CVEs; never one
    query per package or per CVE."""
    calls: dict[str, int] = {}

    def counting(name: str) -> Callable[..., object]:
        real = getattr(KnowledgeStore, name)

        def wrapper(self: KnowledgeStore, *args: object, **kwargs: object) -> object:
            calls[name] = calls.get(name, 0) + 1
            return real(self, *args, **kwargs)

        return wrapper

    for name in ("advisory_rows", "advisory_lines", "lookup_lines"):
        monkeypatch.setattr(KnowledgeStore, name, counting(name))
    report = match_inventory(store, Inventory.of([*APP, *IMAGE], BOOKWORM))
    assert len(report.findings) > 10
    assert calls == {"advisory_lines": 1, "advisory_rows": 1, "lookup_lines": 2}


def test_the_source_answers_unprefetched_questions_too(store: KnowledgeStore) -> None:
    source = KnowledgeAdvisories(store)
    requests = source.advisories("PyPI", "Requests")
    assert requests
    assert [a.id for a in requests] == sorted(a.id for a in requests)
    same = source.advisories("PyPI", "requests")
    assert [(a.record, a.digest) for a in same] == [(a.record, a.digest) for a in requests]
    assert source.advisories("PyPI", "no-such-package") == []
    assert source.epss("CVE-2018-18074") == EPSS[0]
    assert source.epss("CVE-1999-0001") is None
    assert source.kev("CVE-2023-4911") == KEV[0]
    assert source.kev("CVE-2018-18074") is None
    source.prefetch_cves(["CVE-2023-4911", "CVE-2018-18074"])  # already known: no change
    assert source.kev("CVE-2023-4911") == KEV[0]


def test_a_source_pinned_to_an_older_snapshot_reads_its_records(tmp_path: Path) -> None:
    from appliance.scanner.model import Package, PackageType

    def record(fixed: str) -> dict[str, Any]:
        return {
            "id": "PYSEC-1",
            "aliases": ["CVE-2020-1"],
            "affected": [
                {
                    "package": {"ecosystem": "PyPI", "name": "demo"},
                    "ranges": [
                        {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                    ],
                }
            ],
        }

    s = KnowledgeStore.open(tmp_path / "k.db")
    snaps = [
        install_snapshot(
            s,
            [
                build_dataset("osv", DatasetType.OSV, [record(fixed)]),
                build_dataset("epss", DatasetType.EPSS, [{"id": "CVE-2020-1", **score}]),
            ],
            sequence=seq,
            channel="c",
            created=f"2026-0{seq}-01T00:00:00Z",
        )
        for seq, fixed, score in (
            (1, "1.5", {"epss": "0.1", "percentile": "0.5"}),
            (2, "2.5", {"epss": "0.7", "percentile": "0.9"}),
        )
    ]
    inventory = Inventory.of([Package(PackageType.PYPI, "demo", "2.0")], None)
    assert match_inventory(s, inventory, snaps[0]).findings == ()
    (finding,) = match_inventory(s, inventory).findings
    assert finding.fixed_versions == ("2.5",)
    assert finding.epss is not None
    assert finding.epss.score == "0.7"
    old = KnowledgeAdvisories(s, snaps[0])
    assert old.epss("CVE-2020-1") == {"id": "CVE-2020-1", "epss": "0.1", "percentile": "0.5"}
    (advisory,) = old.advisories("PyPI", "demo")
    assert advisory.digest == Digest.of_bytes(canonical.dumps(record("1.5"))).hex
    s.close()


def test_a_rescans_recording_source_hands_on_the_curated_reachability(tmp_path: Path) -> None:
    """The source a rescan matches through reads the snapshot's curated reachability records
    as the gate's does: without them a rescan judged Python findings at the package level
    while ``stella gate`` judged them at the function level."""
    from appliance.match.service import RecordingAdvisories
    from appliance.match.source import Curated

    curated = {
        "id": "CVE-2018-18074",
        "package": "requests",
        "symbols": ["requests.sessions.SessionRedirectMixin.rebuild_auth"],
        "source": "test",
    }
    store = KnowledgeStore.open(tmp_path / "k.db")
    install_snapshot(
        store,
        [
            build_dataset("osv-pypi", DatasetType.OSV, pypi()),
            build_dataset("reach", DatasetType.REACHABILITY, [curated]),
        ],
        sequence=1,
        channel="stable",
        created="2026-11-20T00:00:00Z",
        bundle=Digest.of_bytes(b"b"),
    )
    inner = KnowledgeAdvisories(store)
    recording = RecordingAdvisories(inner)
    assert isinstance(recording, Curated)
    found = recording.reach_records(["CVE-2018-18074", "CVE-1999-0001"])
    assert found == inner.reach_records(["CVE-2018-18074"])
    assert [r["id"] for r in found] == ["CVE-2018-18074"]
    store.close()
