"""``stella worker``, ``stella rescan --queue`` and ``stella queue`` against a real PostgreSQL
(tests/postgres.py) with real worker processes (``python -m appliance.cli worker``) on a
shared appliance home (SQLite stores, as the rescan tests build them).

Workers are stopped at a chosen step by the gate's own fault points (``STELLA_FAULT``, a
SIGKILL the process sends itself), never by timers. The waits below only bound how long a
broken worker may hang the suite; no assertion depends on how fast anything is.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.fleet.queue import SCHEMA, conninfo
from appliance.home import Home
from appliance.store import open_state
from appliance.store.audit import AuditLog
from appliance.store.verdicts import VerdictRow, VerdictStore
from bundles.digest import Digest
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.scanner.layouts import build_image, dist_info

REPO = Path(__file__).resolve().parents[3]
AT = "2026-11-23T06:00:00Z"
# fast enough for a test; --stalled-after must stay at three heartbeats or more, and well
# above any pause of a live worker on a loaded machine (its job would be given to another)
QUICK = ("--heartbeat", "1", "--stalled-after", "15", "--backoff", "0.2")
# for the tests that kill a worker: its job is taken again this long after its last heartbeat
RECOVER = ("--heartbeat", "0.5", "--stalled-after", "3", "--backoff", "0.2")
BOUND = 180.0  # seconds a worker may take before the test gives up on it


def fleet_home(root: Path, images: Sequence[tuple[str, str, str]]) -> Home:
    """A new home holding ``images`` (package, version, NAME:TAG), each a PyPI package's
    layer, and an active snapshot of the OSV record and KEV entry the tests judge them by."""
    h = Home(root)
    h.init()
    for package, version, tag in images:
        build_image(h.oci, [dist_info(package, version, SITE)], tag=tag)
    install_knowledge(
        h,
        osv=(OSV,),
        kev=(KEV,),
        sequence=1,
        created="2026-11-11T00:00:00Z",
        bundle=Digest.of_bytes(b"bundle 1"),
    )
    return h


@pytest.fixture
def home(tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch) -> Home:
    """Three stored images (two names share one manifest) and an active snapshot, the stores
    in the same PostgreSQL database as the queue (as a scale-out site has them)."""
    monkeypatch.setenv("STELLA_DATABASE_URL", pg_url)
    return fleet_home(
        tmp_path / "home",
        [
            ("requests", "2.19.0", "app:1"),
            ("requests", "2.19.0", "app:latest"),
            ("requests", "2.31.0", "web:2"),
            ("urllib3", "1.26.0", "api:3"),
        ],
    )


def _env(url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("STELLA_FAULT", "STELLA_HOME")}
    env["PYTHONPATH"] = str(REPO)
    if url is not None:
        env["STELLA_DATABASE_URL"] = url
    return env | extra


def stella(home: Home, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "appliance.cli", "--home", str(home.root), *args],
        env=_env(url),
        capture_output=True,
        text=True,
        timeout=BOUND,
        check=False,
    )


def stella_json(home: Home, url: str, *args: str) -> dict[str, Any]:
    run = stella(home, url, "--json", *args)
    assert run.returncode == 0, run.stderr
    out: dict[str, Any] = json.loads(run.stdout)
    return out


def start_worker(
    home: Home, url: str, *args: str, fault: str | None = None
) -> subprocess.Popen[str]:
    extra = {"STELLA_FAULT": fault} if fault else {}
    return subprocess.Popen(
        [sys.executable, "-m", "appliance.cli", "--home", str(home.root), "worker", *args],
        env=_env(url, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stop(worker: subprocess.Popen[str]) -> tuple[int, str]:
    """SIGTERM, then the exit code and what the worker said on stderr."""
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=BOUND)
    return worker.returncode, err


def finish(worker: subprocess.Popen[str]) -> int:
    """Wait for a worker that stops by itself (``--burst``, or killed by a fault point)."""
    _, err = worker.communicate(timeout=BOUND)
    if worker.returncode not in (0, -signal.SIGKILL):
        print(err)
    return worker.returncode


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    """Worker processes a test starts; any still running at the end is killed."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for w in started:
        if w.poll() is None:
            w.kill()
        w.communicate()  # closes its pipes


def query(url: str, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(conninfo(url, SCHEMA)) as conn:  # the administrator's queue
        cursor = conn.execute(sql.encode(), params)
        return list(cursor.fetchall()) if cursor.description is not None else []


def wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"gave up waiting: {what}")
        time.sleep(0.1)


def jobs(url: str) -> list[tuple[Any, ...]]:
    """(id, task, image, status, attempts) per job."""
    return query(
        url,
        "SELECT id, task_name, args->>'image', status::text, attempts "
        "FROM procrastinate_jobs ORDER BY id",
    )


def verdicts(home: Home, digest: str) -> list[VerdictRow]:
    with open_state(home) as db:
        return VerdictStore(db).history(digest)


def gate_records(home: Home, digest: str) -> int:
    with open_state(home) as db:
        return sum(1 for r in AuditLog(db).records() if r.action == "gate" and r.subject == digest)


def digest_of(out: dict[str, Any], image: str) -> str:
    (found,) = [i["digest"] for i in out["images"] if i["image"] == image]
    return str(found)


# ------------------------------------------------------------------ enqueue and process


def test_rescan_queue_enqueues_and_a_worker_gates_each_image_once(
    home: Home, pg_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    out = stella_json(home, pg_url, "rescan", "--queue", "--at", AT)
    assert (out["mode"], out["queue"], out["queued"], out["skipped"]) == (
        "incremental",
        "stella",
        3,
        0,
    )
    assert {i["reason"] for i in out["images"]} == {"never gated"}
    assert [j[1:] for j in jobs(pg_url)] == [
        ("scan-gate", "api:3", "todo", 0),
        ("scan-gate", "app:1", "todo", 0),
        ("scan-gate", "web:2", "todo", 0),
    ]
    # the run's own audit record says what was queued and why
    with open_state(home) as db:
        last = AuditLog(db).records()[-1]
    assert (last.action, last.seq, last.inputs["queue"]) == ("rescan", out["auditSeq"], "stella")
    assert [i["outcome"] for i in last.result["images"]] == ["queued"] * 3

    worker = start_worker(home, pg_url, "--burst", *QUICK)
    workers.append(worker)
    assert finish(worker) == 0
    assert {j[3] for j in jobs(pg_url)} == {"succeeded"}
    app = digest_of(out, "app:1")
    assert [(v.name, v.verdict, v.evaluation_time) for v in verdicts(home, app)] == [
        ("app", "FAIL", AT)
    ]
    assert [v.verdict for v in verdicts(home, digest_of(out, "web:2"))] == ["PASS"]
    runs = query(pg_url, "SELECT outcome, verdict FROM stella_job_runs ORDER BY job_id")
    assert runs == [("gated", "PASS"), ("gated", "FAIL"), ("gated", "PASS")]

    # indexed by the jobs: the next incremental rescan keeps every verdict
    again = stella_json(home, pg_url, "rescan", "--queue", "--at", AT)
    assert (again["queued"], again["skipped"]) == (0, 3)
    status = stella_json(home, pg_url, "queue", "status")
    assert status["counts"] == {"succeeded": 3}
    assert status["running"] == status["waiting"] == status["failed"] == []


def test_enqueuing_an_image_that_already_waits_gives_one_job(home: Home, pg_url: str) -> None:
    first = stella_json(home, pg_url, "rescan", "--queue", "--all", "--at", AT)
    second = stella_json(home, pg_url, "rescan", "--queue", "--all", "--at", "2026-11-24")
    assert (first["queued"], first["pending"]) == (3, 0)
    assert (second["queued"], second["pending"]) == (0, 3)
    assert all(i["reason"].endswith("already waits in the queue") for i in second["images"])
    named = stella_json(home, pg_url, "rescan", "--queue", "--image", "app:latest", "--at", AT)
    assert [(i["image"], i["outcome"]) for i in named["images"]] == [("app:latest", "pending")]
    assert len(jobs(pg_url)) == 3
    # a first scan is another kind of job: one of it per image, too
    added = stella_json(home, pg_url, "queue", "add", "web:2", "web:2", "api:3")
    assert [(i["image"], i["outcome"]) for i in added["images"]] == [
        ("web:2", "queued"),
        ("api:3", "queued"),
    ]
    assert [i["outcome"] for i in stella_json(home, pg_url, "queue", "add", "web:2")["images"]] == [
        "pending"
    ]
    assert [(j[1], j[3]) for j in jobs(pg_url)].count(("scan", "todo")) == 2


def test_a_job_run_again_after_it_finished_writes_nothing(
    home: Home, pg_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    out = stella_json(home, pg_url, "rescan", "--queue", "--image", "web:2", "--at", AT)
    worker = start_worker(home, pg_url, "--burst", *QUICK)
    workers.append(worker)
    assert finish(worker) == 0
    digest = digest_of(out, "web:2")
    before = (len(verdicts(home, digest)), gate_records(home, digest))
    (job_id,) = [j[0] for j in jobs(pg_url)]
    # the job finished: put it back by hand, as a lost acknowledgement would
    query(pg_url, "UPDATE procrastinate_jobs SET status = 'failed' WHERE id = %s", (job_id,))
    query(pg_url, "SELECT procrastinate_retry_job_v2(%s, now(), NULL, NULL, NULL)", (job_id,))
    worker = start_worker(home, pg_url, "--burst", *QUICK)
    workers.append(worker)
    assert finish(worker) == 0
    assert (len(verdicts(home, digest)), gate_records(home, digest)) == before == (1, 1)
    runs = query(pg_url, "SELECT attempt, outcome FROM stella_job_runs ORDER BY attempt")
    assert runs == [(0, "gated"), (2, "skipped")]  # attempt 1 was the first finish


# ------------------------------------------------------------------ a worker killed mid-job


@pytest.mark.parametrize(
    ("fault", "second_run"),
    [
        ("gate.after-attach", "gated"),  # signed, logged, attached; no verdict row yet
        ("gate.after-record", "skipped"),  # the verdict is committed; the job is not done
    ],
)
def test_a_worker_killed_mid_job_leaves_it_to_another_and_one_verdict(
    home: Home, pg_url: str, workers: list[subprocess.Popen[str]], fault: str, second_run: str
) -> None:
    out = stella_json(home, pg_url, "rescan", "--queue", "--image", "app:1", "--at", AT)
    digest = digest_of(out, "app:1")
    first = start_worker(home, pg_url, *RECOVER, fault=fault)
    workers.append(first)
    assert finish(first) == -signal.SIGKILL
    (job,) = jobs(pg_url)
    assert job[3:] == ("doing", 0)
    # the gate's record step is one transaction: before it, nothing; after it, all of it
    recorded = 1 if fault == "gate.after-record" else 0
    assert (len(verdicts(home, digest)), gate_records(home, digest)) == (recorded, recorded)

    second = start_worker(home, pg_url, *RECOVER)
    workers.append(second)
    wait_for("the job to succeed", lambda: jobs(pg_url)[0][3] == "succeeded")
    code, err = stop(second)
    assert code == 0, err
    assert jobs(pg_url)[0][3:] == ("succeeded", 2)  # attempts made
    rows = verdicts(home, digest)
    assert [(v.verdict, v.evaluation_time) for v in rows] == [("FAIL", AT)]
    assert gate_records(home, digest) == 1
    runs = query(
        pg_url, "SELECT attempt, outcome, error IS NOT NULL FROM stella_job_runs ORDER BY attempt"
    )
    assert runs == [(0, "interrupted", True), (1, second_run, False)]
    # the stopped worker unregistered; the killed one was pruned
    assert query(pg_url, "SELECT count(*) FROM procrastinate_workers") == [(0,)]


# ------------------------------------------------------------------ the per-image lock


def test_two_workers_never_gate_the_same_image_at_once(
    home: Home, pg_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    """Two jobs per image wait at once (a re-gate and a first scan: two queueing locks, one
    image lock); each attempt's start and end are taken from the database's clock."""
    stella_json(home, pg_url, "rescan", "--queue", "--all", "--at", AT)
    stella_json(home, pg_url, "queue", "add", "app:1", "web:2", "api:3")
    assert len(jobs(pg_url)) == 6
    workers += [start_worker(home, pg_url, *QUICK) for _ in range(2)]
    wait_for("every job to succeed", lambda: {j[3] for j in jobs(pg_url)} == {"succeeded"})
    for worker in workers:
        code, err = stop(worker)
        assert code == 0, err
    runs = query(
        pg_url, "SELECT digest, started, finished, worker FROM stella_job_runs ORDER BY started"
    )
    assert len(runs) == 6
    by_image: dict[str, list[tuple[Any, Any]]] = {}
    for digest, started, finished, _ in runs:
        by_image.setdefault(digest, []).append((started, finished))
    assert len(by_image) == 3
    for spans in by_image.values():
        (a_start, a_end), (b_start, b_end) = sorted(spans)
        assert a_start < a_end <= b_start < b_end, f"two gates of one image overlapped: {spans}"
    # each image has its two verdicts (two evaluation times), one per job
    for digest in by_image:
        assert len(verdicts(home, digest)) == 2


# ------------------------------------------------------------------ failures


def test_a_failing_job_is_retried_then_failed_with_its_reason(
    home: Home, pg_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    stella_json(home, pg_url, "rescan", "--queue", "--image", "api:3", "--at", AT)
    removed = stella(home, pg_url, "images", "rm", "api:3")
    assert removed.returncode == 0, removed.stderr
    worker = start_worker(home, pg_url, "--attempts", "3", *QUICK)
    workers.append(worker)
    wait_for("the job to fail", lambda: jobs(pg_url)[0][3] == "failed")
    code, err = stop(worker)
    assert code == 0, err
    assert jobs(pg_url)[0][3:] == ("failed", 3)
    runs = query(pg_url, "SELECT attempt, outcome, error FROM stella_job_runs ORDER BY attempt")
    assert [r[:2] for r in runs] == [(0, "failed"), (1, "failed"), (2, "failed")]
    assert all("is not in the local store" in r[2] for r in runs)
    status = stella_json(home, pg_url, "queue", "status")
    (failed,) = status["failed"]
    assert (failed["image"], failed["attempts"]) == ("api:3", 3)
    assert failed["error"].startswith("image sha256:")
    text = stella(home, pg_url, "queue", "status").stdout
    assert "failed" in text.splitlines()[1]
    assert "after 3 attempts: image sha256:" in text


def test_a_missing_or_unreachable_database_is_one_clear_line(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STELLA_DATABASE_URL", raising=False)
    result = CliRunner().invoke(cli, ["--home", str(home.root), "worker"])
    assert result.exit_code == 1
    assert result.stderr.startswith("stella: error: STELLA_DATABASE_URL is not set")
    assert len(result.stderr.splitlines()) == 1

    monkeypatch.setenv("STELLA_DATABASE_URL", "postgresql://stella@127.0.0.1:1/queue")
    for args in (["worker"], ["rescan", "--queue"], ["queue", "status"]):
        result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
        assert result.exit_code == 1, args
        (line,) = result.stderr.splitlines()
        # the queue's or, for a command that reads the stores first, the stores' own line
        assert line.startswith(
            (
                "stella: error: cannot reach the queue's PostgreSQL at 127.0.0.1:1/queue: ",
                "stella: error: postgresql://stella@127.0.0.1:1/queue: cannot connect: ",
            )
        ), line
        assert "STELLA_DATABASE_URL" in line

    monkeypatch.setenv("STELLA_DATABASE_URL", "mysql://x@127.0.0.1/queue")
    result = CliRunner().invoke(cli, ["--home", str(home.root), "queue", "status"])
    assert result.stderr.startswith("stella: error: STELLA_DATABASE_URL is not a PostgreSQL URL")


def test_a_stall_timeout_under_three_heartbeats_is_refused(home: Home, pg_url: str) -> None:
    run = stella(home, pg_url, "worker", "--heartbeat", "10", "--stalled-after", "20")
    assert run.returncode == 2
    assert "--stalled-after 20 is under three heartbeats (30 s)" in run.stderr


def test_concurrency_runs_worker_processes_and_stops_them_all(
    home: Home, pg_url: str, workers: list[subprocess.Popen[str]]
) -> None:
    stella_json(home, pg_url, "rescan", "--queue", "--at", AT)
    parent = start_worker(home, pg_url, "--concurrency", "2", *QUICK)
    workers.append(parent)
    wait_for("every job to succeed", lambda: {j[3] for j in jobs(pg_url)} == {"succeeded"})
    wait_for(
        "two registered workers",
        lambda: query(pg_url, "SELECT count(*) FROM procrastinate_workers") == [(2,)],
    )
    code, err = stop(parent)  # SIGTERM to the parent reaches both, each stops cleanly
    assert code == 0, err
    assert query(pg_url, "SELECT count(*) FROM procrastinate_workers") == [(0,)]
    (workers_seen,) = query(pg_url, "SELECT count(DISTINCT worker) FROM stella_job_runs")
    assert workers_seen[0] in (1, 2)


def test_without_the_postgres_extra_help_works_and_the_queue_says_what_is_missing(
    home: Home,
) -> None:
    """An embedded appliance installed without the 'postgres' extra: the command line still
    lists the queue's commands, and using one names what to install."""
    code = (
        "import sys\n"
        "sys.modules['procrastinate'] = None  # as if not installed: importing it fails\n"
        "sys.argv[0] = 'stella'\n"
        "from appliance.cli import main\n"
        "main()\n"
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", code, "--home", str(home.root), *args],
            env=_env("postgresql://nobody@127.0.0.1:1/x"),
            capture_output=True,
            text=True,
            timeout=BOUND,
            check=False,
        )

    listed = run("--help")
    assert listed.returncode == 0, listed.stderr
    assert "worker" in listed.stdout
    assert "queue" in listed.stdout
    for args in (["worker"], ["queue", "status"], ["rescan", "--queue"]):
        refused = run(*args)
        assert refused.returncode == 1, args
        assert refused.stderr.splitlines() == [
            "stella: error: the job queue needs procrastinate, which this installation lacks "
            "(install the appliance with its 'postgres' extra (docs/scale-out.md))"
        ], args
