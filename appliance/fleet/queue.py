"""The job queue of the scale-out mode, kept in PostgreSQL by procrastinate.

Where: ``STELLA_DATABASE_URL`` (``postgresql://USER@HOST:PORT/DB``), the same database as the
scale-out stores. The queue's tables live in a PostgreSQL schema of their own, one per tenant:
``tenant_<name>_queue`` for tenant ``name``, :data:`SCHEMA` (``stella_queue``) for the home's
administrator (:attr:`appliance.home.Home.queue_schema`). Every function here takes that schema
explicitly, and every connection of the queue sets ``search_path`` to it alone, so the queue's
tables never mix with the stores' nor one tenant's jobs with another's: a worker started for
one tenant takes only that tenant's jobs, and with the tenants' own database roles (``stella
tenants roles``) the server refuses it every other queue. :func:`ensure_schema` creates the
tables on first use, once, under an advisory lock (workers starting together do not race),
and refuses a schema made by another version of procrastinate instead of running against it.

Job kinds (:class:`JobKind`), each with the arguments ``image`` (a name in the local store),
``digest`` (its manifest digest) and ``at`` (the evaluation time, RFC 3339, fixed when the job
is enqueued so a retried job gates at the same time as its first attempt):

- ``scan-gate``: gate a stored image again (scan from the layer cache, match against the
  active snapshot, policy, sign, log, attach, record) and index it, as ``stella rescan`` does
  for each image (:func:`appliance.rescan.regate`); ``stella rescan --queue`` enqueues these.
- ``scan``: the first scan and gate of a newly loaded image (``stella queue add IMAGE``).

Per image, two locks of procrastinate's: the **lock** (``image:DIGEST``) runs the jobs of one
image one at a time, across every worker, in the order they were enqueued; the **queueing
lock** (``KIND:DIGEST``) keeps at most one job of a kind per image waiting, so enqueuing an
image that already waits is a no-op (:func:`enqueue` says so). A job that runs when its image
is already gated at its evaluation time under the same snapshot and policy writes nothing.

Every attempt of a job is recorded in ``stella_job_runs`` (job, attempt, worker, start and end
by the database's clock, outcome, verdict, error): procrastinate keeps a job's status but not
why it failed, and ``stella queue status`` shows both.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import procrastinate
import psycopg
from procrastinate import exceptions as pq_exceptions
from psycopg import conninfo as pg_conninfo
from psycopg import errors as pg_errors

from appliance import tenancy
from appliance.fleet import DATABASE_ENV, DEFAULT_QUEUE, QueueError
from appliance.home import Home
from appliance.rescan import Target, context, plan, targets
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from appliance.vex.model import format_time
from bundles.digest import Digest
from bundles.errors import StellaError

SCHEMA: Final = tenancy.ADMIN_QUEUE_SCHEMA  # the home's administrator's; a tenant's: its own
CONNECT_TIMEOUT: Final = 10  # seconds: a server that does not answer is reported, not waited on
_SCHEMA_LOCK: Final = 0x5374656C6C61  # seeds the pg_advisory_xact_lock key of each schema
_IDENTIFIER: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class JobKind(StrEnum):
    SCAN_GATE = "scan-gate"  # gate a stored image again (stella rescan --queue)
    SCAN = "scan"  # first scan and gate of a newly loaded image (stella queue add)


RUNS_TABLE: Final = """
CREATE TABLE IF NOT EXISTS stella_job_runs (
    job_id   bigint      NOT NULL,
    attempt  integer     NOT NULL,
    kind     text        NOT NULL,
    image    text        NOT NULL,
    digest   text        NOT NULL,
    worker   text        NOT NULL,
    started  timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished timestamptz,
    outcome  text,
    verdict  text,
    error    text,
    PRIMARY KEY (job_id, attempt)
);
CREATE TABLE IF NOT EXISTS stella_queue_meta (
    key   text PRIMARY KEY,
    value text NOT NULL
);
"""


def database_url(environ: Mapping[str, str] | None = None) -> str:
    """``STELLA_DATABASE_URL``, checked to be a PostgreSQL URL."""
    env = os.environ if environ is None else environ
    url = env.get(DATABASE_ENV, "").strip()
    if not url:
        raise QueueError(
            f"{DATABASE_ENV} is not set: the job queue is kept in PostgreSQL",
            hint=f"set {DATABASE_ENV}=postgresql://USER@HOST:PORT/DATABASE "
            "(docs/scale-out.md, 'Workers and the queue')",
        )
    if not url.startswith(("postgresql://", "postgres://")):
        raise QueueError(
            f"{DATABASE_ENV} is not a PostgreSQL URL: it starts with {url.split(':')[0]!r}",
            hint="give it as postgresql://USER@HOST:PORT/DATABASE",
        )
    return url


def describe(url: str) -> str:
    """The server and database a URL names, without its password, for messages."""
    try:
        parts = pg_conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as e:
        raise QueueError(
            f"{DATABASE_ENV} cannot be read: {e}",
            hint="give it as postgresql://USER@HOST:PORT/DATABASE",
        ) from e
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    return f"{host}:{port}/{parts.get('dbname') or parts.get('user') or ''}"


def conninfo(url: str, schema: str) -> str:
    """The connection string every queue connection uses: the URL with the queue's schema
    ``schema`` (:attr:`appliance.home.Home.queue_schema`: each tenant's own, never a default)
    alone on the search path and a bounded connect time."""
    if not _IDENTIFIER.fullmatch(schema):
        raise ValueError(f"{schema!r} is not a queue schema's name")
    return pg_conninfo.make_conninfo(
        url, options=f"-c search_path={schema}", connect_timeout=CONNECT_TIMEOUT
    )


def _unreachable(url: str, e: BaseException) -> QueueError:
    why = " ".join(str(e).split()) or e.__class__.__name__
    return QueueError(
        f"cannot reach the queue's PostgreSQL at {describe(url)}: {why}",
        hint=f"start the server, or correct {DATABASE_ENV}",
    )


def _refused(url: str, schema: str, e: psycopg.Error) -> QueueError:
    """The server's refusal, in one line naming the database and the queue's schema."""
    why = " ".join(str(e).split()) or e.__class__.__name__
    if isinstance(e, pg_errors.InsufficientPrivilege):
        return QueueError(
            f"the queue's database at {describe(url)} (schema {schema}) refused this "
            f"database role a request: {why}",
            hint="each tenant's role reaches only its own queue ('stella tenants roles'): "
            "connect with the role of the tenant the queue is for; a new queue's schema is "
            "made by a role that may create schemas in the database",
        )
    return QueueError(
        f"the queue's database at {describe(url)} (schema {schema}) refused a request: {why}",
        hint="see the server's log",
    )


@contextmanager
def connect(url: str, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """One connection to the queue in ``schema`` (autocommit off: callers use transactions)."""
    try:
        conn = psycopg.connect(conninfo(url, schema))
    except psycopg.Error as e:
        raise _unreachable(url, e) from e
    try:
        yield conn
    except psycopg.Error as e:
        raise _refused(url, schema, e) from e
    finally:
        conn.close()


def ensure_schema(url: str, schema: str) -> bool:
    """Create the queue's schema ``schema`` and its tables unless they exist; True when the
    tables were made. A role that may not create schemas in the database uses one made for it
    (``stella tenants roles``), empty or not; a schema the role may not use is refused in one
    line. Refuses a schema that another version of procrastinate made."""
    from procrastinate.schema import SchemaManager

    version = procrastinate.__version__
    with connect(url, schema) as conn, conn.transaction():
        # one lock per schema: the first of the workers starting together makes the tables
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, %s))", (schema, _SCHEMA_LOCK)
        )
        found = conn.execute(
            "SELECT has_schema_privilege(oid, 'USAGE') FROM pg_namespace WHERE nspname = %s",
            (schema,),
        ).fetchone()
        if found is None:
            # not CREATE SCHEMA IF NOT EXISTS on an existing schema: the server checks the
            # right to create schemas in the database before it looks whether one exists
            conn.execute(f"CREATE SCHEMA {tenancy.quote_identifier(schema)}".encode())
        elif not found[0]:
            raise QueueError(
                f"the queue's database at {describe(url)} (schema {schema}): the database role "
                f"{conn.info.user} may not use this queue",
                hint="each tenant's role reaches only its own queue ('stella tenants roles'): "
                "connect with the role of the tenant the queue is for",
            )
        exists = conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL",
            (f"{tenancy.quote_identifier(schema)}.procrastinate_jobs",),
        ).fetchone()
        made = not (exists and exists[0])
        if made:
            conn.execute(SchemaManager.get_schema().encode())
        conn.execute(RUNS_TABLE.encode())
        if made:
            conn.execute(
                "INSERT INTO stella_queue_meta (key, value) VALUES ('procrastinate', %s)",
                (version,),
            )
        row = conn.execute(
            "SELECT value FROM stella_queue_meta WHERE key = 'procrastinate'"
        ).fetchone()
    if row is None or row[0] != version:
        raise QueueError(
            f"the queue's schema in {describe(url)} (schema {schema}) was made by procrastinate "
            f"{row[0] if row else 'of an unknown version'}, this is {version}",
            hint="apply procrastinate's migrations between the two versions "
            "(docs/scale-out.md, 'Upgrading the queue'), or drain the queue and drop schema "
            f"{schema}",
        )
    return made


def open_app(url: str, schema: str, *, pool_size: int = 4) -> procrastinate.App:
    """A procrastinate app on the queue in ``schema`` (not opened: use ``app.open()`` for
    enqueuing, ``app.open_async()`` in a worker)."""
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(url, schema), min_size=1, max_size=pool_size
    )
    return procrastinate.App(connector=connector)


def lock_for(digest: str) -> str:
    """The lock every job of one image holds: its jobs never run at once."""
    return f"image:{digest}"


def enqueue(
    app: procrastinate.App,
    kind: JobKind,
    *,
    image: str,
    digest: str,
    at: datetime,
    queue: str = DEFAULT_QUEUE,
) -> int | None:
    """Enqueue one job; its id, or None when a job of this kind for this image already
    waits (that one stands: it gates against whatever is active when it runs)."""
    deferrer = app.configure_task(
        name=kind.value,
        queue=queue,
        lock=lock_for(digest),
        queueing_lock=f"{kind.value}:{digest}",
    )
    try:
        return deferrer.defer(image=image, digest=digest, at=format_time(at))
    except pq_exceptions.AlreadyEnqueued:
        return None


@contextmanager
def opened(url: str, schema: str) -> Iterator[procrastinate.App]:
    """An app opened for enqueuing (synchronously) into the queue in ``schema``, with the
    schema in place."""
    ensure_schema(url, schema)
    app = open_app(url, schema, pool_size=1)
    try:
        with app.open():
            yield app
    except pq_exceptions.ConnectorException as e:
        cause = e.__cause__
        if isinstance(cause, psycopg.Error) and not isinstance(cause, psycopg.OperationalError):
            raise _refused(url, schema, cause) from e
        raise _unreachable(url, cause or e) from e


# --------------------------------------------------------------------- stella rescan --queue


@dataclass(frozen=True, slots=True)
class QueuedImage:
    """One image of a queued rescan: enqueued, already waiting, or kept (with why)."""

    image: str
    digest: str | None
    outcome: str  # "queued" | "pending" | "skipped" | "failed"
    reason: str
    previous: str | None = None
    job: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "image": self.image,
            "digest": self.digest,
            "outcome": self.outcome,
            "reason": self.reason,
            "previous": self.previous,
        }
        if self.job is not None:
            out["job"] = self.job
        return out


@dataclass(frozen=True, slots=True)
class QueuedRescan:
    """What ``stella rescan --queue`` did: the jobs it enqueued and the images it kept."""

    queue: str
    snapshot: str | None
    policy: str
    evaluation_time: str
    full: bool
    images: tuple[QueuedImage, ...]
    audit_seq: int
    schema: str  # the PostgreSQL schema of the queue the jobs went to (the tenant's)

    def count(self, outcome: str) -> int:
        return sum(1 for i in self.images if i.outcome == outcome)

    @property
    def exit_code(self) -> int:
        return 1 if self.count("failed") else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "schema": self.schema,
            "snapshot": self.snapshot,
            "policy": self.policy,
            "evaluationTime": self.evaluation_time,
            "mode": "full" if self.full else "incremental",
            "images": [i.to_dict() for i in self.images],
            "queued": self.count("queued"),
            "pending": self.count("pending"),
            "skipped": self.count("skipped"),
            "failed": self.count("failed"),
            "auditSeq": self.audit_seq,
        }


def _resolved(home: Home, found: Sequence[Target]) -> list[tuple[Target, str | None, str]]:
    """Each target with its digest (a named image is looked up in the store), or why not."""
    from appliance.imagestore.catalog import resolve

    out: list[tuple[Target, str | None, str]] = []
    for target in found:
        if target.digest is not None:
            out.append((target, str(target.digest), ""))
            continue
        try:
            _, descriptor, names = resolve(home, target.image)
        except StellaError as e:
            out.append((target, None, e.diagnostics()))
            continue
        digest = descriptor.digest
        aliases = tuple(n for n in names if n != target.image)
        out.append((Target(target.image, digest, aliases), str(digest), ""))
    return out


def enqueue_rescan(
    home: Home,
    url: str,
    *,
    at: datetime,
    images: Sequence[str] = (),
    full: bool = False,
    queue: str = DEFAULT_QUEUE,
    now: datetime | None = None,
) -> QueuedRescan:
    """Decide as ``stella rescan`` does which images to gate again (every image with ``full``,
    the named ones when ``images`` are given) and enqueue a ``scan-gate`` job for each
    instead of gating it here, into the queue of ``home``'s tenant (:attr:`Home.queue_schema`);
    record the decision as the run's ``rescan`` audit record."""
    home.require()
    schema = home.queue_schema
    ctx = context(home)
    found = _resolved(home, targets(home, images))
    every = full or bool(images)
    decisions = {} if every else plan(home, [t for t, d, _ in found if d is not None], ctx, at=at)
    out: list[QueuedImage] = []
    with opened(url, schema) as app:
        for target, digest, why in found:
            if digest is None:
                out.append(QueuedImage(target.image, None, "failed", why))
                continue
            decision = decisions.get(Digest.parse(digest))
            previous = decision.previous.verdict if decision and decision.previous else None
            if decision is not None and not decision.gate:
                out.append(QueuedImage(target.image, digest, "skipped", decision.reason, previous))
                continue
            reason = decision.reason if decision else ("named" if images else "full rescan")
            job = enqueue(
                app, JobKind.SCAN_GATE, image=target.image, digest=digest, at=at, queue=queue
            )
            outcome = "queued" if job is not None else "pending"
            if job is None:
                reason += "; a job for it already waits in the queue"
            out.append(QueuedImage(target.image, digest, outcome, reason, previous, job))
    evaluation_time = format_time(at)
    record = record_decision(
        home,
        AuditAction.RESCAN,
        f"{len(out)} images",
        command="rescan",
        time=now or datetime.now(UTC),
        inputs={
            "snapshot": str(ctx.snapshot) if ctx.snapshot else None,
            "policy": ctx.policy,
            "vex": ctx.vex,
            "mode": "full" if every else "incremental",
            "evaluationTime": evaluation_time,
            "images": list(images),
            "queue": queue,
        },
        result={
            "images": [i.to_dict() for i in out],
            "queued": sum(1 for i in out if i.outcome == "queued"),
            "pending": sum(1 for i in out if i.outcome == "pending"),
            "skipped": sum(1 for i in out if i.outcome == "skipped"),
            "failed": sum(1 for i in out if i.outcome == "failed"),
        },
    )
    return QueuedRescan(
        queue=queue,
        snapshot=str(ctx.snapshot) if ctx.snapshot else None,
        policy=ctx.policy,
        evaluation_time=evaluation_time,
        full=every,
        images=tuple(out),
        audit_seq=record.seq,
        schema=schema,
    )


def enqueue_scans(
    home: Home, url: str, images: Sequence[str], *, at: datetime, queue: str = DEFAULT_QUEUE
) -> list[QueuedImage]:
    """Enqueue the first scan and gate of each named stored image (``stella queue add``) into
    the queue of ``home``'s tenant (:attr:`Home.queue_schema`)."""
    home.require()
    out: list[QueuedImage] = []
    with opened(url, home.queue_schema) as app:
        for target, digest, why in _resolved(home, targets(home, images)):
            if digest is None:
                out.append(QueuedImage(target.image, None, "failed", why))
                continue
            job = enqueue(app, JobKind.SCAN, image=target.image, digest=digest, at=at, queue=queue)
            if job is None:
                out.append(QueuedImage(target.image, digest, "pending", "already waits"))
            else:
                out.append(QueuedImage(target.image, digest, "queued", "enqueued", job=job))
    return out


# --------------------------------------------------------------------- stella queue status


@dataclass(frozen=True, slots=True)
class JobLine:
    """One job as ``stella queue status`` lists it."""

    id: int
    kind: str
    image: str
    status: str
    attempts: int  # attempts made (for a running job, before the one running)
    worker: str | None = None
    started: str | None = None
    error: str | None = None
    scheduled: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            k: v
            for k, v in (
                ("id", self.id),
                ("kind", self.kind),
                ("image", self.image),
                ("status", self.status),
                ("attempts", self.attempts),
                ("worker", self.worker),
                ("started", self.started),
                ("scheduled", self.scheduled),
                ("error", self.error),
            )
            if v is not None
        }


@dataclass(frozen=True, slots=True)
class QueueStatus:
    queue: str
    counts: Mapping[str, int]  # status -> jobs
    running: tuple[JobLine, ...]
    waiting: tuple[JobLine, ...]
    failed: tuple[JobLine, ...]
    workers: int  # workers with a live heartbeat
    schema: str  # the PostgreSQL schema the queue is kept in (its tenant's)

    def to_dict(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "schema": self.schema,
            "counts": dict(self.counts),
            "workers": self.workers,
            "running": [j.to_dict() for j in self.running],
            "waiting": [j.to_dict() for j in self.waiting],
            "failed": [j.to_dict() for j in self.failed],
        }


def _time(value: datetime | None) -> str | None:
    return format_time(value.astimezone(UTC)) if value is not None else None


def status(url: str, schema: str, queue: str = DEFAULT_QUEUE, *, limit: int = 50) -> QueueStatus:
    """Counts per status, and the running, waiting and failed jobs (the latest ``limit`` of
    each) with the error of a failed job's last attempt, of the queue in ``schema``."""
    ensure_schema(url, schema)
    with connect(url, schema) as conn:
        counts = {
            str(s): int(n)
            for s, n in conn.execute(
                "SELECT status, count(*) FROM procrastinate_jobs WHERE queue_name = %s "
                "GROUP BY status ORDER BY status",
                (queue,),
            )
        }
        lines: dict[str, list[JobLine]] = {"doing": [], "todo": [], "failed": []}
        for state, order in (("doing", 1), ("todo", 1), ("failed", -1)):  # the latest failures
            rows = conn.execute(
                """SELECT j.id, j.task_name, j.args->>'image', j.status, j.attempts,
                           r.worker, r.started, r.error, j.scheduled_at
                      FROM procrastinate_jobs j
                      LEFT JOIN LATERAL (
                          SELECT worker, started, error FROM stella_job_runs
                           WHERE job_id = j.id ORDER BY attempt DESC LIMIT 1
                      ) r ON true
                     WHERE j.queue_name = %s AND j.status = %s
                     ORDER BY j.id * %s LIMIT %s""",
                (queue, state, order, limit),
            )
            for jid, kind, image, st, attempts, worker, started, error, scheduled in rows:
                lines[state].append(
                    JobLine(
                        int(jid),
                        str(kind),
                        str(image or ""),
                        str(st),
                        int(attempts),
                        worker=worker if state == "doing" else None,
                        started=_time(started) if state == "doing" else None,
                        error=error if state != "doing" else None,
                        scheduled=_time(scheduled) if state == "todo" else None,
                    )
                )
        row = conn.execute(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - interval '1 minute'"
        ).fetchone()
    return QueueStatus(
        queue,
        counts,
        tuple(lines["doing"]),
        tuple(lines["todo"]),
        tuple(lines["failed"]),
        int(row[0]) if row else 0,
        schema,
    )
