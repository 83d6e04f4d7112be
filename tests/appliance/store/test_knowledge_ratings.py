"""knowledge.db's severity lookups: GitHub advisories by the CVE they alias, CVE ratings from
every ``cve`` dataset of a snapshot, and a match through the store that uses both."""

from __future__ import annotations

import pytest

from appliance.match import Inventory, Severity, SeveritySource
from appliance.match.service import match_inventory
from appliance.scanner.model import Package, PackageType
from appliance.store.knowledge import KnowledgeStore, prune
from bundles import canonical
from bundles.digest import Digest
from bundles.snapshot import DatasetEntry, DatasetType, Manifest, build_dataset
from tests.appliance.match.data import cve, ghsa, pypi
from tests.appliance.store.conftest import Opener


@pytest.fixture
def store(open_db: Opener) -> KnowledgeStore:
    return KnowledgeStore(open_db("knowledge"))


def install(store: KnowledgeStore, datasets: list[tuple[DatasetEntry, bytes]], seq: int) -> Digest:
    manifest = Manifest(sources=(), datasets=tuple(e for e, _ in datasets))
    with store.db.transaction():
        for entry, data in datasets:
            store.load_dataset(entry, [data])
        snap = store.add_snapshot(
            manifest.canonical(),
            manifest,
            sequence=seq,
            channel="c",
            kind="full",
            base=None,
            bundle=Digest.of_bytes(str(seq).encode()),
            created="2026-01-01T00:00:00Z",
            imported=f"2026-01-0{seq}T00:00:00Z",
        )
        store.activate(snap, "c", seq)
    return snap


def test_ghsa_by_alias_and_cve_ratings_from_every_dataset(store: KnowledgeStore) -> None:
    records = cve()
    nvd = [r for r in records if r["id"] != "CVE-2023-43804"]
    cve5 = [r for r in records if r["id"] == "CVE-2023-43804"]
    snap = install(
        store,
        [
            build_dataset("ghsa", DatasetType.OSV, list(ghsa())),
            build_dataset("cve-nvd", DatasetType.CVE, nvd),
            build_dataset("cvelist", DatasetType.CVE, [*cve5, nvd[0] | {"ratings": []}]),
        ],
        1,
    )
    aliased = store.alias_lines(["CVE-2020-14343", "CVE-9999-0001"], snap)
    assert list(aliased) == ["CVE-2020-14343"]
    ((rid, line),) = aliased["CVE-2020-14343"]
    assert rid == "GHSA-8q59-q68h-6hv4"
    assert canonical.loads(line)["database_specific"]["severity"] == "CRITICAL"
    both = store.lookup_all(DatasetType.CVE, [nvd[0]["id"], "CVE-2023-43804"], snap)
    assert len(both[nvd[0]["id"]]) == 2  # one line from each dataset, in name order
    assert len(both["CVE-2023-43804"]) == 1


def test_match_through_the_store_reaches_ghsa_and_nvd(store: KnowledgeStore) -> None:
    install(
        store,
        [
            build_dataset("osv-pypi", DatasetType.OSV, list(pypi())),
            build_dataset("ghsa", DatasetType.OSV, list(ghsa())),
            build_dataset("cve", DatasetType.CVE, list(cve())),
        ],
        1,
    )
    packages = [
        Package(PackageType.PYPI, "PyYAML", "5.3.1"),
        Package(PackageType.PYPI, "urllib3", "1.24.1"),
    ]
    report = match_inventory(store, Inventory.of(packages))
    by_id = {f.id: f for f in report.findings}
    pyyaml = by_id["CVE-2020-14343"]
    assert (pyyaml.severity, pyyaml.severity_source) == (Severity.CRITICAL, SeveritySource.GHSA)
    # urllib3 CVE-2019-11324: no GitHub record in the sample; NVD's v3.0 analysis rates it
    old = by_id["CVE-2019-11324"]
    assert (old.severity, old.severity_source, old.score) == (
        Severity.HIGH,
        SeveritySource.NVD,
        7.5,
    )
    assert all(f.severity_source is not SeveritySource.NONE for f in report.findings)


def test_prune_forgets_the_aliases_of_forgotten_records(store: KnowledgeStore) -> None:
    install(store, [build_dataset("ghsa", DatasetType.OSV, list(ghsa()))], 1)
    install(store, [build_dataset("ghsa", DatasetType.OSV, list(ghsa())[:1])], 2)
    prune(store, before="2026-01-09T00:00:00Z")
    rows = store.db.connection.execute("SELECT COUNT(*) FROM advisory_aliases").fetchone()
    assert rows[0] == 1


def test_the_alias_index_is_backfilled_when_an_older_store_is_opened(open_db: Opener) -> None:
    store = KnowledgeStore(open_db("knowledge"))
    install(store, [build_dataset("ghsa", DatasetType.OSV, list(ghsa()))], 1)
    with store.db.transaction() as conn:  # what a store written before the index looks like
        conn.execute("DROP TABLE advisory_aliases")
        conn.execute("UPDATE schema_versions SET version = 3 WHERE component = 'knowledge'")
    store.close()
    reopened = KnowledgeStore(open_db("knowledge"))
    try:
        found = reopened.alias_lines(["CVE-2020-14343", "CVE-2023-46695"])
        assert {a: [rid for rid, _ in rows] for a, rows in found.items()} == {
            "CVE-2020-14343": ["GHSA-8q59-q68h-6hv4"],
            "CVE-2023-46695": ["GHSA-qmf9-6jqf-j8fq"],
        }
    finally:
        reopened.close()
