"""``stella scan IMAGE``: packages with their evidence and entry trace, and -- when a knowledge
snapshot is active -- the vulnerabilities they have, with the VEX merge applied exactly as
``stella gate`` applies it (operators' and imported statements, and the snapshot's vendor
statements, judged at ``--at``; ``--no-vex`` shows the raw matches), in the format asked for.

Every format is a renderer of :mod:`appliance.report` reading one input (docs/scanning.md):
``table`` (findings, waived ones hidden unless ``--show-suppressed``; packages when no
snapshot is imported), ``packages``, ``json``, ``cyclonedx`` (the SBOM), ``cyclonedx-vex``,
``sarif``, ``openvex`` and ``spdx``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import click

from appliance.commands.bounds import scan_bound_options
from appliance.home import Home
from appliance.report import RENDERERS, FindingsView, Format, RenderError, ReportInput
from appliance.rva.gate import read_snapshot
from appliance.scanner.jobs import ScanBounds, scan_bounded
from appliance.scanner.result import ScanResult
from appliance.store import has_knowledge, open_knowledge
from appliance.vex.merge import merge
from appliance.vex.model import VexError, parse_time
from appliance.vex.products import ImageIdentity
from appliance.vex.service import stored_statements
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError


def image_identity(result: ScanResult) -> ImageIdentity:
    """What a VEX statement may call the scanned image (as the gate names it)."""
    digests = [str(d) for d in (result.manifest_digest, result.index_digest) if d is not None]
    if not digests:
        return ImageIdentity(frozenset())
    return ImageIdentity.of(
        digests[0], index_digest=digests[1] if len(digests) > 1 else None, names=(result.name,)
    )


def findings_view(
    home: Home, result: ScanResult, at: datetime, *, vex: bool = True
) -> FindingsView | None:
    """The scan matched against the active snapshot, with the VEX statement deciding each
    finding at ``at`` as the gate merges them (operators' and imported statements, and the
    snapshot's vendor statements); None when there is no knowledge yet."""
    if not home.initialized or not has_knowledge(home):
        return None
    store = open_knowledge(home)
    try:
        reading = read_snapshot(store, result)
    finally:
        store.close()
    if reading is None:
        return None
    if not vex:
        return FindingsView.raw(reading.report)
    statements = [*stored_statements(home), *reading.vendor]
    merged = merge(reading.report.findings, statements, image_identity(result), at)
    return FindingsView.merged(reading.report, merged, at)


@click.command("scan")
@click.argument("image")
@click.option(
    "--format",
    "fmt",
    type=click.Choice([f.value for f in Format]),
    default="table",
    show_default=True,
    help="; ".join(f"{f.value}: {RENDERERS[f].help}" for f in Format) + ".",
)
@click.option(
    "--at",
    "at_text",
    default=None,
    metavar="TIME",
    help="RFC 3339 time the VEX statements are judged at and the openvex and spdx documents "
    "are dated (default: now).",
)
@click.option("--no-vex", is_flag=True, help="Show the raw matches: apply no VEX statement.")
@click.option(
    "--show-suppressed",
    is_flag=True,
    help="List the findings VEX waives (not_affected, fixed) in the table too.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the output to FILE instead of stdout.",
)
@click.option("--platform", default=None, help="OS/ARCH[/VARIANT] of a multi-platform image.")
@click.option("--no-cache", is_flag=True, help="Walk every layer, ignoring cached results.")
@scan_bound_options
@pass_ctx
def scan_cmd(
    ctx: CliContext,
    image: str,
    fmt: str,
    out: Path | None,
    platform: str | None,
    no_cache: bool,
    at_text: str | None,
    no_vex: bool,
    show_suppressed: bool,
    scan_bounds: Callable[[Home], ScanBounds],
) -> None:
    """Find the packages in IMAGE (NAME:TAG, NAME@sha256:..., oci:DIR[:TAG],
    docker-archive:FILE or dir:ROOTFS), offline, with where each came from, and their
    vulnerabilities after VEX. The layers are read in a child process within the scan's
    bounds (docs/scale-out.md); a scan that passes one stops with an error naming it."""
    home = Home(ctx.home)
    try:
        at = parse_time(at_text, where="--at") if at_text else datetime.now(UTC)
    except VexError as e:
        raise UsageError(e.message, hint=e.hint) from e
    at = at.astimezone(UTC).replace(microsecond=0)
    format_ = Format(fmt)
    render = RENDERERS[format_]
    result = scan_bounded(
        home, image, platform=platform, cache=not no_cache, bounds=scan_bounds(home)
    )
    wants = format_ not in (Format.PACKAGES, Format.CYCLONEDX)
    view = findings_view(home, result, at, vex=not no_vex) if wants else None
    try:
        data = render.render(
            ReportInput(scan=result, view=view, created=at, show_suppressed=show_suppressed)
        )
    except RenderError as e:
        raise UsageError(e.message, hint=e.hint) from e
    if out is not None:
        out.write_bytes(data)
    if ctx.json:
        summary = result.summary()
        summary["format"] = fmt
        summary["findings"] = view.report.counts() if view is not None else None
        summary["vex"] = (
            {
                "applied": view.vex,
                "statuses": view.status_counts(),
                "suppressed": len(view.suppressed),
                "expired": len(view.expired),
            }
            if view is not None
            else None
        )
        summary["out"] = str(out) if out is not None else None
        ctx.emit(summary)
        return
    if out is None:
        click.echo(data.decode(), nl=format_ is not Format.TABLE)
    else:
        ctx.info(f"{fmt} written to {out} ({len(result.packages)} packages)")
