"""``stella scan IMAGE``: packages with their evidence and entry trace, and -- when a knowledge
snapshot is active -- the vulnerabilities they have, in the format asked for.

Formats: ``table`` (findings, or packages when no snapshot is imported), ``packages`` (the
package table), ``json`` (inventory, unknowns, entry trace and findings), ``cyclonedx`` (the
CycloneDX 1.6 SBOM), ``cyclonedx-vex`` (CycloneDX vulnerabilities), ``sarif`` (SARIF 2.1.0),
``spdx`` (SPDX 3.0.1: packages, and with a snapshot the vulnerabilities and the VEX assessment
deciding each, as of ``--at``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click

from appliance.home import Home
from appliance.match.model import FindingsReport
from appliance.match.service import inventory_of, match_inventory
from appliance.report import Format, render
from appliance.report.spdx import render_spdx
from appliance.rva.gate import read_snapshot
from appliance.scanner.result import ScanResult
from appliance.scanner.service import scan_image
from appliance.store.knowledge import KnowledgeStore
from appliance.vex.merge import MergedFinding, merge
from appliance.vex.model import parse_time
from appliance.vex.products import ImageIdentity
from appliance.vex.service import stored_statements
from bundles import canonical
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError


def _table(result: ScanResult) -> str:
    rows = [("TYPE", "NAME", "VERSION", "LAYER", "PATH")]
    for found in result.packages:
        evidence = found.evidence[0] if found.evidence else None
        layer = "-"
        if evidence is not None and evidence.layer_digest is not None:
            layer = f"{evidence.layer_index}:{evidence.layer_digest.hex[:12]}"
        rows.append(
            (
                found.package.type.value,
                found.package.name,
                found.package.full_version,
                layer,
                "/" + evidence.path if evidence else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:4])) + "  " + row[4]
        for row in rows
    ]
    digest = result.manifest_digest or result.config_digest
    head = f"{result.ref}" + (f" {digest}" if digest else "")
    if result.platform:
        head += f" {result.platform}"
    others = [p for p in result.platforms if p != result.platform]
    tail = [
        f"{len(result.packages)} packages, {len(result.unknowns)} unknowns, "
        f"{len(result.entry_trace.reachable)} reachable from the entrypoint"
    ]
    if others:
        tail.append(f"other platforms: {', '.join(others)} (choose with --platform)")
    tail += [f"unknown: /{u.path}: {u.reason}" for u in result.unknowns]
    return "\n".join([head, *lines, *tail])


def _findings(home: Home, result: ScanResult) -> FindingsReport | None:
    """Match the scan against the active snapshot; None when there is no knowledge yet."""
    if not home.initialized or not home.knowledge_db.exists():
        return None
    store = KnowledgeStore.open(home.knowledge_db)
    try:
        if store.active() is None:
            return None
        return match_inventory(store, inventory_of(result))
    finally:
        store.close()


def _with_vex(home: Home, result: ScanResult, at: datetime) -> tuple[MergedFinding, ...] | None:
    """The findings with the VEX statement deciding each at ``at``, as the gate merges them
    (operators' statements and the snapshot's vendor statements); None without a snapshot."""
    if not home.initialized or not home.knowledge_db.exists():
        return None
    store = KnowledgeStore.open(home.knowledge_db)
    try:
        reading = read_snapshot(store, result)
    finally:
        store.close()
    if reading is None:
        return None
    digests = [str(d) for d in (result.manifest_digest, result.index_digest) if d is not None]
    image = (
        ImageIdentity.of(
            digests[0], index_digest=digests[1] if len(digests) > 1 else None, names=(result.name,)
        )
        if digests
        else ImageIdentity(frozenset())
    )
    statements = [*stored_statements(home), *reading.vendor]
    return merge(reading.report.findings, statements, image, at).findings


@click.command("scan")
@click.argument("image")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "packages", "json", "cyclonedx", "cyclonedx-vex", "sarif", "spdx"]),
    default="table",
    show_default=True,
    help="table: findings (packages without a snapshot); packages; json: inventory and findings; "
    "cyclonedx: SBOM; cyclonedx-vex: vulnerabilities; sarif: SARIF 2.1.0; spdx: SPDX 3.0.1 "
    "with vulnerabilities and VEX.",
)
@click.option(
    "--at",
    "at_text",
    default=None,
    metavar="TIME",
    help="RFC 3339 time the VEX statements are judged at and the SPDX document is dated "
    "(--format spdx; default: now).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the output to FILE instead of stdout.",
)
@click.option("--platform", default=None, help="OS/ARCH[/VARIANT] of a multi-platform image.")
@click.option("--no-cache", is_flag=True, help="Walk every layer, ignoring cached results.")
@pass_ctx
def scan_cmd(
    ctx: CliContext,
    image: str,
    fmt: str,
    out: Path | None,
    platform: str | None,
    no_cache: bool,
    at_text: str | None,
) -> None:
    """Find the packages in IMAGE (NAME:TAG, NAME@sha256:..., oci:DIR[:TAG],
    docker-archive:FILE or dir:ROOTFS), offline, with where each came from."""
    home = Home(ctx.home)
    result = scan_image(home, image, platform=platform, cache=not no_cache)
    needs_findings = fmt in ("table", "json", "cyclonedx-vex", "sarif")
    report = _findings(home, result) if needs_findings else None
    if fmt in ("cyclonedx-vex", "sarif") and report is None:
        raise UsageError(
            f"--format {fmt} reports vulnerabilities, and no knowledge snapshot is imported",
            hint="import a knowledge bundle with 'stella import' first",
        )
    if at_text is not None and fmt != "spdx":
        raise UsageError(
            "--at applies to --format spdx only", hint="drop --at, or add --format spdx"
        )
    if fmt == "spdx":
        at = parse_time(at_text, where="--at") if at_text else datetime.now(UTC)
        at = at.astimezone(UTC).replace(microsecond=0)
        data = render_spdx(result, _with_vex(home, result, at), created=at)
    elif fmt == "cyclonedx":
        data = result.sbom_bytes()
    elif fmt == "json":
        doc = dict(result.inventory())
        doc["findings"] = json.loads(render(report, Format.JSON)) if report else None
        data = canonical.dumps(doc)
    elif fmt == "sarif" and report is not None:
        data = render(report, Format.SARIF)
    elif fmt == "cyclonedx-vex" and report is not None:
        data = render(report, Format.CYCLONEDX)
    elif fmt == "table" and report is not None:
        data = render(report, Format.TABLE)
    else:
        note = "" if fmt == "packages" else "no knowledge snapshot imported: packages only\n"
        data = (_table(result) + "\n" + note).encode()
    if out is not None:
        out.write_bytes(data)
    if ctx.json:
        summary = result.summary()
        summary["format"] = fmt
        summary["findings"] = report.counts() if report is not None else None
        summary["out"] = str(out) if out is not None else None
        ctx.emit(summary)
        return
    if out is None:
        click.echo(data.decode(), nl=fmt != "table")
    else:
        ctx.info(f"{fmt} written to {out} ({len(result.packages)} packages)")
