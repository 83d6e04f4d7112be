"""make demo stays true: the golden path runs end to end on the embedded sample, and the
operators' two waived findings read as waived in every output of ``stella scan`` afterwards."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from appliance.cli import cli

REPO = Path(__file__).resolve().parent.parent
SCHEMAS = REPO / "tests" / "data" / "schemas"
WAIVED = {"CVE-2024-3651": "pkg:pypi/idna@2.7", "CVE-2023-43804": "pkg:pypi/urllib3@1.24.1"}


@pytest.mark.slow
def test_demo_runs_the_golden_path(tmp_path: Path) -> None:
    if not (REPO / ".cache/images/app/oci/index.json").exists():
        pytest.fail("the fixture images are missing: run 'make images' (make test does)")
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts/demo.py"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = done.stdout
    for expected in (
        "verified: 13 members",
        "bundle sequence 1 is not newer than the last imported sequence 1",
        "FAIL: RISK.CVE.REACHABLE, RISK.POLICY.THRESHOLD_EXCEEDED (7 critical findings)",
        "critical 7, high 21, medium 15 (",
        "1 exception, 2 not affected",
        "verified: FAIL",
        "MATCH: the predicate is byte-identical",
        "package verified:",
        "audit log ok:",
    ):
        assert expected in out, f"demo output lacks {expected!r}:\n{out[-3000:]}"
    assert (tmp_path / "out/app.rva.json").exists()
    waived_everywhere(tmp_path / "out/appliance")


def _stella(home: Path, *args: str) -> str:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    assert result.exit_code == 0, result.stderr
    return result.stdout


def waived_everywhere(home: Path) -> None:
    """The demo's two not_affected statements, read by every output of the scan."""
    cdx: dict[str, Any] = json.loads(
        _stella(home, "scan", "app:latest", "--format", "cyclonedx-vex")
    )
    states = {v["id"]: v.get("analysis", {}).get("state") for v in cdx["vulnerabilities"]}
    assert {i for i, s in states.items() if s} == set(WAIVED)
    assert all(states[i] == "not_affected" for i in WAIVED)

    sarif = json.loads(_stella(home, "scan", "app:latest", "--format", "sarif"))
    jsonschema.Draft4Validator(json.loads((SCHEMAS / "sarif-2.1.0.json").read_bytes())).validate(
        sarif
    )
    suppressed = {
        r["ruleId"]: r["suppressions"][0]
        for r in sarif["runs"][0]["results"]
        if r.get("suppressions")
    }
    assert set(suppressed) == set(WAIVED)
    assert all(s["kind"] == "external" for s in suppressed.values())

    table = _stella(home, "scan", "app:latest")
    assert "2 suppressed findings hidden" in table
    assert not any(f" {i} " in table for i in WAIVED)
    shown = _stella(home, "scan", "app:latest", "--show-suppressed").splitlines()
    rows = {i: next(line for line in shown if f" {i} " in line) for i in WAIVED}
    assert "not_affected  vulnerable_code_not_in_execute_path" in rows["CVE-2024-3651"]
    assert "not_affected  inline_mitigations_already_exist" in rows["CVE-2023-43804"]

    doc = json.loads(_stella(home, "scan", "app:latest", "--format", "json"))["findings"]
    status = {f["id"]: f["vex"] for f in doc["findings"] if f["vex"]["suppressed"]}
    assert set(status) == set(WAIVED)
    assert status["CVE-2023-43804"]["exception"] is True
    assert status["CVE-2024-3651"]["expires"] is None

    openvex = json.loads(_stella(home, "vex", "export", "--image", "app:latest"))
    schema = json.loads((SCHEMAS / "openvex-0.2.0.schema.json").read_bytes())
    jsonschema.Draft202012Validator(schema).validate(openvex)
    named = {s["vulnerability"]["name"] for s in openvex["statements"]}
    assert named == set(WAIVED)
