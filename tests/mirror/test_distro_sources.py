"""The distribution feed kinds, parsed from the real upstream records in tests/data/feeds."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from bundles.rpmvercmp import evr_key
from mirror.config import SourceKind, load_config
from mirror.datasets import build_dataset
from mirror.errors import FeedError
from mirror.inputs import Member, Upstream, unpack
from mirror.sources import SOURCES, ParseResult
from mirror.sources.ubuntu import ecosystem as ubuntu_ecosystem

LIMIT = 1 << 30


def parse(kind: SourceKind, path: Path) -> ParseResult:
    return SOURCES[kind].parse(Upstream(path, path.name).members(limit=LIMIT))


def by_id(result: ParseResult) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in result.records}


def entries(record: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(a["package"]["ecosystem"], a["package"]["name"]): a for a in record["affected"]}


def fixed(version: str) -> list[dict[str, Any]]:
    return [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": version}]}]


# -- Red Hat CSAF VEX -----------------------------------------------------------------------------


def test_redhat_fixed_source_rpm_and_statuses_per_release(feeds: Path) -> None:
    result = parse(SourceKind.REDHAT_CSAF, feeds / "redhat-csaf")
    assert result.unknowns == []
    assert result.ignored == ["SOURCES.md"]
    bash = by_id(result)["CVE-2022-3715"]
    assert bash["aliases"] == ["CVE-2022-3715"]
    assert bash["modified"] == "2024-11-22T21:08:34+00:00"
    assert bash["summary"] == "bash: a heap-buffer-overflow in valid_parameter_transform"
    assert bash["severity"] == [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:L/AC:L/PR:L/UI:N/S:U/C:L/I:L/A:H"}
    ]
    assert {"type": "ADVISORY", "url": "https://access.redhat.com/errata/RHSA-2023:0340"} in bash[
        "references"
    ]
    got = entries(bash)
    # One entry per release and source package, whatever the number of binaries and arches.
    assert sorted(got) == [("Red Hat:6", "bash"), ("Red Hat:7", "bash"), ("Red Hat:8", "bash"),
                           ("Red Hat:9", "bash")]  # fmt: skip
    assert got["Red Hat:9", "bash"] == {
        "package": {"ecosystem": "Red Hat:9", "name": "bash"},
        "ranges": fixed("5.1.8-6.el9_1"),
        "database_specific": {"version_scheme": "rpm", "severity": "Moderate"},
    }
    assert got["Red Hat:8", "bash"]["database_specific"] == {
        "version_scheme": "rpm",
        "severity": "Moderate",
        "status": "not-affected",
        "note": "vulnerable_code_not_present",
    }
    assert "ranges" not in got["Red Hat:8", "bash"]
    assert got["Red Hat:6", "bash"]["database_specific"]["status"] == "end-of-life"
    assert got["Red Hat:6", "bash"]["database_specific"]["note"] == "Out of support scope"


def test_redhat_fix_deferred_and_non_rhel_products(feeds: Path) -> None:
    result = parse(SourceKind.REDHAT_CSAF, feeds / "redhat-csaf")
    curl = entries(by_id(result)["CVE-2024-9681"])
    # curl.src stands for curl, libcurl, curl-minimal...: only the source package is named.
    assert sorted(curl) == [("Red Hat:7", "curl"), ("Red Hat:8", "curl"), ("Red Hat:9", "curl")]
    assert curl["Red Hat:9", "curl"]["database_specific"] == {
        "version_scheme": "rpm",
        "severity": "Low",
        "status": "postponed",
        "note": "Fix deferred",
    }
    # In-Vehicle OS, JBoss Core Services and OpenShift are products, not distributions.
    alone = parse(SourceKind.REDHAT_CSAF, feeds / "redhat-csaf/2024/cve-2024-9681.json")
    assert alone.meta["skipped_products_other"] == "3"
    glibc = by_id(result)["CVE-2019-1010022"]
    assert {a["database_specific"]["status"] for a in glibc["affected"]} == {"not-affected"}
    assert [a["package"]["ecosystem"] for a in glibc["affected"]] == [
        f"Red Hat:{n}" for n in range(5, 10)
    ]
    assert glibc["database_specific"]["severity"] == "None"  # Red Hat's word, verbatim
    assert "severity" not in by_id(result)["CVE-2022-46908"]  # no scores published


BASH_DOC = Path(__file__).parents[1] / "data/feeds/redhat-csaf/2022/cve-2022-3715.json"
NODEJS = "nodejs-1:18.14.2-2.module+el9.2.0.z+18497+a402347c.src"
NODEJS_PURL = (
    "pkg:rpm/redhat/nodejs@18.14.2-2.module%2Bel9.2.0.z%2B18497%2Ba402347c"
    "?arch=src&epoch=1&rpmmod=nodejs:18:9020020230316093207:rhel9"
)
STREAM = "nodejs:18:9020020230316093207:rhel9"


def _platform(pid: str, cpe: str) -> dict[str, Any]:
    helper = {"cpe": cpe}
    product = {"name": pid, "product_id": pid, "product_identification_helper": helper}
    return {"category": "product_name", "name": pid, "product": product}


def _relation(component: str, platform: str) -> dict[str, Any]:
    return {
        "category": "default_component_of",
        "full_product_name": {"name": "-", "product_id": f"{platform}:{component}"},
        "product_reference": component,
        "relates_to_product_reference": platform,
    }


def test_redhat_module_streams_rhel10_and_container_images(feeds: Path) -> None:
    result = parse(SourceKind.REDHAT_CSAF, feeds / "redhat-csaf/2024/cve-2024-13176.json")
    assert result.unknowns == []
    got = {
        (a["package"]["ecosystem"], a["package"]["name"], a["database_specific"].get("module")): a
        for a in result.records[0]["affected"]
    }
    # mysql:8.4/mysql (purl ...?arch=src&rpmmod=mysql:8.4) is the module stream's own entry.
    assert got["Red Hat:9", "mysql", "mysql:8.4"]["database_specific"]["status"] == "postponed"
    assert ("Red Hat:9", "mysql", None) in got
    assert got["Red Hat:8", "mysql", "mysql:8.0"]["database_specific"]["note"] == "Fix deferred"
    assert got["Red Hat:10", "openssl", None]["database_specific"] == {
        "version_scheme": "rpm",
        "severity": "Low",
        "status": "postponed",
        "note": "Fix deferred",
    }
    assert got["Red Hat:6", "mysql", None]["database_specific"]["status"] == "not-affected"
    # Container images written as rpm purls (rhel9/ruby-30, ubi9/ruby-33) are not packages.
    assert not [k for k in got if "/" in k[1]]
    assert result.meta["skipped_products_other"] == "12"  # 7 other products, 5 images


def _module_doc() -> dict[str, Any]:
    """The real bash document reshaped into the forms other Red Hat documents take: a module
    stream, an EUS stream, UBI, a Will-not-fix product and one under investigation."""
    doc: dict[str, Any] = json.loads(BASH_DOC.read_text())
    tree = doc["product_tree"]
    family = tree["branches"][0]["branches"]
    platforms = [
        _platform("AppStream-9.2.0.Z.MAIN", "cpe:/a:redhat:enterprise_linux:9::appstream"),
        _platform("AppStream-9.2.0.Z.EUS", "cpe:/a:redhat:rhel_eus:9.2::appstream"),
        _platform("ubi8", "cpe:/a:redhat:ubi:8"),
    ]
    family.append({"category": "product_family", "name": "extra", "branches": platforms})
    helper = {"purl": NODEJS_PURL}
    product = {"name": NODEJS, "product_id": NODEJS, "product_identification_helper": helper}
    family.append({"category": "product_version", "name": NODEJS, "product": product})
    module_platform = f"AppStream-9.2.0.Z.MAIN:{STREAM}"
    tree["relationships"] += [
        _relation(STREAM, "AppStream-9.2.0.Z.MAIN"),
        _relation(NODEJS, module_platform),
        _relation(NODEJS, "AppStream-9.2.0.Z.EUS"),
        _relation("bash", "ubi8"),
    ]
    vuln = doc["vulnerabilities"][0]
    status = vuln["product_status"]
    status["fixed"] += [f"{module_platform}:{NODEJS}", f"AppStream-9.2.0.Z.EUS:{NODEJS}"]
    status["known_affected"] = ["red_hat_enterprise_linux_6:bash", "ubi8:bash"]
    status["known_not_affected"] = ["red_hat_enterprise_linux_7:bash"]
    status["under_investigation"] = ["red_hat_enterprise_linux_8:bash"]
    vuln["remediations"].append(
        {"category": "no_fix_planned", "details": "Will not fix", "product_ids": ["ubi8:bash"]}
    )
    vuln["threats"].append(
        {"category": "impact", "details": "Important", "product_ids": ["ubi8:bash"]}
    )
    return doc


def test_redhat_module_stream_ubi_eus_and_every_status_word() -> None:
    doc = _module_doc()
    result = SOURCES[SourceKind.REDHAT_CSAF].parse(
        [Member("cve-2022-3715.json", json.dumps(doc).encode())]
    )
    assert result.unknowns == []
    got = {
        (a["package"]["ecosystem"], a["package"]["name"], a["database_specific"].get("module")): a
        for a in result.records[0]["affected"]
    }
    node = got["Red Hat:9", "nodejs", "nodejs:18"]
    assert node["ranges"] == fixed("1:18.14.2-2.module+el9.2.0.z+18497+a402347c")
    assert result.meta["skipped_products_extended_support"] == "1"
    assert got["Red Hat:8", "bash", None]["database_specific"] == {
        "version_scheme": "rpm",
        "severity": "Important",  # the product's own impact overrides the document's
        "status": "ignored",  # affected (UBI 8) outranks under investigation (RHEL 8)
        "note": "Will not fix",
    }
    assert got["Red Hat:7", "bash", None]["database_specific"]["status"] == "not-affected"
    assert got["Red Hat:9", "bash", None]["ranges"] == fixed("5.1.8-6.el9_1")


def test_redhat_earliest_fixed_evr_of_a_release_wins() -> None:
    doc = json.loads(BASH_DOC.read_text())
    tree, vuln = doc["product_tree"], doc["vulnerabilities"][0]
    later = "bash-0:5.1.8-9.el9.src"  # a NEVRA product id without a purl
    product = {"name": later, "product_id": later}
    tree["branches"][0]["branches"].append(
        {"category": "product_version", "name": later, "product": product}
    )
    tree["relationships"].append(_relation(later, "BaseOS-9.1.0.Z.MAIN"))
    vuln["product_status"]["fixed"].insert(0, f"BaseOS-9.1.0.Z.MAIN:{later}")
    result = SOURCES[SourceKind.REDHAT_CSAF].parse([Member("d.json", json.dumps(doc).encode())])
    nine = [a for a in result.records[0]["affected"] if a["package"]["ecosystem"] == "Red Hat:9"]
    assert [a["ranges"] for a in nine] == [fixed("5.1.8-6.el9_1")]


def _bad(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(
        (Path(__file__).parents[1] / "data/feeds/redhat-csaf/2024/cve-2024-9681.json").read_text()
    )
    edit(doc)
    return doc


CURL_SRC = "red_hat_enterprise_linux_9:curl.src"


@pytest.mark.parametrize(
    ("edit", "item", "reason"),
    [
        (lambda d: d["document"].update(category="csaf_security_advisory"), "d.json",
         "field 'document.category' is 'csaf_security_advisory', not 'csaf_vex'"),
        (lambda d: d["document"]["tracking"].pop("id"), "d.json",
         "field 'document.tracking.id' missing or not a string"),
        (lambda d: d.pop("vulnerabilities"), "d.json",
         "field 'vulnerabilities' missing or not a list"),
        (lambda d: d["vulnerabilities"][0]["product_status"]["known_affected"].append("nope:x"),
         "d.json (CVE-2024-9681)",
         "field 'vulnerabilities[0].product_status.known_affected': product id 'nope:x' is not "
         "a relationship of the product tree"),
        (lambda d: d["vulnerabilities"][0]["product_status"].update(fixed=[CURL_SRC]),
         "d.json", "field 'vulnerabilities[0].product_status.fixed': product "
         "'red_hat_enterprise_linux_9:curl.src' has no version"),
        (lambda d: d["vulnerabilities"][0]["product_status"].update(first_affected=["x"]),
         "d.json (CVE-2024-9681)", "field 'vulnerabilities[0].product_status.first_affected' is "
         "not used by Red Hat VEX; its products are left out"),
    ],
)  # fmt: skip
def test_redhat_bad_documents_are_named_unknowns(edit: Any, item: str, reason: str) -> None:
    result = SOURCES[SourceKind.REDHAT_CSAF].parse(
        [Member("d.json", json.dumps(_bad(edit)).encode())]
    )
    assert (item, reason) in [(u.item, u.reason) for u in result.unknowns]


RPM_PAIRS = [
    ("1:3.0.7-27.el9", "3.0.7-28.el9"), ("5.1.8-6.el9_1", "5.1.8-9.el9"),
    ("5.1.8-6.el9_1", "5.1.8-6.el9"), ("2.34-100.el9_4.2", "2.34-100.el9_4.12"),
    ("1.0~rc1-1", "1.0-1"), ("1.0^git1-1", "1.0-1"), ("1.0a-1", "1.0.1-1"), ("1.0-1", "1.0-1"),
    ("18.14.2-2.module+el9.2.0.z+18497+a402347c", "18.14.2-2.module+el9.2.0+17845+abcd"),
    ("0:7.76.1-19.el9_1.1", "7.76.1-19.el9_1"), ("1.2.11-32.el9_0", "1.2.11-40.el9"),
    ("1.0^git1-1", "1.0.1-1"), ("1.0^git1-1", "1.0a-1"),
]  # fmt: skip


@pytest.mark.skipif(shutil.which("rpm") is None, reason="needs rpm (Makefile SYSTEM_TOOLS)")
@pytest.mark.parametrize(("a", "b"), RPM_PAIRS)
def test_rpm_order_agrees_with_rpm_itself(a: str, b: str) -> None:
    out = subprocess.run(
        ["rpm", "--eval", f'%{{lua: print(rpm.vercmp("{a}", "{b}"))}}'],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    expected = int(out.stdout.strip())
    ka, kb = evr_key(a), evr_key(b)
    assert (kb < ka) - (ka < kb) == expected


# -- AlmaLinux and Rocky Linux OSV ----------------------------------------------------------------


def test_alma_records_get_cve_aliases_severity_and_scheme(feeds: Path) -> None:
    result = parse(SourceKind.ALMA_OSV, feeds / "alma-osv")
    assert result.unknowns == []
    assert sorted(result.ignored) == ["LICENSE", "SOURCES.md"]
    assert len(result.records) == 8
    openssl = by_id(result)["ALSA-2023:0946"]
    assert "CVE-2023-0286" in openssl["aliases"]
    assert openssl["database_specific"]["severity"] == "Moderate"
    libs = entries(openssl)["AlmaLinux:9", "openssl-libs"]
    assert libs["ranges"] == fixed("1:3.0.1-47.el9_1")
    assert libs["database_specific"] == {"version_scheme": "rpm", "severity": "Moderate"}
    glibc = by_id(result)["ALSA-2024:3339"]
    assert entries(glibc)["AlmaLinux:9", "glibc"]["database_specific"]["severity"] == "Important"
    # Nothing else changes: the record is the published one plus the normalized fields.
    raw = json.loads((feeds / "alma-osv/almalinux9/ALSA-2023:0340.json").read_text())
    bash = by_id(result)["ALSA-2023:0340"]
    normalized = ("affected", "aliases", "database_specific")
    assert {k: v for k, v in bash.items() if k not in normalized} == {
        k: v for k, v in raw.items() if k not in normalized
    }
    assert [a["package"] for a in bash["affected"]] == [a["package"] for a in raw["affected"]]


def test_rocky_minor_release_and_foreign_entries() -> None:
    record = json.loads(
        (Path(__file__).parents[1] / "data/feeds/rocky-osv/RLSA-2023:0340.json").read_text()
    )
    record["affected"][1]["package"]["ecosystem"] = "Rocky Linux:9.3"
    extra = copy.deepcopy(record["affected"][0])
    extra["package"]["ecosystem"] = "AlmaLinux:9"
    record["affected"].append(extra)
    result = SOURCES[SourceKind.ROCKY_OSV].parse([Member("r.json", json.dumps(record).encode())])
    rec = result.records[0]
    assert rec["aliases"] == ["CVE-2022-3715"]
    assert sorted(entries(rec)) == [("Rocky Linux:9", "bash"), ("Rocky Linux:9", "bash-devel")]
    assert entries(rec)["Rocky Linux:9", "bash"]["ranges"] == fixed("0:5.1.8-6.el9_1")
    assert [(u.item, u.reason) for u in result.unknowns] == [
        ("r.json (RLSA-2023:0340) affected[2]",
         "ecosystem 'AlmaLinux:9' is not Rocky Linux:<release>; entry left out"),
    ]  # fmt: skip
    only_foreign = {**record, "affected": [extra]}
    result = SOURCES[SourceKind.ROCKY_OSV].parse(
        [Member("r.json", json.dumps(only_foreign).encode())]
    )
    assert result.records == []
    assert result.unknowns[-1].reason == "no affected entry for Rocky Linux"


# -- Ubuntu OSV -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("upstream", "normal"),
    [("Ubuntu:22.04:LTS", "Ubuntu:22.04"), ("Ubuntu:23.10", "Ubuntu:23.10"),
     ("Ubuntu:Pro:16.04:LTS", "Ubuntu:Pro:16.04"),
     ("Ubuntu:Pro:FIPS-updates:22.04:LTS", "Ubuntu:Pro:22.04"),
     ("Debian:12", None), ("Ubuntu:jammy", None)],
)  # fmt: skip
def test_ubuntu_ecosystems(upstream: str, normal: str | None) -> None:
    assert ubuntu_ecosystem(upstream) == normal


def test_ubuntu_cve_and_usn_records(feeds: Path) -> None:
    result = parse(SourceKind.UBUNTU_OSV, feeds / "ubuntu-osv")
    assert result.unknowns == []
    recs = by_id(result)
    assert sorted(recs) == ["UBUNTU-CVE-2022-3715", "UBUNTU-CVE-2023-0286", "USN-5844-1"]
    cve = recs["UBUNTU-CVE-2023-0286"]
    assert cve["aliases"] == ["CVE-2023-0286"]
    assert cve["severity"] == [
        {"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:H/PR:N/UI:N/S:U/C:H/I:N/A:H"}
    ]
    got = entries(cve)
    assert got["Ubuntu:22.04", "openssl"]["ranges"] == fixed("3.0.2-0ubuntu1.8")
    assert got["Ubuntu:22.04", "openssl"]["database_specific"] == {
        "version_scheme": "dpkg",
        "upstream_ecosystem": "Ubuntu:22.04:LTS",
        "severity": "high",
    }
    assert ("Ubuntu:Pro:16.04", "openssl") in got
    assert ("Ubuntu:16.04", "openssl") not in got
    edk2 = got["Ubuntu:22.04", "edk2"]
    assert "ranges" not in edk2
    assert edk2["database_specific"]["status"] == "open"
    usn = recs["USN-5844-1"]
    assert len(usn["aliases"]) == 8
    assert "CVE-2023-0401" in usn["aliases"]
    # The notice's CVEs have their own priorities (CVE-2023-0286 high, the others medium or
    # low): the notice gets no one severity, which would overstate the others; each CVE's
    # priority is kept.
    jammy = entries(usn)["Ubuntu:22.04", "openssl"]
    assert "severity" not in jammy["database_specific"]
    priorities = jammy["database_specific"]["cve_priorities"]
    assert priorities["CVE-2023-0286"] == "high"
    assert sorted(priorities) == sorted(usn["aliases"])
    assert set(priorities.values()) != {"high"}
    assert jammy["database_specific"]["cves_map"]["ecosystem"] == "Ubuntu:22.04:LTS"


def test_ubuntu_unknown_release_is_named() -> None:
    record = {"id": "USN-1-1", "modified": "2024-01-01T00:00:00Z",
              "affected": [{"package": {"ecosystem": "Ubuntu:jammy", "name": "x"}}]}  # fmt: skip
    result = SOURCES[SourceKind.UBUNTU_OSV].parse([Member("u.json", json.dumps(record).encode())])
    assert [(u.item, u.reason) for u in result.unknowns] == [
        ("u.json (USN-1-1) affected[0]", "unknown Ubuntu ecosystem 'Ubuntu:jammy'"),
        ("u.json (USN-1-1)", "no affected entry with an Ubuntu release"),
    ]


# -- Wolfi and Chainguard secdb -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "eco", "prefix"),
    [(SourceKind.WOLFI_SECDB, "Wolfi", "WOLFI-"),
     (SourceKind.CHAINGUARD_SECDB, "Chainguard", "CHAINGUARD-")],
)  # fmt: skip
def test_secdb_flavours_share_alpines_parser(
    feeds: Path, kind: SourceKind, eco: str, prefix: str
) -> None:
    result = parse(kind, feeds / "wolfi-secdb/security.json")
    assert result.unknowns == []
    recs = by_id(result)
    assert recs[f"{prefix}CVE-2023-0286"]["affected"] == [
        {
            "package": {"ecosystem": eco, "name": "openssl"},
            "ranges": fixed("3.1.0-r0"),
            "database_specific": {"version_scheme": "apk", "repository": "os"},
        }
    ]
    # secdb's "0" (never affected) is the empty range, as for Alpine.
    assert recs[f"{prefix}CVE-2023-6129"]["affected"][0]["ranges"] == fixed("0")
    assert recs[f"{prefix}CVE-2022-37434"]["aliases"] == ["CVE-2022-37434"]
    assert recs[f"{prefix}CVE-2022-37434"]["database_specific"]["source"] == kind.value


def test_secdb_flavour_without_packages_is_unknown() -> None:
    result = SOURCES[SourceKind.WOLFI_SECDB].parse([Member("s.json", b'{"reponame": "os"}')])
    assert [(u.item, u.reason) for u in result.unknowns] == [
        ("s.json", "not a secdb file (needs packages)")
    ]


@pytest.mark.parametrize(
    ("kind", "path"),
    [(SourceKind.REDHAT_CSAF, "redhat-csaf"), (SourceKind.ALMA_OSV, "alma-osv"),
     (SourceKind.ROCKY_OSV, "rocky-osv"), (SourceKind.UBUNTU_OSV, "ubuntu-osv"),
     (SourceKind.WOLFI_SECDB, "wolfi-secdb")],
)  # fmt: skip
def test_directory_and_tarball_give_the_same_dataset(
    feeds: Path, tmp_path: Path, kind: SourceKind, path: str
) -> None:
    tarball = tmp_path / "feed.tar.gz"
    subprocess.run(["tar", "czf", str(tarball), "-C", str(feeds), path], check=True)
    a, b = parse(kind, feeds / path), parse(kind, tarball)
    assert a.records
    assert build_dataset(a).digest == build_dataset(b).digest


def test_redhat_archive_as_published_tar_zst(feeds: Path, tmp_path: Path) -> None:
    """Red Hat publishes the whole VEX tree as one ``csaf_vex_<date>.tar.zst``."""
    archive = tmp_path / "csaf_vex_2026-08-30.tar.zst"
    subprocess.run(
        ["tar", "--zstd", "-cf", str(archive), "-C", str(feeds / "redhat-csaf"), "."], check=True
    )
    a = parse(SourceKind.REDHAT_CSAF, feeds / "redhat-csaf")
    b = parse(SourceKind.REDHAT_CSAF, archive)
    assert build_dataset(a).digest == build_dataset(b).digest
    data = archive.read_bytes()
    limit = 2 * len(data)  # the compressed bytes fit, the decompressed ones do not
    with pytest.raises(FeedError, match=f"decompressed size over the limit of {limit} bytes"):
        unpack(archive.name, data, limit=limit)


def test_docs_stanzas_for_the_distro_kinds_are_valid_config(tmp_path: Path) -> None:
    """Every ``mirror.toml`` example of docs/mirror.md's distribution section loads."""
    docs = (Path(__file__).parents[2] / "docs" / "mirror.md").read_text(encoding="utf-8")
    section = docs.split("## Distribution feeds", 1)[1].split("\n## ", 1)[0]
    blocks = section.split("```toml\n")[1:]
    kinds = set()
    for block in blocks:
        config = tmp_path / "mirror.toml"
        config.write_text(block.split("```", 1)[0], encoding="utf-8")
        kinds |= {s.kind for s in load_config(config).sources}
    assert {k.value for k in kinds} == {
        "redhat-csaf", "rocky-osv", "alma-osv", "ubuntu-osv", "wolfi-secdb", "chainguard-secdb",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("kind", "path"),
    [(SourceKind.REDHAT_CSAF, "redhat-csaf/2022/cve-2022-3715.json"),
     (SourceKind.ALMA_OSV, "alma-osv/almalinux9/ALSA-2023:0340.json"),
     (SourceKind.UBUNTU_OSV, "ubuntu-osv/osv/usn/USN-5844-1.json")],
)  # fmt: skip
def test_values_of_the_wrong_json_type_never_crash_a_parser(
    feeds: Path, kind: SourceKind, path: str
) -> None:
    """Every object and list of a real record, one at a time, replaced by a number or a list:
    the parser either uses the record or names the field in an unknown, and never raises."""
    original = json.loads((feeds / path).read_text())

    def holes(node: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found = [trail] if trail else []
        children = node.items() if isinstance(node, dict) else enumerate(node)
        for key, child in children:
            if isinstance(child, dict | list) and len(found) < 400:
                found += holes(child, (*trail, key))
        return found

    for trail in holes(original):
        for junk in (7, ["x"]):
            doc = copy.deepcopy(original)
            target = doc
            for key in trail[:-1]:
                target = target[key]
            target[trail[-1]] = junk
            result = SOURCES[kind].parse([Member("x.json", json.dumps(doc).encode())])
            assert result.records or result.unknowns, trail
            # ... and an unknown names the field, not a Python exception.
            assert not [u for u in result.unknowns if u.reason.startswith("malformed")], trail


def test_a_zstd_compressed_single_file_is_the_file(feeds: Path, tmp_path: Path) -> None:
    packed = tmp_path / "security.json.zst"
    source = feeds / "wolfi-secdb/security.json"
    packed.write_bytes(zstandard.ZstdCompressor().compress(source.read_bytes()))
    members = Upstream(packed, packed.name).members(limit=LIMIT)
    assert [m.name for m in members] == ["security.json"]
    a = parse(SourceKind.WOLFI_SECDB, source)
    b = SOURCES[SourceKind.WOLFI_SECDB].parse(members)
    assert build_dataset(a).digest == build_dataset(b).digest
