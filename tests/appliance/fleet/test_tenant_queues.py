"""Each tenant's job queue is its own PostgreSQL schema (``tenant_<name>_queue``; the home's
administrator keeps ``stella_queue``), through the real command line, a real server
(tests/postgres.py) and real worker processes: a tenant's ``rescan --queue`` enqueues into its
queue, its ``queue status`` lists only its jobs, its worker gates only its images. With the
tenants' own database roles (``stella tenants roles --apply``), a worker connecting as its
tenant's role makes and drains its tenant's queue, and the server refuses that role every
other queue.

The tenants here are named apart from those of tests/appliance/tenants (the roles a test gives
belong to the whole server, which one test process shares); the roles are dropped after."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from appliance import tenancy
from appliance.fleet.queue import conninfo, describe
from appliance.home import DATABASE_URL_ENV, Home
from appliance.store.migrate import tenant_role, tenant_url
from bundles.digest import Digest
from tests.appliance.fleet.test_worker import (
    AT,
    QUICK,
    finish,
    start_worker,
    stella,
    stella_json,
    verdicts,
    workers,
)
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.appliance.tenants.test_tenants import ok
from tests.appliance.tenants.test_tenants_migrate import denied, one_error
from tests.postgres import SUPERUSER, postgres_server

__all__ = ["workers"]  # the fixture, used by name

IMAGES = {
    "hooli": (("requests", "2.19.0", "app:1"), ("requests", "2.31.0", "web:2")),
    "umbrella": (("urllib3", "1.26.0", "api:3"),),
    "wonka": (("requests", "2.31.0", "web:2"),),
}


@pytest.fixture
def site(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, Any]]:
    """A home whose stores are in PostgreSQL (the superuser's URL, as the home's), the shared
    knowledge, and three tenants, each with images of its own. The test's database and the
    tenants' roles are dropped after it."""
    server = postgres_server(tmp_path_factory)
    url = server.database()
    monkeypatch.delenv(tenancy.ENV, raising=False)
    monkeypatch.setenv(DATABASE_URL_ENV, url)
    base = tmp_path / "home"
    Home(base).init()
    install_knowledge(
        Home(base),
        osv=(OSV,),
        kev=(KEV,),
        sequence=1,
        created="2026-11-11T00:00:00Z",
        bundle=Digest.of_bytes(b"bundle 1"),
    )
    homes: dict[str, Home] = {}
    for name, images in IMAGES.items():
        ok(base, "--tenant", name, "init")
        homes[name] = Home.of(base, name)
        for package, version, tag in images:
            build_image(homes[name].oci, [dist_info(package, version, SITE)], tag=tag)
    try:
        yield {"url": url, "base": base, "admin": Home(base), **homes}
    finally:
        database = url.rsplit("/", 1)[1]
        with psycopg.connect(server.url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            for name in IMAGES:
                conn.execute(f'DROP ROLE IF EXISTS "{tenant_role(name)}"')


def waiting(status: dict[str, Any]) -> list[str]:
    return sorted(j["image"] for j in status["waiting"])


def queue_rows(url: str, schema: str) -> list[tuple[str, str]]:
    """(image, status) of each job kept in ``schema``, read as the superuser."""
    with psycopg.connect(conninfo(url, schema)) as conn:
        rows = conn.execute(
            "SELECT args->>'image', status::text FROM procrastinate_jobs ORDER BY args->>'image'"
        ).fetchall()
    return [(str(image), str(state)) for image, state in rows]


def not_owned_by(url: str, schema: str, role: str) -> list[str]:
    """What in ``schema`` (relations, routines, types) ``role`` does not own."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            """SELECT 'relation ' || relname FROM pg_class
                WHERE relnamespace = %(s)s::text::regnamespace AND relowner <> %(r)s::text::regrole
               UNION ALL SELECT 'routine ' || proname FROM pg_proc
                WHERE pronamespace = %(s)s::text::regnamespace AND proowner <> %(r)s::text::regrole
               UNION ALL SELECT 'type ' || typname FROM pg_type
                WHERE typnamespace = %(s)s::text::regnamespace AND typowner <> %(r)s::text::regrole
               UNION ALL SELECT 'schema ' || nspname FROM pg_namespace
                WHERE nspname = %(s)s::text AND nspowner <> %(r)s::text::regrole""",
            {"s": schema, "r": role},
        ).fetchall()
    return sorted(str(r[0]) for r in rows)


def gated(home: Home, out: dict[str, Any]) -> dict[str, int]:
    """How many verdicts ``home``'s own store holds for each image ``out`` (a queued rescan)
    names."""
    return {i["image"]: len(verdicts(home, i["digest"])) for i in out["images"]}


def run_worker(home: Home, url: str, started: list[subprocess.Popen[str]], *args: str) -> int:
    worker = start_worker(home, url, "--burst", *QUICK, *args)
    started.append(worker)
    return finish(worker)


def test_each_tenant_enqueues_lists_and_drains_only_its_own_queue(
    site: dict[str, Any], workers: list[subprocess.Popen[str]]
) -> None:
    url, hooli, umbrella = site["url"], site["hooli"], site["umbrella"]
    queued = {
        name: stella_json(site[name], url, "rescan", "--queue", "--at", AT)
        for name in ("hooli", "umbrella")
    }
    assert (queued["hooli"]["schema"], queued["hooli"]["queued"]) == ("tenant_hooli_queue", 2)
    assert (queued["umbrella"]["schema"], queued["umbrella"]["queued"]) == (
        "tenant_umbrella_queue",
        1,
    )
    # each tenant's status lists its own jobs, and names the schema they are kept in
    status = {name: stella_json(site[name], url, "queue", "status") for name in IMAGES}
    assert (status["hooli"]["schema"], waiting(status["hooli"])) == (
        "tenant_hooli_queue",
        ["app:1", "web:2"],
    )
    assert waiting(status["umbrella"]) == ["api:3"]
    assert (status["wonka"]["schema"], status["wonka"]["counts"]) == ("tenant_wonka_queue", {})
    admin = stella_json(site["admin"], url, "queue", "status")  # the administrator's queue
    assert (admin["schema"], admin["counts"]) == ("stella_queue", {})
    text = stella(hooli, url, "queue", "status").stdout
    assert text.startswith("queue stella (schema tenant_hooli_queue): 2 todo;"), text
    assert "api:3" not in text
    assert queue_rows(url, "tenant_umbrella_queue") == [("api:3", "todo")]

    # hooli's worker gates hooli's images, in hooli's store; umbrella's job waits untouched
    assert run_worker(hooli, url, workers) == 0
    assert gated(hooli, queued["hooli"]) == {"app:1": 1, "web:2": 1}
    assert stella_json(hooli, url, "queue", "status")["counts"] == {"succeeded": 2}
    assert queue_rows(url, "tenant_umbrella_queue") == [("api:3", "todo")]
    assert gated(umbrella, queued["umbrella"]) == {"api:3": 0}
    assert waiting(stella_json(umbrella, url, "queue", "status")) == ["api:3"]

    # until umbrella's own worker takes it (two processes: its own command line per tenant)
    assert run_worker(umbrella, url, workers, "--concurrency", "2") == 0
    assert gated(umbrella, queued["umbrella"]) == {"api:3": 1}
    assert queue_rows(url, "tenant_umbrella_queue") == [("api:3", "succeeded")]
    assert gated(hooli, queued["hooli"]) == {"app:1": 1, "web:2": 1}  # nothing more
    added = stella_json(umbrella, url, "queue", "add", "api:3")
    assert (added["schema"], [i["outcome"] for i in added["images"]]) == (
        "tenant_umbrella_queue",
        ["queued"],
    )
    assert queue_rows(url, "tenant_hooli_queue") == [("app:1", "succeeded"), ("web:2", "succeeded")]


def refusal(home: Home, url: str, *args: str) -> str:
    run = stella(home, url, *args)
    assert run.returncode == 1, run.stdout
    return one_error(run.stderr)


def test_a_tenants_role_runs_its_own_queue_and_is_refused_every_other(
    site: dict[str, Any], workers: list[subprocess.Popen[str]]
) -> None:
    url, base, hooli, wonka = site["url"], site["base"], site["hooli"], site["wonka"]
    # hooli's and the administrator's queues are made (and owned) by the site's role first
    before = stella_json(hooli, url, "rescan", "--queue", "--at", AT)
    assert before["queued"] == 2
    stella_json(site["umbrella"], url, "queue", "status")
    stella_json(site["admin"], url, "queue", "status")
    roles = ok(base, "tenants", "roles", "--apply")["tenants"]
    assert [(t["tenant"], t["schema"], t["queueSchema"]) for t in roles] == [
        (name, f"tenant_{name}", f"tenant_{name}_queue") for name in sorted(IMAGES)
    ]
    assert ok(base, "tenants", "roles", "--apply")["tenants"] == roles  # changes nothing
    own = {name: tenant_url(url, name) for name in IMAGES}
    # everything procrastinate made in hooli's queue (tables, sequences, functions, enums,
    # its composite type) is hooli's role's now, as the roles' schemas are
    assert len(not_owned_by(url, "tenant_hooli_queue", SUPERUSER)) > 40
    for name in IMAGES:
        for schema in (f"tenant_{name}", f"tenant_{name}_queue"):
            assert not_owned_by(url, schema, tenant_role(name)) == [], schema

    # hooli's queue was made by another role and handed over: hooli's role drains it
    assert run_worker(hooli, own["hooli"], workers) == 0
    assert gated(hooli, before) == {"app:1": 1, "web:2": 1}
    status = stella_json(hooli, own["hooli"], "queue", "status")
    assert (status["schema"], status["counts"]) == ("tenant_hooli_queue", {"succeeded": 2})
    # wonka's queue schema is empty, and wonka's role may not create schemas: it makes the
    # queue's tables in the schema it owns, enqueues and drains
    assert denied(own["wonka"], "CREATE SCHEMA wonka_elsewhere")
    queued = stella_json(wonka, own["wonka"], "rescan", "--queue", "--at", AT)
    assert (queued["schema"], queued["queued"]) == ("tenant_wonka_queue", 1)
    assert run_worker(wonka, own["wonka"], workers) == 0
    assert gated(wonka, queued) == {"web:2": 1}
    assert ok(base, "--tenant", "wonka", "audit", "verify")["ok"] is True

    # the server, not the program, keeps hooli's role out of every other queue
    for other in ("tenant_umbrella_queue", "tenant_wonka_queue", "stella_queue"):
        for table in ("procrastinate_jobs", "stella_job_runs"):
            sql = f"SELECT count(*) FROM {other}.{table}"  # noqa: S608 - names of this test
            assert denied(own["hooli"], sql), sql
    assert not denied(own["hooli"], "SELECT count(*) FROM tenant_hooli_queue.procrastinate_jobs")
    # and a command that names another tenant (or none) with hooli's role gets one line
    for home, schema in (
        (site["umbrella"], "tenant_umbrella_queue"),
        (site["admin"], "stella_queue"),
    ):
        for args in (("queue", "status"), ("worker", "--burst")):
            assert refusal(home, own["hooli"], *args) == (
                f"the queue's database at {describe(url)} (schema {schema}): the database role "
                "stella_tenant_hooli may not use this queue (each tenant's role reaches only its "
                "own queue ('stella tenants roles'): connect with the role of the tenant the "
                "queue is for)"
            )
    assert queue_rows(url, "tenant_umbrella_queue") == []  # nothing reached it
