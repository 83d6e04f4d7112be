"""``stella audit list|verify|head`` through the real command line."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from appliance.home import Home
from appliance.store import open_state
from appliance.store.audit import AuditAction, AuditLog
from bundles.keys import KeyType, PrivateKey

T0 = datetime(2026, 11, 23, 6, 0, 0, tzinfo=UTC)
IMAGE = "sha256:" + "ef" * 32


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(stella, list(args))
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("STELLA_KEY_PASSPHRASE", raising=False)
    path = tmp_path / "home"
    code, _, err = run("--home", str(path), "init")
    assert code == 0, err
    return path


def record(home: Path, n: int) -> None:
    """Append ``n`` records the way other commands do: through the Python API."""
    h = Home(home)
    actions = [AuditAction.IMPORT, AuditAction.SCAN, AuditAction.VEX_ADD, AuditAction.GATE]
    with open_state(h) as db:
        log = AuditLog(db, key=h.signing_key())
        start = log.count()
        for i in range(start, start + n):
            log.append(
                actions[i % 4],
                IMAGE,
                actor=f"op{i} (stella test)",
                time=T0 + timedelta(hours=i),
                inputs={"image": IMAGE},
                versions={"engine": "1.0"},
                result={"verdict": "PASS", "i": i},
            )


def raw(home: Path, *statements: str) -> None:
    conn = sqlite3.connect(home / "state.db", isolation_level=None)
    try:
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_update")
        conn.execute("DROP TRIGGER IF EXISTS audit_log_no_delete")
        for statement in statements:
            conn.execute(statement)
    finally:
        conn.close()


def as_json(home: Path, *args: str) -> dict[str, Any]:
    code, out, err = run("--home", str(home), "--json", *args)
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_an_empty_log(home: Path) -> None:
    assert run("--home", str(home), "audit", "list") == (0, "no audit records\n", "")
    code, out, _ = run("--home", str(home), "audit", "verify")
    assert (code, out) == (0, "audit log ok: 0 records, hash chain intact\n")
    code, _, err = run("--home", str(home), "audit", "head")
    assert code == 1
    assert err == (
        "stella: error: the audit log is empty; there is no head checkpoint yet "
        "(checkpoints exist once the appliance has recorded a decision)\n"
    )


def test_list_as_table_and_json(home: Path) -> None:
    record(home, 3)
    code, out, _ = run("--home", str(home), "audit", "list")
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "ACTION", "SUBJECT", "ACTOR", "RESULT"]
    assert lines[2].split()[:3] == ["2", "2026-11-23T07:00:00Z", "scan"]
    assert lines[2].endswith('{"i":1,"verdict":"PASS"}')
    data = as_json(home, "audit", "list")
    assert data["count"] == 3
    first = data["records"][0]
    assert first["seq"] == 1
    assert first["action"] == "import"
    assert first["inputs"] == {"image": IMAGE}
    assert first["ruleDigest"] is None
    assert first["hash"].startswith("sha256:")


def test_list_filters(home: Path) -> None:
    record(home, 8)

    def seqs(*args: str) -> list[int]:
        return [r["seq"] for r in as_json(home, "audit", "list", *args)["records"]]

    assert seqs("--action", "gate") == [4, 8]
    assert seqs("--action", "vex") == [3, 7]
    assert seqs("--since", "2026-11-23T11:00:00Z") == [6, 7, 8]
    assert seqs("--since", "2026-11-23T12:00:00+01:00") == [6, 7, 8]
    assert seqs("--limit", "2") == [7, 8]
    assert seqs("--subject", IMAGE, "--action", "scan", "--limit", "1") == [6]


def test_since_takes_a_date_as_gate_at_does(home: Path) -> None:
    """A date alone is midnight UTC, for ``audit --since`` as for ``gate --at``."""
    record(home, 20)

    def seqs(*args: str) -> list[int]:
        return [r["seq"] for r in as_json(home, "audit", "list", *args)["records"]]

    assert seqs("--since", "2026-11-24") == [19, 20]
    assert seqs("--since", "2026-11-24T00:00:00Z") == [19, 20]
    assert seqs("--since", "2026-11-24t01:00:00+01:00") == [19, 20]


@pytest.mark.parametrize(
    ("args", "line"),
    [
        (
            ["--action", "exfiltrate"],
            "stella: error: --action: unknown action 'exfiltrate' (use one of: gate, gc, image, "
            "image.load, image.remove, import, import.refused, key, key.revoke, key.rotate, "
            "key.switch, push, rescan, scan, snapshot, "
            "snapshot.activate, snapshot.prune, trust, trust.add, trust.remove, trust.rotate, vex, "
            "vex.add, vex.import, vex.revoke)",
        ),
        (
            ["--since", "last week"],
            "stella: error: --since: 'last week' is not an RFC 3339 time "
            "(write e.g. 2026-12-31 or 2026-12-31T23:59:59Z)",
        ),
        (
            ["--since", "2026-11-23T06:00:00"],
            "stella: error: --since: '2026-11-23T06:00:00' has no time zone "
            "(append Z for UTC or an offset like +01:00)",
        ),
    ],
)
def test_list_usage_errors(home: Path, args: list[str], line: str) -> None:
    code, out, err = run("--home", str(home), "audit", "list", *args)
    assert (code, out, err) == (2, "", line + "\n")


def test_commands_need_a_home(tmp_path: Path) -> None:
    code, _, err = run("--home", str(tmp_path / "nowhere"), "audit", "verify")
    assert code == 2
    assert err == (
        f"stella: error: {tmp_path / 'nowhere'} is not an appliance home "
        f"(run 'stella --home {tmp_path / 'nowhere'} init' first)\n"
    )


def test_verify_an_intact_log(home: Path) -> None:
    record(home, 4)
    keyid = Home(home).public_key().keyid
    code, out, err = run("--home", str(home), "audit", "verify")
    assert (code, err) == (0, "")
    assert out == (
        "audit log ok: 4 records, hash chain intact\n"
        f"head checkpoint: record 4 at 2026-11-23T09:00:00Z, signed by key {keyid[:16]}\n"
    )
    data = as_json(home, "audit", "verify")
    assert data["ok"] is True
    assert (data["records"], data["verified"], data["problem"]) == (4, 4, None)
    assert data["head"]["seq"] == 4
    assert data["head"]["keyids"] == [keyid]


@pytest.mark.parametrize(
    ("statements", "message", "verified"),
    [
        (
            ["UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"],
            "record 3: hash mismatch (edited)",
            2,
        ),
        (
            ["DELETE FROM audit_log WHERE seq = 2"],
            "record 2: seq 3 found (a record was removed or reordered)",
            1,
        ),
        (
            ["DELETE FROM audit_log WHERE seq = 5"],
            "head checkpoint says 5 records, log has 4 (records removed from the end)",
            4,
        ),
        (
            [
                "UPDATE audit_log SET seq = 0 WHERE seq = 4",
                "UPDATE audit_log SET seq = 4 WHERE seq = 5",
                "UPDATE audit_log SET seq = 5 WHERE seq = 0",
            ],
            "record 4: seq 5 found (a record was removed or reordered)",
            3,
        ),
    ],
)
def test_verify_names_the_first_bad_record(
    home: Path, statements: list[str], message: str, verified: int
) -> None:
    record(home, 5)
    raw(home, *statements)
    code, out, err = run("--home", str(home), "audit", "verify")
    assert (code, out) == (1, "")
    records = 4 if "DELETE" in statements[0] else 5
    assert err == (
        f"stella: error: audit log {home / 'state.db'}: {message} ({verified} of {records} "
        "records verified before it; keep the database as evidence and compare it with an "
        "exported head checkpoint)\n"
    )
    code, out, _ = run("--home", str(home), "--json", "audit", "verify")
    assert code == 1
    data = json.loads(out)
    assert data["ok"] is False
    assert data["problem"]["message"] == message
    assert (data["records"], data["verified"]) == (records, verified)


def test_verify_with_another_key_names_the_signer(home: Path, tmp_path: Path) -> None:
    record(home, 2)
    other = PrivateKey.generate(KeyType.ED25519)
    other.public_key.save(tmp_path / "other.pub")
    appliance = Home(home).public_key().keyid
    data = json.loads(
        run("--home", str(home), "--json", "audit", "verify", "--key", str(tmp_path / "other.pub"))[
            1
        ]
    )
    assert data["problem"] == {
        "kind": "head-key",
        "seq": None,
        "message": f"head checkpoint is signed by key {appliance[:16]}, not the appliance key "
        f"{other.keyid[:16]} (it was re-signed by another key)",
    }


def test_head_export_anchors_later_verification(home: Path, tmp_path: Path) -> None:
    record(home, 3)
    exported = tmp_path / "head.json"
    data = as_json(home, "audit", "head", "--out", str(exported))
    assert (data["seq"], data["time"], data["out"]) == (3, "2026-11-23T08:00:00Z", str(exported))
    envelope = json.loads(exported.read_text())
    assert envelope["payloadType"] == "application/vnd.stella-ops.audit-head.v1+json"

    record(home, 2)
    code, out, _ = run("--home", str(home), "audit", "verify", "--anchor", str(exported))
    assert code == 0
    assert out.endswith(
        "exported checkpoint of 2026-11-23T08:00:00Z (record 3) is still in the log\n"
    )

    # Everything is deleted, head checkpoint included: only the exported one notices.
    raw(home, "DELETE FROM audit_log", "DELETE FROM audit_head")
    assert run("--home", str(home), "audit", "verify")[0] == 0
    code, _, err = run("--home", str(home), "audit", "verify", "--anchor", str(exported))
    assert code == 1
    assert err.startswith(
        f"stella: error: audit log {home / 'state.db'}: exported checkpoint of "
        "2026-11-23T08:00:00Z says 3 records, log has 0 (records removed since it was exported)"
    )


def test_head_text_output(home: Path) -> None:
    record(home, 1)
    code, out, _ = run("--home", str(home), "audit", "head")
    assert code == 0
    assert out.startswith("head checkpoint: record 1 at 2026-11-23T06:00:00Z, hash sha256:")
