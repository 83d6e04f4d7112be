"""``stella-mirror``: the connected side's command line (shared/DESIGN.md §3)."""

from __future__ import annotations

from pathlib import Path

import click

from bundles import __version__
from bundles.clikit import Program, global_options, make_context


@click.group(cls=Program, name="stella-mirror")
@global_options("stella-mirror")
@click.version_option(__version__, prog_name="stella-mirror")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, as_json: bool, debug: bool) -> None:
    """Mirror vulnerability knowledge and images on the connected side, and export signed
    bundles to carry across the air gap."""
    ctx.obj = make_context(home, as_json, debug, "stella-mirror")


def main() -> None:
    cli.main(prog_name="stella-mirror")


cli.add_lazy("keys", "mirror.keys:keys_group")
cli.add_lazy("sync", "mirror.commands:sync_cmd")
cli.add_lazy("snapshot", "mirror.commands:snapshot_group")
cli.add_lazy("images", "mirror.image_copy:images_group")
cli.add_lazy("export", "mirror.export:export_cmd")
cli.add_lazy("verify", "mirror.export:verify_cmd")
