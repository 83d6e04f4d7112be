"""Runbooks 7 and 8 of docs/runbooks.md, run through the command line: rotating the
appliance's own key, and the compromise drill (a stolen key revoked from the time of the
theft: what it signed before stays valid, what it signed after is refused)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.sigstore import bundle as sigstore
from bundles.intoto import Statement
from bundles.keys import PrivateKey, format_instant
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.test_runbooks import documented


def stella(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


def ok(home: Path, *args: str) -> dict[str, Any]:
    code, out, err = stella(home, "--json", *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def _gate(home: Path, at: datetime, out: Path) -> None:
    code, _, err = stella(home, "gate", "app:1", "--at", format_instant(at), "--out", str(out))
    assert code in (0, 3), err  # a PASS or a FAIL: either way a signed verdict


def _home(tmp_path: Path) -> Path:
    home = Home(tmp_path / "home")
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    add_snapshot(home, BASE_RECORDS, 1)
    return home.root


def test_runbook_rotating_the_appliance_key(tmp_path: Path) -> None:
    root = _home(tmp_path)
    now = datetime.now(UTC)
    old = tmp_path / "old-verdict.json"
    _gate(root, now - timedelta(hours=1), old)
    documented("stella keys list")
    assert [k["state"] for k in ok(root, "keys", "list")["keys"]] == ["active"]
    documented("stella keys rotate --at ")
    at = format_instant(now + timedelta(days=7))
    planned = ok(root, "keys", "rotate", "--at", at)
    assert planned["switched"] is False
    assert planned["next"]["state"] == "next"
    assert planned["next"]["validFor"] == {"start": at}
    documented("stella keys export-public --out appliance.pub --keys-out appliance-keys.json")
    keys = tmp_path / "appliance-keys.json"
    ok(root, "keys", "export-public", "--out", str(tmp_path / "a.pub"), "--keys-out", str(keys))
    documented("stella verify old-verdict.json --trust-policy appliance-keys.json")
    auditor = tmp_path / "auditor"
    assert ok(auditor, "verify", str(old), "--trust-policy", str(keys))["ok"] is True
    # Until the switch, the current key signs; the doctor sees the rotation planned.
    during = tmp_path / "during.json"
    _gate(root, now, during)
    assert sigstore.read(during.read_bytes()).key_hint == planned["previous"]["keyid"]
    doctor = ok(root, "doctor")
    (check,) = [c for c in doctor["checks"] if c["name"] == "keys"]
    assert f"takes over at {at}" in check["detail"]
    documented("stella audit list --action key")
    actions = [r["action"] for r in ok(root, "audit", "list", "--action", "key")["records"]]
    assert actions == ["key.rotate"]


def test_runbook_compromise_drill(tmp_path: Path) -> None:
    root = _home(tmp_path)
    now = datetime.now(UTC).replace(microsecond=0)
    thief = PrivateKey.load(root / "keys" / "appliance.key")  # the copy that was stolen
    before = tmp_path / "before.json"
    _gate(root, now - timedelta(hours=2), before)
    after = tmp_path / "after.json"
    _gate(root, now - timedelta(minutes=30), after)
    # The thief signs a verdict of its own, claiming a time after the theft.
    statement = sigstore.payload_statement(sigstore.read(before.read_bytes()))
    predicate = {**statement.predicate, "verdict": "PASS", "evaluationTime": format_instant(now)}
    forged = tmp_path / "forged.json"
    forged.write_bytes(
        sigstore.sign(
            Statement(statement.subjects, statement.predicate_type, predicate), thief
        ).to_json()
    )
    stolen_at = format_instant(now - timedelta(hours=1))
    keyid = ok(root, "keys", "list")["keys"][0]["keyid"]

    documented("stella keys revoke <keyid> --at ")
    revoked = ok(root, "keys", "revoke", keyid[:16], "--at", stolen_at, "--reason", "token stolen")
    assert revoked["state"] == "revoked"
    assert ok(root, "verify", str(before))["ok"] is True  # signed before the theft: valid
    for late in (after, forged):
        code, _, err = stella(root, "verify", str(late))
        assert code == 1
        assert f"by key {keyid[:16]}, revoked at {stolen_at} (token stolen)" in err
    code, _, err = stella(root, "gate", "app:1")  # the revoked key signs nothing more
    assert code == 1
    assert "stella keys rotate" in err

    documented("stella keys rotate\n")
    rotated = ok(root, "keys", "rotate")
    assert rotated["switched"] is True
    fresh = tmp_path / "fresh.json"
    _gate(root, datetime.now(UTC) + timedelta(minutes=1), fresh)
    assert ok(root, "verify", str(fresh))["ok"] is True

    # Verifiers with the new key list, and no home, decide the same.
    keys = tmp_path / "appliance-keys.json"
    ok(root, "keys", "export-public", "--out", str(tmp_path / "a.pub"), "--keys-out", str(keys))
    documented("stella verify <verdict.json> --trust-policy appliance-keys.json")
    auditor = tmp_path / "auditor"
    for good in (before, fresh):
        assert ok(auditor, "verify", str(good), "--trust-policy", str(keys))["ok"] is True
    code, _, err = stella(auditor, "verify", str(forged), "--trust-policy", str(keys))
    assert code == 1
    assert "revoked at" in err
    records = ok(root, "audit", "list", "--action", "key")["records"]
    rotation = [r for r in records if r["action"] == "key.rotate"]
    assert rotation[0]["result"]["previousRevoked"] == {"at": stolen_at, "reason": "token stolen"}
    assert ok(root, "audit", "verify")["ok"] is True
