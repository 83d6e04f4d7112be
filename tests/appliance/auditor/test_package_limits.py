"""Audit packages are refused from their central directory and manifest before a member is
read: sizes, ratios, counts, names, encryption, and members the manifest does not list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from appliance.auditor.errors import AuditPackageError
from appliance.auditor.package import read_package
from bundles.limits import LimitError
from tests.hostile.documents import (
    manifest_for,
    zip_bomb,
    zip_declaring,
    zip_end_claiming,
    zip_of,
    zip_with_flags,
)

SBOM = {"evidence/sbom.json": b"{}"}


def _read(path: Path) -> dict[str, bytes]:
    with open(path, "rb") as fh:
        return read_package(fh, source="p.zip")


def test_a_listed_package_is_read_member_by_member(tmp_path: Path) -> None:
    members = {"manifest.json": manifest_for(SBOM), **SBOM}
    assert _read(zip_of(tmp_path / "p.zip", members)) == members


@pytest.mark.parametrize(
    ("build", "cap"),
    [
        (lambda p: zip_declaring(p, "evidence/sbom.json", 2 << 30), "audit_package.member_bytes"),
        (lambda p: zip_bomb(p, "evidence/sbom.json", 8 << 20), "audit_package.ratio"),
        (lambda p: zip_end_claiming(p, 1 << 24, 10), "audit_package.members"),
        (lambda p: zip_end_claiming(p, 10, 1 << 30), "audit_package.directory_bytes"),
    ],
    ids=["declared", "ratio", "members", "directory"],
)
def test_caps_are_checked_before_reading(
    tmp_path: Path, build: Callable[[Path], Path], cap: str
) -> None:
    with pytest.raises(LimitError) as raised:
        _read(build(tmp_path / "p.zip"))
    assert raised.value.cap.name == cap


def test_the_total_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLA_LIMIT_AUDIT_PACKAGE_TOTAL_BYTES", "100")
    members = {f"evidence/{n}.json": bytes(60) for n in range(2)}
    with pytest.raises(LimitError, match="audit_package.total_bytes"):
        _read(zip_of(tmp_path / "p.zip", {"manifest.json": manifest_for(members), **members}))


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ({"../x.json": b"{}"}, "member '../x.json' has an empty, '.' or '..' component"),
        ({"/x.json": b"{}"}, "member '/x.json' is an absolute or Windows path"),
        ({"a\\b.json": b"{}"}, "is an absolute or Windows path"),
    ],
    ids=["dotdot", "absolute", "backslash"],
)
def test_names_that_escape_are_refused(
    tmp_path: Path, members: dict[str, bytes], message: str
) -> None:
    path = zip_of(tmp_path / "p.zip", {"manifest.json": manifest_for(members), **members})
    with pytest.raises(AuditPackageError, match=message.replace("\\", "\\\\").replace(".", r"\.")):
        _read(path)


def test_encrypted_and_unlisted_members_are_refused_unread(tmp_path: Path) -> None:
    members = {"manifest.json": manifest_for(SBOM), **SBOM}
    with pytest.raises(AuditPackageError, match="'evidence/sbom.json' is encrypted"):
        _read(zip_with_flags(tmp_path / "e.zip", members, "evidence/sbom.json", 0x1))
    extra = {**members, "evidence/extra.json": b"{}"}
    with pytest.raises(AuditPackageError, match="evidence/extra.json is not listed"):
        _read(zip_of(tmp_path / "u.zip", extra))


def test_a_manifest_field_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    members = {
        "manifest.json": b'{"version": 1, "subject": "s", "statement": "t", "files": [{"path": 1}]}'
    }
    with pytest.raises(AuditPackageError, match=r"files\[0\]\.path must be a string, not a number"):
        _read(zip_of(tmp_path / "p.zip", members))
