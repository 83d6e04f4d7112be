"""Running the appliance unattended: ``stella inbox process|status`` and ``stella doctor``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import click

from appliance.doctor import DEFAULT_MIN_FREE, Diagnosis, Doctor, Limits, Status
from appliance.home import Home
from appliance.intake.inbox import (
    DEFAULT_SETTLE,
    ImportLock,
    InboxProcessor,
    InboxReport,
    InboxScan,
    scan_inbox,
    unreadable_text,
)
from bundles.clikit import EXIT_ERROR, CliContext, pass_ctx

_SIZE = re.compile(r"(\d+)\s*([KMGTP]?)(?:i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}


class ByteSize(click.ParamType):  # type: ignore[type-arg]
    """``1G``, ``500M``, ``2GiB``, ``1073741824``: binary units."""

    name = "SIZE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        m = _SIZE.fullmatch(str(value).strip())
        if m is None:
            self.fail(f"{value!r} is not a size; write e.g. 1G, 500M or 2GiB", param, ctx)
        return int(m.group(1)) * _UNITS[m.group(2).upper()]


@click.group("inbox")
def inbox_group() -> None:
    """Bundles dropped into the home's inbox/, imported unattended (stella-inbox.path)."""


def _process_text(report: InboxReport) -> str:
    if report.busy:
        return "another import is running; it will take what the inbox holds"
    lines = [
        f"imported {i.bundle.name}: sequence {i.sequence}, channel {i.channel}, snapshot "
        f"{i.snapshot} (files {i.disposal})"
        for i in report.imported
    ]
    lines += [
        f"refused {r.bundle.name}: {r.reason}"
        + (f" (quarantined, reason in {r.quarantine})" if r.quarantine else "")
        for r in report.refused
    ]
    lines += [b.waiting_text().rstrip("\n") for b in report.waiting]
    if report.settling:
        lines.append("still being copied: " + ", ".join(p.name for p in report.settling))
    if report.other:
        lines.append("not bundles, left alone: " + ", ".join(p.name for p in report.other))
    lines += [unreadable_text(p) for p in report.unreadable]
    return "\n".join(lines) or "inbox empty: nothing to import"


@inbox_group.command("process")
@click.option(
    "--wait-complete",
    is_flag=True,
    help="Wait for files still being copied and import them in this run, instead of leaving "
    "them for the next one.",
)
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=DEFAULT_SETTLE,
    show_default=True,
    metavar="SECONDS",
    help="A file changed less than this long ago is taken to be still being copied.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="When another import is running, exit 0 at once instead of waiting for it.",
)
@click.option(
    "--keep-imported",
    is_flag=True,
    help="Move imported bundles to imported/ instead of deleting them.",
)
@pass_ctx
def process_cmd(
    ctx: CliContext, wait_complete: bool, settle: float, no_wait: bool, keep_imported: bool
) -> None:
    """Import every complete bundle in the inbox, one at a time, in sequence order.

    Refused bundles go to quarantine/ with a reason file; incomplete sets of parts stay, with
    NAME.waiting naming the missing parts. Exits 1 when a bundle was refused."""
    processor = InboxProcessor(
        Home(ctx.home), settle=settle, keep_imported=keep_imported, report=ctx.info
    )
    report = processor.process(wait_complete=wait_complete, wait_lock=not no_wait)
    ctx.emit(report.to_dict(), lambda: _process_text(report))
    if report.refused:
        raise click.exceptions.Exit(EXIT_ERROR)


def _status_text(scan: InboxScan, busy: bool) -> str:
    lines = ["an import is running now"] if busy else []
    lines += [f"ready: {b.name}" for b in scan.ready]
    lines += [b.waiting_text().rstrip("\n") for b in scan.waiting]
    lines += [f"still being copied: {p.name}" for p in scan.settling]
    lines += [f"not a bundle, left alone: {p.name}" for p in scan.other]
    lines += [unreadable_text(p) for p in scan.unreadable]
    return "\n".join(lines) or "inbox empty"


@inbox_group.command("status")
@click.option(
    "--settle",
    type=click.FloatRange(min=0),
    default=DEFAULT_SETTLE,
    show_default=True,
    metavar="SECONDS",
    help="A file changed less than this long ago is taken to be still being copied.",
)
@pass_ctx
def status_cmd(ctx: CliContext, settle: float) -> None:
    """What the inbox holds: bundles ready to import, sets waiting for parts, files still
    being copied, and files that are not bundles. Changes nothing."""
    home = Home(ctx.home).require()
    scan = scan_inbox(home.inbox, now=datetime.now(UTC).timestamp(), settle=settle)
    busy = ImportLock(home).held_by_another()
    ctx.emit({**scan.to_dict(), "busy": busy}, lambda: _status_text(scan, busy))


def _doctor_text(diagnosis: Diagnosis) -> str:
    lines = []
    for c in diagnosis.checks:
        lines.append(f"{c.status.upper():<4}  {c.name:<12} {c.detail}")
        if c.fix:
            lines.append(f"      {'':<12} fix: {c.fix}")
    lines.append(f"overall: {diagnosis.status}")
    return "\n".join(lines)


@click.command("doctor")
@click.option("--full", is_flag=True, help="Re-hash every blob of the OCI store, not a sample.")
@click.option(
    "--min-free",
    type=ByteSize(),
    default=DEFAULT_MIN_FREE,
    show_default="1G",
    help="Warn when the home's file system has less free space (or less than twice the "
    "largest file in the inbox).",
)
@click.option(
    "--trust-warn-days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Warn when a trust root expires within this many days.",
)
@click.option(
    "--snapshot-warn-days",
    type=click.IntRange(min=0),
    default=7,
    show_default=True,
    help="Warn when the active knowledge snapshot is older.",
)
@click.option(
    "--snapshot-fail-days",
    type=click.IntRange(min=0),
    default=30,
    show_default=True,
    help="Fail when the active knowledge snapshot is older.",
)
@pass_ctx
def doctor_cmd(
    ctx: CliContext,
    full: bool,
    min_free: int,
    trust_warn_days: int,
    snapshot_warn_days: int,
    snapshot_fail_days: int,
) -> None:
    """Check the home (permissions, free disk, databases, OCI store, trust roots, snapshot
    age, audit chain, inbox) and say what to fix. Exits 1 when any check fails."""
    limits = Limits(
        min_free=min_free,
        trust_warn=timedelta(days=trust_warn_days),
        snapshot_warn=timedelta(days=snapshot_warn_days),
        snapshot_fail=timedelta(days=snapshot_fail_days),
        full_oci=full,
    )
    diagnosis = Doctor(Home(ctx.home), now=datetime.now(UTC), limits=limits).run()
    ctx.emit(diagnosis.to_dict(), lambda: _doctor_text(diagnosis))
    if diagnosis.status is Status.FAIL:
        raise click.exceptions.Exit(EXIT_ERROR)
