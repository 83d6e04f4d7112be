"""The ``ghsa`` and ``cve`` feed kinds on real records (tests/data/feeds/ghsa, .../cve): what
they keep, what they name when a record is bad, and that every packing gives the same dataset."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from bundles.snapshot import DatasetType, build_dataset
from mirror.config import SourceKind
from mirror.inputs import Member, Upstream
from mirror.sources import source_for
from mirror.sources.cve import CVESource
from mirror.sources.ghsa import GHSASource

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
PYYAML = "advisories/github-reviewed/2021/03/GHSA-8q59-q68h-6hv4/GHSA-8q59-q68h-6hv4.json"


def members(root: Path) -> list[Member]:
    return Upstream(root, root.name).members(limit=1 << 26)


def ghsa_file(name: str = PYYAML) -> dict[str, Any]:
    record: dict[str, Any] = json.loads((FEEDS / "ghsa" / name).read_bytes())
    return record


def test_kinds_are_registered_for_mirror_toml() -> None:
    assert isinstance(source_for(SourceKind("ghsa")), GHSASource)
    assert isinstance(source_for(SourceKind("cve")), CVESource)
    assert GHSASource.dataset_type is DatasetType.OSV  # GitHub advisories match
    assert CVESource.dataset_type is DatasetType.CVE  # CVE records only rate


def test_ghsa_keeps_severity_vectors_and_reviewed() -> None:
    result = GHSASource().parse(members(FEEDS / "ghsa"))
    assert not result.unknowns
    by_id = {r["id"]: r for r in result.records}
    assert len(by_id) == 10
    pyyaml = by_id["GHSA-8q59-q68h-6hv4"]
    assert pyyaml["aliases"] == ["CVE-2020-14343"]
    assert pyyaml["database_specific"]["severity"] == "CRITICAL"
    assert pyyaml["database_specific"]["github_reviewed"] is True
    assert pyyaml["severity"] == [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}
    ]
    assert {a["package"]["ecosystem"] for r in result.records for a in r["affected"]} == {"PyPI"}


def test_ghsa_unreviewed_folder_is_recorded_when_the_record_is_silent() -> None:
    record = ghsa_file()
    del record["database_specific"]["github_reviewed"]
    data = json.dumps(record).encode()
    name = "advisories/github-unreviewed/2021/03/GHSA-8q59-q68h-6hv4/GHSA-8q59-q68h-6hv4.json"
    (parsed,) = GHSASource().parse([Member(name, data)]).records
    assert parsed["database_specific"]["github_reviewed"] is False


def test_ghsa_json_lines_and_tarball_give_the_same_dataset(tmp_path: Path) -> None:
    from_dir = GHSASource().parse(members(FEEDS / "ghsa")).records
    lines = b"\n".join(json.dumps(r).encode() for r in from_dir) + b"\n"
    from_lines = GHSASource().parse([Member("ghsa.jsonl", lines)]).records
    tar = tmp_path / "advisory-database-main.tar.gz"
    with tarfile.open(tar, "w:gz") as t:
        t.add(FEEDS / "ghsa" / "advisories", arcname="advisory-database-main/advisories")
    from_tar = GHSASource().parse(members(tar)).records
    one = build_dataset("ghsa", DatasetType.OSV, from_dir)[0].digest
    assert build_dataset("ghsa", DatasetType.OSV, from_lines)[0].digest == one
    assert build_dataset("ghsa", DatasetType.OSV, from_tar)[0].digest == one


@pytest.mark.parametrize(
    ("mangle", "item", "reason"),
    [
        (
            lambda r: r.update(id="PYSEC-2021-142"),
            f"{PYYAML} (PYSEC-2021-142)",
            "field 'id': 'PYSEC-2021-142' is not a GHSA id",
        ),
        (
            lambda r: r["database_specific"].update(severity="SEVERE"),
            f"{PYYAML} (GHSA-8q59-q68h-6hv4):database_specific.severity",
            "unknown value 'SEVERE' (kept the record; expected one of CRITICAL, HIGH, LOW, "
            "MODERATE)",
        ),
        (
            lambda r: r["severity"][0].update(score="CVSS:3.1/AV:Q"),
            f"{PYYAML} (GHSA-8q59-q68h-6hv4):severity[0]",
            "vector 'CVSS:3.1/AV:Q' does not parse",
        ),
        (
            lambda r: r.pop("modified"),
            f"{PYYAML} (GHSA-8q59-q68h-6hv4)",
            "field 'modified' missing or not a string",
        ),
    ],
)
def test_ghsa_names_file_field_and_value(
    mangle: Callable[[dict[str, Any]], object], item: str, reason: str
) -> None:
    record = ghsa_file()
    mangle(record)
    result = GHSASource().parse([Member(PYYAML, json.dumps(record).encode())])
    (unknown,) = result.unknowns
    assert unknown.item == item
    assert unknown.reason.startswith(reason)


def test_cve_keeps_who_gave_each_vector() -> None:
    result = CVESource().parse(members(FEEDS / "cve"))
    assert not result.unknowns
    by_id = {r["id"]: r for r in result.records}
    assert [r["id"] for r in result.records] == sorted(by_id)
    # NVD's own analysis (Primary) and its v2 vector; the CVE 5 record adds no CVSS
    pyyaml = by_id["CVE-2020-14343"]
    assert [(r["origin"], r["provider"], r["feed"], r["version"]) for r in pyyaml["ratings"]] == [
        ("nvd", "nvd@nist.gov", "nvd", "3.1"),
        ("nvd", "nvd@nist.gov", "nvd", "2.0"),
    ]
    assert pyyaml["ratings"][0]["score"] == "9.8"
    assert pyyaml["ratings"][0]["severity"] == "CRITICAL"
    # the CNA (GitHub) in the CVE 5 record; NVD received nothing for it in this sample
    urllib3 = by_id["CVE-2023-43804"]
    assert [(r["origin"], r["provider"], r["feed"]) for r in urllib3["ratings"]] == [
        ("cna", "GitHub_M", "cve5")
    ]
    # NVD "Secondary" from CISA's ADP organisation is named as the ADP, not as NVD
    django = by_id["CVE-2024-27351"]
    assert [(r["origin"], r["provider"], r["nvd_type"]) for r in django["ratings"]] == [
        ("adp", "CISA-ADP", "Secondary")
    ]
    # NVD "Secondary" from a CNA's address is the CNA's vector; CVE 5 and NVD add up
    idna = by_id["CVE-2024-3651"]
    assert sorted((r["origin"], r["provider"], r["feed"]) for r in idna["ratings"]) == [
        ("cna", "@huntr_ai", "cve5"),
        ("cna", "security@huntr.dev", "nvd"),
    ]
    # an NVD record still awaiting analysis has no rating, and is kept as such
    assert by_id["CVE-2023-31047"]["ratings"] == []


def test_cve_one_file_per_cve_is_read_like_an_api_response() -> None:
    api = json.loads((FEEDS / "cve" / "nvd" / "nvdcve-2.0-sample.json").read_bytes())
    entry = next(v["cve"] for v in api["vulnerabilities"] if v["cve"]["id"] == "CVE-2020-14343")
    name = "CVE-2020/CVE-2020-143xx/CVE-2020-14343.json"
    (record,) = CVESource().parse([Member(name, json.dumps(entry).encode())]).records
    (from_api,) = [
        r
        for r in CVESource().parse([Member("api.json", json.dumps(api).encode())]).records
        if r["id"] == "CVE-2020-14343"
    ]
    assert record == from_api


@pytest.mark.parametrize(
    ("doc", "item", "reason"),
    [
        (
            {"dataType": "CVE_RECORD", "cveMetadata": {"cveId": "CVE-20-1"}},
            "x.json",
            "field 'cveMetadata.cveId': not a CVE id: 'CVE-20-1'",
        ),
        (
            {
                "vulnerabilities": [
                    {
                        "cve": {
                            "id": "CVE-2020-14343",
                            "metrics": {
                                "cvssMetricV31": [
                                    {
                                        "source": "nvd@nist.gov",
                                        "type": "Primary",
                                        "cvssData": {"version": "3.1", "baseScore": 9.8},
                                    }
                                ]
                            },
                        }
                    }
                ]
            },
            "x.json:vulnerabilities[0] (CVE-2020-14343):metrics.cvssMetricV31[0]",
            "field 'vectorString' missing or empty: None",
        ),
        (
            {
                "vulnerabilities": [
                    {
                        "cve": {
                            "id": "CVE-2020-14343",
                            "metrics": {
                                "cvssMetricV31": [
                                    {
                                        "source": "nvd@nist.gov",
                                        "type": "Primary",
                                        "cvssData": {
                                            "version": "3.1",
                                            "vectorString": "CVSS:3.1/AV:N",
                                            "baseScore": 99,
                                        },
                                    }
                                ]
                            },
                        }
                    }
                ]
            },
            "x.json:vulnerabilities[0] (CVE-2020-14343):metrics.cvssMetricV31[0].baseScore",
            "not a score 0..10: 99",
        ),
        (
            {"hello": "world"},
            "x.json",
            "neither a CVE JSON 5 record (cveMetadata) nor NVD CVE API 2.0 JSON",
        ),
    ],
)
def test_cve_names_file_field_and_value(doc: dict[str, Any], item: str, reason: str) -> None:
    result = CVESource().parse([Member("x.json", json.dumps(doc).encode())])
    assert [(u.item, u.reason) for u in result.unknowns] == [(item, reason)]


def test_cve_tarball_of_the_cve_list_equals_the_directory(tmp_path: Path) -> None:
    tar = tmp_path / "cvelistV5-main.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        t.add(FEEDS / "cve" / "cvelistV5", arcname="cvelistV5-main")
    tar.write_bytes(buf.getvalue())
    assert (
        CVESource().parse(members(tar)).records
        == CVESource().parse(members(FEEDS / "cve" / "cvelistV5")).records
    )


def test_cve_json_lines_equal_the_files_and_change_logs_are_not_records() -> None:
    files = members(FEEDS / "cve")
    lines = b"\n".join(json.dumps(json.loads(m.data)).encode() for m in files) + b"\n\n"
    logs = [
        Member("cves/delta.json", b'{"new": [], "updated": []}'),
        Member("cves/deltaLog.json", b"[]"),
    ]
    result = CVESource().parse([*logs, Member("cves.jsonl", lines)])
    assert result.unknowns == []
    assert sorted(result.ignored) == ["cves/delta.json", "cves/deltaLog.json"]
    assert result.records == CVESource().parse(files).records
