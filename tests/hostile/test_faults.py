"""kill -9 at every named step of ``stella import``, ``stella gate``, ``stella rescan`` and
``stella vex add``.

``STELLA_FAULT=STEP`` makes the command kill itself with SIGKILL at that step (appliance/faults.py),
so every step is interrupted deterministically. After each kill: the snapshot list, the audit
chain, the image list and ``stella doctor`` show nothing lost or half-written; then the command
runs again and succeeds, and no temporary file is left.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance import faults
from appliance.cli import cli as stella
from bundles.oci import OCILayout
from mirror.cli import cli as stella_mirror
from tests.appliance.scanner.layouts import OS_RELEASE, STATUS_BASE, F, build_image
from tests.bundles.oci_helpers import build_image as mirror_image
from tests.hostile.harness import AS_LIMIT, RSS_CEILING, Run, leftovers, run, state

FEEDS = Path(__file__).resolve().parents[1] / "data" / "feeds"
AT = "2026-12-01T00:00:00Z"
REF = "registry.example/team/app:1.0"
KILLED = -signal.SIGKILL


def invoke(program: Any, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(program, ["--json", *args])
    assert result.exit_code == 0, result.stderr
    doc: dict[str, Any] = json.loads(result.stdout)
    return doc


@dataclass(frozen=True)
class World:
    bundle: Path  # a signed bundle carrying a snapshot and one image
    fresh: Path  # a home that trusts the mirror and has nothing imported
    loaded: Path  # a home with the bundle imported and an image app:1 loaded


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("faults")
    mirror_home, keys = root / "mirror", root / "keys"
    invoke(stella_mirror, "--home", str(mirror_home), "keys", "generate", "--out", str(keys))
    config = root / "mirror.toml"
    config.write_text(
        f'[[source]]\nname = "osv-pypi"\nkind = "osv"\npath = "{FEEDS / "pypi-osv.jsonl.gz"}"\n'
    )
    invoke(stella_mirror, "--home", str(mirror_home), "sync", "--config", str(config))
    snapshot = invoke(stella_mirror, "--home", str(mirror_home), "snapshot", "build")["digest"]
    layout = OCILayout.init(mirror_home / "mirror" / "oci", exist_ok=True)
    mirror_image(
        layout, {"etc/os-release": b"ID=debian\n", "app/big": os.urandom(300_000)}, tag=REF
    )
    bundle = root / "b.stella.tar.zst"
    invoke(
        stella_mirror,
        "--home",
        str(mirror_home),
        "export",
        "--out",
        str(bundle),
        "--key",
        str(keys / "signing.key"),
        "--snapshot",
        snapshot,
        "--sequence",
        "1",
    )
    fresh = root / "fresh"
    invoke(stella, "--home", str(fresh), "init")
    invoke(stella, "--home", str(fresh), "trust", "add", str(keys / "trust-root.json"))
    loaded = root / "loaded"
    shutil.copytree(fresh, loaded)
    invoke(stella, "--home", str(loaded), "import", str(bundle))
    image = build_image(
        root / "app", [[F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)]]
    )
    invoke(
        stella, "--home", str(loaded), "images", "load", f"oci:{image.path}:img:1", "--tag", "app:1"
    )
    return World(bundle, fresh, loaded)


def _import(world: World) -> tuple[Path, list[str]]:
    return world.fresh, ["import", str(world.bundle)]


def _gate(world: World) -> tuple[Path, list[str]]:
    return world.loaded, ["gate", "app:1", "--at", AT]


def _vex(world: World) -> tuple[Path, list[str]]:
    return world.loaded, [
        "vex", "add", "CVE-2018-18074", "--image", "app:1", "--status", "not_affected",
        "--justification", "vulnerable_code_not_present", "--at", AT,
    ]  # fmt: skip


def _rescan(world: World) -> tuple[Path, list[str]]:
    return world.loaded, ["rescan", "--at", AT]


COMMANDS: dict[str, Callable[[World], tuple[Path, list[str]]]] = {
    "import": _import,
    "gate": _gate,
    "vex": _vex,
    "rescan": _rescan,
}


@dataclass
class Outcome:
    before: dict[str, Any]
    killed: Run
    after_kill: dict[str, Any]
    rerun: Run
    after_rerun: list[str]  # temporary files left once the command ran again


@pytest.fixture(scope="module")
def outcomes(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    root = tmp_path_factory.mktemp("killed")
    baselines = {name: state(COMMANDS[name](world)[0], doctor=True) for name in ("import", "gate")}
    baselines["vex"] = baselines["rescan"] = baselines["gate"]

    def one(step: str) -> tuple[str, Outcome]:
        command = step.split(".")[0]
        template, args = COMMANDS[command](world)
        home = root / step
        shutil.copytree(template, home)
        # The policy engine embeds Go, whose runtime reserves (never touches) more address
        # space than the usual cap: the gate's runs are bounded by peak RSS alone.
        room = 64 << 30 if command in ("gate", "rescan") else AS_LIMIT
        killed = run("stella", *args, home=home, env={faults.ENV: step}, as_limit=room)
        after = state(home, doctor=True)
        rerun = run("stella", "--json", *args, home=home, as_limit=room)
        return step, Outcome(baselines[command], killed, after, rerun, leftovers(home))

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(one, faults.STEPS))


def _snapshots(found: dict[str, Any]) -> list[str]:
    return [s["digest"] for s in found["snapshots"]["out"]["snapshots"] if s["active"]]


@pytest.mark.parametrize("step", list(faults.STEPS))
def test_kill_at_every_step(step: str, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[step]
    before, after = outcome.before, outcome.after_kill
    assert outcome.killed.code == KILLED, outcome.killed.describe()
    assert outcome.killed.peak_rss <= RSS_CEILING
    # The audit chain is intact and every database passes doctor's checks.
    assert after["audit"]["exit"] == 0, after["audit"]
    assert after["audit"]["out"]["ok"] is True, after["audit"]
    for check in ("knowledge.db", "state.db", "oci", "audit"):
        assert after["doctor"].get(check, "ok") == "ok", (check, after["doctor"])
    # Nothing half-written: the previous snapshot stays active until the import commits.
    if step == "import.after-commit":
        assert len(_snapshots(after)) == 1
    else:
        assert _snapshots(after) == _snapshots(before)
    # Tags appear only with a whole image (the import writes them just before it commits).
    if step in ("import.before-commit", "import.after-commit"):
        assert [i["name"] for i in after["images"]["out"]["images"]] == [REF]
    else:
        assert after["images"] == before["images"]
    # A killed writer's temporary blob is reported by doctor, and removed by the next run:
    # an import's blob not yet in the store, a gate's blobs waiting for the end of its batch
    # (synced together, then moved into the store, before index.json names them).
    if step in ("import.blob-written", "gate.after-attach"):
        assert after["doctor"]["leftovers"] == "warn"
        assert after["leftovers"], f"the kill at {step} left no temporary blob to reclaim"
    else:
        assert after["doctor"]["leftovers"] == "ok"
    assert outcome.after_rerun == []
    rerun = outcome.rerun
    assert "Traceback" not in rerun.err, rerun.describe()
    assert rerun.peak_rss <= RSS_CEILING
    if step == "import.after-commit":
        # Committed before the kill: the same bundle is now refused as already imported, and
        # that run records the import the kill cut short ("recovered").
        assert rerun.code == 1, rerun.describe()
        home = outcome_home(step, outcomes)
        records = invoke(stella, "--home", str(home), "audit", "list", "--action", "import")
        imports = [r for r in records["records"] if r["action"] == "import"]
        assert [r["result"].get("recovered") for r in imports] == [True]
    elif step.startswith("gate."):
        assert rerun.code in (0, 3, 4), rerun.describe()  # a verdict, whichever it is
        assert json.loads(rerun.out)["verdict"]
    else:
        assert rerun.code == 0, rerun.describe()


def outcome_home(step: str, outcomes: dict[str, Outcome]) -> Path:
    argv = outcomes[step].rerun.argv
    return Path(argv[argv.index("--home") + 1])


def test_every_step_is_documented() -> None:
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for step in faults.STEPS:
        assert f"| `{step}` |" in text, step


def test_fault_points_do_nothing_unless_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(faults.ENV, raising=False)
    faults.fault("import.after-verify")  # still alive
    faults.fault("import.typo")  # unset: not even the name is looked at
    monkeypatch.setenv(faults.ENV, "gate.after-scan")
    faults.fault("import.after-verify")  # another step: still alive
    with pytest.raises(ValueError, match="unknown fault point 'import.typo'"):
        faults.fault("import.typo")
