"""Distribution records written by hand in the shape the mirror's feed parsers give them
(OSV-shaped, ``database_specific.version_scheme``, vendor ``severity`` words, ``status`` for
entries without a fix, ``module`` for RHEL module streams).

The package names, versions and CVEs follow real advisories: Red Hat's CSAF VEX documents
for CVE-2022-3715, CVE-2024-9681, CVE-2019-1010022 and CVE-2022-46908 and RHSA-2023:0946
(openssl) and RHSA-2023:1583 (nodejs:18); Canonical's OSV records UBUNTU-CVE-2022-3715,
UBUNTU-CVE-2023-0286 and USN-5844-1; the wolfi-dev/advisories files of zlib, openssl, curl,
glibc and busybox (ids, CVEs and fixed versions as those files give them). The Rocky Linux
records follow the AlmaLinux errata of the same fixes (ALSA-2023:0340, ALSA-2023:0946,
ALSA-2024:3339, ALSA-2022:7314), with Rocky's ids; the nodejs module fixed versions and
RHSA-2024:2910's entries are written for the module-stream cases.
"""

from __future__ import annotations

from typing import Any


def _fixed(
    ecosystem: str,
    name: str,
    fixed: str,
    scheme: str,
    severity: str = "",
    module: str = "",
) -> dict[str, Any]:
    events: list[dict[str, str]] = [{"introduced": "0"}]
    if fixed != "0":
        events.append({"fixed": fixed})
    specific: dict[str, str] = {"version_scheme": scheme}
    if severity:
        specific["severity"] = severity
    if module:
        specific["module"] = module
    return {
        "package": {"ecosystem": ecosystem, "name": name},
        "ranges": [{"type": "ECOSYSTEM", "events": events}],
        "database_specific": specific,
    }


def _status(
    ecosystem: str, name: str, status: str, scheme: str, note: str = "", severity: str = ""
) -> dict[str, Any]:
    specific = {"version_scheme": scheme, "status": status}
    if note:
        specific["note"] = note
    if severity:
        specific["severity"] = severity
    return {"package": {"ecosystem": ecosystem, "name": name}, "database_specific": specific}


def _record(rid: str, aliases: list[str], affected: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": rid,
        "aliases": aliases,
        "modified": "2024-06-01T00:00:00Z",
        "summary": f"{rid} (fixture)",
        "affected": affected,
    }


RH = "Red Hat:9"


def redhat9() -> list[dict[str, Any]]:
    return [
        # bash: fixed above the installed 5.1.8-4.el9 (epoch 0 written out, as CSAF does)
        _record(
            "CVE-2022-3715",
            ["CVE-2022-3715"],
            [_fixed(RH, "bash", "0:5.1.8-6.el9_1", "rpm", "Moderate")],
        ),
        # curl: known affected, fix deferred; the source name reaches curl-minimal and
        # libcurl-minimal
        _record(
            "CVE-2024-9681",
            ["CVE-2024-9681"],
            [_status(RH, "curl", "postponed", "rpm", "Fix deferred", "Low")],
        ),
        _record(
            "CVE-2019-1010022",
            ["CVE-2019-1010022"],
            [_status(RH, "glibc", "not-affected", "rpm", "Not affected")],
        ),
        _record(
            "CVE-2022-46908",
            ["CVE-2022-46908"],
            [_status(RH, "sqlite", "not-affected", "rpm", "Not affected")],
        ),
        # openssl: the erratum and the per-CVE document name one vulnerability
        _record(
            "RHSA-2023:0946",
            ["CVE-2022-4450", "CVE-2023-0286"],
            [_fixed(RH, "openssl", "1:3.0.1-47.el9_1", "rpm", "Important")],
        ),
        _record(
            "CVE-2023-0286",
            ["CVE-2023-0286"],
            [_fixed(RH, "openssl", "1:3.0.1-47.el9_1", "rpm", "Important")],
        ),
        # the epoch decides: 1:3.0.1-43 is above a fix written without epoch
        _record(
            "CVE-2021-3450",
            ["CVE-2021-3450"],
            [_fixed(RH, "openssl", "3.0.7-1.el9", "rpm", "Moderate")],
        ),
        # nodejs: one entry per module stream and one for the non-modular package
        _record(
            "RHSA-2023:1583",
            ["CVE-2023-23918"],
            [
                _fixed(
                    RH,
                    "nodejs",
                    "1:18.14.2-3.module+el9.2.0.z+18497+a402347c",
                    "rpm",
                    "Important",
                    "nodejs:18",
                ),
                _fixed(RH, "nodejs", "1:16.19.1-1.el9_1", "rpm", "Important"),
            ],
        ),
        _record(
            "RHSA-2024:2910",
            ["CVE-2024-27983"],
            [
                _fixed(
                    RH,
                    "nodejs",
                    "1:20.12.2-2.module+el9.4.0+21731+46b5c8a7",
                    "rpm",
                    "Important",
                    "nodejs:20",
                ),
                _fixed(RH, "nodejs", "1:18.20.2-1.el9_4", "rpm", "Important"),
            ],
        ),
        # python3.9: the source rpm name reaches python3 and python3-libs
        _record(
            "RHSA-2022:8353",
            ["CVE-2015-20107", "CVE-2021-28861"],
            [_fixed(RH, "python3.9", "3.9.14-1.el9", "rpm", "Moderate")],
        ),
        _record(
            "CVE-2024-2961",
            ["CVE-2024-2961"],
            [_status(RH, "glibc", "undetermined", "rpm", "Under investigation")],
        ),
    ]


ROCKY = "Rocky Linux:9"


def rocky9() -> list[dict[str, Any]]:
    return [
        _record(
            "RLSA-2023:0340",
            ["CVE-2022-3715"],
            [_fixed(ROCKY, n, "5.1.8-6.el9_1", "rpm") for n in ("bash", "bash-devel")],
        ),
        _record(
            "RLSA-2023:0946",
            ["CVE-2022-4450", "CVE-2023-0286"],
            [
                _fixed(ROCKY, n, "1:3.0.1-47.el9_1", "rpm", "Important")
                for n in ("openssl", "openssl-devel", "openssl-libs", "openssl-perl")
            ],
        ),
        _record(
            "RLSA-2024:3339",
            ["CVE-2024-2961", "CVE-2024-33599"],
            [
                _fixed(ROCKY, n, "2.34-100.el9_4.2", "rpm", "Important")
                for n in ("glibc", "glibc-common", "glibc-minimal-langpack", "glibc-devel")
            ],
        ),
        _record(
            "RLSA-2022:7314",
            ["CVE-2022-37434"],
            [_fixed(ROCKY, n, "1.2.11-32.el9_0", "rpm") for n in ("zlib", "zlib-devel")],
        ),
        _record(
            "RLSA-2023:0338",
            ["CVE-2022-40303", "CVE-2022-40304"],
            [_fixed(ROCKY, "libxml2", "2.9.13-3.el9_1", "rpm")],  # the installed version
        ),
        # Rocky names no module streams: the entry applies to the modular nodejs too
        _record(
            "RLSA-2023:1583",
            ["CVE-2023-23918"],
            [_fixed(ROCKY, "nodejs", "1:18.14.2-3.module+el9.1.0+13456+ba4ab2a2", "rpm")],
        ),
    ]


UBU = "Ubuntu:22.04"


def ubuntu2204() -> list[dict[str, Any]]:
    return [
        _record(
            "UBUNTU-CVE-2022-3715",
            ["CVE-2022-3715"],
            [_fixed(UBU, "bash", "5.1-6ubuntu1.1", "dpkg", "low")],
        ),
        _record(
            "USN-5844-1",
            ["UBUNTU-CVE-2022-4450", "UBUNTU-CVE-2023-0286"],
            [_fixed(UBU, "openssl", "3.0.2-0ubuntu1.8", "dpkg")],
        ),
        _record(
            "UBUNTU-CVE-2023-0286",
            ["CVE-2023-0286"],
            [
                _status(UBU, "edk2", "open", "dpkg", severity="high"),
                _fixed(UBU, "nodejs", "12.22.9~dfsg-1ubuntu3.3", "dpkg", "high"),
                _fixed(UBU, "openssl", "3.0.2-0ubuntu1.8", "dpkg", "high"),
            ],
        ),
        _record(
            "UBUNTU-CVE-2022-37434",
            ["CVE-2022-37434"],
            [_fixed(UBU, "zlib", "1:1.2.11.dfsg-2ubuntu9.1", "dpkg", "medium")],
        ),
        _record(
            "UBUNTU-CVE-2022-48303",
            ["CVE-2022-48303"],
            [_fixed(UBU, "tar", "1.34+dfsg-1ubuntu0.1.22.04.1", "dpkg", "low")],
        ),
        _record(
            "UBUNTU-CVE-2024-28085",
            ["CVE-2024-28085"],
            [_fixed(UBU, "util-linux", "2.37.2-4ubuntu3.4", "dpkg", "medium")],
        ),
        _record(
            "UBUNTU-CVE-2016-20013",
            ["CVE-2016-20013"],
            [_status(UBU, "glibc", "ignored", "dpkg", "end of standard support", "negligible")],
        ),
    ]


WOLFI = "Wolfi"

# (id, CVE, origin, fixed) from wolfi-dev/advisories as its files give them; "not-affected":
# the file's false-positive determination.
_WOLFI: list[tuple[str, str, str, str]] = [
    ("CGA-x22h-f4m4-2grc", "CVE-2022-37434", "zlib", "1.2.13-r1"),
    ("CGA-jq67-276v-crw8", "CVE-2023-45853", "zlib", "1.3-r1"),
    ("CGA-625w-vrp6-h2jj", "CVE-2022-3996", "openssl", "3.0.7-r1"),
    ("CGA-3gfc-9462-mc8m", "CVE-2022-4203", "openssl", "3.1.0-r0"),
    ("CGA-63rw-85hg-qgcr", "CVE-2023-2975", "openssl", "3.1.1-r2"),
    ("CGA-x5xm-v7pj-7rpw", "CVE-2023-3446", "openssl", "3.1.1-r3"),
    ("CGA-55rx-q8vx-v22r", "CVE-2023-3817", "openssl", "3.1.1-r4"),
    ("CGA-4q7f-4r4p-28j4", "CVE-2024-0727", "openssl", "3.2.1-r0"),
    ("CGA-5f6m-q4w3-hpmr", "CVE-2024-12797", "openssl", "3.4.1-r0"),
    ("CGA-6vmf-q9cg-qhx4", "CVE-2023-4807", "openssl", "not-affected"),
    ("CGA-jqm4-7q66-4rv5", "CVE-2024-2004", "curl", "8.7.1-r0"),
    ("CGA-962m-89hc-rmjq", "CVE-2024-7264", "curl", "8.9.1-r0"),
    ("CGA-jr6m-3cwc-27r6", "CVE-2024-9681", "curl", "8.11.0-r0"),
    ("CGA-h26h-2qmg-crpw", "CVE-2023-38545", "curl", "8.4.0-r0"),
    ("CGA-ggg2-x536-4h5p", "CVE-2024-2961", "glibc", "2.39-r2"),
    ("CGA-pjj8-8gh5-2qwh", "CVE-2024-33599", "glibc", "2.39-r5"),
    ("CGA-7gh9-w86h-98jh", "CVE-2025-0395", "glibc", "2.40-r6"),
    ("CGA-c95q-245j-h3hq", "CVE-2022-28391", "busybox", "1.35.0-r3"),
]


def wolfi() -> list[dict[str, Any]]:
    return [
        _record(
            rid,
            [cve],
            [
                _status(WOLFI, origin, fixed, "apk")
                if fixed == "not-affected"
                else _fixed(WOLFI, origin, fixed, "apk")
            ],
        )
        for rid, cve, origin, fixed in _WOLFI
    ]
