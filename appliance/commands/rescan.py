"""``stella rescan [--at TIME] [--image IMAGE...] [--all] [--queue [NAME]] [--jobs N]``: gate again
the images whose verdict the knowledge, policy or exceptions may have changed since their last
gate; ``--all`` gates every image, ``--image`` the named ones (appliance/rescan.py); ``--queue``
enqueues them for ``stella worker`` instead of gating them here (appliance/fleet); ``--jobs``
sets how many worker processes decide the images (appliance/rva/pool.py).

Exit codes: 0 when every image was gated, whatever the verdicts (they are recorded: FAIL is
a result, not an error); 1 when any image could not be gated (each is named with its reason).
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from appliance.home import Home
from appliance.rescan import MIN_IMAGES, ImageOutcome, Outcome, RescanReport, rescan
from appliance.vex.model import VexError, parse_time
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError


def _line(item: ImageOutcome) -> str:
    if item.outcome is Outcome.GATED:
        was = f"  (was {item.previous})" if item.changed else ""
        return f"{item.verdict:<21} {item.image}  {item.digest}{was}"
    if item.outcome is Outcome.SKIPPED:
        return f"{'kept ' + str(item.verdict):<21} {item.image}: {item.reason}"
    return f"{'NOT GATED':<21} {item.image}: {item.error}"


def _text(report: RescanReport) -> str:
    verdicts = ", ".join(f"{n} {v}" for v, n in report.verdicts.items()) or "no verdicts"
    snapshot = report.snapshot.short() if report.snapshot else "none active"
    lines = [_line(i) for i in report.images] or ["no images in the local store"]
    attempted = len(report.gated) + len(report.failed)
    lines.append(
        f"rescanned {attempted} images at {report.evaluation_time} against snapshot "
        f"{snapshot}: {verdicts}; {len(report.failed)} could not be gated"
    )
    lines.append(
        f"{'full' if report.full else 'incremental'}: {len(report.gated)} re-gated, "
        f"{len(report.skipped)} skipped, {len(report.changed)} changed verdict"
    )
    return "\n".join(lines)


@click.command("rescan")
@click.option("--at", "at_text", help="Evaluation time (RFC 3339); default now, recorded.")
@click.option(
    "--image",
    "images",
    multiple=True,
    metavar="IMAGE",
    help="Gate only this image (repeatable); default every image in the local store.",
)
@click.option(
    "--all",
    "full",
    is_flag=True,
    help="Gate every image, not only those a change since their last gate can affect.",
)
@click.option(
    "--queue",
    is_flag=False,
    flag_value="stella",
    default=None,
    metavar="[NAME]",
    help="Enqueue the images to gate for 'stella worker' (queue NAME, default 'stella'; "
    "STELLA_DATABASE_URL) instead of gating them here.",
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Worker processes deciding the images while this one signs and records them "
    f"(default: one per CPU when {MIN_IMAGES} or more are to be gated; 1: all in this process).",
)
@pass_ctx
@click.pass_context
def rescan_cmd(
    click_ctx: click.Context,
    ctx: CliContext,
    at_text: str | None,
    images: tuple[str, ...],
    full: bool,
    queue: str | None,
    jobs: int | None,
) -> None:
    """Gate again the images a new snapshot, policy or expired exception can affect."""
    home = Home(ctx.home).require()
    try:
        at = parse_time(at_text, where="--at") if at_text else datetime.now(UTC)
    except VexError as e:
        raise UsageError(e.message, hint=e.hint) from e
    if jobs is not None and queue is not None:
        raise UsageError(
            "--jobs and --queue: queued images are decided by 'stella worker'",
            hint="give the workers' concurrency to 'stella worker --concurrency N'",
        )
    if queue is not None:
        from appliance.fleet import require_extra

        require_extra()
        from appliance.fleet.queue import QueuedRescan, database_url, enqueue_rescan

        queued: QueuedRescan = enqueue_rescan(
            home, database_url(), at=at, images=images, full=full, queue=queue
        )
        lines = [f"{i.outcome:<8} {i.image}: {i.reason}" for i in queued.images]
        lines.append(
            f"{queued.to_dict()['mode']}: {queued.count('queued')} queued, "
            f"{queued.count('pending')} already waiting, {queued.count('skipped')} skipped, "
            f"{queued.count('failed')} not found; queue {queue} (schema {queued.schema})"
        )
        ctx.emit(queued.to_dict(), "\n".join(lines))
        click_ctx.exit(queued.exit_code)
    report = rescan(home, at=at, images=images, full=full, jobs=jobs)
    ctx.emit(report.to_dict(), _text(report))
    click_ctx.exit(report.exit_code)
