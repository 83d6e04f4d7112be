"""Hostile audit packages handed to ``stella verify-audit-package``: ZIP bombs, members that
claim gigabytes, repeated, escaping, encrypted or unlisted members, and broken manifests.

Each case is refused from the central directory or manifest.json before the member it is
about is read, with one exact line, exit 1, within the memory ceiling, and the home unchanged.
"""

from __future__ import annotations

import json
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.hostile.documents import (
    Template,
    case_fixtures,
    case_tests,
    deep_json,
    manifest_for,
    zip_bomb,
    zip_declaring,
    zip_end_claiming,
    zip_of,
    zip_with_flags,
)
from tests.hostile.harness import Run, run

E = "stella: error: "
RAISE = " (if this input is trusted and that large, raise the cap with {env}=N (docs/limits.md))"
ONLY_RELATIVE = " (a package holds only relative paths inside it)"


def _cap(subject: str, what: str, name: str, limit: str, found: str) -> str:
    env = "STELLA_LIMIT_" + name.replace(".", "_").upper()
    return (
        E
        + f"{subject}: {what} is over the {name} cap of {limit} (found {found})"
        + RAISE.format(env=env)
    )


#: The one line each case is refused with; {f} is the package handed over.
EXPECTED: dict[str, str] = {
    "not-a-zip": E + "{f}: not a ZIP file (no end of central directory record) (pass the "
    "FILE.zip written by 'stella export-audit-package')",
    "empty": E + "{f}: not a ZIP file (no end of central directory record) (pass the FILE.zip "
    "written by 'stella export-audit-package')",
    "member-claims-2-gib": _cap(
        "{f}: member 'evidence/sbom.json'",
        "the unpacked size of an audit package member",
        "audit_package.member_bytes",
        "64 MiB",
        "2 GiB",
    ),
    "bomb-100-mib": _cap(
        "{f}: member 'evidence/sbom.json'",
        "the unpacked size of an audit package member",
        "audit_package.member_bytes",
        "64 MiB",
        "100 MiB",
    ),
    "bomb-ratio": _cap(
        "{f}: member 'evidence/sbom.json'",
        "the compression ratio of an audit package member over 1 MiB",
        "audit_package.ratio",
        "200:1",
        "1,028:1",
    ),
    "total": _cap(
        "{f}",
        "the unpacked size of all audit package members together",
        "audit_package.total_bytes",
        "1 KiB",
        "1,059 bytes",
    ),
    "ten-million-members": _cap(
        "{f}",
        "the member count of an audit package ZIP",
        "audit_package.members",
        "10,000",
        "10,000,000",
    ),
    "huge-directory": _cap(
        "{f}",
        "the central directory of an audit package ZIP",
        "audit_package.directory_bytes",
        "16 MiB",
        "1 GiB",
    ),
    "traversal": E
    + "{f}: member '../../etc/cron.d/x' has an empty, '.' or '..' component"
    + ONLY_RELATIVE,
    "absolute": E + "{f}: member '/etc/passwd' is an absolute or Windows path" + ONLY_RELATIVE,
    "windows": E + "{f}: member 'C:\\\\evil.json' is an absolute or Windows path" + ONLY_RELATIVE,
    "empty-component": E + "{f}: member 'evidence//sbom.json' has an empty, '.' or '..' "
    "component" + ONLY_RELATIVE,
    "duplicate": E + "{f}: member 'evidence/sbom.json' appears twice (a package holds each path "
    "once)",
    "encrypted": E + "{f}: member 'evidence/sbom.json' is encrypted (audit packages are never "
    "encrypted)",
    "lzma": E + "{f}: member 'manifest.json' uses compression method 14 (audit packages are "
    "stored or deflated)",
    "unlisted": E + "{f}: evidence/extra.json is not listed in manifest.json (a file was added)",
    "no-manifest": E + "{f}: manifest.json is missing from the package",
    "manifest-array": E + "{f}: manifest.json is an array, not an object",
    "manifest-version": E + "{f}: manifest.json is not an audit package manifest v1",
    "manifest-files-object": E + "{f}: manifest.json: files must be an array, not an object",
    "manifest-size-string": E + "{f}: manifest.json: files[0].size must be a whole number, not a "
    "string",
    "manifest-path-missing": E + "{f}: manifest.json: files[0].path must be a string, not null",
    "manifest-deep": E + "{f} manifest.json: the nesting of arrays and objects in a JSON document "
    "is over the json.depth cap of 128 (found 200,000)"
    + RAISE.format(env="STELLA_LIMIT_JSON_DEPTH"),
    "manifest-not-json": E + "{f} manifest.json: not valid JSON: Expecting value: line 1 column 1 "
    "(char 0)",
    "crc-lie": E + "{f}: member a.json cannot be read: Bad CRC-32 for file 'a.json'",
}


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    build: Callable[[Path], Path]
    env: dict[str, str] = field(default_factory=dict)


def _raw(data: bytes) -> Callable[[Path], Path]:
    def build(path: Path) -> Path:
        path.write_bytes(data)
        return path

    return build


def _zip(members: dict[str, bytes], *, listed: bool = True, method: int = 8) -> Any:
    def build(path: Path) -> Path:
        body = dict(members)
        if listed:
            body = {"manifest.json": manifest_for(members), **members}
        return zip_of(path, body, method=method)

    return build


def _manifest(doc: Any = None, *, raw: bytes | None = None) -> Any:
    data = raw if raw is not None else json.dumps(doc).encode()
    return _zip({"manifest.json": data, "a.json": b"{}"}, listed=False)


def _duplicate(path: Path) -> Path:
    with warnings.catch_warnings(), zipfile.ZipFile(path, "w") as z:
        warnings.simplefilter("ignore")  # zipfile warns of the very repeat this case is about
        z.writestr("manifest.json", manifest_for({"evidence/sbom.json": b"{}"}))
        z.writestr("evidence/sbom.json", b"{}")
        z.writestr(zipfile.ZipInfo("evidence/sbom.json"), b"[]")
    return path


def _crc_lie(path: Path) -> Path:
    zip_of(path, {"manifest.json": manifest_for({"a.json": b"{}"}), "a.json": b"{}"}, method=0)
    raw = bytearray(path.read_bytes())
    at = raw.find(b"{}", raw.find(b"a.json") + 6)
    raw[at : at + 2] = b"[]"
    path.write_bytes(bytes(raw))
    return path


_SBOM = {"evidence/sbom.json": b"{}"}
_MANIFEST = json.loads(manifest_for({"a.json": b"{}"}))

CASES = [
    Case("not-a-zip", _raw(b"PK this is not a zip at all")),
    Case("empty", _raw(b"")),
    Case("member-claims-2-gib", lambda p: zip_declaring(p, "evidence/sbom.json", 2 << 30)),
    Case("bomb-100-mib", lambda p: zip_bomb(p, "evidence/sbom.json", 100 << 20)),
    Case("bomb-ratio", lambda p: zip_bomb(p, "evidence/sbom.json", 32 << 20)),
    Case(
        "total",
        _zip({f"evidence/{n}.json": bytes(500) for n in range(3)}),
        env={"STELLA_LIMIT_AUDIT_PACKAGE_TOTAL_BYTES": "1K"},
    ),
    Case("ten-million-members", lambda p: zip_end_claiming(p, 10_000_000, 100)),
    Case("huge-directory", lambda p: zip_end_claiming(p, 10, 1 << 30)),
    Case("traversal", _zip({"../../etc/cron.d/x": b"* * * * * root sh"})),
    Case("absolute", _zip({"/etc/passwd": b"root::0:0::/:/bin/sh"})),
    Case("windows", _zip({"C:\\evil.json": b"{}"})),
    Case("empty-component", _zip({"evidence//sbom.json": b"{}"})),
    Case("duplicate", _duplicate),
    Case(
        "encrypted",
        lambda p: zip_with_flags(
            p, {"manifest.json": manifest_for(_SBOM), **_SBOM}, "evidence/sbom.json", 0x1
        ),
    ),
    Case("lzma", _zip(_SBOM, method=zipfile.ZIP_LZMA)),
    Case(
        "unlisted",
        _zip(
            {"manifest.json": manifest_for(_SBOM), **_SBOM, "evidence/extra.json": b"{}"},
            listed=False,
        ),
    ),
    Case("no-manifest", _zip(_SBOM, listed=False)),
    Case("manifest-array", _manifest([_MANIFEST])),
    Case("manifest-version", _manifest({**_MANIFEST, "version": 2})),
    Case("manifest-files-object", _manifest({**_MANIFEST, "files": {}})),
    Case(
        "manifest-size-string",
        _manifest({**_MANIFEST, "files": [{**_MANIFEST["files"][0], "size": "2"}]}),
    ),
    Case(
        "manifest-path-missing",
        _manifest({**_MANIFEST, "files": [{"sha256": "00", "size": 2}]}),
    ),
    Case("manifest-deep", _manifest(raw=deep_json())),
    Case("manifest-not-json", _manifest(raw=b"manifest")),
    Case("crc-lie", _crc_lie),
]


def execute(case: Case, tmp: Path, made: Template, home: Path) -> tuple[Run, dict[str, Any]]:
    package = case.build(tmp / "package.zip")
    argv: list[str | Path] = ["verify-audit-package", package, "--key", made.public_key]
    return run("stella", *argv, home=home, env=case.env), {"f": package}


made, home, outcomes = case_fixtures("audit-package", CASES, execute)


(
    test_hostile_audit_package_is_refused,
    test_every_case_has_its_line,
    test_what_a_user_sees_is_unchanged_after_every_refusal,
) = case_tests(CASES, EXPECTED)
