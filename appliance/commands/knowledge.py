"""``stella import`` and ``stella snapshot list|show|prune|activate``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click

from appliance.home import Home
from appliance.intake.importer import Importer
from appliance.intake.inbox import ImportLock
from appliance.rescan import mark_activated
from appliance.store import open_knowledge, record_decision
from appliance.store.audit import AuditAction
from appliance.store.knowledge import DEFAULT_RETENTION_DAYS, SnapshotRow, prune
from bundles import rfc3339
from bundles.bundle import format_time
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError


@click.command("import")
@click.argument(
    "files", nargs=-1, required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path)
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Verify the bundle (signature, trust, every member), change nothing; upstream image "
    "signatures are not checked.",
)
@pass_ctx
def import_cmd(ctx: CliContext, files: tuple[Path, ...], dry_run: bool) -> None:
    """Verify a bundle (or every part of a split bundle, in any order) against the trust root
    and load it; the snapshot it carries becomes active. A refused bundle leaves everything as
    it was and goes to quarantine/."""
    bundle = files[0]
    home = Home(ctx.home).require()
    # One import at a time, whoever starts it (this command, the inbox service, the TUI).
    with ImportLock(home).hold(wait=True, on_wait=lambda: ctx.info("waiting for another import")):
        result = Importer(home).run(list(files), now=datetime.now(UTC), dry_run=dry_run)
    verb = "verified (dry run, nothing changed)" if dry_run else "imported"
    ctx.emit(
        {
            "bundle": str(result.bundle),
            "source": result.source,
            "size": result.size,
            "kind": str(result.kind),
            "sequence": result.sequence,
            "channel": result.channel,
            "snapshot": str(result.snapshot) if result.snapshot else None,
            "base": str(result.base) if result.base else None,
            "datasetsLoaded": result.datasets_loaded,
            "datasetsPatched": result.datasets_patched,
            "datasetsReused": result.datasets_reused,
            "trustRotatedTo": result.trust_rotated_to,
            "dryRun": result.dry_run,
            "counts": result.counts,
            "signedBy": list(result.keyids),
            "images": result.images,
            "blobsStored": result.blobs_stored,
            # None: not checked (a dry run does not store the image blobs they need)
            "upstreamSignatures": None
            if dry_run
            else [v.to_dict() for v in result.upstream_signatures],
        },
        lambda: "\n".join(
            [
                f"{bundle.name}: {verb} — {result.kind} bundle, sequence {result.sequence}, "
                f"channel {result.channel}",
                f"snapshot {result.snapshot} now active"
                if not dry_run
                else f"snapshot {result.snapshot}",
                f"datasets: {len(result.datasets_loaded)} loaded, {len(result.datasets_patched)} "
                f"patched, {result.datasets_reused} unchanged",
            ]
            + (
                [f"trust root rotated to v{result.trust_rotated_to}"]
                if result.trust_rotated_to
                else []
            )
            + [
                f"image {v.reference}: upstream signatures {v.summary} "
                f"({len(v.signatures)} found, {len(v.rules)} rule(s) apply)"
                for v in result.upstream_signatures
            ]
            + (["upstream signatures: not checked in a dry run"] if dry_run else [])
        ),
    )


@click.group("snapshot")
def snapshot_group() -> None:
    """Knowledge snapshots imported on this appliance."""


def _age(created: str, now: datetime) -> str:
    days = (now - rfc3339.parse_time(created, where="snapshot created")).days
    return f"{days}d"


def _row(s: SnapshotRow, now: datetime) -> dict[str, object]:
    return {
        "digest": str(s.digest),
        "sequence": s.sequence,
        "channel": s.channel,
        "kind": s.kind,
        "base": str(s.base) if s.base else None,
        "bundle": str(s.bundle),
        "created": s.created,
        "imported": s.imported,
        "ageDays": (now - rfc3339.parse_time(s.created, where="snapshot created")).days,
        "active": s.active,
    }


@snapshot_group.command("list")
@pass_ctx
def snapshot_list_cmd(ctx: CliContext) -> None:
    """Every imported snapshot, oldest first; * marks the active one."""
    store = open_knowledge(Home(ctx.home))
    now = datetime.now(UTC)
    try:
        rows = store.snapshots()
    finally:
        store.close()
    ctx.emit(
        {"snapshots": [_row(s, now) for s in rows]},
        lambda: (
            "\n".join(
                f"{'*' if s.active else ' '} {s.digest.short()}  seq {s.sequence:<5} {s.kind:<5} "
                f"{s.channel:<12} created {s.created} ({_age(s.created, now)} old)"
                for s in rows
            )
            or "no snapshot imported yet"
        ),
    )


def _resolve(rows: Sequence[SnapshotRow], ref: str, *, refused: str = "") -> SnapshotRow:
    """The one snapshot ``ref`` names: ``active``, a digest, or a unique prefix of one (case
    does not matter; ``sha256:`` is optional; an empty prefix names nothing). ``refused`` is
    added to the message when it names none or several."""
    if ref == "active":
        matches = [s for s in rows if s.active]
    else:
        prefix = ref.lower().removeprefix("sha256:")
        matches = [s for s in rows if s.digest.hex.startswith(prefix)] if prefix else []
    if len(matches) != 1:
        what = "several snapshots match" if matches else "no snapshot matches"
        raise UsageError(
            f"{what} {ref!r}{refused}",
            hint="give a digest or a unique prefix from 'stella snapshot list'",
        )
    return matches[0]


@snapshot_group.command("show")
@click.argument("ref", default="active")
@pass_ctx
def snapshot_show_cmd(ctx: CliContext, ref: str) -> None:
    """One snapshot (digest, unique prefix, or 'active'): datasets and counts."""
    store = open_knowledge(Home(ctx.home))
    now = datetime.now(UTC)
    try:
        snap = _resolve(store.snapshots(), ref)
        manifest = store.manifest(snap.digest)
        counts = store.counts(snap.digest)
    finally:
        store.close()
    datasets = [
        {"name": d.name, "type": str(d.type), "records": d.records, "digest": str(d.digest)}
        for d in manifest.datasets
    ]
    stale = [s.name for s in manifest.sources if s.status != "ok"]
    ctx.emit(
        {
            **_row(snap, now),
            "datasets": datasets,
            "counts": counts,
            "unknowns": manifest.unknowns,
            "staleSources": stale,
        },
        lambda: "\n".join(
            [
                f"snapshot {snap.digest}{'  (active)' if snap.active else ''}",
                f"sequence {snap.sequence}, channel {snap.channel}, "
                f"{snap.kind} bundle {snap.bundle.short()}",
                f"created {snap.created} ({_age(snap.created, now)} old), imported {snap.imported}",
                f"unknowns {manifest.unknowns}; stale sources: {', '.join(stale) or 'none'}",
            ]
            + [f"  {d['name']:<24} {d['type']:<8} {d['records']:>8} records" for d in datasets]
        ),
    )


@snapshot_group.command("prune")
@click.option(
    "--older-than",
    "days",
    type=click.IntRange(0),
    default=DEFAULT_RETENTION_DAYS,
    show_default=True,
    help="Forget snapshots imported more than this many days ago.",
)
@pass_ctx
def snapshot_prune_cmd(ctx: CliContext, days: int) -> None:
    """Forget old snapshots (never the active one) and the data only they used."""
    home = Home(ctx.home).require()
    now = datetime.now(UTC)
    store = open_knowledge(home)
    try:
        result = prune(store, before=format_time(now - timedelta(days=days)))
    finally:
        store.close()
    if result.snapshots:
        record_decision(
            home,
            AuditAction.SNAPSHOT_PRUNE,
            f"{len(result.snapshots)} snapshots",
            command="snapshot prune",
            time=now,
            inputs={"olderThanDays": days},
            result={"snapshots": [str(d) for d in result.snapshots], "datasets": result.datasets},
        )
    ctx.emit(
        {
            "pruned": [str(d) for d in result.snapshots],
            "datasets": result.datasets,
            "records": result.records,
        },
        f"pruned {len(result.snapshots)} snapshots, {result.datasets} datasets, "
        f"{result.records} records (kept: the active snapshot and anything newer than {days} days)",
    )


@snapshot_group.command("activate")
@click.argument("ref")
@pass_ctx
def snapshot_activate_cmd(ctx: CliContext, ref: str) -> None:
    """Make an imported snapshot (digest or unique prefix) active again: the knowledge
    rollback after a bad snapshot. The channel's last sequence stays as it is, so newer
    bundles still import and the bad one cannot be imported again. Audited."""
    home = Home(ctx.home).require()
    now = datetime.now(UTC)
    # Not while an import runs: it activates its own snapshot in its own transaction.
    with ImportLock(home).hold(wait=True, on_wait=lambda: ctx.info("waiting for an import")):
        store = open_knowledge(home)
        try:
            with store.db.transaction("activate snapshot"):
                snap = _resolve(store.snapshots(), ref, refused="; nothing was changed")
                previous = store.active()
                last = store.last_sequence(snap.channel)
                kept = last if last is not None else snap.sequence
                if not snap.active:
                    store.activate(snap.digest, snap.channel, kept)
        finally:
            store.close()
    if not snap.active:
        record_decision(
            home,
            AuditAction.SNAPSHOT_ACTIVATE,
            str(snap.digest),
            command="snapshot activate",
            time=now,
            inputs={"ref": ref, "previous": str(previous) if previous else None},
            result={
                "active": str(snap.digest),
                "channel": snap.channel,
                "sequence": snap.sequence,
                "lastSequence": kept,
            },
        )
        mark_activated(home, snap.digest, now)
    ctx.emit(
        {
            "active": str(snap.digest),
            "previous": str(previous) if previous else None,
            "changed": not snap.active,
            "channel": snap.channel,
            "sequence": snap.sequence,
            "lastSequence": kept,
        },
        (
            f"snapshot {snap.digest} is already active; nothing changed"
            if snap.active
            else f"snapshot {snap.digest} (sequence {snap.sequence}) now active, replacing "
            f"{previous.short() if previous else 'none'}; channel {snap.channel} keeps its last "
            f"sequence {kept}\nnext: 'stella rescan' re-gates every image against it"
        ),
    )
