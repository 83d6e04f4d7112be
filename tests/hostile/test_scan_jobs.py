"""Scan bombs against the bounded scan job: real child processes, real rlimits.

A package database bomb is a layer of a few kilobytes whose dpkg status file holds one
30 MiB field: harmless under the default bounds (it scans), it passes a small memory bound
while it is read. A package-count bomb (100,000 stanzas) takes seconds of CPU, several times
the 1-second bound the test sets, even on a fast machine. Each is stopped by its bound:
``stella scan`` exits 1 with one line naming the bound and how to raise it; ``stella gate``
signs an INDETERMINATE verdict with ``RISK.UNKNOWN.SCAN_LIMIT`` that verifies and replays, and
no policy can make it a pass.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.rescan import rescan
from appliance.rva.evaluate import VerdictKind
from appliance.rva.gate import gate
from appliance.scanner.jobs import Bound, ScanBounds
from appliance.store import open_state
from appliance.store.audit import AuditLog
from appliance.store.components import ComponentIndex
from appliance.store.verdicts import VerdictStore
from tests.appliance.homes import SITE, install_knowledge
from tests.appliance.scanner.layouts import OS_RELEASE, STATUS_BASE, F, build_image, dist_info

AT = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
MiB = 1 << 20
FIELD_BOMB = (
    STATUS_BASE
    + b"\nPackage: big\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n"
    + b"Description: "
    + b"x" * (30 * MiB)
    + b"\n"
)
COUNT_BOMB = b"".join(
    b"Package: pkg%07d\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.%d\n\n"
    % (i, i)
    for i in range(100_000)
)
NORMAL = [
    [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)],
    dist_info("requests", "2.19.0", SITE),
]
MEMORY_HINT = (
    "(if the image is trusted and needs more, raise the bound with --scan-memory SIZE, "
    'STELLA_LIMIT_SCANJOB_MEMORY_BYTES=N or "scanJob": {{"memoryBytes": N}} in {config} '
    "(docs/limits.md))"
)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, NORMAL, tag="app:1")
    build_image(
        h.oci,
        [[F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", FIELD_BOMB)]],
        tag="bomb:1",
    )
    build_image(
        h.oci,
        [[F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", COUNT_BOMB)]],
        tag="slow:1",
    )
    return h


def stella(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_field_bomb_scans_under_the_default_bounds(home: Home) -> None:
    code, out, err = stella(home, "--json", "scan", "bomb:1", "--format", "packages")
    assert code == 0, err
    assert json.loads(out)["packages"] == 4


def test_scan_alone_names_the_memory_bound_and_how_to_raise_it(home: Home) -> None:
    code, out, err = stella(home, "scan", "bomb:1", "--scan-memory", "128M")
    assert code == 1
    assert out == ""
    assert err.splitlines() == [
        "stella: error: scan of bomb:1 stopped: it passed its memory bound of 128 MiB "
        "(scanjob.memory_bytes) " + MEMORY_HINT.format(config=home.config)
    ]


def test_scan_alone_names_the_cpu_bound(home: Home) -> None:
    code, _, err = stella(home, "scan", "slow:1", "--scan-cpu-seconds", "1")
    assert code == 1
    assert err.startswith(
        "stella: error: scan of slow:1 stopped: it passed its CPU-time bound of 1 s "
        "(scanjob.cpu_seconds) (if the image is trusted and needs more, raise the bound with "
        "--scan-cpu-seconds N, STELLA_LIMIT_SCANJOB_CPU_SECONDS=N"
    )


def test_the_bound_from_the_environment_and_from_the_home(home: Home) -> None:
    result = CliRunner(env={"STELLA_LIMIT_SCANJOB_MEMORY_BYTES": "128M"}).invoke(
        cli, ["--home", str(home.root), "scan", "bomb:1"]
    )
    assert result.exit_code == 1
    assert "memory bound of 128 MiB" in result.stderr
    home.write_settings({**home.settings(), "scanJob": {"memoryBytes": "128M"}})
    code, _, err = stella(home, "scan", "bomb:1")
    assert code == 1
    assert "memory bound of 128 MiB" in err
    # the option wins over the home's setting
    code, _, err = stella(home, "scan", "bomb:1", "--scan-memory", "4G", "--format", "packages")
    assert code == 0, err


def test_gate_signs_an_indeterminate_verdict_that_verifies_and_replays(
    home: Home, tmp_path: Path
) -> None:
    install_knowledge(home)
    rva = tmp_path / "bomb.rva.json"
    code, out, err = stella(
        home,
        "--json",
        "gate",
        "bomb:1",
        "--scan-memory",
        "128M",
        "--at",
        "2026-11-23T06:00:00Z",
        "--out",
        str(rva),
    )
    assert code == 4, err
    summary = json.loads(out)
    assert summary["verdict"] == "INDETERMINATE"
    assert "RISK.UNKNOWN.SCAN_LIMIT" in summary["reasonCodes"]
    assert summary["knowledgeSnapshot"] is not None  # matched nothing, but under the snapshot
    assert summary["summary"]["findings"] == 0
    code, out, err = stella(home, "--json", "verify", str(rva), "--key", str(home.appliance_pub))
    assert code == 0, err
    code, out, err = stella(home, "--json", "explain", str(rva), "--format", "json")
    assert code == 0, err
    predicate = json.loads(out)["predicate"] if "predicate" in json.loads(out) else json.loads(out)
    reasons = [r for r in predicate["reasons"] if r["code"] == "RISK.UNKNOWN.SCAN_LIMIT"]
    assert [r["message"] for r in reasons] == [
        "the scan was stopped by its memory bound of 128 MiB (scanjob.memory_bytes): the "
        "image's packages are unknown"
    ]
    assert predicate["evidence"]["sbom"] is None
    # replay re-evaluates from the pinned input (the stopped scan), not by scanning again
    code, out, err = stella(home, "--json", "replay", str(rva))
    assert code == 0, err
    assert json.loads(out)["result"] == "MATCH"
    # the verdict is indexed and audited like any other
    with open_state(home) as db:
        latest = VerdictStore(db).latest(summary["subject"]["digest"])
        assert latest is not None
        assert latest.verdict == "INDETERMINATE"
        last = AuditLog(db).records()[-1]
    assert last.action == "gate"
    assert "RISK.UNKNOWN.SCAN_LIMIT" in last.result["reasonCodes"]


def test_no_policy_makes_a_stopped_scan_pass(home: Home, tmp_path: Path) -> None:
    allow = tmp_path / "allow"
    allow.mkdir()
    (allow / "policy.rego").write_text(
        "package stella.policy\n\ndeny := set()\n\nindeterminate := set()\n"
    )
    (allow / "data.json").write_text(
        json.dumps({"stella": {"bundle": {"id": "allow", "version": "1", "mode": "enforce"}}})
    )
    normal = gate(home, "app:1", at=AT, policy_dir=allow)
    assert normal.kind is VerdictKind.PASS  # the policy passes what it sees
    stopped = gate(
        home, "bomb:1", at=AT, policy_dir=allow, bounds=ScanBounds(memory_bytes=128 * MiB)
    )
    assert stopped.kind is VerdictKind.INDETERMINATE
    assert stopped.exit_code == 4
    assert stopped.verdict.predicate["reasonCodes"] == ["RISK.UNKNOWN.SCAN_LIMIT"]
    assert stopped.verdict.predicate["explanation"].startswith(
        "INDETERMINATE: the image's scan was stopped by its bound; its packages are unknown. "
    )
    assert stopped.verdict.policy_input["scanLimit"] == {
        "bound": Bound.MEMORY.value,
        "cap": "scanjob.memory_bytes",
        "limit": 128 * MiB,
        "message": "the scan was stopped by its memory bound of 128 MiB "
        "(scanjob.memory_bytes): the image's packages are unknown",
    }
    # a finished scan's input carries no scanLimit at all (its bytes are as before)
    assert "scanLimit" not in normal.verdict.policy_input


def test_rescan_gates_a_stopped_image_and_keeps_it_out_of_the_index(home: Home) -> None:
    install_knowledge(home)
    home.write_settings({**home.settings(), "scanJob": {"memoryBytes": "128M"}})
    report = rescan(home, at=AT, images=["app:1", "bomb:1"])
    verdicts = {o.image: o.verdict for o in report.images}
    assert verdicts == {"app:1": "FAIL", "bomb:1": "INDETERMINATE"}  # app:1 holds a CVE
    with open_state(home) as db:
        indexed = ComponentIndex(db).images()
    digests = {o.image: o.digest for o in report.images}
    assert digests["app:1"] in indexed
    # not indexed: the next incremental run gates it again, under the bounds then in force
    assert digests["bomb:1"] not in indexed
