"""``stella``: the disconnected appliance's command line (shared/DESIGN.md §3)."""

from __future__ import annotations

from pathlib import Path

import click

from bundles import __version__
from bundles.clikit import Program, global_options, make_context


@click.group(cls=Program, name="stella")
@global_options("stella")
@click.version_option(__version__, prog_name="stella")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, as_json: bool, debug: bool) -> None:
    """Verify and import knowledge bundles, scan images, and issue signed risk verdicts,
    entirely offline."""
    ctx.obj = make_context(home, as_json, debug, "stella")


def main() -> None:
    cli.main(prog_name="stella")


from appliance.commands.setup import init_cmd, keys_group, trust_group  # noqa: E402

cli.add_command(init_cmd)
cli.add_command(keys_group)
cli.add_command(trust_group)

from appliance.commands.audit import audit_group  # noqa: E402

cli.add_command(audit_group)

from appliance.commands.knowledge import import_cmd, snapshot_group  # noqa: E402

cli.add_command(import_cmd)
cli.add_command(snapshot_group)
