"""Authoring, revoking and importing VEX: signed, stored, audited, never deleted; and the
``stella vex`` commands."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.store import open_state
from appliance.store.audit import AuditLog
from appliance.store.vex import VexStore
from appliance.vex import service
from appliance.vex.model import Justification, Origin, VexError, VexStatus
from bundles import dsse
from bundles.digest import Digest
from bundles.intoto import verify_statement
from tests.appliance.rva.factories import AT, IMAGE_DIGEST, OPENSSL, t
from tests.appliance.vex.test_openvex import VENDOR

TARGET = service.ImageTarget(Digest.parse(IMAGE_DIGEST), "registry.example/team/app:1")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    return h


def _add(home: Home, **extra: object) -> service.Recorded:
    args: dict[str, Any] = {
        "vulnerability": "CVE-2024-0001",
        "image": TARGET,
        "components": (OPENSSL,),
        "status": VexStatus.NOT_AFFECTED,
        "justification": Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH,
        "impact": "",
        "action": "",
        "expires": t("2027-01-01T00:00:00Z"),
        "at": AT,
    }
    args.update(extra)
    return service.add(home, **args)


def test_image_target_purl_names_the_image_by_digest() -> None:
    assert TARGET.purl == (
        f"pkg:oci/app@sha256%3A{'ab' * 32}?repository_url=registry.example/team/app"
    )


def test_add_signs_stores_and_audits(home: Home) -> None:
    recorded = _add(home)
    (st,) = recorded.statements
    assert st.origin is Origin.OPERATOR
    assert st.expires == t("2027-01-01T00:00:00Z")
    envelope = dsse.Envelope.from_json(recorded.envelope)
    statement = verify_statement(
        envelope, [home.public_key()], predicate_type=service.PREDICATE_TYPE
    )
    assert statement.subjects[0].sha256 == Digest.parse(IMAGE_DIGEST)
    assert statement.predicate["expires"] == "2027-01-01T00:00:00Z"
    assert statement.predicate["document"]["statements"][0]["status"] == "not_affected"
    assert service.stored_statements(home) == [st]
    with open_state(home) as db:
        (record,) = AuditLog(db).records()
    assert record.action == "vex.add"
    assert record.seq == recorded.audit_seq
    assert record.result["statements"] == [st.key]


def test_same_statement_twice_is_stored_once(home: Home) -> None:
    first = _add(home)
    second = _add(home)
    assert first.new
    assert not second.new
    assert first.document == second.document
    assert len(service.stored_statements(home)) == 1


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"justification": None}, "not_affected needs --justification or --impact"),
        ({"status": VexStatus.AFFECTED}, "--justification is only for not_affected"),
        (
            {"status": VexStatus.AFFECTED, "justification": None},
            "status affected needs --action",
        ),
        ({"expires": t("2026-01-01T00:00:00Z")}, "is not after the statement time"),
        ({"vulnerability": " "}, "vulnerability id is empty"),
    ],
)
def test_add_refuses_bad_statements(home: Home, extra: dict[str, object], message: str) -> None:
    with pytest.raises(VexError, match=message):
        _add(home, **extra)
    assert service.stored_statements(home) == []


def test_revoke_adds_a_superseding_statement_and_deletes_nothing(home: Home) -> None:
    (st,) = _add(home).statements
    revoked = service.revoke(
        home, st.key, reason="code path is used after all", at=t("2026-11-24T00:00:00Z")
    )
    (rv,) = revoked.statements
    assert rv.status is VexStatus.UNDER_INVESTIGATION
    assert rv.revokes == st.key
    assert rv.products == st.products
    assert "code path is used" in rv.notes
    assert {s.key for s in service.stored_statements(home)} == {st.key, rv.key}
    with pytest.raises(VexError, match="already revoked"):
        service.revoke(home, st.key, reason="", at=t("2026-11-25T00:00:00Z"))
    with pytest.raises(VexError, match="no VEX statement 'urn:nope#0'"):
        service.revoke(home, "urn:nope#0", reason="", at=t("2026-11-25T00:00:00Z"))
    with open_state(home) as db:
        actions = [r.action for r in AuditLog(db).records()]
        with pytest.raises(sqlite3.IntegrityError, match="never deleted"):
            db.connection.execute("DELETE FROM vex_statements")
    assert actions == ["vex.add", "vex.revoke"]


def test_import_plain_and_wrapped_documents(home: Home, tmp_path: Path) -> None:
    plain = tmp_path / "vendor.json"
    plain.write_text(json.dumps(VENDOR))
    recorded = service.import_file(home, plain, at=AT)
    assert len(recorded.statements) == 2
    assert all(s.origin is Origin.VENDOR for s in recorded.statements)
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(
        json.dumps(
            {
                "_type": "https://in-toto.io/Statement/v1",
                "subject": [{"name": "x", "digest": {"sha256": "ab" * 32}}],
                "predicateType": "https://openvex.dev/ns/v0.2.0",
                "predicate": VENDOR,
            }
        )
    )
    again = service.import_file(home, wrapped, at=AT)
    assert not again.new
    assert again.document == recorded.document
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**VENDOR, "@context": "https://example.com"}))
    with pytest.raises(VexError, match="not an OpenVEX context"):
        service.import_file(home, bad, at=AT)
    with open_state(home) as db:
        assert len(VexStore(db).documents()) == 1


def test_cli_add_list_revoke(home: Home) -> None:
    runner = CliRunner()
    base = ["--home", str(home.root)]
    result = runner.invoke(
        cli,
        [
            *base,
            "vex",
            "add",
            "CVE-2024-0001",
            "--image",
            f"pkg:oci/app@sha256%3A{'ab' * 32}",
            "--component",
            OPENSSL,
            "--status",
            "not_affected",
            "--justification",
            "component_not_present",
            "--expires",
            "2027-01-01",
            "--at",
            "2026-11-23T06:00:00Z",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "added https://stella-ops.org/vex/" in result.output
    assert "expires 2027-01-01T00:00:00Z" in result.output
    listed = runner.invoke(cli, [*base, "--json", "vex", "list"])
    (row,) = json.loads(listed.output)["statements"]
    assert row["vulnerability"] == "CVE-2024-0001"
    assert not row["revoked"]
    revoked = runner.invoke(
        cli, [*base, "vex", "revoke", row["key"], "--at", "2026-11-24T00:00:00Z"]
    )
    assert revoked.exit_code == 0, revoked.output
    listed = json.loads(runner.invoke(cli, [*base, "--json", "vex", "list"]).output)
    assert [r["revoked"] for r in listed["statements"] if r["key"] == row["key"]] == [True]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--status", "exploitable"],
            "Invalid value for '--status'",
        ),
        (
            [
                "--status",
                "not_affected",
                "--justification",
                "component_not_present",
                "--expires",
                "soon",
            ],
            "stella: error: --expires: 'soon' is not an RFC 3339 time",
        ),
        (
            ["--status", "not_affected"],
            "stella: error: status not_affected needs --justification or --impact",
        ),
    ],
)
def test_cli_errors_are_one_clear_line(home: Home, args: list[str], line: str) -> None:
    result = CliRunner().invoke(
        cli,
        ["--home", str(home.root), "vex", "add", "CVE-1", "--image", IMAGE_DIGEST, *args],
    )
    assert result.exit_code == 2
    assert line in result.output
