"""make demo stays true: the golden path runs end to end on the embedded sample."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


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
