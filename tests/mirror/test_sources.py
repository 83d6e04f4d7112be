"""Each feed format parsed from the real (trimmed) upstream files in tests/data/feeds."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from bundles.releases import DEBIAN_CODENAMES as CODENAMES
from mirror.config import SourceKind
from mirror.datasets import build_dataset
from mirror.inputs import Member, Upstream, unpack
from mirror.sources import SOURCES, ParseResult
from mirror.sources.debian import ecosystem

LIMIT = 1 << 30


def parse(kind: SourceKind, path: Path) -> ParseResult:
    return SOURCES[kind].parse(Upstream(path, path.name).members(limit=LIMIT))


def by_id(result: ParseResult) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in result.records}


def test_osv_jsonl_gz_keeps_records_as_published(feeds: Path) -> None:
    result = parse(SourceKind.OSV, feeds / "pypi-osv.jsonl.gz")
    assert len(result.records) == 2661
    assert result.unknowns == []
    raw = json.loads(gzip.decompress((feeds / "pypi-osv.jsonl.gz").read_bytes()).splitlines()[0])
    assert by_id(result)[raw["id"]] == raw


def test_osv_go_zero_modified_is_accepted(feeds: Path) -> None:
    result = parse(SourceKind.OSV, feeds / "go-osv.jsonl.gz")
    assert len(result.records) == 400
    assert {r["modified"] for r in result.records} == {"0001-01-01T00:00:00Z"}


def test_osv_all_zip_and_directory_give_the_same_dataset(feeds: Path, tmp_path: Path) -> None:
    lines = gzip.decompress((feeds / "rustsec-osv.jsonl.gz").read_bytes()).splitlines()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for line in reversed(lines):  # a different order than the directory
            zf.writestr(f"{json.loads(line)['id']}.json", line)
    (tmp_path / "all.zip").write_bytes(buf.getvalue())
    directory = tmp_path / "dir"
    directory.mkdir()
    for line in lines:
        (directory / f"{json.loads(line)['id']}.json").write_bytes(line)
    (directory / "README.md").write_text("not a record\n")
    from_zip = parse(SourceKind.OSV, tmp_path / "all.zip")
    from_dir = parse(SourceKind.OSV, directory)
    assert from_dir.ignored == ["README.md"]
    assert len(from_zip.records) == 300
    assert build_dataset(from_zip).digest == build_dataset(from_dir).digest


def test_osv_malformed_records_are_unknowns_with_reasons() -> None:
    lines = [
        b'{"id": "OK-1", "modified": "2024-01-01T00:00:00Z"}',
        b'{"id": "NO-MOD"}',
        b"{not json",
        b'{"id": "BAD-AFF", "modified": "2024-01-01T00:00:00Z", "affected": {"x": 1}}',
        b'{"id": "DUP", "modified": "2024-01-01T00:00:00Z", "id": "DUP2"}',
    ]
    result = SOURCES[SourceKind.OSV].parse([Member("f.jsonl", b"\n".join(lines))])
    assert [r["id"] for r in result.records] == ["OK-1"]
    reasons = {u.item: u.reason for u in result.unknowns}
    assert reasons["f.jsonl:2 (NO-MOD)"] == "field 'modified' missing or not a string"
    assert reasons["f.jsonl:3"].startswith("not valid JSON")
    assert reasons["f.jsonl:4 (BAD-AFF)"] == "field 'affected' is not a list"
    assert reasons["f.jsonl:5"] == "duplicate JSON object key 'id'"


def test_debian_lists_become_osv_shaped_advisories(feeds: Path) -> None:
    result = parse(SourceKind.DEBIAN_TRACKER, feeds / "debian-security-tracker")
    recs = by_id(result)
    assert result.unknowns == []
    dsa = recs["DSA-5380-1"]
    assert dsa["aliases"] == ["CVE-2023-1393"]
    assert dsa["published"] == "2023-03-29T00:00:00Z"
    assert dsa["affected"] == [
        {
            "package": {"ecosystem": "Debian:11", "name": "xorg-server"},
            "database_specific": {"version_scheme": "dpkg"},
            "ranges": [
                {
                    "type": "ECOSYSTEM",
                    "events": [{"introduced": "0"}, {"fixed": "2:1.20.11-1+deb11u6"}],
                }
            ],
        }
    ]
    assert recs["DLA-3380-1"]["affected"][0]["package"]["ecosystem"] == "Debian:10"


def test_debian_bookworm_list_and_unknown_lines(feeds: Path) -> None:
    result = parse(SourceKind.DEBIAN_TRACKER, feeds / "debian-bookworm" / "DSA")
    assert result.records == []  # a bare list file outside DSA/ is not recognised by name
    result = SOURCES[SourceKind.DEBIAN_TRACKER].parse(
        Upstream(feeds / "debian-bookworm", "x").members(limit=LIMIT)
    )
    recs = by_id(result)
    tomcat = recs["DSA-5665-1"]["affected"]
    assert tomcat[0]["package"] == {"ecosystem": "Debian:12", "name": "tomcat10"}
    assert tomcat[1]["database_specific"] == {
        "version_scheme": "dpkg",
        "status": "not-affected",
        "note": "tomcat10 not in bullseye",
    }
    assert {(u.item, u.reason) for u in result.unknowns} == {
        ("DSA/list:10 (DSA-9999-1)", "unknown Debian release 'potatoes'"),
        ("DSA/list:11 (DSA-9999-1)", "unrecognised line 'this line is not in the list format'"),
        ("tracker.json:glibc/CVE-2023-4911/experimental", "unknown Debian release 'experimental'"),
    }


def test_debian_tracker_json_export(feeds: Path) -> None:
    result = SOURCES[SourceKind.DEBIAN_TRACKER].parse(
        [Member("json", (feeds / "debian-bookworm" / "tracker.json").read_bytes())]
    )
    recs = by_id(result)
    openssl = recs["DEBIAN-CVE-2023-5678"]
    assert openssl["aliases"] == ["CVE-2023-5678"]
    ecos = [a["package"]["ecosystem"] for a in openssl["affected"]]
    assert ecos == ["Debian:12", "Debian:11", "Debian:unstable"]
    zlib = {a["package"]["ecosystem"]: a for a in recs["DEBIAN-CVE-2023-45853"]["affected"]}
    assert zlib["Debian:12"]["ranges"][0]["events"] == [{"introduced": "0"}, {"fixed": "0"}]
    assert zlib["Debian:11"]["ranges"][0]["events"] == [{"introduced": "0"}]
    assert zlib["Debian:11"]["database_specific"]["nodsa"] == "Minor issue"
    assert zlib["Debian:11"]["database_specific"]["debianbug"] == 1054290


@pytest.mark.parametrize(
    ("codename", "eco"),
    [("woody", "Debian:3.0"), ("squeeze", "Debian:6.0"), ("wheezy", "Debian:7"),
     ("bookworm", "Debian:12"), ("trixie", "Debian:13"), ("forky", "Debian:14"),
     ("sid", "Debian:unstable"), ("experimental", None)],
)  # fmt: skip
def test_debian_codenames(codename: str, eco: str | None) -> None:
    assert ecosystem(codename) == eco
    assert len(set(CODENAMES.values())) == len(CODENAMES)


def test_alpine_secdb_records(feeds: Path) -> None:
    result = parse(SourceKind.ALPINE_SECDB, feeds / "alpine-secdb")
    recs = by_id(result)
    aom = recs["ALPINE-CVE-2024-5171"]["affected"]
    events = [{"introduced": "0"}, {"fixed": "3.9.1-r0"}]
    assert {
        "package": {"ecosystem": "Alpine:v3.20", "name": "aom"},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
        "database_specific": {"version_scheme": "apk", "repository": "main"},
    } in aom
    fixes = sum(len(r["affected"]) for r in result.records)
    assert fixes > 5000


def test_alpine_extra_ids_become_aliases_and_junk_is_unknown() -> None:
    doc = {
        "distroversion": "v3.5",
        "reponame": "main",
        "packages": [
            {"pkg": {"name": "xen", "secfixes": {"4.7.1-r3": ["CVE-2016-10013 XSA-204"]}}},
            {"pkg": {"name": "ws", "secfixes": {"2.2.6-r0": ["CVE_2019-2426 N/A"]}}},
            {"pkg": {"name": "musl", "secfixes": {"1.1.16-r0": ["ALPINE-13661"]}}},
            {"pkg": {"secfixes": {}}},
        ],
    }
    result = SOURCES[SourceKind.ALPINE_SECDB].parse([Member("m.json", json.dumps(doc).encode())])
    assert by_id(result)["ALPINE-CVE-2016-10013"]["aliases"] == ["CVE-2016-10013", "XSA-204"]
    assert "ALPINE-13661" in by_id(result)
    assert [(u.item, u.reason) for u in result.unknowns] == [
        ("m.json:packages[1] (ws 2.2.6-r0)", "no advisory id in 'CVE_2019-2426 N/A'"),
        ("m.json:packages[3]", "package entry needs pkg.name"),
    ]


def test_kev_catalog(feeds: Path) -> None:
    result = parse(SourceKind.KEV, feeds / "kev")
    assert len(result.records) == 200
    assert result.meta["catalogVersion"] == "2025.08.25"
    assert by_id(result)["CVE-2025-48384"]["vendorProject"] == "Git"


def test_kev_count_mismatch_is_recorded(feeds: Path) -> None:
    doc = json.loads((feeds / "kev" / "known_exploited_vulnerabilities.json").read_bytes())
    doc["count"] = 201
    result = SOURCES[SourceKind.KEV].parse([Member("kev.json", json.dumps(doc).encode())])
    assert result.unknowns[0].reason == "catalog says count 201 but lists 200 entries"


def official_epss(rows: list[bytes]) -> bytes:
    body = b"#model_version:v2025.03.14,score_date:2026-08-16T00:00:00+0000\n"
    body += b"cve,epss,percentile\n" + b"\n".join(r.replace(b";", b",") for r in rows) + b"\n"
    return gzip.compress(body, mtime=0)


def test_epss_per_year_and_official_files_agree(feeds: Path) -> None:
    per_year = parse(SourceKind.EPSS, feeds / "epss")
    assert len(per_year.records) == 5000
    assert per_year.meta == {}
    rows = b"".join(
        (feeds / "epss" / f).read_bytes() for f in ("CVE_2023_EPSS.csv", "CVE_2024_EPSS.csv")
    ).splitlines()
    official = SOURCES[SourceKind.EPSS].parse(
        unpack("epss_scores-2026-08-16.csv.gz", official_epss(rows), limit=LIMIT)
    )
    assert official.meta == {
        "model_version": "v2025.03.14",
        "score_date": "2026-08-16T00:00:00+0000",
    }
    assert build_dataset(official).digest == build_dataset(per_year).digest
    first = rows[0].decode().split(";")
    assert by_id(official)[first[0]] == {"id": first[0], "epss": first[1], "percentile": first[2]}


@pytest.mark.parametrize(
    "row", [b"CVE-2024-1;1.5;0.2", b"CVE-2024-1;x;0.2", b"CVE-2024-1;0.1", b"NOTCVE;0.1;0.2"]
)
def test_epss_bad_rows_are_unknowns(row: bytes) -> None:
    result = SOURCES[SourceKind.EPSS].parse([Member("e.csv", b"CVE-2024-0001;0.1;0.2\n" + row)])
    assert len(result.records) == 1
    assert result.unknowns[0].item == "e.csv:2"


def test_openvex_documents(feeds: Path) -> None:
    result = parse(SourceKind.OPENVEX, feeds / "openvex")
    assert [r["id"] for r in result.records] == ["https://vex.example.com/acme-app/2025-01"]
    assert result.records[0]["statements"] == 3
    assert result.unknowns[0].item == "acme-broken.json"
    assert "not_affected without justification" in result.unknowns[0].reason


def test_policy_bundle_from_directory_and_tarball(feeds: Path, tmp_path: Path) -> None:
    from_dir = parse(SourceKind.POLICY, feeds / "policy")
    assert sorted(r["id"] for r in from_dir.records) == [
        "data.json",
        "exceptions.rego",
        "gate.rego",
    ]
    tarball = tmp_path / "bundle.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(feeds / "policy", arcname="policy")
    from_tar = parse(SourceKind.POLICY, tarball)
    assert from_tar.meta["policy_digest"] == from_dir.meta["policy_digest"]
    bad = SOURCES[SourceKind.POLICY].parse([Member("x.rego", b"allow := true\n")])
    assert bad.unknowns[0].reason == "Rego file has no 'package' declaration"


def test_rubysec_yaml(feeds: Path) -> None:
    result = parse(SourceKind.RUBYSEC, feeds / "rubysec")
    assert len(result.records) == 123
    assert result.ignored == ["LICENSE.txt"]
    rec = by_id(result)["RUBYSEC-RedCloth-CVE-2012-6684"]
    assert rec["aliases"] == ["CVE-2012-6684", "GHSA-r23g-3qw4-gfh2", "OSVDB-115941"]
    assert rec["published"] == "2012-02-29T00:00:00Z"
    assert rec["affected"][0]["database_specific"]["patched_versions"] == [">= 4.3.0"]
    assert rec["database_specific"]["rubysec"]["cvss_v2"] == 4.3
    broken = SOURCES[SourceKind.RUBYSEC].parse([Member("gems/x/y.yml", b"gem: [unclosed")])
    assert broken.unknowns[0].reason.startswith("not valid YAML")


def test_npm_legacy_advisories(feeds: Path) -> None:
    result = parse(SourceKind.NPM_LEGACY, feeds / "npm-nodejs-security-wg.jsonl.gz")
    rec = by_id(result)["NPM-1"]
    assert rec["aliases"] == ["CVE-2014-7205"]
    assert rec["affected"][0]["database_specific"] == {
        "version_scheme": "npm-semver",
        "vulnerable_versions": "<=1.5.1",
        "patched_versions": ">=1.5.2",
    }
    assert rec["modified"] == "2016-04-28T00:00:00Z"


def test_duplicate_ids_keep_latest_modified_and_record_the_rest() -> None:
    result = ParseResult(
        records=[
            {"id": "A", "modified": "2024-01-01T00:00:00Z", "v": 1},
            {"id": "A", "modified": "2024-02-01T00:00:00.5Z", "v": 2},
            {"id": "A", "modified": "2024-02-01T00:00:00.5Z", "v": 2},
            {"id": "B", "modified": "2024-01-01T00:00:00Z"},
        ]
    )
    built = build_dataset(result)
    reordered = build_dataset(ParseResult(records=list(reversed(result.records))))
    assert built.data == reordered.data
    assert built.records == 2
    assert built.duplicates == 2
    assert json.loads(built.data.splitlines()[0])["v"] == 2
    assert len(built.unknowns) == 1
    assert built.unknowns[0].item == "A"
    assert built.unknowns[0].reason.startswith(
        "duplicate id: dropped the version modified 2024-01-01"
    )


@pytest.mark.parametrize(
    "kind",
    [k for k in SourceKind if k not in (SourceKind.DEBIAN_TRACKER, SourceKind.EPSS,
                                        SourceKind.KEV, SourceKind.POLICY, SourceKind.RUBYSEC)],
)  # fmt: skip
def test_a_null_document_is_named_not_dropped(kind: SourceKind) -> None:
    """``null`` is valid JSON but no record: every JSON parser names the file in an unknown."""
    result = SOURCES[kind].parse([Member("x.json", b"null"), Member("y.jsonl", b"null\n")])
    items = {u.item for u in result.unknowns}
    assert "x.json" in items, result.unknowns
    assert "y.jsonl:1" in items or result.ignored == ["y.jsonl"], result.unknowns
    assert result.records == []
