"""``stella tui``: the operators' terminal UI.

The UI lives in the ``tui`` package, which depends on ``appliance`` (never the other way
round, ``scripts/check_layers.py``), so this command runs it as its own program on the same
Python and terminal, handing it the home; its exit status is the command's.
"""

from __future__ import annotations

import subprocess
import sys

import click

from appliance.commands.tenants import adopt
from appliance.home import Home
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError


@click.command("tui")
@click.option(
    "--tenant", default=None, metavar="NAME", help="Work as this tenant, as the global --tenant."
)
@pass_ctx
@click.pass_context
def tui_cmd(click_ctx: click.Context, ctx: CliContext, tenant: str | None) -> None:
    """Browse, triage and import in a terminal UI (80x24 and up, keyboard only, offline)."""
    adopt(click_ctx, ctx, tenant, where="tui --tenant")
    home = Home(ctx.home).require()
    if ctx.json:
        raise UsageError("stella tui is interactive; --json does not apply to it")
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(
            "stella tui needs a terminal (stdin and stdout are not one)",
            hint="run it in an interactive shell, e.g. over 'ssh -t'",
        )
    click_ctx.exit(subprocess.call([sys.executable, "-m", "tui", "--home", str(home.root)]))
