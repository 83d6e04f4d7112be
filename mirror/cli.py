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


from mirror.commands import snapshot_group, sync_cmd  # noqa: E402

cli.add_command(sync_cmd)
cli.add_command(snapshot_group)

from mirror.keys import keys_group  # noqa: E402

cli.add_command(keys_group)

from mirror.images import images_group  # noqa: E402

cli.add_command(images_group)

from mirror.export import export_cmd, verify_cmd  # noqa: E402

cli.add_command(export_cmd)
cli.add_command(verify_cmd)
