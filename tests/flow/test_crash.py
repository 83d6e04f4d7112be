"""kill -9 during import, at several points: the previous snapshot stays active, the stores stay
consistent, and importing again works."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.flow.conftest import Appliance, Mirror

IMPORT = "from appliance.cli import main; main()"


def offline_prefix() -> list[str]:
    """Run the import in a network namespace with no interfaces (as PrivateNetwork=yes does),
    where the kernel allows it; the in-process tests block sockets instead."""
    unshare = shutil.which("unshare")
    if unshare and os.geteuid() == 0:
        probe = subprocess.run([unshare, "--net", "true"], capture_output=True, check=False)
        if probe.returncode == 0:
            return [unshare, "--net"]
    return []


@pytest.fixture(scope="module")
def big(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """A full bundle of the sample, and a larger one (60,000 synthetic OSV records) after it."""
    out = tmp_path_factory.mktemp("crash")
    small = out / "small.stella.tar.zst"
    mirror.export(small, "--snapshot", mirror.snapshots[0], "--sequence", "100")
    feed = out / "synthetic.jsonl"
    with open(feed, "w") as fh:
        for i in range(60_000):
            record = {
                "id": f"SYN-{i:06d}",
                "modified": "2026-01-01T00:00:00Z",
                "summary": f"synthetic advisory {i} " + "x" * 200,
                "affected": [
                    {
                        "package": {"ecosystem": "PyPI", "name": f"pkg-{i % 5000}"},
                        "ranges": [
                            {
                                "type": "ECOSYSTEM",
                                "events": [{"introduced": "0"}, {"fixed": f"1.{i}"}],
                            }
                        ],
                    }
                ],
            }
            fh.write(json.dumps(record) + "\n")
    cfg = mirror.feeds / "big.toml"
    cfg.write_text(f'[[source]]\nname = "synthetic"\nkind = "osv"\npath = "{feed}"\n')
    mirror.run("sync", "--config", str(cfg))
    digest = mirror.run("snapshot", "build")["digest"]
    large = out / "large.stella.tar.zst"
    mirror.export(large, "--snapshot", digest, "--sequence", "101")
    return small, large, digest


def check_consistent(home: Path) -> None:
    for db in ("knowledge.db", "state.db"):
        path = home / db
        if path.exists():
            conn = sqlite3.connect(path)
            try:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
                assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
            finally:
                conn.close()


def test_kill_during_import_leaves_the_previous_state(
    appliance: Appliance, big: tuple[Path, Path, str], mirror: Mirror
) -> None:
    small, large, large_digest = big
    appliance.run("import", str(small))
    before = appliance.active()
    interrupted = 0
    completed = False
    for delay in (0.2, 0.5, 0.8, 1.2, 1.8, 2.5, 3.5, 5.0, 8.0):
        argv = [*offline_prefix(), sys.executable, "-c", IMPORT]
        argv += ["--home", str(appliance.home), "import", str(large)]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(delay)
        if proc.poll() is not None:
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()
            completed = True
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        check_consistent(appliance.home)
        assert appliance.run("audit", "verify")["ok"] is True
        active = appliance.active()
        if active == large_digest:  # killed after the commit: the import is whole
            completed = True
            break
        assert active == before, f"killed after {delay}s: the active snapshot is {active}"
        interrupted += 1
    assert interrupted >= 2, (
        "the import finished too fast to be interrupted; make the bundle larger"
    )
    if not completed:
        appliance.run("import", str(large))
    check_consistent(appliance.home)
    assert appliance.active() == large_digest
    snaps = appliance.run("snapshot", "list")["snapshots"]
    assert [s["sequence"] for s in snaps] == [100, 101]
    # Every imported snapshot has its audit record: a kill after the commit and before the
    # record is recovered by the next import, here a refused one.
    appliance.fail("import", str(small))
    records = appliance.run("audit", "list", "--action", "import")["records"]
    imports = [r for r in records if r["action"] == "import"]
    assert {r["inputs"]["snapshot"] for r in imports} == {s["digest"] for s in snaps}
    assert appliance.run("audit", "verify")["ok"] is True
