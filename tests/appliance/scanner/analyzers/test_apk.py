from __future__ import annotations

from appliance.scanner.analyzers.apk import INSTALLED, ApkAnalyzer
from appliance.scanner.model import PackageType
from tests.appliance.scanner.helpers import by_name, fixture_bytes, run


def test_alpine_installed_database() -> None:
    result = run(ApkAnalyzer(), INSTALLED, fixture_bytes("alpine", INSTALLED))
    assert result.unknowns == ()
    packages = by_name(result)
    assert sorted(packages) == [
        "ada-libs",
        "busybox",
        "libcrypto1.0",
        "musl",
        "musl-utils",
        "pkgconf",
        "scanelf",
        "zlib",
    ]
    musl_utils = packages["musl-utils"]
    assert musl_utils.type is PackageType.APK
    assert (musl_utils.version, musl_utils.arch) == ("1.1.14-r10", "x86_64")
    assert (musl_utils.source_name, musl_utils.source_version) == ("musl", "1.1.14-r10")
    assert musl_utils.licenses == ("MIT BSD GPL2+",)
    # "!uclibc-utils" is a conflict, "musl=1.1.14-r10" a versioned name, "so:…" a soname
    assert musl_utils.dependencies == ("musl", "scanelf")
    assert musl_utils.installed_files == ("sbin/ldconfig", "usr/bin/iconv")
    assert packages["libcrypto1.0"].dependencies == ("musl", "zlib")
    assert packages["libcrypto1.0"].source_name == "openssl"
    # "pkgconfig" is provided by pkgconf ("p:pkgconfig=1")
    assert packages["ada-libs"].dependencies == ("musl", "pkgconf")
    assert packages["ada-libs"].licenses == ("( Apache-2.0 OR MIT ) AND MPL-2.0",)
    assert packages["busybox"].installed_files == ("bin/busybox", "bin/sh", "etc/securetty")
    assert packages["musl"].locations == (INSTALLED,)


def test_records_without_version_and_malformed_lines_are_unknowns() -> None:
    data = (
        b"P:good\nV:1.0-r0\nA:x86_64\n\n"
        b"P:invalidPackageWithoutAVersion\n\n"
        b"P:broken\nV:2.0-r0\nthis line is wrong\n\n"
        b"P:twice\nV:1\nV:2\n\n"
        b"P:other\nV:3.0-r1\nD:good\n"
    )
    result = run(ApkAnalyzer(), INSTALLED, data)
    packages = by_name(result)
    assert sorted(packages) == ["good", "other"]
    assert packages["other"].dependencies == ("good",)
    assert [u.reason for u in result.unknowns] == [
        "record at line 5 lacks P: (name) or V: (version)",
        "line 9: not an 'X:value' line: 'this line is wrong'",
        "line 13: field 'V' appears twice in one record",
    ]


def test_database_without_any_package_is_one_unknown() -> None:
    result = run(ApkAnalyzer(), INSTALLED, b"garbage\n")
    assert result.packages == ()
    assert len(result.unknowns) == 1
    assert result.unknowns[0].reason.startswith("no package could be read: line 1")


def test_non_utf8_database_is_unknown() -> None:
    result = run(ApkAnalyzer(), INSTALLED, b"P:\xff\n")
    assert "apk database is not UTF-8" in result.unknowns[0].reason


def test_required() -> None:
    analyzer = ApkAnalyzer()
    assert analyzer.required("lib/apk/db/installed", 0o100644)
    assert not analyzer.required("lib/apk/db/installed.old", 0o100644)
    assert not analyzer.required("usr/lib/apk/db/installed", 0o100644)
