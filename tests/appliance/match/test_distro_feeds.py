"""End to end with the real distribution records: the feed files under tests/data/feeds
(Red Hat CSAF VEX, AlmaLinux and Rocky Linux OSV, Ubuntu OSV, Wolfi secdb) parsed by the
mirror's own feed kinds, matched against the RHEL 9, AlmaLinux 9, Rocky 9, Ubuntu 22.04 and
Wolfi root file systems, and compared with the independent reading (rpm's vercmp,
``dpkg --compare-versions``, the hand-checked apk table).

These feed kinds and files come with the mirror's distribution feeds; until they are part of
this tree, each test is skipped and says which kind or file it waits for.
"""

from __future__ import annotations

import shutil
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from appliance.match import FixState, Inventory, UnknownKind
from tests.appliance.match.test_distro_images import (
    RPMDB,
    SCANNER,
    agree,
    apk_compare,
    by,
    dpkg_compare,
    inventory,
    matched,
    needs_dpkg,
    needs_rpm,
    rpm_compare,
)

FEEDS = Path(__file__).resolve().parents[2] / "data" / "feeds"
ALMA_OS_RELEASE = b"""NAME="AlmaLinux"
VERSION="9.4 (Seafoam Ocelot)"
ID="almalinux"
ID_LIKE="rhel centos fedora"
VERSION_ID="9.4"
PLATFORM_ID="platform:el9"
PRETTY_NAME="AlmaLinux 9.4 (Seafoam Ocelot)"
CPE_NAME="cpe:/o:almalinux:almalinux:9::baseos"
"""


@cache
def records(kind_name: str, folder: str) -> tuple[dict[str, Any], ...]:
    """The records the mirror's feed kind ``kind_name`` makes of ``tests/data/feeds/folder``."""
    from mirror.config import SourceKind
    from mirror.inputs import Upstream
    from mirror.sources import SOURCES

    kind = getattr(SourceKind, kind_name, None)
    path = FEEDS / folder
    if kind is None or kind not in SOURCES or not path.exists():
        pytest.skip(f"the mirror's {kind_name} feed kind or tests/data/feeds/{folder} is not here")
    result = SOURCES[kind].parse(Upstream(path, path.name).members(limit=1 << 30))
    assert not result.unknowns, result.unknowns
    return tuple(result.records)


def el9_root(tmp_path: Path, os_release: bytes) -> Path:
    root = tmp_path / "el9"
    (root / "etc").mkdir(parents=True)
    (root / "etc/os-release").write_bytes(os_release)
    (root / RPMDB).parent.mkdir(parents=True)
    shutil.copyfile(SCANNER / "rhel9" / RPMDB, root / RPMDB)
    return root


@needs_rpm
def test_rhel9_with_red_hat_csaf_vex() -> None:
    recs = list(records("REDHAT_CSAF", "redhat-csaf"))
    inv = inventory(SCANNER / "rhel9")
    report = agree(inv, recs, "Red Hat:9", rpm_compare, streams=True)
    affected, _ = matched(report)
    # bash 5.1.8-4.el9 is below RHSA-2023:0340's 5.1.8-6.el9_1; curl's fix is deferred and
    # reaches curl-minimal and libcurl-minimal by their source rpm; glibc and sqlite are not
    # affected
    assert ("bash", "CVE-2022-3715") in affected
    assert {n for n, r in affected if r == "CVE-2024-9681"} == {"curl-minimal", "libcurl-minimal"}
    assert not {r for _, r in affected} & {"CVE-2019-1010022", "CVE-2022-46908"}
    # mysql 8.4 is a module stream build: the record's mysql:8.4 entry judges it, the
    # non-modular mysql entry does not (both say "Fix deferred")
    assert {n for n, r in affected if r == "CVE-2024-13176"} >= {"mysql", "mysql-common"}
    mysql = by(report, "mysql-common")["CVE-2024-13176"]
    assert mysql.component.lookup_name == "mysql"
    curl = by(report, "curl-minimal")["CVE-2024-9681"]
    assert curl.fix_state is FixState.WONT_FIX
    assert curl.component.lookup_name == "curl"
    # Red Hat's own impact rates them
    assert (curl.severity.value, curl.severity_source.value) == ("low", "distro")
    bash = by(report, "bash")["CVE-2022-3715"]
    assert (bash.severity.value, bash.severity_detail) == (
        "medium",
        "CVE-2022-3715 severity Moderate",
    )


@needs_rpm
def test_almalinux9_with_alma_osv(tmp_path: Path) -> None:
    recs = list(records("ALMA_OSV", "alma-osv"))
    inv = inventory(el9_root(tmp_path, ALMA_OS_RELEASE))
    report = agree(inv, recs, "AlmaLinux:9", rpm_compare)
    affected, _ = matched(report)
    assert ("openssl-libs", "ALSA-2023:0946") in affected  # 1:3.0.1-43 < 1:3.0.1-47
    assert ("glibc-minimal-langpack", "ALSA-2024:3339") in affected
    assert ("python3-libs", "ALSA-2022:8353") in affected
    assert ("zlib", "ALSA-2022:7314") not in affected  # 1.2.11-40.el9 is fixed
    assert ("libxml2", "ALSA-2023:0338") not in affected  # the fixed version itself
    assert ("curl-minimal", "ALSA-2023:0333") not in affected


@needs_rpm
def test_rocky9_with_rocky_osv(tmp_path: Path) -> None:
    recs = list(records("ROCKY_OSV", "rocky-osv"))
    inv = inventory(el9_root(tmp_path, (SCANNER / "rocky9/etc/os-release").read_bytes()))
    report = agree(inv, recs, "Rocky Linux:9", rpm_compare)
    affected, _ = matched(report)
    assert ("bash", "RLSA-2023:0340") in affected


@needs_dpkg
def test_ubuntu2204_with_ubuntu_osv() -> None:
    recs = list(records("UBUNTU_OSV", "ubuntu-osv"))
    inv = inventory(SCANNER / "ubuntu2204")
    report = agree(inv, recs, "Ubuntu:22.04", dpkg_compare)
    affected, _ = matched(report)
    assert ("libssl3", "USN-5844-1") in affected
    assert ("openssl", "UBUNTU-CVE-2023-0286") in affected
    assert ("libnode72", "UBUNTU-CVE-2023-0286") in affected
    assert ("bash", "UBUNTU-CVE-2022-3715") not in affected  # 5.1-6ubuntu1.1 is the fix
    # Ubuntu's own priority rates each CVE: the notice's per-CVE word, not its highest
    openssl = by(report, "openssl")
    rated = {cve: (f.severity.value, f.severity_source.value) for cve, f in openssl.items()}
    assert rated["CVE-2023-0286"] == ("high", "distro")
    assert rated["CVE-2022-4450"] == ("medium", "distro")
    assert (
        openssl["CVE-2022-4450"].severity_detail == "USN-5844-1 priority medium for CVE-2022-4450"
    )


def test_wolfi_with_wolfi_secdb() -> None:
    recs = list(records("WOLFI_SECDB", "wolfi-secdb"))
    inv = inventory(SCANNER / "wolfi")
    report = agree(inv, recs, "Wolfi", apk_compare)
    assert report.findings
    ids = {i for f in report.findings for i in f.ids}
    assert "CVE-2023-45853" in ids  # zlib 1.3-r0 < 1.3-r1
    assert "CVE-2024-9681" in ids  # curl 8.7.1-r0 < 8.11.0-r0
    assert "CVE-2023-0286" not in ids  # openssl 3.1.1-r3 >= 3.1.0-r0


def test_a_release_without_records_is_an_explicit_unknown() -> None:
    recs = list(records("ALMA_OSV", "alma-osv"))
    from appliance.match import MemoryAdvisories, match

    inv: Inventory = inventory(SCANNER / "rhel9")
    report = match(inv, MemoryAdvisories(recs))
    assert report.findings == ()
    assert {u.kind for u in report.unknowns} == {UnknownKind.NO_DATA}
    assert "the knowledge snapshot has no Red Hat:9 records" in report.unknowns[0].reason


def test_chainguard_with_chainguard_secdb(tmp_path: Path) -> None:
    """The Chainguard kind reads the same secdb format (the Wolfi file serves as its data);
    an image with ``ID=chainguard`` is judged by those records only."""
    recs = list(records("CHAINGUARD_SECDB", "wolfi-secdb"))
    root = tmp_path / "chainguard"
    shutil.copytree(SCANNER / "wolfi", root)
    (root / "etc/os-release").write_text(
        'ID=chainguard\nNAME="Chainguard"\nPRETTY_NAME="Chainguard"\nVERSION_ID=20231201\n'
    )
    report = agree(inventory(root), recs, "Chainguard", apk_compare)
    assert "CVE-2023-45853" in {i for f in report.findings for i in f.ids}
