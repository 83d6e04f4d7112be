"""``stella-mirror sync`` and ``stella-mirror snapshot build|list|show|diff``.

Commands only parse arguments, call :mod:`mirror.sync` / :mod:`mirror.snapshot` and report
through ``ctx.emit`` so ``--json`` works; failures are :class:`~bundles.errors.StellaError`.
"""

from __future__ import annotations

from pathlib import Path

import click

from bundles.clikit import CliContext, pass_ctx
from mirror.config import load_config
from mirror.errors import MirrorConfigError, SyncError
from mirror.snapshot import DatasetChange, Manifest, SnapshotDiff, diff_snapshots
from mirror.sync import SyncOutcome, SyncStatus, build_snapshot, sync
from mirror.workspace import Workspace

CONFIG_NAME = "mirror.toml"


def workspace_of(ctx: CliContext) -> Workspace:
    return Workspace(ctx.home / "mirror")


def _config_path(ctx: CliContext, given: Path | None) -> Path:
    if given is not None:
        return given.absolute()
    here = Path.cwd() / CONFIG_NAME
    if here.is_file():
        return here
    home = ctx.home / "mirror" / CONFIG_NAME
    if home.is_file():
        return home
    raise MirrorConfigError(
        f"no {CONFIG_NAME} in {Path.cwd()} or {home.parent}",
        hint="pass --config FILE (see examples/mirror.toml)",
    )


@click.command("sync")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help=f"Source list [default: ./{CONFIG_NAME}, else HOME/mirror/{CONFIG_NAME}].",
)
@click.option("--source", "names", multiple=True, metavar="NAME", help="Sync only these sources.")
@pass_ctx
def sync_cmd(ctx: CliContext, config_path: Path | None, names: tuple[str, ...]) -> None:
    """Fetch every configured source (HTTP(S) URL or local path) into the workspace."""
    config = load_config(_config_path(ctx, config_path))
    outcomes = sync(config, workspace_of(ctx), names=names)
    failed = [o for o in outcomes if o.status is SyncStatus.FAILED]
    ctx.emit(
        {"sources": [o.to_json() for o in outcomes], "failed": len(failed)},
        lambda: _sync_text(outcomes),
    )
    if failed:
        raise SyncError(
            f"{len(failed)} of {len(outcomes)} sources failed: "
            + ", ".join(f"{o.name} ({o.failure})" for o in failed),
            hint="their last good data is kept and the next snapshot records the failure",
        )


def _sync_text(outcomes: list[SyncOutcome]) -> str:
    lines = []
    for o in outcomes:
        if o.status is SyncStatus.FAILED:
            lines.append(f"{o.name:24} failed     {o.error}")
        else:
            lines.append(
                f"{o.name:24} {o.status.value:10} {o.records} records, {o.unknowns} unknowns"
            )
    return "\n".join(lines)


@click.group("snapshot")
def snapshot_group() -> None:
    """Build, list, show and compare knowledge snapshots."""


@snapshot_group.command("build")
@pass_ctx
def snapshot_build(ctx: CliContext) -> None:
    """Build the snapshot of the last synced data (content-addressed; idempotent)."""
    result = build_snapshot(workspace_of(ctx))
    m = result.manifest
    ctx.emit(
        {
            "digest": str(result.digest),
            "datasets": len(m.datasets),
            "records": sum(d.records for d in m.datasets),
            "unknowns": m.unknowns,
            "sources": [{"name": s.name, "status": s.status.value} for s in m.sources],
        },
        lambda: f"{result.digest}\n{_manifest_text(m)}",
    )


@snapshot_group.command("list")
@pass_ctx
def snapshot_list(ctx: CliContext) -> None:
    """List snapshots, oldest first."""
    snaps = workspace_of(ctx).store.list()
    ctx.emit(
        {"snapshots": [{"digest": str(s.digest), "built_at": s.built_at} for s in snaps]},
        "\n".join(f"{s.built_at}  {s.digest}" for s in snaps) or "no snapshots",
    )


@snapshot_group.command("show")
@click.argument("ref")
@pass_ctx
def snapshot_show(ctx: CliContext, ref: str) -> None:
    """Show a snapshot's manifest (REF: digest, unique prefix or 'latest')."""
    store = workspace_of(ctx).store
    digest = store.resolve(ref)
    m = store.manifest(digest)
    ctx.emit(
        {"digest": str(digest), "manifest": m.to_json(), "provenance": store.provenance(digest)},
        lambda: f"{digest}\n{_manifest_text(m)}",
    )


def _manifest_text(m: Manifest) -> str:
    lines = []
    datasets = {d.name: d for d in m.datasets}
    for s in m.sources:
        d = datasets.get(s.name)
        counts = f"{d.records:>8} records  {d.digest.short()}" if d else f"{'-':>8}"
        note = f"  ({s.failure})" if s.failure else ""
        lines.append(f"{s.name:24} {s.status.value:7} {counts}  {len(s.unknowns)} unknowns{note}")
    return "\n".join(lines)


@snapshot_group.command("diff")
@click.argument("base")
@click.argument("target")
@pass_ctx
def snapshot_diff(ctx: CliContext, base: str, target: str) -> None:
    """Records added, changed and removed per dataset from BASE to TARGET."""
    store = workspace_of(ctx).store
    result = diff_snapshots(store, store.resolve(base), store.resolve(target))
    ctx.emit(result.to_json(), lambda: _diff_text(result))


def _diff_text(diff: SnapshotDiff, shown: int = 10) -> str:
    lines = [f"{diff.base.short()} -> {diff.target.short()}"]
    for d in diff.datasets:
        if d.change is DatasetChange.UNCHANGED:
            lines.append(f"{d.name:24} unchanged")
            continue
        lines.append(
            f"{d.name:24} {d.change.value:9} +{len(d.added)} ~{len(d.changed)} -{len(d.removed)}"
        )
        for sign, ids in (("+", d.added), ("~", d.changed), ("-", d.removed)):
            lines.extend(f"    {sign} {i}" for i in ids[:shown])
            if len(ids) > shown:
                lines.append(f"    {sign} … {len(ids) - shown} more")
    return "\n".join(lines)
