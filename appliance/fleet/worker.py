"""``stella worker``: take scan and gate jobs from the queue until stopped.

A worker takes the jobs of one tenant's queue: the queue in the PostgreSQL schema of its home's
tenant (:attr:`appliance.home.Home.queue_schema`: ``tenant_<name>_queue``, or ``stella_queue``
for the home's administrator), so it never sees, let alone gates, another tenant's images.

One worker process runs one job at a time (the gate is CPU-bound Python: processes, not
threads, use the cores); ``--concurrency N`` starts N such processes and forwards SIGTERM and
SIGINT to them. On SIGTERM or SIGINT a worker takes no new job, lets the running one finish
(its verdict is recorded or it is not, never half), unregisters and exits 0.

What each job does is :func:`run_job`: look the image up by its manifest digest, and unless
it is already gated at the job's evaluation time under the active snapshot and the current
policy (a job run again after it had finished: nothing is written twice), gate it and index
it through :func:`appliance.rescan.regate`. The gate records its verdict row and audit record
in one transaction after signing, logging and attaching; a worker killed before that commit
leaves no verdict, one killed after it leaves the verdict its retry then finds.

With an image source (``stella worker --registry``, :mod:`appliance.registry.worker`), the
job's image need not be in the worker's home: the worker pulls it by digest from the registry
into its layout first, and after the gate pushes the verdict's referrers back there. A job
that finds its verdict already recorded pushes what the registry lacks of it, and nothing
when the registry has it all.

Failures are retried with exponential backoff (``--backoff`` seconds, doubling) up to
``--attempts`` attempts, then the job is failed; each attempt's error is kept in
``stella_job_runs``. A retry that falls due is taken within the backoff (at least 0.5 s, at
most 5 s later): due jobs are looked for that often, besides the queue's notifications. A
worker killed mid-job (SIGKILL, OOM, power) stops sending heartbeats; every worker looks for
jobs whose worker has been silent for ``--stalled-after`` seconds and puts them back in the
queue (counted as an attempt), where the per-image lock lets exactly one worker take each
again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import procrastinate
import psycopg
from procrastinate import exceptions as pq_exceptions
from procrastinate.jobs import Job, Status
from procrastinate.retry import RetryDecision

from appliance.fleet import DEFAULT_QUEUE
from appliance.fleet.queue import (
    JobKind,
    connect,
    conninfo,
    ensure_schema,
    open_app,
)
from appliance.home import Home
from appliance.rescan import ImageOutcome, Outcome, Target, context, regate
from appliance.store import open_state
from appliance.store.verdicts import VerdictStore
from appliance.vex.model import format_time, parse_time
from bundles.digest import Digest
from bundles.errors import StellaError, UsageError, describe
from bundles.oci import OCILayout

log: Final = logging.getLogger("stella.worker")


class JobError(StellaError):
    """A job could not do its work (it is retried, then failed with this reason)."""


class ImageSource(Protocol):
    """Where a worker's images come from when its home does not hold them, and where the
    referrers its gate attaches go (a registry: :class:`appliance.registry.worker.RegistryImages`,
    which the command line hands in). Each method raises a :class:`StellaError` in one line
    naming the place and the image."""

    def fetch(self, home: Home, image: str, digest: str) -> object:
        """Make the image (manifest ``digest``) a stored image named ``image`` in ``home``."""
        ...

    def publish(self, home: Home, image: str, digest: str, *, verdict: str | None) -> object:
        """Send the image's referrers that the place lacks; ``verdict`` must end up there."""
        ...


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    queue: str = DEFAULT_QUEUE
    burst: bool = False  # stop when no job is ready instead of waiting for more
    attempts: int = 5  # attempts per job before it is failed
    backoff: float = 10.0  # seconds before the first retry; doubles with each attempt
    heartbeat: float = 10.0  # seconds between heartbeats
    stalled_after: float = 60.0  # seconds of silence after which a worker counts as dead

    def check(self) -> WorkerOptions:
        if self.attempts < 1:
            raise UsageError(f"--attempts {self.attempts}: give 1 or more")
        if self.backoff < 0 or self.heartbeat <= 0:
            raise UsageError("--backoff and --heartbeat take a positive number of seconds")
        if self.stalled_after < 3 * self.heartbeat:
            raise UsageError(
                f"--stalled-after {self.stalled_after:g} is under three heartbeats "
                f"({3 * self.heartbeat:g} s): a live worker would be taken for dead",
                hint="raise --stalled-after or lower --heartbeat",
            )
        return self


class Backoff(procrastinate.BaseRetryStrategy):
    """Retry any failure after ``base`` x 2^attempt seconds, until ``attempts`` attempts."""

    def __init__(self, attempts: int, base: float) -> None:
        self.attempts = attempts
        self.base = base

    def get_retry_decision(self, *, exception: BaseException, job: Job) -> RetryDecision | None:
        if job.attempts + 1 >= self.attempts:
            return None
        return RetryDecision(retry_in={"seconds": self.base * 2**job.attempts})


class Runs:
    """This worker's writes to ``stella_job_runs``: one row per attempt, started and finished
    by the database's clock (one clock for every worker)."""

    def __init__(self, url: str, schema: str, worker: str) -> None:
        self.worker = worker
        self._lock = threading.Lock()
        try:
            self._conn = psycopg.connect(conninfo(url, schema), autocommit=True)
        except psycopg.Error as e:
            raise JobError(f"cannot reach the queue's database (schema {schema}): {e}") from e

    def begin(self, job: Job, kind: str, image: str, digest: str) -> None:
        with self._lock:
            self._conn.execute(
                """INSERT INTO stella_job_runs (job_id, attempt, kind, image, digest, worker)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (job_id, attempt) DO UPDATE
                   SET worker = excluded.worker, started = clock_timestamp(),
                       finished = NULL, outcome = NULL, verdict = NULL, error = NULL""",
                (job.id, job.attempts, kind, image, digest, self.worker),
            )

    def end(
        self, job_id: int, attempt: int, outcome: str, verdict: str | None, error: str | None
    ) -> None:
        with self._lock:
            self._conn.execute(
                """UPDATE stella_job_runs
                      SET finished = clock_timestamp(), outcome = %s, verdict = %s, error = %s
                    WHERE job_id = %s AND attempt = %s AND finished IS NULL""",
                (outcome, verdict, error, job_id, attempt),
            )

    def close(self) -> None:
        self._conn.close()


@dataclass(frozen=True, slots=True)
class _State:
    home: Home
    runs: Runs
    now: Callable[[], datetime]
    images: ImageSource | None = None


def _target(home: Home, kind: JobKind, image: str, digest: str) -> Target:
    """The stored image the job names, by manifest digest (a name may have moved since the
    job was enqueued; the digest cannot), by its first name as ``stella rescan`` names it; for
    ``scan``, by the name it was enqueued under. Read from the store's index alone: a job
    costs the same whatever the number of stored images."""
    names: list[str] = []
    if (home.oci / "oci-layout").is_file():
        tags = OCILayout.open(home.oci).tags()
        names = sorted(t for t, d in tags.items() if str(d.digest) == digest)
    if not names:
        raise JobError(
            f"image {digest} ({image}) is not in the local store",
            hint="it was removed since the job was enqueued; load it again and enqueue it",
        )
    first = image if kind is JobKind.SCAN and image in names else names[0]
    return Target(first, Digest.parse(digest), tuple(n for n in names if n != first))


def run_job(
    home: Home,
    kind: JobKind,
    image: str,
    digest: str,
    at: str,
    *,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    images: ImageSource | None = None,
) -> ImageOutcome:
    """Gate the image of one job at the job's evaluation time, unless that verdict exists.
    With ``images``, pull the image from there first and push its referrers back after."""
    home.require()
    when = parse_time(at, where="the job's evaluation time")
    Digest.parse(digest)
    if images is not None:
        pulled = images.fetch(home, image, digest)
        log.info("%s %s: %s", image, digest, pulled)
    target = _target(home, kind, image, digest)
    ctx = context(home)
    snapshot = str(ctx.snapshot) if ctx.snapshot else None
    with open_state(home) as db:
        row = VerdictStore(db).latest(digest)
    previous = row.verdict if row is not None else None
    if (
        row is not None
        and row.evaluation_time == format_time(when)
        and row.snapshot == snapshot
        and row.policy == ctx.policy
    ):
        if images is not None:
            published = images.publish(home, image, digest, verdict=row.referrer)
            log.info("%s %s: %s", image, digest, published)
        return ImageOutcome(
            target.image,
            Outcome.SKIPPED,
            digest=digest,
            verdict=row.verdict,
            aliases=target.aliases,
            reason=f"already gated at {row.evaluation_time} under this snapshot and policy "
            f"(audit record {row.audit_seq}): nothing written",
            previous=previous,
        )
    reason = "queued scan of a new image" if kind is JobKind.SCAN else "queued re-gate"
    outcome = regate(home, target, ctx, at=when, now=now, reason=reason, previous=previous)
    if outcome.outcome is Outcome.FAILED:
        raise JobError(f"{target.image}: {outcome.error}")
    if images is not None:
        published = images.publish(home, image, digest, verdict=outcome.referrer)
        log.info("%s %s: %s", image, digest, published)
    return outcome


def _task(kind: JobKind) -> Callable[..., dict[str, Any]]:
    def body(
        job_context: procrastinate.JobContext, image: str, digest: str, at: str
    ) -> dict[str, Any]:
        state: _State = job_context.additional_context["stella"]
        job = job_context.job
        assert job.id is not None
        state.runs.begin(job, kind.value, image, digest)
        log.info("job %d (attempt %d): %s %s %s", job.id, job.attempts + 1, kind, image, digest)
        try:
            outcome = run_job(
                state.home, kind, image, digest, at, now=state.now, images=state.images
            )
        except BaseException as e:
            state.runs.end(job.id, job.attempts, "failed", None, describe(e))
            log.warning("job %d failed: %s", job.id, describe(e))
            raise
        state.runs.end(job.id, job.attempts, outcome.outcome.value, outcome.verdict, None)
        log.info("job %d: %s %s %s", job.id, outcome.outcome, outcome.verdict, image)
        return outcome.to_dict()

    body.__name__ = f"job_{kind.name.lower()}"
    return body


def worker_app(url: str, schema: str, options: WorkerOptions) -> procrastinate.App:
    """The app on the queue in ``schema`` with the job kinds registered, each with the retry
    policy of ``options``."""
    app = open_app(url, schema)
    retry = Backoff(options.attempts, options.backoff)
    for kind in JobKind:
        app.task(name=kind.value, pass_context=True, retry=retry, queue=options.queue)(_task(kind))
    return app


async def recover_stalled(app: procrastinate.App, runs: Runs, options: WorkerOptions) -> int:
    """Put back in the queue the jobs whose worker fell silent (or fail them when that was
    their last attempt), and unregister the silent workers; how many jobs were found."""
    manager = app.job_manager
    stalled = list(
        await manager.get_stalled_jobs(
            queue=options.queue, seconds_since_heartbeat=options.stalled_after
        )
    )
    why = (
        f"its worker stopped without finishing it (no heartbeat for {options.stalled_after:g} s:"
        " killed, or its machine stopped)"
    )
    for job in stalled:
        assert job.id is not None
        last = job.attempts + 1 >= options.attempts
        try:
            if last:
                await manager.finish_job(job, Status.FAILED, delete_job=False)
            else:
                await manager.retry_job(job)
        except pq_exceptions.ConnectorException:
            continue  # another worker took care of it first
        runs.end(job.id, job.attempts, "interrupted", None, why)
        log.warning("job %d: %s; %s", job.id, why, "failed" if last else "queued again")
    # and forget the silent workers (procrastinate itself does it only as a worker starts)
    await manager.prune_stalled_workers(options.stalled_after)
    return len(stalled)


async def _serve(
    home: Home, url: str, schema: str, options: WorkerOptions, images: ImageSource | None
) -> None:
    app = worker_app(url, schema, options)
    runs = Runs(url, schema, f"{os.uname().nodename}:{os.getpid()}")
    state = _State(home, runs, lambda: datetime.now(UTC), images)
    try:
        async with app.open_async():
            await recover_stalled(app, runs, options)

            async def watch() -> None:
                while True:
                    await asyncio.sleep(options.heartbeat)
                    try:
                        await recover_stalled(app, runs, options)
                    except pq_exceptions.ConnectorException as e:
                        log.warning("looking for stalled jobs failed: %s", describe(e))

            watcher = asyncio.create_task(watch(), name="stella-recover-stalled")
            try:
                await app.run_worker_async(
                    queues=[options.queue],
                    concurrency=1,
                    wait=not options.burst,
                    name=runs.worker,
                    update_heartbeat_interval=options.heartbeat,
                    # a retry falls due without a notification: look for due jobs as often as
                    # the backoff asks (not below 0.5 s), at most every 5 s
                    fetch_job_polling_interval=min(5.0, max(0.5, options.backoff)),
                    stalled_worker_timeout=options.stalled_after,
                    additional_context={"stella": state},
                    install_signal_handlers=True,
                )
            finally:
                watcher.cancel()
    finally:
        runs.close()


def _configure_logging(debug: bool) -> None:
    """One line per job and per recovered job on stderr (the journal, under systemd); the
    library's own records, with their tracebacks, only with ``--debug``."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(levelname)s: %(message)s"))
    library = logging.DEBUG if debug else logging.CRITICAL
    for name, level in (("stella.worker", logging.INFO), ("procrastinate", library)):
        logger = logging.getLogger(name)
        logger.setLevel(level)
        logger.addHandler(handler)
        logger.propagate = False


def run(
    home: Home,
    url: str,
    options: WorkerOptions,
    *,
    debug: bool = False,
    images: ImageSource | None = None,
) -> int:
    """Run one worker process on the queue of ``home``'s tenant (:attr:`Home.queue_schema`)
    until SIGTERM/SIGINT (or, with ``burst``, until no job is ready); 0 after a clean stop.
    With ``images``, the jobs' images come from there."""
    home.require()
    options.check()
    schema = home.queue_schema
    ensure_schema(url, schema)
    _configure_logging(debug)
    try:
        asyncio.run(_serve(home, url, schema, options, images))
    except pq_exceptions.ConnectorException as e:
        with connect(url, schema):  # a server gone away is named as such; else the library's
            pass
        raise JobError(
            f"the queue's database failed (schema {schema}): {describe(e.__cause__ or e)}"
        ) from e
    return 0


def run_many(argv: Sequence[str], count: int) -> int:
    """Start ``count`` worker processes (``argv`` is one worker's command line), forward
    SIGTERM and SIGINT to them, and wait for all; the highest exit code."""
    children = [subprocess.Popen(list(argv), start_new_session=True) for _ in range(count)]

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        codes = [child.wait() for child in children]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return max(codes, default=0)


def worker_argv(
    home: Home, options: WorkerOptions, *, debug: bool = False, extra: Sequence[str] = ()
) -> list[str]:
    """The command line of one worker process of ``home`` (a tenant's: for that tenant, on its
    queue) with ``options`` (and ``extra`` options of the worker command: where its images
    are)."""
    argv = [sys.executable, "-m", "appliance.cli", "--home", str(home.base)]
    argv += ["--tenant", home.tenant] if home.tenant is not None else []
    argv += ["--debug", "worker"] if debug else ["worker"]
    argv += ["--queue", options.queue, "--attempts", str(options.attempts)]
    argv += ["--backoff", f"{options.backoff:g}", "--heartbeat", f"{options.heartbeat:g}"]
    argv += ["--stalled-after", f"{options.stalled_after:g}", *extra]
    return argv + (["--burst"] if options.burst else [])
