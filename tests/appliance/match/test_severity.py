"""The one severity precedence (docs/matching.md): distro, then GHSA, then the matched
advisory's own rating, then the CVE's CNA / NVD / ADP CVSS; every rating kept, in order.
Real records: tests/data/feeds (PyPA OSV, Debian tracker, GHSA, NVD API 2.0, CVE JSON 5)."""

from __future__ import annotations

import copy
from typing import Any

from appliance.match import (
    Finding,
    Inventory,
    MemoryAdvisories,
    Severity,
    SeveritySource,
    match,
)
from appliance.match.enrich import _preference, assess, cve_ratings
from appliance.scanner.model import OSInfo, Package, PackageType
from tests.appliance.match.data import cve, debian12, ghsa, pypi

DEBIAN = OSInfo("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")


def one(findings: tuple[Finding, ...], fid: str) -> Finding:
    (f,) = [f for f in findings if f.id == fid]
    return f


def test_ghsa_beats_the_advisorys_own_vector_and_the_cve_record() -> None:
    source = MemoryAdvisories([*pypi(), *ghsa()], cve=cve())
    report = match(Inventory.of([Package(PackageType.PYPI, "urllib3", "1.24.1")]), source)
    f = one(report.findings, "CVE-2023-43804")
    # GitHub says MODERATE (5.9); PyPA's own vector says 8.1; the CNA (GitHub) says 5.9
    assert (f.severity, f.severity_source) == (Severity.MEDIUM, SeveritySource.GHSA)
    assert f.severity_detail == "GHSA-v845-jxx5-vc9f severity MODERATE"
    assert f.score == 5.9
    assert [(r.source, r.provider, r.score) for r in f.ratings] == [
        (SeveritySource.GHSA, "GHSA-v845-jxx5-vc9f", None),
        (SeveritySource.GHSA, "GHSA-v845-jxx5-vc9f", 5.9),
        (SeveritySource.CVSS_V3, "PYSEC-2023-192", 8.1),
        (SeveritySource.CVE_CNA, "GitHub_M for CVE-2023-43804", 5.9),
    ]


def test_pyyaml_critical_from_github_and_nvd_alike() -> None:
    pyyaml = Package(PackageType.PYPI, "PyYAML", "5.3.1")
    with_ghsa = match(Inventory.of([pyyaml]), MemoryAdvisories([*pypi(), *ghsa()], cve=cve()))
    f = one(with_ghsa.findings, "CVE-2020-14343")
    assert (f.severity, f.severity_source) == (Severity.CRITICAL, SeveritySource.GHSA)
    # without GitHub's record, NVD's own analysis rates it (9.8; its v2 vector ranks after v3)
    nvd_only = match(Inventory.of([pyyaml]), MemoryAdvisories(pypi(), cve=cve()))
    g = one(nvd_only.findings, "CVE-2020-14343")
    assert (g.severity, g.severity_source, g.score) == (Severity.CRITICAL, SeveritySource.NVD, 9.8)
    assert g.severity_detail.startswith(
        "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H (9.8) from nvd@nist.gov for CVE-2020-14343"
    )
    assert [r.version for r in g.ratings] == ["3.1", "2.0"]  # all kept, the decider first
    # and with neither, as before: unknown, no source
    bare = one(match(Inventory.of([pyyaml]), MemoryAdvisories(pypi())).findings, "CVE-2020-14343")
    assert (bare.severity, bare.severity_source, bare.ratings) == (
        Severity.UNKNOWN,
        SeveritySource.NONE,
        (),
    )


def test_the_distributions_own_rating_comes_first_and_ghsa_is_reached_by_alias() -> None:
    requests = Package(PackageType.DEB, "python3-requests", "2.28.1+dfsg-1", source_name="requests")
    source = MemoryAdvisories([*debian12(), *ghsa()], cve=cve())
    report = match(Inventory.of([requests], DEBIAN), source)
    f = one(report.findings, "CVE-2023-32681")
    assert (f.severity, f.severity_source) == (Severity.MEDIUM, SeveritySource.DISTRO)
    assert f.severity_detail == "DEBIAN-CVE-2023-32681 urgency medium"
    # GitHub's advisory is for the PyPI package, reached through the CVE alias: kept, second
    assert [r.source for r in f.ratings] == [
        SeveritySource.DISTRO,
        SeveritySource.GHSA,
        SeveritySource.GHSA,
    ]


def test_a_distro_word_from_the_contract_fields() -> None:
    record: dict[str, Any] = {
        "id": "RHSA-2024:0001",
        "affected": [
            {
                "package": {"ecosystem": "Red Hat:9", "name": "openssl"},
                "database_specific": {"severity": "Important"},
            }
        ],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:N"}],
    }
    a = assess([(record, record["affected"])], os_package=True)
    assert (a.severity, a.source, a.detail) == (
        Severity.HIGH,
        SeveritySource.DISTRO,
        "RHSA-2024:0001 severity Important",
    )
    ubuntu = {"id": "UBUNTU-CVE-2024-1", "database_specific": {"severity": "negligible"}}
    assert assess([(ubuntu, [])], os_package=True).severity is Severity.NEGLIGIBLE


def _cve(records: tuple[dict[str, Any], ...], cve_id: str) -> dict[str, Any]:
    return copy.deepcopy(next(r for r in records if r["id"] == cve_id))


def test_cve_order_cna_then_nvd_then_adp() -> None:
    rec = _cve(cve(), "CVE-2022-23491")  # GitHub (CNA) 6.8 medium, NVD 7.5 high
    a = assess([], cves=["CVE-2022-23491"], cve=lambda c: [rec] if c == rec["id"] else [])
    assert (a.severity, a.source) == (Severity.MEDIUM, SeveritySource.CVE_CNA)
    assert a.detail.endswith("from security-advisories@github.com for CVE-2022-23491")
    adp = _cve(cve(), "CVE-2024-27351")  # only CISA's ADP rates it
    b = assess([], cves=[adp["id"]], cve=lambda c: [adp])
    assert (b.severity, b.source, b.ratings[0].score) == (
        Severity.MEDIUM,
        SeveritySource.CVE_ADP,
        5.3,
    )


def test_an_invalid_vector_with_a_published_score_uses_the_score_and_says_so() -> None:
    rec = _cve(cve(), "CVE-2021-33503")
    rec["ratings"][0]["vector"] = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:Q"  # A:Q is no value
    (bad, v2) = cve_ratings(rec)
    assert (bad.source, bad.severity, bad.score) == (SeveritySource.NVD, Severity.HIGH, 7.5)
    assert bad.note == "vector does not parse; the published base score is used"
    assert (v2.version, v2.score, v2.severity) == ("2.0", 5.0, Severity.MEDIUM)
    a = assess([], cves=[rec["id"]], cve=lambda c: [rec])
    assert a.severity is Severity.HIGH
    assert a.detail.endswith("; vector does not parse; the published base score is used")
    # without a published score, a vector that does not parse gives no rating at all
    del rec["ratings"][0]["score"]
    assert [r.version for r in cve_ratings(rec)] == ["2.0"]


def test_ratings_are_in_precedence_order_and_round_trip() -> None:
    source = MemoryAdvisories([*pypi(), *ghsa()], cve=cve())
    report = match(Inventory.of([Package(PackageType.PYPI, "urllib3", "1.24.1")]), source)
    assert report.findings
    for f in report.findings:
        assert list(f.ratings) == sorted(f.ratings, key=_preference)
        assert (f.ratings[0].severity, f.ratings[0].source) == (f.severity, f.severity_source)
        assert Finding.from_dict(f.to_dict()) == f


def test_the_first_rating_is_the_one_that_decided() -> None:
    """Within one source a CVSS v4.0 vector decides before v3.x (and v3.x before v2), so it
    comes first in the kept ratings, whatever the version strings sort as."""
    v3 = "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"
    v4 = "CVSS:4.0/AV:L/AC:H/AT:P/PR:H/UI:A/VC:L/VI:N/VA:N/SC:N/SI:N/SA:N"
    record = {
        "id": "RHSA-2024:0002",
        "severity": [{"type": "CVSS_V3", "score": v3}, {"type": "CVSS_V4", "score": v4}],
    }
    a = assess([(record, [])], os_package=True)
    assert [(r.version, r.severity) for r in a.ratings] == [
        ("4.0", a.severity),
        ("3.1", Severity.CRITICAL),
    ]
    assert a.severity is Severity.LOW
    assert a.detail.startswith(v4)


def test_every_demo_pypi_finding_is_rated_with_the_sample_feeds() -> None:
    """The packages of the sample app image (examples/sample), with GHSA and CVE loaded."""
    packages = [
        Package(PackageType.PYPI, name, version)
        for name, version in [
            ("certifi", "2022.9.24"),
            ("Django", "3.2"),
            ("idna", "3.6"),
            ("Jinja2", "2.10"),
            ("PyYAML", "5.3.1"),
            ("requests", "2.19.0"),
            ("sqlparse", "0.4.1"),
            ("urllib3", "1.24.1"),
        ]
    ]
    report = match(Inventory.of(packages), MemoryAdvisories([*pypi(), *ghsa()], cve=cve()))
    unrated = [f.id for f in report.findings if f.severity_source is SeveritySource.NONE]
    assert len(report.findings) >= 40
    assert unrated == []


def test_the_distribution_feeds_words_rate_as_the_distro() -> None:
    """Real Ubuntu and Rocky records through their parsers: the vendor's word in the matched
    entry (the distro contract's ``database_specific.severity``) decides."""
    from pathlib import Path

    from mirror.config import SourceKind
    from mirror.inputs import Upstream
    from mirror.sources import source_for

    feeds = Path(__file__).resolve().parents[2] / "data" / "feeds"
    expected = {
        "ubuntu-osv": ("UBUNTU-CVE-2022-3715", Severity.MEDIUM, "severity medium"),
        "rocky-osv": ("RLSA-2023:0340", Severity.MEDIUM, "severity Moderate"),
    }
    for kind, (rid, level, word) in expected.items():
        root = feeds / kind
        parsed = source_for(SourceKind(kind)).parse(
            Upstream(root, root.name).members(limit=1 << 28)
        )
        record = next(r for r in parsed.records if r["id"] == rid)
        a = assess([(record, record["affected"][:1])], os_package=True)
        assert (a.severity, a.source, a.detail) == (level, SeveritySource.DISTRO, f"{rid} {word}")
