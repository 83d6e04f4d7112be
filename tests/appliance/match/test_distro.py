"""Debian 12 and Alpine 3.20: source/origin packages, fixed, unfixed, not affected, no-dsa,
undetermined, epochs, and language packages the distribution installed."""

from __future__ import annotations

from appliance.distros import os_ecosystem
from appliance.match import (
    Finding,
    FindingsReport,
    FixState,
    Inventory,
    MatchKind,
    MemoryAdvisories,
    Severity,
    SeveritySource,
    UnknownKind,
    match,
)
from appliance.scanner.model import OSInfo, Package, PackageType
from tests.appliance.match.data import SNAPSHOT, alpine320, debian12, pypi

BOOKWORM = OSInfo("debian", "12", "bookworm", "Debian GNU/Linux 12 (bookworm)")


def deb(
    name: str,
    version: str,
    source: str,
    source_version: str | None = None,
    epoch: int | None = None,
    files: tuple[str, ...] = (),
) -> Package:
    return Package(
        PackageType.DEB,
        name,
        version,
        epoch=epoch,
        arch="amd64",
        source_name=source,
        source_version=source_version or version,
        locations=("var/lib/dpkg/status",),
        installed_files=files,
    )


REQUESTS_FILES = ("usr/lib/python3/dist-packages/requests-2.28.1.egg-info/PKG-INFO",)
IMAGE = [
    deb("libssl3", "3.0.11-1~deb12u2", "openssl"),
    deb("openssl", "3.0.11-1~deb12u2", "openssl"),
    deb("zlib1g", "1.2.13.dfsg-1", "zlib", "1:1.2.13.dfsg-1", epoch=1),
    deb("vim-tiny", "9.0.1378-2", "vim", "2:9.0.1378-2", epoch=2),
    deb("libcurl4", "7.88.1-10+deb12u5", "curl"),
    deb("libc6", "2.36-9+deb12u1", "glibc"),
    deb("python3-requests", "2.28.1+dfsg-1", "requests", files=REQUESTS_FILES),
    Package(PackageType.PYPI, "requests", "2.28.1", locations=REQUESTS_FILES),
]


def report() -> FindingsReport:
    source = MemoryAdvisories([*debian12(), *pypi()], snapshot=SNAPSHOT)
    return match(Inventory.of(IMAGE, BOOKWORM), source)


def by(report: FindingsReport, name: str) -> dict[str, Finding]:
    return {f.id: f for f in report.findings if f.component.name == name}


def test_os_release_selects_the_release() -> None:
    assert os_ecosystem(BOOKWORM) == "Debian:12"
    assert os_ecosystem(OSInfo("debian", None, "trixie")) == "Debian:13"
    assert os_ecosystem(OSInfo("alpine", "3.20.3")) == "Alpine:v3.20"
    assert os_ecosystem(OSInfo("alpine", "3.21_alpha20240807")) == "Alpine:edge"
    assert os_ecosystem(OSInfo("ubuntu", "22.04")) == "Ubuntu:22.04"
    assert os_ecosystem(OSInfo("fedora", "40")) is None  # no feed: an unknown with a reason
    assert os_ecosystem(None) is None


def test_fixed_version_by_source_package_for_every_binary() -> None:
    r = report()
    for binary in ("libssl3", "openssl"):
        found = by(r, binary)
        assert set(found) == {"CVE-2023-5678"}  # CVE-2023-2650 was fixed in 3.0.9-1, below
        f = found["CVE-2023-5678"]
        assert f.fixed_versions == ("3.0.13-1~deb12u1",)
        assert f.fix_state is FixState.FIXED
        assert f.component.lookup_name == "openssl"
        assert f.component.ecosystem == "Debian:12"
        assert f.matches[0].kind is MatchKind.DISTRO_FIXED
        assert f.matches[0].scheme == "dpkg"


def test_fixed_version_zero_is_not_affected() -> None:
    assert by(report(), "zlib1g") == {}


def test_epochs_and_no_dsa() -> None:
    found = by(report(), "vim-tiny")
    # 2:9.0.1378-2 < 2:9.0.1378-2+deb12u1 (same epoch); 2:9.0.1378-2 > 9.1.0000-1 (epoch wins)
    assert set(found) == {"CVE-2023-4752", "CVE-2023-48231"}
    fixed = found["CVE-2023-4752"]
    assert fixed.component.version == "2:9.0.1378-2"
    assert fixed.matches[0].version == "2:9.0.1378-2"
    assert fixed.severity is Severity.LOW
    assert fixed.severity_source is SeveritySource.DISTRO
    minor = found["CVE-2023-48231"]
    assert minor.fix_state is FixState.WONT_FIX
    assert minor.fixed_versions == ()
    assert minor.matches[0].kind is MatchKind.DISTRO_UNFIXED
    assert dict(minor.matches[0].notes)["nodsa"] == "Minor issue"
    assert minor.severity is Severity.NEGLIGIBLE  # urgency unimportant


def test_unfixed_and_undetermined() -> None:
    r = report()
    found = by(r, "libcurl4")
    assert set(found) == {"CVE-2024-2398"}
    assert found["CVE-2024-2398"].fix_state is FixState.NOT_FIXED
    assert found["CVE-2024-2398"].severity is Severity.MEDIUM
    (unknown,) = [u for u in r.unknowns if "libcurl4" in u.purl]
    assert unknown.kind is UnknownKind.UNDETERMINED
    assert unknown.record == "DEBIAN-CVE-2024-7264"


def test_a_dsa_with_two_cves_gives_two_findings_and_merges_with_the_tracker() -> None:
    found = by(report(), "libc6")
    assert set(found) == {"CVE-2023-4527", "CVE-2023-4911"}
    both = found["CVE-2023-4911"]
    assert [m.record.id for m in both.matches] == ["DEBIAN-CVE-2023-4911", "DSA-5514-1"]
    assert "DSA-5514-1" in both.aliases
    assert "DEBIAN-CVE-2023-4911" in both.aliases
    assert "CVE-2023-4527" not in both.aliases
    assert both.severity is Severity.HIGH  # urgency high from the tracker


def test_distro_installed_python_package_is_judged_by_debian_data() -> None:
    r = report()
    # PYSEC-2023-74 covers requests 2.28.1 (2.3.0 <= v < 2.31.0) but must not be used here
    assert [f for f in r.findings if f.component.type == "pypi"] == []
    (delegated,) = r.delegated
    assert delegated.purl == "pkg:pypi/requests@2.28.1"
    assert delegated.owner.startswith("pkg:deb/debian/python3-requests@2.28.1%2Bdfsg-1")
    assert set(by(r, "python3-requests")) == {"CVE-2023-32681"}


def test_dist_packages_path_is_delegated_without_ownership_data() -> None:
    pkg = Package(PackageType.PYPI, "requests", "2.28.1", locations=REQUESTS_FILES)
    r = match(Inventory.of([pkg], BOOKWORM), MemoryAdvisories(pypi()))
    assert r.findings == ()
    assert r.delegated[0].owner == ""


def test_alpine_by_origin_package_and_secfixes() -> None:
    source = MemoryAdvisories(alpine320(), snapshot=SNAPSHOT)
    zlib = Package(
        PackageType.APK,
        "zlib",
        "1.2.12-r1",
        source_name="zlib",
        locations=("lib/apk/db/installed",),
    )
    client = Package(PackageType.APK, "ssl_client", "1.36.1-r0", source_name="busybox")
    r = match(Inventory.of([zlib, client], OSInfo("alpine", "3.20.3")), source)
    zfound = {f.id for f in r.findings if f.component.name == "zlib"}
    # 1.2.12-r2 fixes CVE-2022-37434 (affected); 1.2.11-r4 (CVE-2018-25032) is below;
    # CVE-2023-45853 and CVE-2023-6992 have fix "0": never affected
    assert zfound == {"CVE-2022-37434"}
    for f in r.findings:
        assert f.component.ecosystem == "Alpine:v3.20"
        assert f.matches[0].scheme == "apk"
    busybox = [f for f in r.findings if f.component.name == "ssl_client"]
    assert "CVE-2022-48174" in {f.id for f in busybox}  # fixed in busybox 1.36.1-r2
    assert all(f.component.lookup_name == "busybox" for f in busybox)


def test_os_packages_without_data_are_unknowns() -> None:
    pkg = Package(PackageType.DEB, "bash", "5.1-6", source_name="bash", source_version="5.1-6")
    r = match(
        Inventory.of([pkg], OSInfo("ubuntu", "22.04", pretty_name="Ubuntu 22.04")),
        MemoryAdvisories(()),
    )
    (unknown,) = r.unknowns
    assert unknown.kind is UnknownKind.NO_DATA
    assert "Ubuntu 22.04" in unknown.reason


def test_a_release_missing_from_the_snapshot_is_unknown_not_clean() -> None:
    # the shared Debian lists stop at bullseye: a bookworm image must not look clean
    r = match(Inventory.of(IMAGE[:2], BOOKWORM), MemoryAdvisories(pypi()))
    assert r.findings == ()
    assert {u.kind for u in r.unknowns} == {UnknownKind.NO_DATA}
    assert "no Debian:12 records" in r.unknowns[0].reason
    assert len(r.unknowns) == 2


def test_packages_of_another_distribution_are_not_matched() -> None:
    apk = Package(PackageType.APK, "zlib", "1.2.12-r1", source_name="zlib")
    r = match(Inventory.of([apk], BOOKWORM), MemoryAdvisories([*debian12(), *alpine320()]))
    assert r.findings == ()
    (unknown,) = r.unknowns
    assert unknown.kind is UnknownKind.NO_DATA
