"""The rescan's batches: images gated together (one match cache, one compiled policy, one
transparency-log append, one ``index.json`` rewrite, one state transaction per batch) get the
verdicts a one-by-one gate gives them, byte for byte; and a rescan killed at any step of a
batch leaves whole images recorded (verdict, audit records and component index entry
together) or none of the batch, and the next rescan gates exactly the rest."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from appliance import tlog
from appliance.faults import ENV
from appliance.home import Home
from appliance.rescan import Outcome, rescan
from appliance.rva.gate import gate
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import attestations
from appliance.store import open_state
from appliance.store.audit import AuditAction, AuditLog
from appliance.store.components import ComponentIndex
from appliance.store.verdicts import VerdictRow, VerdictStore
from bundles.digest import Digest
from bundles.oci import OCILayout
from tests.appliance.homes import CVE, KEV, SITE, install_knowledge
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.rva.factories import AT
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.hostile.harness import state

REPO = Path(__file__).resolve().parents[2]
IMAGES = {  # five images, some sharing packages, one affected by OSV (requests 2.19.0)
    "app:1": [dist_info("requests", "2.19.0", SITE)],
    "app:2": [dist_info("requests", "2.19.0", SITE), dist_info("idna", "3.4", SITE)],
    "web:1": [dist_info("requests", "2.31.0", SITE)],
    "web:2": [dist_info("idna", "3.4", SITE), dist_info("urllib3", "1.26.0", SITE)],
    "api:1": [dist_info("urllib3", "1.26.0", SITE)],
}


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Home:
    home = Home(tmp_path_factory.mktemp("base") / "home")
    home.init()
    for tag, files in IMAGES.items():
        build_image(home.oci, files, tag=tag)
    install_knowledge(home, osv=(OSV,), kev=(KEV,), bundle=Digest.of_bytes(b"1"))
    return home


def copy(base: Home, where: Path) -> Home:
    shutil.copytree(base.root, where / "home")
    return Home(where / "home")


def rows(home: Home) -> dict[str, VerdictRow]:
    """The latest verdict of each image, by manifest digest."""
    with open_state(home) as db:
        return {r.subject: r for r in VerdictStore(db).history()}


def rva_payloads(home: Home, found: dict[str, VerdictRow]) -> dict[str, tuple[bytes, Any]]:
    """Each verdict's signed statement bytes (the DSSE payload) and its log entry check."""
    layout = OCILayout.open(home.oci)
    logs = tlog.trusted_logs(home)
    out = {}
    for name, row in found.items():
        (data,) = [
            data
            for referrer, data in attestations(layout, Digest.parse(row.subject))
            if str(referrer.digest) == row.referrer
        ]
        read = sigstore.read(data)
        assert sigstore.payload_statement(read).predicate_type == PREDICATE_TYPE
        check, _, why = tlog.check_bundle_entries(read.entries, read.envelope, logs)
        assert check is not None, why  # each entry provable on its own
        out[name] = (read.envelope.payload, check.log_index)
    return out


def index_entries(home: Home) -> dict[str, tuple[Any, ...]]:
    with open_state(home) as db:
        index = ComponentIndex(db)
        return {
            s: (e.snapshot, e.vex, index.keys_of(s), index.cves_of(s))
            for s, e in index.images().items()
        }


def test_a_batched_rescan_gives_the_verdicts_of_a_one_by_one_rescan(
    base: Home, tmp_path: Path
) -> None:
    batched = copy(base, tmp_path / "batched")
    single = copy(base, tmp_path / "single")
    report = rescan(batched, at=AT, full=True, batch=2)  # three batches: 2, 2, 1
    alone = rescan(single, at=AT, full=True, gate_fn=gate)  # `stella gate` per image
    assert [i.outcome for i in report.images] == [Outcome.GATED] * len(IMAGES)
    assert [i.to_dict() | {"referrer": None, "auditSeq": None} for i in report.images] == [
        i.to_dict() | {"referrer": None, "auditSeq": None} for i in alone.images
    ]
    assert {i.verdict for i in report.images} == {"PASS", "FAIL"}

    a, b = rows(batched), rows(single)
    assert set(a) == {i.digest for i in report.images}
    assert len(a) == len(IMAGES)

    def same(row: VerdictRow) -> tuple[Any, ...]:  # the bundle carries the log entry
        return (row.subject, row.verdict, row.evaluation_time, row.policy, row.snapshot,
                row.predicate, row.reason_codes)  # fmt: skip

    assert {n: same(r) for n, r in a.items()} == {n: same(r) for n, r in b.items()}
    signed_a, signed_b = rva_payloads(batched, a), rva_payloads(single, b)
    assert {n: p for n, (p, _) in signed_a.items()} == {n: p for n, (p, _) in signed_b.items()}
    # the batched run's entries are distinct leaves of one log, as one by one
    assert len({i for _, i in signed_a.values()}) == len(IMAGES)
    # what each image's match looked up is indexed alike, by the gate's own match
    assert index_entries(batched) == index_entries(single)
    app = next(i.digest for i in report.images if i.image == "app:1")
    assert app is not None
    with open_state(batched) as db:
        assert ("PyPI", "requests") in ComponentIndex(db).keys_of(app)
        assert CVE in ComponentIndex(db).cves_of(app)
        records = AuditLog(db).records()
    # each image: its scan's record, then its verdict's, as `stella gate` writes them
    actions = [r.action for r in records if r.action in (AuditAction.SCAN, AuditAction.GATE)]
    assert actions == [AuditAction.SCAN, AuditAction.GATE] * len(IMAGES)


def run_killed(home: Home, step: str) -> subprocess.CompletedProcess[str]:
    code = (
        "from pathlib import Path\n"
        "from appliance.home import Home\n"
        "from appliance.rescan import rescan\n"
        "from tests.appliance.rva.factories import AT\n"
        f"rescan(Home(Path({str(home.root)!r})), at=AT, batch=2)\n"
    )
    env = {**os.environ, ENV: step, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize(
    ("step", "recorded"),
    [
        ("gate.after-log", 0),
        ("gate.after-attach", 0),
        ("gate.before-record", 0),
        ("gate.after-record", 2),
        ("rescan.after-batch", 2),
    ],
)
def test_a_killed_rescan_leaves_whole_images_and_the_next_one_gates_the_rest(
    base: Home, tmp_path: Path, step: str, recorded: int
) -> None:
    home = copy(base, tmp_path)
    killed = run_killed(home, step)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = state(home.root, doctor=True)
    assert after["audit"]["out"]["ok"] is True, after["audit"]
    for check in ("state.db", "oci", "audit"):
        assert after["doctor"].get(check, "ok") == "ok", (check, after["doctor"])

    done = rows(home)
    assert len(done) == recorded  # the first batch whole, or none of it
    with open_state(home) as db:
        records = {r.seq: r for r in AuditLog(db).records()}
        indexed = ComponentIndex(db).images()
    for row in done.values():  # each with its audit record and its index entry
        assert records[row.audit_seq].action == AuditAction.GATE
        assert records[row.audit_seq].subject == row.subject
        assert indexed[row.subject].snapshot == row.snapshot
    assert set(indexed) == set(done)
    assert not any(r.action == AuditAction.RESCAN for r in records.values())

    again = rescan(home, at=AT)  # incremental: what the killed run did not record
    every = {i.digest for i in again.images}
    gated = {i.digest for i in again.images if i.outcome is Outcome.GATED}
    kept = {i.digest for i in again.images if i.outcome is Outcome.SKIPPED}
    assert len(every) == len(IMAGES)
    assert gated == every - set(done)
    assert kept == set(done)
    assert {i.reason for i in again.images if i.outcome is Outcome.GATED} == {"never gated"}
    assert set(rows(home)) == every


def test_images_decided_in_worker_processes_get_the_verdicts_of_a_one_by_one_rescan(
    base: Home, tmp_path: Path
) -> None:
    pooled = copy(base, tmp_path / "pooled")
    single = copy(base, tmp_path / "single")
    # two workers decide, this process signs: batches of 2, the next decided meanwhile
    report = rescan(pooled, at=AT, full=True, batch=2, jobs=2)
    alone = rescan(single, at=AT, full=True, gate_fn=gate)
    assert [i.outcome for i in report.images] == [Outcome.GATED] * len(IMAGES)
    assert [i.to_dict() | {"referrer": None, "auditSeq": None} for i in report.images] == [
        i.to_dict() | {"referrer": None, "auditSeq": None} for i in alone.images
    ]
    a, b = rows(pooled), rows(single)
    assert {n: (r.verdict, r.predicate, r.reason_codes) for n, r in a.items()} == {
        n: (r.verdict, r.predicate, r.reason_codes) for n, r in b.items()
    }
    signed_a, signed_b = rva_payloads(pooled, a), rva_payloads(single, b)
    assert {n: p for n, (p, _) in signed_a.items()} == {n: p for n, (p, _) in signed_b.items()}
    assert index_entries(pooled) == index_entries(single)
    with open_state(pooled) as db, open_state(single) as other:
        scans = [
            (r.subject, r.inputs, r.result)
            for r in AuditLog(db).records()
            if r.action == AuditAction.SCAN
        ]
        expected = [
            (r.subject, r.inputs, r.result)
            for r in AuditLog(other).records()
            if r.action == AuditAction.SCAN
        ]
    assert scans == expected  # the scan records the workers hand back, as a gate writes them


def test_a_worker_that_dies_fails_only_its_image_and_the_next_rescan_gates_it(
    base: Home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = copy(base, tmp_path)
    monkeypatch.setenv(ENV, "rescan.decide@app:2")  # the worker deciding app:2 kills itself
    report = rescan(home, at=AT, batch=2, jobs=2)
    outcomes = {i.image: i.outcome for i in report.images}
    assert outcomes == {n: Outcome.FAILED if n == "app:2" else Outcome.GATED for n in IMAGES}
    (failed,) = report.failed
    assert failed.error is not None
    assert "the worker process deciding it ended: killed by signal SIGKILL" in failed.error
    assert "run 'stella rescan' again" in failed.error
    # the images after it were decided by a new worker, and recorded whole
    assert len(rows(home)) == len(index_entries(home)) == len(IMAGES) - 1
    after = state(home.root, doctor=True)
    for check in ("state.db", "oci", "audit"):
        assert after["doctor"].get(check, "ok") == "ok", (check, after["doctor"])

    monkeypatch.delenv(ENV)
    again = rescan(home, at=AT, jobs=2)
    gated = {i.image: i.reason for i in again.images if i.outcome is Outcome.GATED}
    assert gated == {"app:2": "never gated"}
