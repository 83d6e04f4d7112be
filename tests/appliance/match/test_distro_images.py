"""Acceptance: a RHEL 9 (UBI 9) rootfs, a Rocky Linux 9 rootfs, an Ubuntu 22.04 rootfs and a
Wolfi rootfs, scanned as ``dir:PATH``, get exactly the findings an independent reading of the
same records gives.

The independent reading walks every entry of every record for every installed package and
compares versions with the distributions' own tools: rpm's ``rpm.vercmp`` (through
``rpm --eval``) and ``dpkg --compare-versions``. No apk comparison tool is packaged for
Debian: apk pairs come from a table checked by hand (each line says why).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from appliance.home import Home
from appliance.match import FixState, Inventory, MemoryAdvisories, UnknownKind, match
from appliance.match.model import FindingsReport
from appliance.match.service import match_inventory
from appliance.scanner.model import OSInfo, Package, PackageType
from appliance.scanner.rootfs import scan_rootfs
from appliance.store.knowledge import KnowledgeStore, install_snapshot
from bundles import canonical
from bundles.snapshot import DatasetType, build_dataset
from tests.appliance.homes import install_knowledge
from tests.appliance.match import distro_records
from tests.appliance.match.data import SNAPSHOT

SCANNER = Path(__file__).resolve().parents[2] / "data" / "scanner"
RPMDB = "var/lib/rpm/rpmdb.sqlite"

needs_rpm = pytest.mark.skipif(shutil.which("rpm") is None, reason="rpm is not installed")
needs_dpkg = pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")

Compare = Callable[[Sequence[tuple[str, str]]], list[int]]


def inventory(root: Path) -> Inventory:
    result = scan_rootfs(root)
    assert result.unknowns == ()
    return Inventory.of(result.packages, result.os, target=f"dir:{root}")


def rocky_root(tmp_path: Path) -> Path:
    """The Rocky Linux 9 rootfs: Rocky's os-release over the same RHEL 9 rpm database."""
    root = tmp_path / "rocky9"
    shutil.copytree(SCANNER / "rocky9", root)
    (root / RPMDB).parent.mkdir(parents=True)
    shutil.copyfile(SCANNER / "rhel9" / RPMDB, root / RPMDB)
    return root


# --- the independent reading -------------------------------------------------------------


def rpm_compare(pairs: Sequence[tuple[str, str]]) -> list[int]:
    """rpm's own vercmp of each (a, b), all in one ``rpm --eval``."""
    if not pairs:
        return []
    calls = " ".join(f'print(rpm.vercmp("{a}", "{b}") .. " ")' for a, b in pairs)
    out = subprocess.run(
        ["rpm", "--eval", f"%{{lua: {calls}}}"], check=True, capture_output=True, text=True
    ).stdout.split()
    assert len(out) == len(pairs)
    return [int(x) for x in out]


def dpkg_compare(pairs: Sequence[tuple[str, str]]) -> list[int]:
    def one(a: str, b: str) -> int:
        for op, value in (("lt", -1), ("eq", 0), ("gt", 1)):
            if subprocess.run(["dpkg", "--compare-versions", a, op, b]).returncode == 0:
                return value
        raise AssertionError(f"dpkg cannot order {a} and {b}")

    return [one(a, b) for a, b in pairs]


# (installed, other) -> sign of installed - other, checked by hand against apk's rules
# (apk-tools' version.c: dot-separated numbers compared as numbers, then the -rN revision).
APK_BY_HAND: dict[tuple[str, str], int] = {
    ("1.3-r0", "1.2.13-r1"): 1,  # 3 > 2 in the second number
    ("1.3-r0", "1.3-r1"): -1,  # same version, revision 0 < 1
    ("3.1.1-r3", "3.0.7-r1"): 1,  # 1 > 0 in the second number
    ("3.1.1-r3", "3.1.0-r0"): 1,  # 1 > 0 in the third number
    ("3.1.1-r3", "3.1.1-r2"): 1,  # revision 3 > 2
    ("3.1.1-r3", "3.1.1-r3"): 0,  # equal
    ("3.1.1-r3", "3.1.1-r4"): -1,  # revision 3 < 4
    ("3.1.1-r3", "3.2.1-r0"): -1,  # 1 < 2 in the second number
    ("3.1.1-r3", "3.4.1-r0"): -1,  # 1 < 4 in the second number
    ("8.7.1-r0", "8.7.1-r0"): 0,  # equal
    ("8.7.1-r0", "8.9.1-r0"): -1,  # 7 < 9
    ("8.7.1-r0", "8.11.0-r0"): -1,  # 7 < 11: numbers, not text
    ("8.7.1-r0", "8.4.0-r0"): 1,  # 7 > 4
    ("2.39-r2", "2.39-r2"): 0,  # equal
    ("2.39-r2", "2.39-r5"): -1,  # revision 2 < 5
    ("2.39-r2", "2.40-r6"): -1,  # 39 < 40
    ("1.36.1-r2", "1.35.0-r3"): 1,  # 36 > 35
    # the pairs the Wolfi secdb test data adds
    ("8.7.1-r0", "7.86.0-r0"): 1,  # 8 > 7 in the first number
    ("8.7.1-r0", "7.87.0-r0"): 1,  # 8 > 7 in the first number
    ("8.7.1-r0", "8.5.0-r0"): 1,  # 7 > 5
    ("8.7.1-r0", "8.6.0-r0"): 1,  # 7 > 6
    ("8.7.1-r0", "8.10.0-r0"): -1,  # 7 < 10
    ("8.7.1-r0", "8.11.1-r0"): -1,  # 7 < 11
    ("8.7.1-r0", "8.12.0-r0"): -1,  # 7 < 12
    ("2.39-r2", "2.36-r1"): 1,  # 39 > 36
    ("2.39-r2", "2.37-r1"): 1,  # 39 > 37
    ("2.39-r2", "2.38-r2"): 1,  # 39 > 38; the revision does not matter
    ("2.39-r2", "2.38-r3"): 1,  # 39 > 38
    ("2.39-r2", "2.38-r5"): 1,  # 39 > 38
    ("2.39-r2", "2.38-r11"): 1,  # 39 > 38
    ("3.1.1-r3", "3.0.7-r0"): 1,  # 1 > 0 in the second number
    ("3.1.1-r3", "3.1.0-r1"): 1,  # 1 > 0 in the third number
    ("3.1.1-r3", "3.1.0-r2"): 1,  # 1 > 0 in the third number
    ("3.1.1-r3", "3.1.0-r5"): 1,  # 1 > 0 in the third number, whatever the revision
    ("3.1.1-r3", "3.1.1-r0"): 1,  # revision 3 > 0
    ("3.1.1-r3", "3.1.4-r0"): -1,  # 1 < 4 in the third number
    ("3.1.1-r3", "3.1.4-r1"): -1,  # 1 < 4 in the third number
    ("3.1.1-r3", "3.3.0-r5"): -1,  # 1 < 3 in the second number
    ("3.1.1-r3", "3.3.0-r8"): -1,  # 1 < 3 in the second number
    ("3.1.1-r3", "3.3.1-r3"): -1,  # 1 < 3 in the second number
    ("3.1.1-r3", "3.3.2-r0"): -1,  # 1 < 3 in the second number
    ("3.1.1-r3", "3.3.2-r2"): -1,  # 1 < 3 in the second number
    ("3.1.1-r3", "3.4.0-r6"): -1,  # 1 < 4 in the second number
}


def apk_compare(pairs: Sequence[tuple[str, str]]) -> list[int]:
    missing = [p for p in pairs if p not in APK_BY_HAND]
    assert not missing, f"add these pairs, checked by hand, to APK_BY_HAND: {missing}"
    return [APK_BY_HAND[p] for p in pairs]


def reading_names(package: Package) -> tuple[set[str], str]:
    """The names a package's records may use and the version they compare with, written
    out per package type from the feeds' own conventions."""
    if package.type is PackageType.RPM:
        evr = f"{package.version}-{package.release}"
        return {package.name, package.source_name or package.name}, (
            f"{package.epoch}:{evr}" if package.epoch else evr
        )
    if package.type is PackageType.DEB:
        return {package.source_name or package.name}, package.source_version or (
            f"{package.epoch}:{package.version}" if package.epoch else package.version
        )
    return {package.source_name or package.name}, package.version


def stream_of(package: Package) -> str | None:
    label = dict(package.qualifiers).get("modularitylabel")
    return ":".join(label.split(":")[:2]) if label else None


def independent_reading(
    packages: Iterable[Package],
    records: Iterable[Mapping[str, Any]],
    ecosystem: str,
    compare: Compare,
    streams: bool = False,
) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(package, record) pairs affected, and pairs undetermined, by reading every entry."""
    # first every comparison the entries need, then the decisions
    todo: list[tuple[Package, str, Mapping[str, Any]]] = []
    pairs: list[tuple[str, str]] = []
    for package in packages:
        names, version = reading_names(package)
        for record in records:
            for entry in record["affected"]:
                if entry["package"]["ecosystem"] != ecosystem:
                    continue
                if entry["package"]["name"] not in names:
                    continue
                module = entry.get("database_specific", {}).get("module")
                if streams and module != stream_of(package):
                    continue
                todo.append((package, record["id"], entry))
                for rng in entry.get("ranges", ()):
                    for event in rng["events"]:
                        for bound in (event.get("introduced"), event.get("fixed")):
                            if bound not in (None, "0"):
                                pairs.append((version, bound))
    signs = dict(zip(pairs, compare(pairs), strict=True))
    affected: set[tuple[str, str]] = set()
    unknown: set[tuple[str, str]] = set()
    for package, rid, entry in todo:
        _, version = reading_names(package)
        if entry.get("ranges"):
            for rng in entry["ranges"]:
                introduced = next(e["introduced"] for e in rng["events"] if "introduced" in e)
                fixed = [e["fixed"] for e in rng["events"] if "fixed" in e]
                after = introduced == "0" or signs[(version, introduced)] >= 0
                # "fixed 0" (secdb: never affected): no version is below it
                before = not fixed or (fixed[0] != "0" and signs[(version, fixed[0])] < 0)
                if after and before:
                    affected.add((package.name, rid))
            continue
        status = entry["database_specific"]["status"]
        if status == "undetermined":
            unknown.add((package.name, rid))
        elif status != "not-affected":
            affected.add((package.name, rid))
    return affected, unknown - affected


def matched(report: FindingsReport) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    affected = {(f.component.name, m.record.id) for f in report.findings for m in f.matches}
    names = {p.split("/")[-1].split("@")[0]: p for p in {u.purl for u in report.unknowns}}
    unknown = {
        (next(n for n, p in names.items() if p == u.purl), u.record)
        for u in report.unknowns
        if u.kind is UnknownKind.UNDETERMINED
    }
    return affected, unknown


def agree(
    inv: Inventory,
    records: list[dict[str, Any]],
    ecosystem: str,
    compare: Compare,
    streams: bool = False,
) -> FindingsReport:
    report = match(inv, MemoryAdvisories(records, snapshot=SNAPSHOT))
    assert report.distro == ecosystem
    want_affected, want_unknown = independent_reading(
        inv.packages, records, ecosystem, compare, streams
    )
    got_affected, got_unknown = matched(report)
    assert got_affected == want_affected
    assert got_unknown == want_unknown
    assert {u.kind for u in report.unknowns} <= {UnknownKind.UNDETERMINED}
    return report


def by(report: FindingsReport, name: str) -> dict[str, Any]:
    return {f.id: f for f in report.findings if f.component.name == name}


# --- RHEL 9 / UBI 9 ----------------------------------------------------------------------


@needs_rpm
def test_rhel9_findings_are_the_independent_reading() -> None:
    inv = inventory(SCANNER / "rhel9")
    assert inv.os is not None
    assert (inv.os.id, inv.os.version_id) == ("rhel", "9.4")
    report = agree(inv, distro_records.redhat9(), "Red Hat:9", rpm_compare, streams=True)
    affected, unknown = matched(report)
    # fixed and unfixed, by binary and by source rpm name, and not affected
    assert ("bash", "CVE-2022-3715") in affected
    assert ("curl-minimal", "CVE-2024-9681") in affected  # by the source name "curl"
    assert ("libcurl-minimal", "CVE-2024-9681") in affected
    assert ("python3-libs", "RHSA-2022:8353") in affected  # source rpm python3.9
    assert not {r for _, r in affected} & {"CVE-2019-1010022", "CVE-2022-46908"}
    assert ("glibc", "CVE-2024-2961") in unknown
    # the epoch decides: 1:3.0.1-43.el9_0 is above 3.0.7-1.el9
    assert ("openssl-libs", "CVE-2021-3450") not in affected
    # the module stream decides: only the nodejs:18 entry applies
    assert {r for n, r in affected if n == "nodejs"} == {"RHSA-2023:1583"}


@needs_rpm
def test_rhel9_findings_name_the_source_fix_and_merge_per_vulnerability() -> None:
    report = match(
        inventory(SCANNER / "rhel9"),
        MemoryAdvisories(distro_records.redhat9(), snapshot=SNAPSHOT),
    )
    curl = by(report, "curl-minimal")["CVE-2024-9681"]
    assert curl.component.lookup_name == "curl"
    assert curl.component.ecosystem == "Red Hat:9"
    assert curl.fix_state is FixState.WONT_FIX  # "Fix deferred"
    assert curl.component.purl.startswith("pkg:rpm/redhat/curl-minimal@7.76.1-29.el9_4.1?")
    bash = by(report, "bash")["CVE-2022-3715"]
    assert bash.fixed_versions == ("0:5.1.8-6.el9_1",)
    assert bash.fix_state is FixState.FIXED
    assert bash.matches[0].scheme == "rpm"
    # the erratum and the CVE document are one finding for each openssl binary
    for name in ("openssl", "openssl-libs"):
        (finding,) = [f for f in by(report, name).values() if "CVE-2023-0286" in f.ids]
        assert {m.record.id for m in finding.matches} == {"CVE-2023-0286", "RHSA-2023:0946"}
        assert finding.component.version == "1:3.0.1-43.el9_0"
        assert finding.fixed_versions == ("1:3.0.1-47.el9_1",)


@needs_rpm
def test_a_record_under_binary_and_source_name_is_one_finding() -> None:
    record = {
        "id": "RLSA-2099:0001",
        "aliases": ["CVE-2099-0001"],
        "modified": "2024-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"ecosystem": "Red Hat:9", "name": name},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
                "database_specific": {"version_scheme": "rpm"},
            }
            for name, fixed in (("openssl", "1:3.0.1-47.el9_1"), ("openssl-libs", "1:3.0.8-1"))
        ],
    }
    inv = inventory(SCANNER / "rhel9")
    report = agree(inv, [record], "Red Hat:9", rpm_compare, streams=True)
    (finding,) = by(report, "openssl-libs").values()
    assert len(finding.matches) == 2  # both entries explain it, one finding
    assert finding.fixed_versions == ("1:3.0.1-47.el9_1", "1:3.0.8-1")
    assert finding.component.lookup_name == "openssl"


def test_entries_without_a_module_do_not_judge_a_modular_package() -> None:
    nodejs = Package(
        PackageType.RPM,
        "nodejs",
        "18.14.2",
        epoch=1,
        release="2.module+el9.2.0+18303+ba4ab2a2",
        source_name="nodejs",
        source_version="18.14.2-2.module+el9.2.0+18303+ba4ab2a2",
        qualifiers=(("modularitylabel", "nodejs:18:9020020230301063216:rhel9"),),
    )
    plain = Package(
        PackageType.RPM, "nodejs", "16.19.0", epoch=1, release="1.el9_1", source_name="nodejs"
    )
    rhel = OSInfo("rhel", "9.2", pretty_name="UBI 9")
    source = MemoryAdvisories(distro_records.redhat9(), snapshot=SNAPSHOT)
    modular = {f.id for f in match(Inventory.of([nodejs], rhel), source).findings}
    assert modular == {"CVE-2023-23918"}  # RHSA-2023:1583's nodejs:18 entry
    flat = match(Inventory.of([plain], rhel), source).findings
    # 1:16.19.0-1.el9_1 is below both non-modular fixes; the module entries do not apply
    assert {m.range for f in flat for m in f.matches} == {
        "introduced 0, fixed 1:16.19.1-1.el9_1",
        "introduced 0, fixed 1:18.20.2-1.el9_4",
    }


# --- Rocky Linux 9 -----------------------------------------------------------------------


@needs_rpm
def test_rocky9_findings_are_the_independent_reading(tmp_path: Path) -> None:
    inv = inventory(rocky_root(tmp_path))
    assert inv.os is not None
    assert inv.os.id == "rocky"
    records = distro_records.rocky9()
    report = agree(inv, records, "Rocky Linux:9", rpm_compare)
    affected, _ = matched(report)
    assert ("glibc-common", "RLSA-2024:3339") in affected
    assert ("openssl-libs", "RLSA-2023:0946") in affected  # 1:3.0.1-43 < 1:3.0.1-47
    assert ("zlib", "RLSA-2022:7314") not in affected  # 1.2.11-40.el9 is fixed
    assert ("libxml2", "RLSA-2023:0338") not in affected  # the fixed version itself
    # Rocky names no module streams: its nodejs entry judges the modular package
    assert ("nodejs", "RLSA-2023:1583") in affected
    for finding in report.findings:
        assert finding.component.purl.startswith("pkg:rpm/rocky/")
        assert "distro=rocky-9.3" in finding.component.purl


@needs_rpm
def test_rocky_is_not_judged_by_red_hat_data(tmp_path: Path) -> None:
    inv = inventory(rocky_root(tmp_path))
    report = match(inv, MemoryAdvisories(distro_records.redhat9(), snapshot=SNAPSHOT))
    assert report.findings == ()
    assert len(report.unknowns) == len(inv.packages)
    assert all(u.kind is UnknownKind.NO_DATA for u in report.unknowns)
    assert "the knowledge snapshot has no Rocky Linux:9 records" in report.unknowns[0].reason


# --- Ubuntu 22.04 ------------------------------------------------------------------------


@needs_dpkg
def test_ubuntu2204_findings_are_the_independent_reading() -> None:
    inv = inventory(SCANNER / "ubuntu2204")
    report = agree(inv, distro_records.ubuntu2204(), "Ubuntu:22.04", dpkg_compare)
    affected, _ = matched(report)
    assert ("libssl3", "USN-5844-1") in affected  # by the source package openssl
    assert ("libnode72", "UBUNTU-CVE-2023-0286") in affected  # 12.22.9~dfsg-1ubuntu3 < …3.3
    assert ("bash", "UBUNTU-CVE-2022-3715") not in affected  # the fixed version itself
    assert ("zlib1g", "UBUNTU-CVE-2022-37434") not in affected  # epoch 1 from the binary
    assert ("bsdutils", "UBUNTU-CVE-2024-28085") not in affected  # Source: util-linux (…)
    assert ("libc6", "UBUNTU-CVE-2016-20013") in affected
    (libc,) = [f for f in by(report, "libc6").values() if "UBUNTU-CVE-2016-20013" in f.ids]
    assert libc.fix_state is FixState.WONT_FIX
    ssl = [f for f in by(report, "libssl3").values() if "CVE-2023-0286" in f.ids]
    assert len(ssl) == 1
    assert ssl[0].component.lookup_name == "openssl"
    assert ssl[0].component.purl.startswith("pkg:deb/ubuntu/libssl3@3.0.2-0ubuntu1.7?")


# --- Wolfi -------------------------------------------------------------------------------


def test_wolfi_findings_are_the_independent_reading() -> None:
    inv = inventory(SCANNER / "wolfi")
    report = agree(inv, distro_records.wolfi(), "Wolfi", apk_compare)
    affected, _ = matched(report)
    assert ("libcrypto3", "CGA-55rx-q8vx-v22r") in affected  # origin openssl, 3.1.1-r3 < r4
    assert ("libssl3", "CGA-x5xm-v7pj-7rpw") not in affected  # the fixed version itself
    assert ("libcrypto3", "CGA-6vmf-q9cg-qhx4") not in affected  # a false positive
    assert ("libcurl-openssl4", "CGA-jr6m-3cwc-27r6") in affected  # 8.7.1 < 8.11.0
    assert ("zlib", "CGA-jq67-276v-crw8") in affected
    assert ("ld-linux", "CGA-pjj8-8gh5-2qwh") in affected  # origin glibc
    assert not [f for f in report.findings if f.component.name == "busybox"]


def test_chainguard_images_use_chainguard_records() -> None:
    zlib = Package(PackageType.APK, "zlib", "1.3-r0", source_name="zlib")
    records = [
        {**r, "affected": [{**e, "package": {**e["package"], "ecosystem": "Chainguard"}}]}
        for r in distro_records.wolfi()
        for e in r["affected"]
    ]
    chainguard = OSInfo("chainguard", "20231201", pretty_name="Chainguard")
    report = match(Inventory.of([zlib], chainguard), MemoryAdvisories(records))
    assert report.distro == "Chainguard"
    assert {f.id for f in report.findings} == {"CVE-2023-45853"}
    wolfi_only = match(Inventory.of([zlib], chainguard), MemoryAdvisories(distro_records.wolfi()))
    assert [u.kind for u in wolfi_only.unknowns] == [UnknownKind.NO_DATA]


# --- through knowledge.db ----------------------------------------------------------------


@needs_rpm
def test_the_store_answers_binary_and_source_names_in_one_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """knowledge.db gives the memory index's findings, reading the records of every rpm
    under both its names in one batch."""
    records = [*distro_records.redhat9(), *distro_records.rocky9(), *distro_records.wolfi()]
    store = KnowledgeStore.open(tmp_path / "knowledge.db")
    dataset = build_dataset("distros", DatasetType.OSV, records)
    install_snapshot(store, [dataset], sequence=1, channel="c", created="2026-01-01T00:00:00Z")
    calls: list[int] = []
    real = KnowledgeStore.advisory_lines

    def counting(self: KnowledgeStore, keys: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(keys))
        return real(self, keys, *args, **kwargs)

    monkeypatch.setattr(KnowledgeStore, "advisory_lines", counting)
    inv = inventory(SCANNER / "rhel9")
    try:
        from_store = match_inventory(store, inv)
        snapshot = str(store.active())
    finally:
        store.close()
    memory = match(inv, MemoryAdvisories(records, snapshot=snapshot))
    assert canonical.dumps(from_store.to_dict()) == canonical.dumps(memory.to_dict())
    assert from_store.findings
    # one batch: every binary name and every source rpm name (16 rpms, 19 distinct names)
    names = {n for p in inv.packages for n in (p.name, p.source_name) if n}
    assert len(names) == 19
    assert calls == [len(names)]


# --- what an operator runs ---------------------------------------------------------------


def test_stella_scan_of_a_ubi9_rootfs(home: Path) -> None:
    """``stella scan dir:PATH --format json`` on the RHEL 9 rootfs with Red Hat data, and on
    the Wolfi rootfs, whose ecosystem the snapshot lacks."""

    def run(*args: str) -> Any:
        result = CliRunner().invoke(stella, ["--home", str(home), *args])
        assert result.exit_code == 0, result.stderr
        return result.stdout

    run("init")
    install_knowledge(Home(Path(home)), osv=distro_records.redhat9())
    report = json.loads(run("scan", f"dir:{SCANNER / 'rhel9'}", "--format", "json"))["findings"]
    found = {
        (f["component"]["name"], m["record"]["id"])
        for f in report["findings"]
        for m in f["matches"]
    }
    assert ("libcurl-minimal", "CVE-2024-9681") in found
    assert ("bash", "CVE-2022-3715") in found
    assert report["distro"] == "Red Hat:9"
    wolfi = json.loads(run("scan", f"dir:{SCANNER / 'wolfi'}", "--format", "json"))["findings"]
    assert wolfi["findings"] == []
    reasons = {u["reason"] for u in wolfi["unknowns"]}
    assert reasons == {"the knowledge snapshot has no Wolfi records (Wolfi)"}
