from __future__ import annotations

import pytest

from appliance.scanner.analyzers.dpkg import (
    DpkgAnalyzer,
    dependency_names,
    parse_deb822,
    parse_list,
    parse_status,
    split_version,
)
from appliance.scanner.analyzers.interface import ParseError
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import DATA, by_name, fixture_bytes, merged, run

STATUS = "var/lib/dpkg/status"


def _debian_files() -> dict[str, bytes]:
    root = DATA / "debian"
    files = {STATUS: (root / STATUS).read_bytes()}
    for path in sorted((root / "var/lib/dpkg/info").glob("*.list")):
        files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def test_status_packages_with_source_epoch_and_arch() -> None:
    result = merged(DpkgAnalyzer(), _debian_files())
    assert result.unknowns == ()
    names = sorted((p.name, p.arch) for p in result.packages)
    assert names == [
        ("bsdutils", "amd64"),
        ("gcc-12-base", "amd64"),
        ("libc6", "amd64"),
        ("libgcc-s1", "amd64"),
        ("libgcc-s1", "i386"),
        ("tzdata", "all"),
        ("zlib1g", "amd64"),
    ]  # exim4-config is "deinstall ok config-files": not installed
    packages = {(p.name, p.arch): p for p in result.packages}
    bsdutils = packages["bsdutils", "amd64"]
    assert bsdutils.type is PackageType.DEB
    assert (bsdutils.version, bsdutils.epoch, bsdutils.full_version) == (
        "2.38.1-5+deb12u3",
        1,
        "1:2.38.1-5+deb12u3",
    )
    assert (bsdutils.source_name, bsdutils.source_version) == ("util-linux", "2.38.1-5+deb12u3")
    assert bsdutils.dependencies == ("libc6", "libsystemd0")  # Pre-Depends included
    assert bsdutils.locations == (STATUS,)
    assert "usr/bin/logger" in bsdutils.installed_files
    assert "." not in bsdutils.installed_files

    libc6 = packages["libc6", "amd64"]
    assert (libc6.source_name, libc6.source_version) == ("glibc", "2.36-9+deb12u14")

    zlib = packages["zlib1g", "amd64"]
    assert (zlib.epoch, zlib.version, zlib.source_version) == (
        1,
        "1.2.13.dfsg-1",
        "1:1.2.13.dfsg-1",
    )

    tzdata = packages["tzdata", "all"]
    assert (tzdata.source_name, tzdata.dependencies) == ("tzdata", ("debconf", "debconf-2.0"))


def test_multiarch_lists_go_to_their_architecture() -> None:
    result = merged(DpkgAnalyzer(), _debian_files())
    packages = {(p.name, p.arch): p for p in result.packages}
    amd64 = packages["libgcc-s1", "amd64"].installed_files
    i386 = packages["libgcc-s1", "i386"].installed_files
    assert "lib/x86_64-linux-gnu/libgcc_s.so.1" in amd64
    assert "usr/lib/i386-linux-gnu/libgcc_s.so.1" in i386
    assert "usr/lib/i386-linux-gnu/libgcc_s.so.1" not in amd64
    assert packages["gcc-12-base", "amd64"].installed_files  # gcc-12-base:amd64.list


def test_distroless_status_d() -> None:
    root = DATA / "distroless"
    files = {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted((root / "var/lib/dpkg/status.d").iterdir())
        if DpkgAnalyzer().required(p.relative_to(root).as_posix(), 0o100644)
    }
    assert sorted(files) == [
        "var/lib/dpkg/status.d/base-files",
        "var/lib/dpkg/status.d/libssl3",
        "var/lib/dpkg/status.d/netbase",
    ]  # the .md5sums file is not a status file
    result = merged(DpkgAnalyzer(), files)
    packages = by_name(result)
    assert sorted(packages) == ["base-files", "libssl3", "netbase"]
    assert packages["libssl3"].source_name == "openssl"
    assert packages["libssl3"].locations == ("var/lib/dpkg/status.d/libssl3",)
    assert packages["base-files"].version == "12.4+deb12u11"


def test_bad_paragraph_is_unknown_and_the_rest_is_kept() -> None:
    data = (
        b"Package: good\nStatus: install ok installed\nVersion: 1.0-1\nArchitecture: amd64\n\n"
        b"Package: broken\nStatus: install ok installed\nVersion 2.0\n\n"
        b"Package: noversion\nStatus: install ok installed\n\n"
        b"Package: badepoch\nStatus: install ok installed\nVersion: x:1.0\n\n"
        b"Package: badsource\nStatus: install ok installed\nVersion: 1\nSource: a (1) b\n\n"
        b"Package: also-good\nStatus: install ok installed\nVersion: 3\n"
    )
    result = run(DpkgAnalyzer(), STATUS, data)
    assert sorted(p.name for p in result.packages) == ["also-good", "good"]
    reasons = sorted(u.reason for u in result.unknowns)
    assert all(u.path == STATUS and u.analyzer == "dpkg" for u in result.unknowns)
    assert reasons == [
        "line 8: not a 'Field: value' line: 'Version 2.0'",
        "paragraph at line 10: package 'noversion' has no Version",
        "paragraph at line 13: version 'x:1.0' has a malformed epoch",
        "paragraph at line 17: malformed Source 'a (1) b'",
    ]


def test_unreadable_status_is_one_unknown() -> None:
    result = run(DpkgAnalyzer(), STATUS, b" continuation first\n")
    assert result.packages == ()
    assert len(result.unknowns) == 1
    assert "no package could be read" in result.unknowns[0].reason
    assert "continuation line before any field" in result.unknowns[0].reason


def test_bad_list_file_is_unknown() -> None:
    result = run(DpkgAnalyzer(), "var/lib/dpkg/info/foo.list", b"/usr/bin/foo\nrelative/path\n")
    assert [u.reason for u in result.unknowns] == [
        "file list entry is not an absolute path: 'relative/path'"
    ]


def test_deb822_duplicate_field_and_continuations() -> None:
    paragraphs, problems = parse_deb822(
        b"Package: a\nDescription: one\n two\n .\n\n\nPackage: b\nPackage: c\n"
    )
    assert [p.fields for p in paragraphs] == [{"Package": "a", "Description": "one\ntwo\n."}]
    assert problems == ["line 8: field 'Package' appears twice in one paragraph"]


def test_helpers() -> None:
    assert split_version("1:2.0-1") == (1, "2.0-1")
    assert split_version("2.0-1") == (None, "2.0-1")
    with pytest.raises(ParseError, match="malformed epoch"):
        split_version(":2.0")
    assert dependency_names("libc6 (>= 2.34), foo:any | bar [amd64] <!nocheck>") == (
        "bar",
        "foo",
        "libc6",
    )
    assert parse_list(b"/.\n/usr\n/usr/bin/x\n") == ("usr", "usr/bin/x")
    packages, problems = parse_status(
        b"Package: x\nStatus: install ok half-configured\nVersion: 1\n"
    )
    assert (packages, problems) == ([], [])


@pytest.mark.parametrize(
    ("path", "wanted"),
    [
        ("var/lib/dpkg/status", True),
        ("var/lib/dpkg/status.d/libc6", True),
        ("var/lib/dpkg/status.d/libc6.md5sums", False),
        ("var/lib/dpkg/status.d/sub/dir", False),
        ("var/lib/dpkg/info/libc6:amd64.list", True),
        ("var/lib/dpkg/info/libc6:amd64.md5sums", False),
        ("var/lib/dpkg/status-old", False),
        ("usr/var/lib/dpkg/status", False),
    ],
)
def test_required(path: str, wanted: bool) -> None:
    assert DpkgAnalyzer().required(path, 0o100644) is wanted


def test_fixture_is_real_status_format() -> None:
    paragraphs, problems = parse_deb822(fixture_bytes("debian", STATUS))
    assert problems == []
    assert len(paragraphs) == 8
