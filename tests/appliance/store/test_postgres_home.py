"""A home whose stores live in PostgreSQL: the golden path with ``STELLA_DATABASE_URL`` (init,
import the sample bundle, gate an image, verify the audit log), ``stella migrate`` from an
embedded home and back to the same answers, and the errors a user meets (a URL that is not
PostgreSQL's, a server that is down, a target that is not empty), each one line."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from appliance.cli import cli as stella
from appliance.doctor import Doctor, Status
from appliance.home import DATABASE_URL_ENV, Home
from appliance.store import open_knowledge, open_state
from appliance.store.postgres import PostgresDatabase
from appliance.store.verdicts import VerdictStore
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.flow.conftest import FEEDS, Mirror


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sample bundle (the sample feeds: PyPI OSV, Alpine, EPSS, KEV) and its trust root."""
    root = tmp_path_factory.mktemp("mirror")
    feeds = root / "feeds"
    feeds.mkdir()
    mirror = Mirror(home=root / "home", keys=root / "keys", feeds=feeds, snapshots=[])
    mirror.run("keys", "generate", "--out", str(mirror.keys))
    mirror.snapshot(FEEDS / "kev/known_exploited_vulnerabilities.json")
    bundle = root / "full.stella.tar.zst"
    mirror.export(bundle, "--snapshot", mirror.snapshots[0], "--sequence", "1")
    return bundle, mirror.keys / "history" / "trust-root.v1.json"


def run(home: Path, *args: str, code: int | tuple[int, ...] = 0) -> Result:
    result = CliRunner().invoke(stella, ["--home", str(home), *args])
    assert result.exit_code in (code if isinstance(code, tuple) else (code,)), (
        result.stdout,
        result.stderr,
    )
    return result


def out(home: Path, *args: str, code: int = 0) -> Any:
    return json.loads(run(home, "--json", *args, code=code).stdout)


def one_line_error(result: Result) -> str:
    """The error line, without the program name (progress lines may come before it)."""
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("stella: error: ")]
    assert len(errors) == 1, result.stderr
    return errors[0].removeprefix("stella: ")


def gated_home(root: Path, bundle: Path, trust: Path) -> Path:
    """init, trust the mirror, import the sample bundle, gate an image with requests 2.19.0
    (PASS or FAIL, as the sample feeds decide: what matters here is that it is stored)."""
    run(root, "init")
    run(root, "trust", "add", str(trust))
    imported = out(root, "import", str(bundle))
    assert imported["kind"] == "full"
    build_image(Home(root).oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    run(root, "gate", "app:1", code=(0, 3))
    return root


def verdicts(home: Path) -> list[tuple[str, str, tuple[str, ...]]]:
    with open_state(Home(home)) as db:
        return [(r.name, r.verdict, r.reason_codes) for r in VerdictStore(db).history()]


def test_golden_path_with_the_stores_in_postgresql(
    sample: tuple[Path, Path], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(DATABASE_URL_ENV, pg_url)
    home = gated_home(tmp_path / "home", *sample)
    # nothing of the stores went to the home's files
    assert not (home / "state.db").exists()
    assert not (home / "knowledge.db").exists()
    rescanned = json.loads(run(home, "--json", "rescan", "--all", code=(0, 3)).stdout)
    assert [i["outcome"] for i in rescanned["images"]] == ["gated"]
    checked = out(home, "audit", "verify")
    assert checked["ok"] is True
    assert checked["records"] >= 4  # import, scan, gate, rescan at least
    assert [n for n, _, _ in verdicts(home)] == ["app", "app"]
    listed = out(home, "snapshot", "list")["snapshots"]
    assert len(listed) == 1
    assert listed[0]["active"]
    doctor = Doctor(Home(home), now=datetime.now(UTC))
    assert [(c.name, c.status, c.detail) for c in doctor.check_databases()] == [
        ("database", Status.OK, f"PostgreSQL {pg_url} reachable")
    ]
    assert [(c.name, c.status) for c in (doctor.check_audit(), doctor.check_snapshot())] == [
        ("audit", Status.OK),
        ("snapshot", Status.OK),
    ]
    store = open_knowledge(Home(home))
    try:
        assert store.db.where.endswith("(schema knowledge)")
        assert store.counts(store.active() or listed[0]["digest"])["osv"] > 0
    finally:
        store.close()


def test_migrate_moves_an_embedded_home_and_keeps_every_answer(
    sample: tuple[Path, Path], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    home = gated_home(tmp_path / "home", *sample)
    before = {
        "audit": out(home, "audit", "verify"),
        "verdicts": verdicts(home),
        "snapshots": out(home, "snapshot", "list"),
        "records": out(home, "audit", "list")["records"],
    }
    dry = out(home, "migrate", "--to", pg_url, "--dry-run")
    assert dry["dryRun"] is True
    state = next(s for s in dry["stores"] if s["store"] == "state")
    assert state["auditRecords"] == before["audit"]["records"]
    assert "databaseUrl" not in Home(home).settings()
    moved = out(home, "migrate", "--to", pg_url)
    assert moved["dryRun"] is False
    assert {s["store"]: s["rows"] for s in moved["stores"]} == {
        s["store"]: s["rows"] for s in dry["stores"]
    }
    assert Home(home).settings()["databaseUrl"] == pg_url  # no password in it to drop
    # the files are kept but no longer read: the home answers from PostgreSQL alike
    (home / "state.db").rename(home / "state.db.moved")
    (home / "knowledge.db").rename(home / "knowledge.db.moved")
    assert out(home, "audit", "verify") == before["audit"]
    assert verdicts(home) == before["verdicts"]
    assert out(home, "snapshot", "list") == before["snapshots"]
    assert out(home, "audit", "list")["records"] == before["records"]
    # and keeps working: a new verdict takes the next row id, the chain grows and verifies
    run(home, "gate", "app:1", code=(0, 3))
    assert [n for n, _, _ in verdicts(home)] == ["app", "app"]
    after = out(home, "audit", "verify")
    assert after["ok"]
    assert after["records"] > before["audit"]["records"]
    # a moved home is not moved twice
    again = run(home, "migrate", "--to", pg_url, code=1)
    assert "the home already uses the database" in one_line_error(again)


def test_migrate_refuses_a_target_that_is_not_empty_unless_forced(
    sample: tuple[Path, Path], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    first, second = tmp_path / "a", tmp_path / "b"
    for home in (first, second):
        run(home, "init")
        run(home, "trust", "add", str(sample[1]))
    out(first, "migrate", "--to", pg_url)
    refused = run(second, "migrate", "--to", pg_url, code=1)
    assert one_line_error(refused).startswith(f"error: {pg_url} (schema knowledge): is not empty")
    assert "databaseUrl" not in Home(second).settings()
    forced = run(second, "migrate", "--to", pg_url, "--force").stdout.splitlines()
    assert forced[0] == (
        f"knowledge: nothing stored yet ({second / 'knowledge.db'} absent) -> empty tables in "
        "schema knowledge"
    )
    assert forced[1].startswith("state: ")
    assert forced[1].endswith(" -> schema state, audit log verified (1 records)")
    assert forced[2] == (
        f"moved to {pg_url}; the home's databaseUrl now names it (the SQLite files are kept, "
        "unused)"
    )
    assert out(second, "audit", "verify")["records"] == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://root@127.0.0.1/stella", "mysql://root@127.0.0.1/stella: not a PostgreSQL URL"),
        (
            "postgresql://stella:s3cret@127.0.0.1:1/stella",
            "postgresql://stella@127.0.0.1:1/stella: cannot connect: ",
        ),
    ],
    ids=["not-postgresql", "server-down"],
)
def test_a_bad_database_url_is_one_line_without_the_password(
    url: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    home = tmp_path / "home"
    run(home, "init")
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    for args in (("audit", "verify"), ("snapshot", "list")):
        result = run(home, *args, code=1)
        line = one_line_error(result)
        assert line.startswith(f"error: {message}"), line
        assert "s3cret" not in result.stderr
    monkeypatch.delenv(DATABASE_URL_ENV)
    failed = run(home, "migrate", "--to", url, code=1)
    assert one_line_error(failed).startswith(f"error: {message}")
    assert "s3cret" not in failed.stderr


def test_migrate_refuses_an_audit_log_that_does_not_verify(
    sample: tuple[Path, Path], pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A log that fails verification is evidence: it stays in the file, nothing is copied."""
    monkeypatch.delenv(DATABASE_URL_ENV, raising=False)
    home = tmp_path / "home"
    run(home, "init")
    run(home, "trust", "add", str(sample[1]))
    raw = sqlite3.connect(home / "state.db", isolation_level=None)
    try:
        raw.execute("DROP TRIGGER audit_log_no_update")
        raw.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = 1")
    finally:
        raw.close()
    refused = run(home, "migrate", "--to", pg_url, code=1)
    assert one_line_error(refused).startswith(
        f"error: {home / 'state.db'}: the audit log does not verify: record 1: hash mismatch"
    )
    assert "databaseUrl" not in Home(home).settings()
    for schema in ("knowledge", "state"):  # neither store was begun
        with PostgresDatabase.connect(pg_url, schema=schema) as target:
            assert target.query("SELECT to_regclass('schema_versions')")[0][0] is None
