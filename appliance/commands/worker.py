"""``stella worker [--concurrency N] [--burst] [--queue NAME] [--registry HOST:PORT[/PREFIX]]``:
take scan and gate jobs from the queue in PostgreSQL (``STELLA_DATABASE_URL``) until
SIGTERM/SIGINT, the images from the home or, with ``--registry``, pulled by digest from a
registry (appliance/registry/worker.py) that the verdicts' referrers go back to;
``stella queue status`` lists the queue's jobs, ``stella queue add IMAGE...`` enqueues the
first scan and gate of stored images (appliance/fleet; docs/scale-out.md, "Workers and the queue").

Exit codes: 0 after a clean stop; 1 when the queue cannot be reached; 2 for a usage error.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from appliance.commands.registry_options import RegistryAccess, registry_options
from appliance.fleet import DEFAULT_QUEUE, require_extra
from appliance.home import Home
from bundles.clikit import CliContext, pass_ctx

if TYPE_CHECKING:
    from appliance.fleet.queue import QueueStatus

# The queue's modules (procrastinate, psycopg: the 'postgres' extra) are imported when a
# command runs, so 'stella --help' works on an appliance installed without them.


@click.command("worker")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Worker processes to run (each takes one job at a time).",
)
@click.option(
    "--burst",
    "--once",
    "burst",
    is_flag=True,
    help="Stop when no job is ready instead of waiting for more.",
)
@click.option("--queue", default=DEFAULT_QUEUE, show_default=True, help="Queue to take jobs from.")
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Attempts per job before it is failed.",
)
@click.option(
    "--backoff",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds before a failed job's first retry; doubles with each attempt.",
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(min=0.1),
    default=10.0,
    show_default=True,
    help="Seconds between this worker's heartbeats.",
)
@click.option(
    "--stalled-after",
    type=click.FloatRange(min=0.3),
    default=60.0,
    show_default=True,
    help="Seconds without a heartbeat after which a worker counts as dead and its job is "
    "queued again.",
)
@click.option(
    "--registry",
    envvar="STELLA_REGISTRY",
    default=None,
    metavar="HOST:PORT[/PREFIX]",
    help="Pull each job's image NAME:TAG by digest from repository PREFIX/NAME of this "
    "registry and push its verdict's referrers back [env STELLA_REGISTRY; else the home's "
    "'registry' setting; else the images are in the home].",
)
@registry_options()
@pass_ctx
@click.pass_context
def worker_cmd(
    click_ctx: click.Context,
    ctx: CliContext,
    concurrency: int,
    burst: bool,
    queue: str,
    attempts: int,
    backoff: float,
    heartbeat: float,
    stalled_after: float,
    registry: str | None,
    access: RegistryAccess,
) -> None:
    """Take scan and gate jobs from the queue until stopped (SIGTERM or SIGINT)."""
    require_extra()
    from appliance.fleet.queue import database_url
    from appliance.fleet.worker import WorkerOptions, run, run_many, worker_argv
    from appliance.registry.worker import REGISTRY_ENV, RegistryImages, configured
    from appliance.rva.predicate import PREDICATE_TYPE

    home = Home(ctx.home).require()
    from_env = click_ctx.get_parameter_source("registry") is ParameterSource.ENVIRONMENT
    place = configured(home, registry, source=REGISTRY_ENV if from_env else "--registry")
    credentials = access.credentials()  # a bad pair of options is refused before the queue
    url = database_url()
    options = WorkerOptions(
        queue=queue,
        burst=burst,
        attempts=attempts,
        backoff=backoff,
        heartbeat=heartbeat,
        stalled_after=stalled_after,
    ).check()
    images = None
    extra: list[str] = []
    if place is not None:
        images = RegistryImages(
            place,
            credentials=credentials,
            plain_http=access.plain_http,
            ca_bundle=access.ca_bundle,
            skip_predicates=(PREDICATE_TYPE,),  # the gate's inputs leave verdicts out
        )
        extra += ["--registry", str(place), *access.argv()]
    if concurrency == 1:
        click_ctx.exit(run(home, url, options, debug=ctx.debug, images=images))
    argv = worker_argv(home, options, debug=ctx.debug, extra=extra)
    click_ctx.exit(run_many(argv, concurrency))


@click.group("queue")
def queue_group() -> None:
    """The job queue of the workers (STELLA_DATABASE_URL)."""


def _status_text(report: QueueStatus) -> str:
    counts = ", ".join(f"{n} {s}" for s, n in report.counts.items()) or "no jobs"
    lines = [
        f"queue {report.queue} (schema {report.schema}): {counts}; {report.workers} live workers"
    ]
    for job in report.running:
        lines.append(
            f"running  {job.id:>6} {job.kind:<9} {job.image}  on {job.worker} since "
            f"{job.started} (attempt {job.attempts + 1})"
        )
    for job in report.waiting:
        retry = f"; its last attempt failed: {job.error}" if job.error else ""
        lines.append(
            f"waiting  {job.id:>6} {job.kind:<9} {job.image}  from {job.scheduled or 'now'}{retry}"
        )
    for job in report.failed:
        lines.append(
            f"failed   {job.id:>6} {job.kind:<9} {job.image}  after {job.attempts} "
            f"attempts: {job.error or 'no reason recorded'}"
        )
    return "\n".join(lines)


@queue_group.command("status")
@click.option("--queue", default=DEFAULT_QUEUE, show_default=True, help="Queue to list.")
@pass_ctx
def queue_status_cmd(ctx: CliContext, queue: str) -> None:
    """Jobs per status; the running, waiting and failed jobs (with why they failed), of the
    queue of the tenant this command acts for."""
    require_extra()
    from appliance.fleet.queue import database_url, status

    report = status(database_url(), Home(ctx.home).queue_schema, queue)
    ctx.emit(report.to_dict(), lambda: _status_text(report))


@queue_group.command("add")
@click.argument("images", nargs=-1, required=True, metavar="IMAGE...")
@click.option("--queue", default=DEFAULT_QUEUE, show_default=True, help="Queue to add to.")
@pass_ctx
@click.pass_context
def queue_add_cmd(
    click_ctx: click.Context, ctx: CliContext, images: tuple[str, ...], queue: str
) -> None:
    """Enqueue the first scan and gate of stored images (one job per image)."""
    require_extra()
    from appliance.fleet.queue import database_url, enqueue_scans

    home = Home(ctx.home).require()
    out = enqueue_scans(home, database_url(), images, at=datetime.now(UTC), queue=queue)
    ctx.emit(
        {"queue": queue, "schema": home.queue_schema, "images": [i.to_dict() for i in out]},
        "\n".join(
            f"{i.outcome:<8} {i.image}  {i.digest or ''}"
            + (f"  job {i.job}" if i.job is not None else f": {i.reason}")
            for i in out
        ),
    )
    click_ctx.exit(1 if any(i.outcome == "failed" for i in out) else 0)
