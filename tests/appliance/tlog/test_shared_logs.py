"""Homes on one shared state (a real PostgreSQL) each keep a log of their own, under an origin
of their own, and record its verifier key in the state at their first append; every home on
the state then knows every log. The same origin offered with another key is refused as a
fork; an embedded (SQLite) home logs and names its log as before and writes no such record."""

from __future__ import annotations

import shutil
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance import tlog
from appliance.home import Home
from appliance.rva.gate import sign_and_log
from appliance.sigstore import bundle as sigstore
from appliance.store import known_logs, open_state, record_decision, recorded_logs
from appliance.store.audit import AuditAction
from appliance.store.db import DatabaseError
from appliance.store.logs import LogForkError, LogTable
from bundles.digest import Digest
from bundles.intoto import Statement, Subject
from bundles.keys import KeyType, PrivateKey
from bundles.tlog import TlogError
from bundles.tlog.note import Verifier, raw_ed25519
from tests.cli import stella_json

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def decide(home: Home, subject: str) -> None:
    """An import decision: its signed audit head goes into the home's log (one append)."""
    record_decision(
        home,
        AuditAction.IMPORT_REFUSED,
        subject,
        command="stella import",
        time=NOW,
        inputs={"bundle": subject},
        result={"reason": "test"},
    )


def sign(home: Home, name: str) -> bytes:
    """A Sigstore bundle signed by the home's key and logged in its log."""
    statement = Statement(
        (Subject(name, {"sha256": Digest.of_bytes(name.encode()).hex}),),
        "https://cyclonedx.org/bom",  # an SBOM attestation, as the gate signs
        {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1, "components": []},
    )
    (bundle,) = sign_and_log(home, [statement], home.signing_key(), now=NOW)
    return bundle


@pytest.fixture
def primary(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Home:
    monkeypatch.setenv("STELLA_DATABASE_URL", pg_url)
    h = Home(tmp_path / "primary")
    h.init()
    return h


def other_home(tmp_path: Path, primary: Home, name: str) -> Home:
    """Another machine's home on the same state: a copy of the primary's keys."""
    h = Home(tmp_path / name)
    h.root.mkdir(mode=0o700)
    shutil.copytree(primary.keys, h.keys)
    h.init()
    assert h.public_key().keyid == primary.public_key().keyid
    return h


def test_two_homes_on_one_state_log_apart_and_know_each_others_logs(
    tmp_path: Path, primary: Home
) -> None:
    worker = other_home(tmp_path, primary, "worker")
    decide(primary, "bundle-1")
    bundle = sign(worker, "app")
    ours, theirs = tlog.verifier(primary), tlog.verifier(worker)
    base = f"stella.{primary.public_key().keyid[:16]}/log"
    assert ours.name == f"{base}/home-{tlog.home_id(primary)}"
    assert theirs.name == f"{base}/home-{tlog.home_id(worker)}"
    assert ours.name != theirs.name
    # recorded once each, in the order they first appended; again is a no-op
    decide(primary, "bundle-2")
    sign(worker, "api")
    assert [r.log for r in recorded_logs(primary)] == [ours, theirs]
    with open_state(primary) as db:
        assert LogTable(db).record(theirs, tlog.started(worker)) is False
    assert recorded_logs(primary)[1].started == tlog.started(worker)

    assert known_logs(primary) == [ours, theirs]
    assert known_logs(worker) == [theirs, ours]
    listed = stella_json(primary, "log", "list")["logs"]
    assert [(r["origin"], r["vkey"], r["where"], r["recorded"]) for r in listed] == [
        (ours.name, ours.vkey(), "this home", True),
        (theirs.name, theirs.vkey(), "shared state", True),
    ]
    root = tmp_path / "trusted_root.json"
    assert stella_json(primary, "log", "trusted-root", "--out", str(root))["tlogs"] == 2
    assert tlog.logs_of_trusted_root(root) == [ours, theirs]
    # the primary checks the worker's entry against the worker's log the state records
    (tmp_path / "app.sigstore.json").write_bytes(bundle)
    proved = stella_json(primary, "log", "prove", str(tmp_path / "app.sigstore.json"))
    assert (proved["log"], proved["logIndex"], proved["sharedState"]) == (theirs.name, 0, True)
    # and its signing time is proven by that log's timestamp, as verify and explain take it
    read = sigstore.read(bundle)
    proof = tlog.earliest_logged(read.entries, read.envelope, known_logs(primary))
    assert proof is not None
    assert (proof.origin, proof.logged_at) == (theirs.name, int(NOW.timestamp()))
    assert tlog.earliest_logged(read.entries, read.envelope, tlog.trusted_logs(primary)) is None
    # the primary witnesses the worker's log, whose key it finds in the state
    head = tmp_path / "worker.checkpoint"
    stella_json(worker, "log", "checkpoint", "--out", str(head))
    PrivateKey.generate(KeyType.ED25519).save(tmp_path / "witness.key")
    cosigned = stella_json(
        primary, "log", "cosign", str(head), "--key", str(tmp_path / "witness.key")
    )
    assert (cosigned["origin"], cosigned["size"]) == (theirs.name, 2)


def test_a_process_without_the_shared_logs_refuses_to_log_a_shared_home(
    tmp_path: Path, primary: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fails closed: without the store's record of logs, an append on a shared home would name
    its log as an embedded one does and record nothing; it is refused before any entry."""
    monkeypatch.setattr(tlog, "_shared", None)
    with pytest.raises(TlogError, match="cannot record its log in them"):
        sign(primary, "app")
    written = {p.name for p in tlog.root(primary).rglob("*")}
    assert written <= {".lock", "log.key", "log.pub", "started"}  # no origin, entry or checkpoint


def test_an_origin_recorded_with_one_key_is_refused_with_another(
    tmp_path: Path, primary: Home
) -> None:
    decide(primary, "bundle-1")
    ours = tlog.verifier(primary)
    forged = Verifier(ours.name, raw_ed25519(PrivateKey.generate(KeyType.ED25519).public_key))
    with open_state(primary) as db, pytest.raises(LogForkError) as refused:
        LogTable(db).record(forged, "2026-12-01T09:00:00Z")
    assert f"the transparency log {ours.name} is recorded with the key {ours.vkey()}" in (
        refused.value.message
    )
    assert "two logs under one name would fork" in refused.value.message
    assert [r.log for r in recorded_logs(primary)] == [ours]  # the forged key is not trusted
    assert forged not in known_logs(primary)
    with (  # nor can the row be rewritten
        open_state(primary) as db,
        pytest.raises(DatabaseError, match="a recorded log is never changed"),
        db.transaction() as conn,
    ):
        conn.execute("UPDATE tlogs SET vkey = ?", (forged.vkey(),))


def test_a_home_whose_log_predates_the_shared_origins_is_refused_until_it_rotates(
    tmp_path: Path, primary: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two homes whose logs started embedded, before homes named their logs apart, hold one
    origin with two keys: on one state, the second to append is refused before it logs; a
    rotation starts a shard named for it alone."""
    first, second = other_home(tmp_path, primary, "first"), other_home(tmp_path, primary, "second")
    with monkeypatch.context() as embedded:
        embedded.delenv("STELLA_DATABASE_URL")
        decide(first, "old-1")
        decide(second, "old-2")
    legacy = f"stella.{primary.public_key().keyid[:16]}/log"
    assert tlog.verifier(first).name == tlog.verifier(second).name == legacy
    sign(first, "app")  # now on the shared state: recorded as it is
    assert tlog.verifier(first) in [r.log for r in recorded_logs(primary)]
    size = tlog.open_home_log(second).size
    with pytest.raises(LogForkError, match="two logs under one name would fork"):
        sign(second, "app")
    assert tlog.open_home_log(second).size == size  # refused before anything was logged
    rotated = stella_json(second, "log", "rotate")
    assert rotated["newOrigin"] == f"{legacy}/home-{tlog.home_id(second)}/2"
    sign(second, "app")
    assert tlog.verifier(second).name == rotated["newOrigin"]
    assert [r.log.name for r in recorded_logs(primary)] == [legacy, rotated["newOrigin"]]
    # its frozen shard stays trusted at home, not recorded; the state's legacy log is first's
    listed = stella_json(second, "log", "list")["logs"]
    assert [(r["origin"], r["where"], r["recorded"]) for r in listed] == [
        (rotated["newOrigin"], "this home", True),
        (legacy, "frozen", False),
        (legacy, "shared state", True),
    ]
    assert listed[2]["vkey"] == tlog.verifier(first).vkey() != listed[1]["vkey"]


def test_an_embedded_home_names_its_log_as_before_and_records_nothing(tmp_path: Path) -> None:
    home = Home(tmp_path / "embedded")
    home.init()
    decide(home, "bundle-1")
    assert tlog.verifier(home).name == f"stella.{home.public_key().keyid[:16]}/log"
    assert not (tlog.root(home) / tlog.HOME_ID).exists()
    assert recorded_logs(home) == []
    assert known_logs(home) == tlog.trusted_logs(home)
    (listed,) = stella_json(home, "log", "list")["logs"]
    assert (listed["where"], listed["recorded"]) == ("this home", False)
    with sqlite3.connect(home.state_db) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master")}
    assert "tlogs" not in tables
