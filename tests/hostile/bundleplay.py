"""Playing hostile bundle cases: one initialised home (trusting the test key, holding one
snapshot) copied per case; ``stella import`` and ``stella-mirror verify`` on the case's files in
parallel children; what the home then shows, its reason files and its refusal records."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bundles.bounded import printable
from tests.hostile.bundlekit import Kit
from tests.hostile.harness import RSS_CEILING, Run, assert_refused, play_selected, run, state

Build = Callable[[Kit, Path], list[Path]]


@dataclass(frozen=True)
class Case:
    """One hostile input. ``imported``: the refusal line of ``stella import`` after
    ``stella: error: `` (``{reason}`` stands for the reason file's path; a line ending in '…'
    is a prefix); ``verified``: that of ``stella-mirror verify`` after
    ``stella-mirror: error: ``, or None when the input verifies (exit 0)."""

    id: str
    build: Build
    imported: str
    verified: str | None
    quarantined: bool = True  # False: nothing is refused for good (an incomplete set waits)
    verify_flags: tuple[str, ...] = ()

    def __repr__(self) -> str:
        return self.id

    @property
    def cause(self) -> str:
        """The refusal as the reason file and the audit record keep it (no reason path)."""
        return self.imported.replace("; reason in {reason})", ")").replace(
            " (reason in {reason})", ""
        )


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
    reasons: list[tuple[Path, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)


def make_world(root: Path) -> World:
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


def refused_records(home: Path) -> list[dict[str, Any]]:
    db = sqlite3.connect(f"file:{home / 'state.db'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT subject, result FROM audit_log WHERE action = 'import.refused' ORDER BY pos"
        ).fetchall()
    finally:
        db.close()
    return [{"subject": s, "result": json.loads(r)} for s, r in rows]


def play(world: World, case: Case) -> Outcome:
    where = world.root / case.id
    where.mkdir()
    paths = case.build(world.kit, where)
    home = world.root / f"{case.id}-home"
    shutil.copytree(world.template, home, symlinks=True)
    imported = run("stella", "import", *paths, home=home)
    verified = run(
        "stella-mirror",
        "verify",
        *paths,
        "--trust-root",
        world.kit.trust_root,
        *case.verify_flags,
        home=where / "mirror",
    )
    reasons = [
        (p, json.loads(p.read_bytes())) for p in sorted((home / "quarantine").glob("*.reason"))
    ]
    outcome = Outcome(imported, verified, state(home), reasons, refused_records(home))
    shutil.rmtree(where)  # the inputs; some are large
    return outcome


def world_fixtures(label: str, cases: Sequence[Case]) -> tuple[Any, Any]:
    """A bundle module's module-scoped fixtures ``world`` (made under ``label``) and
    ``outcomes`` (every case the session selected, played once in parallel children). A module
    binds them to those names::

        world, outcomes = world_fixtures("hostile-bundles", CASES)
    """

    @pytest.fixture(scope="module", name="world")
    def world_fixture(tmp_path_factory: pytest.TempPathFactory) -> World:
        return make_world(tmp_path_factory.mktemp(label))

    @pytest.fixture(scope="module", name="outcomes")
    def outcomes_fixture(world: World, request: pytest.FixtureRequest) -> dict[str, Outcome]:
        return play_selected(cases, request, lambda c: play(world, c))

    return world_fixture, outcomes_fixture


def _matches(text: str, expected: str) -> bool:
    return text.startswith(expected[:-1]) if expected.endswith("…") else text == expected


def check_import(case: Case, world: World, o: Outcome) -> None:
    """The exact refusal, its reason file and audit record, and nothing else changed."""
    after, before = o.state, world.before
    assert after["snapshots"] == before["snapshots"]
    assert after["images"] == before["images"]
    assert after["leftovers"] == []
    assert after["audit"]["out"]["ok"] is True
    if not case.quarantined:
        assert_refused(o.imported, "stella: error: " + case.imported)
        assert o.reasons == []
        assert o.refused == []
        assert after == before
        return
    assert len(o.reasons) == 1, o.imported.describe()
    reason_path, reason = o.reasons[0]
    line = case.imported.replace("{reason}", printable(str(reason_path)))
    assert_refused(o.imported, "stella: error: " + line)
    # The reason file and the audit record say the same, in printable text.
    assert _matches(reason["reason"], case.cause), reason
    assert reason["bundle"] == printable(o.imported.argv[4].rsplit("/", 1)[-1])
    assert len(o.refused) == 1
    assert _matches(o.refused[0]["result"]["reason"], case.cause)
    assert o.refused[0]["result"]["quarantine"] == printable(str(reason_path))
    assert after["audit"]["out"]["records"] == before["audit"]["out"]["records"] + 1


def check_verify(case: Case, o: Outcome) -> None:
    if case.verified is None:  # integrity holds: what is wrong is inside a signed member
        assert o.verified.code == 0, o.verified.describe()
        assert "Traceback" not in o.verified.err
        assert o.verified.peak_rss <= RSS_CEILING, o.verified.describe()
    else:
        assert_refused(o.verified, "stella-mirror: error: " + case.verified)


def worst(outcomes: dict[str, Outcome]) -> Run:
    return max(
        (r for o in outcomes.values() for r in (o.imported, o.verified)), key=lambda r: r.peak_rss
    )
