"""``stella scan IMAGE``: packages, their evidence and the entry trace, as a table, the JSON
inventory or a CycloneDX 1.6 SBOM."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.home import Home
from appliance.scanner.service import ScanResult, scan_image
from bundles import canonical
from bundles.clikit import CliContext, pass_ctx


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


@click.command("scan")
@click.argument("image")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "cyclonedx"]),
    default="table",
    show_default=True,
    help="table: packages; json: inventory with unknowns and entry trace; cyclonedx: SBOM.",
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
) -> None:
    """Find the packages in IMAGE (NAME:TAG, NAME@sha256:..., oci:DIR[:TAG],
    docker-archive:FILE or dir:ROOTFS), offline, with where each came from."""
    home = Home(ctx.home)
    result = scan_image(home, image, platform=platform, cache=not no_cache)
    if fmt == "cyclonedx":
        data = result.sbom_bytes()
    elif fmt == "json":
        data = canonical.dumps(result.inventory())
    else:
        data = (_table(result) + "\n").encode()
    if out is not None:
        out.write_bytes(data)
    if ctx.json:
        summary = result.summary()
        summary["format"] = fmt
        summary["out"] = str(out) if out is not None else None
        ctx.emit(summary)
        return
    if out is None:
        click.echo(data.decode(), nl=fmt != "table")
    else:
        ctx.info(f"{fmt} written to {out} ({len(result.packages)} packages)")
