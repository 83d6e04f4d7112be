"""Runbooks 7 and 8 of docs/runbooks.md, run through the command line: rotating the
appliance's own key, and the compromise drill (a stolen key revoked from the time of the
theft: what the transparency log proves it signed before stays valid, what it signed after
and what no log proves are refused), on the appliance and by an auditor with no home."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.sigstore import bundle as sigstore
from bundles.intoto import Statement
from bundles.keys import PrivateKey, format_instant
from bundles.rfc3339 import parse_time
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


def _wait_until(when: datetime) -> None:
    """Let the wall clock (the log's clock in a real run) pass ``when``: at most a second
    here, so that the verdict gated next is logged after the theft."""
    while datetime.now(UTC) < when:
        time.sleep(0.05)


def test_runbook_compromise_drill(tmp_path: Path) -> None:
    root = _home(tmp_path)
    thief = PrivateKey.load(root / "keys" / "appliance.key")  # the copy that was stolen
    before = tmp_path / "before.json"
    code, _, err = stella(root, "gate", "app:1", "--out", str(before))
    assert code in (0, 3), err
    logged = ok(root, "verify", str(before))["signingTime"]
    assert logged["basis"] == "transparency-log"
    stolen = parse_time(logged["proven"], where="test") + timedelta(seconds=1)
    stolen_at = format_instant(stolen)
    _wait_until(stolen)
    # After the theft: the appliance goes on signing (nobody knows yet) ...
    after = tmp_path / "after.json"
    code, _, err = stella(root, "gate", "app:1", "--out", str(after))
    assert code in (0, 3), err
    # ... and the thief signs a verdict of its own, claiming a time before the theft.
    statement = sigstore.payload_statement(sigstore.read(before.read_bytes()))
    predicate = {**statement.predicate, "verdict": "PASS", "evaluationTime": logged["claimed"]}
    forged = tmp_path / "forged.json"
    forged.write_bytes(
        sigstore.sign(
            Statement(statement.subjects, statement.predicate_type, predicate), thief
        ).to_json()
    )
    keyid = ok(root, "keys", "list")["keys"][0]["keyid"]

    documented("stella keys revoke <keyid> --at ")
    revoked = ok(root, "keys", "revoke", keyid[:16], "--at", stolen_at, "--reason", "token stolen")
    assert revoked["state"] == "revoked"
    kept = ok(root, "verify", str(before))  # the log proves it was signed before the theft
    assert kept["ok"] is True
    assert kept["signingTime"]["proven"] < stolen_at
    code, _, err = stella(root, "verify", str(after))
    assert code == 1
    assert f"by key {keyid[:16]}, revoked at {stolen_at} (token stolen), and logged at " in err
    assert "after the revocation" in err
    code, _, err = stella(root, "verify", str(forged))
    assert code == 1
    assert f"revoked at {stolen_at} (token stolen), and no transparency-log entry" in err
    assert f"the time it claims ({logged['claimed']}) is the signer's word" in err
    # explain and replay decide the same, by the same proof.
    replayed = ok(root, "replay", str(before))
    assert replayed["result"] == "MATCH"
    assert replayed["signingTime"] == kept["signingTime"]
    for command in ("explain", "replay"):
        code, _, err = stella(root, command, str(after))
        assert code == 1
        assert f"revoked at {stolen_at} (token stolen), and logged at " in err
    code, _, err = stella(root, "gate", "app:1")  # the revoked key signs nothing more
    assert code == 1
    assert "stella keys rotate" in err

    documented("stella keys rotate\n")
    rotated = ok(root, "keys", "rotate")
    assert rotated["switched"] is True
    fresh = tmp_path / "fresh.json"
    code, _, err = stella(root, "gate", "app:1", "--out", str(fresh))
    assert code in (0, 3), err
    assert ok(root, "verify", str(fresh))["ok"] is True
    documented("stella explain <verdict.json>")
    code, out, err = stella(root, "explain", str(before))
    assert code == 0, err
    assert "Signature: signing time proven: logged by " in out
    explained = ok(root, "explain", str(before))
    assert explained["signingTime"] == kept["signingTime"]

    # Verifiers with the new key list and the log's key, and no home, decide the same.
    keys, trusted = tmp_path / "appliance-keys.json", tmp_path / "trusted_root.json"
    documented("stella log trusted-root --out trusted_root.json")
    ok(root, "keys", "export-public", "--out", str(tmp_path / "a.pub"), "--keys-out", str(keys))
    ok(root, "log", "trusted-root", "--out", str(trusted))
    documented(
        "stella verify <verdict.json> --trust-policy appliance-keys.json "
        "--trusted-root trusted_root.json"
    )
    auditor = tmp_path / "auditor"
    with_log = ("--trust-policy", str(keys), "--trusted-root", str(trusted))
    for good in (before, fresh):
        assert ok(auditor, "verify", str(good), *with_log)["ok"] is True
    for bad in (after, forged):
        code, _, err = stella(auditor, "verify", str(bad), *with_log)
        assert code == 1
        assert f"revoked at {stolen_at}" in err
    # Without the log's key, a revoked key's verdict is only its own word: refused.
    code, _, err = stella(auditor, "verify", str(before), "--trust-policy", str(keys))
    assert code == 1
    assert "no transparency-log entry or timestamp trusted here proves when" in err
    assert "--trusted-root" in err

    # The audit package carries the entry and its timestamped checkpoint for the offline check.
    documented("stella export-audit-package <verdict.json> --out audit.zip")
    package = tmp_path / "audit.zip"
    ok(root, "export-audit-package", str(before), "--out", str(package))
    documented(
        "stella verify-audit-package audit.zip --trust-policy appliance-keys.json "
        "--trusted-root trusted_root.json"
    )
    for extra in ((), ("--trusted-root", str(trusted))):
        report = ok(
            auditor, "verify-audit-package", str(package), "--trust-policy", str(keys), *extra
        )
        assert report["signingTime"]["basis"] == "transparency-log"
        assert report["signingTime"]["proven"] < stolen_at

    records = ok(root, "audit", "list", "--action", "key")["records"]
    rotation = [r for r in records if r["action"] == "key.rotate"]
    assert rotation[0]["result"]["previousRevoked"] == {"at": stolen_at, "reason": "token stolen"}
    assert ok(root, "audit", "verify")["ok"] is True
