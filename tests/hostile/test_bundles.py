"""Hostile bundles against ``stella import`` and ``stella-mirror verify``.

Every case is refused with its one exact line, exit 1, no traceback and a peak RSS within the
ceiling; the appliance's snapshots, images and files are as they were, the bundle's reason file
is in ``quarantine/`` and the refusal is an ``import.refused`` record of an intact audit log.
The cases (tests/hostile/cases_bundles.py) run in parallel children, each on its own copy of
one initialised home that trusts the test key and already holds a snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bundles.bounded import printable
from tests.hostile.bundlekit import Kit
from tests.hostile.cases_bundles import CASES, Case
from tests.hostile.harness import RSS_CEILING, Run, assert_refused, run, state


@dataclass
class World:
    root: Path
    kit: Kit
    template: Path
    before: dict[str, Any]


@dataclass
class Outcome:
    imported: Run
    verified: Run
    state: dict[str, Any]
    reasons: list[tuple[Path, Any]]
    refused: list[dict[str, Any]]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("hostile-bundles")
    kit = Kit.create(root)
    template = root / "template"
    assert run("stella", "init", home=template).code == 0
    assert run("stella", "trust", "add", kit.trust_root, home=template).code == 0
    first = run(
        "stella", "import", kit.good(root / "first.stella.tar.zst", sequence=1), home=template
    )
    assert first.code == 0, first.describe()
    before = state(template)
    assert before["audit"]["out"]["ok"] is True
    assert len(before["snapshots"]["out"]["snapshots"]) == 1
    return World(root, kit, template, before)


def _refused_records(home: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT subject, result FROM audit_log WHERE action = 'import.refused' ORDER BY pos"
        ).fetchall()
    finally:
        db.close()
    return [{"subject": s, "result": json.loads(r)} for s, r in rows]


def _play(world: World, case: Case) -> Outcome:
    where = world.root / case.id
    where.mkdir()
    paths = case.build(world.kit, where)
    home = world.root / f"{case.id}-home"
    shutil.copytree(world.template, home, symlinks=True)
    imported = run("stella", "import", *paths, home=home)
    verified = run(
        "stella-mirror", "verify", *paths, "--trust-root", world.kit.trust_root, home=where / "m"
    )
    reasons = [
        (p, json.loads(p.read_bytes())) for p in sorted((home / "quarantine").glob("*.reason"))
    ]
    outcome = Outcome(imported, verified, state(home), reasons, _refused_records(home))
    shutil.rmtree(where)  # the inputs; some are large
    return outcome


def _selected(session: pytest.Session, param: str) -> set[str]:
    return {
        item.callspec.params[param].id
        for item in session.items
        if hasattr(item, "callspec") and param in item.callspec.params
    }


@pytest.fixture(scope="module")
def outcomes(world: World, request: pytest.FixtureRequest) -> dict[str, Outcome]:
    """Every selected case, played once, in parallel children (the suite's time is theirs)."""
    wanted = [c for c in CASES if c.id in _selected(request.session, "case")]
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        played = pool.map(lambda c: _play(world, c), wanted)
        return {c.id: o for c, o in zip(wanted, played, strict=True)}


def _matches(text: str, expected: str) -> bool:
    return text.startswith(expected[:-1]) if expected.endswith("…") else text == expected


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_import_refuses_and_changes_nothing(
    case: Case, world: World, outcomes: dict[str, Outcome]
) -> None:
    o = outcomes[case.id]
    assert len(o.reasons) == 1, o.imported.describe()
    reason_path, reason = o.reasons[0]
    line = case.imported.replace("{reason}", printable(str(reason_path)))
    assert_refused(o.imported, "stella: error: " + line)
    # The reason file and the audit record say the same, in printable text.
    assert _matches(reason["reason"], case.cause), reason
    assert reason["bundle"] == printable(o.imported.argv[-1].rsplit("/", 1)[-1])
    assert len(o.refused) == 1
    assert _matches(o.refused[0]["result"]["reason"], case.cause)
    assert o.refused[0]["result"]["quarantine"] == printable(str(reason_path))
    # Nothing else moved: snapshots, images, no temporary files, an intact audit chain one
    # record longer.
    after, before = o.state, world.before
    assert after["snapshots"] == before["snapshots"]
    assert after["images"] == before["images"]
    assert after["leftovers"] == []
    assert after["audit"]["out"]["ok"] is True
    assert after["audit"]["out"]["records"] == before["audit"]["out"]["records"] + 1


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_mirror_verify_refuses_or_passes_within_the_ceiling(
    case: Case, outcomes: dict[str, Outcome]
) -> None:
    o = outcomes[case.id]
    if case.verified is None:  # integrity holds: what is wrong is inside a signed member
        assert o.verified.code == 0, o.verified.describe()
        assert "Traceback" not in o.verified.err
        assert o.verified.peak_rss <= RSS_CEILING, o.verified.describe()
    else:
        assert_refused(o.verified, "stella-mirror: error: " + case.verified)


def test_worst_peak_is_reported(
    outcomes: dict[str, Outcome], capsys: pytest.CaptureFixture[str]
) -> None:
    """The worst case's peak RSS (for the closing note; the ceiling is asserted per case)."""
    if not outcomes:
        pytest.skip("no case selected")
    runs = [r for o in outcomes.values() for r in (o.imported, o.verified)]
    worst = max(runs, key=lambda r: r.peak_rss)
    assert worst.peak_rss <= RSS_CEILING
    with capsys.disabled():
        print(f"\nhostile bundles: {len(runs)} runs, worst peak {worst.peak_rss >> 20} MiB")
