"""``stella``: the disconnected appliance's command line (shared/DESIGN.md §3)."""

from __future__ import annotations

from pathlib import Path

import click

from bundles import __version__
from bundles.clikit import Program, global_options, make_context


@click.group(cls=Program, name="stella")
@global_options("stella")
@click.option(
    "--tenant",
    default=None,
    metavar="NAME",
    help="Act for this tenant of the home [default: $STELLA_TENANT, else none].",
)
@click.version_option(__version__, prog_name="stella")
@click.pass_context
def cli(
    ctx: click.Context, home: Path | None, tenant: str | None, as_json: bool, debug: bool
) -> None:
    """Verify and import knowledge bundles, scan images, and issue signed risk verdicts,
    entirely offline."""
    from appliance.commands.tenants import enter

    ctx.obj = make_context(home, as_json, debug, "stella")
    enter(ctx, ctx.obj, tenant)


def main() -> None:
    cli.main(prog_name="stella")


cli.add_lazy("init", "appliance.commands.setup:init_cmd")
cli.add_lazy("keys", "appliance.commands.setup:keys_group")
cli.add_lazy("trust", "appliance.commands.setup:trust_group")
cli.add_lazy("audit", "appliance.commands.audit:audit_group")
cli.add_lazy("import", "appliance.commands.knowledge:import_cmd")
cli.add_lazy("snapshot", "appliance.commands.knowledge:snapshot_group")
cli.add_lazy("inbox", "appliance.commands.ops:inbox_group")
cli.add_lazy("doctor", "appliance.commands.ops:doctor_cmd")
cli.add_lazy("scan", "appliance.commands.scan:scan_cmd")
cli.add_lazy("images", "appliance.commands.images:images_group")
cli.add_lazy("vex", "appliance.commands.vex:vex_group")
cli.add_lazy("gate", "appliance.commands.gate:gate_cmd")
cli.add_lazy("verify", "appliance.commands.auditor:verify_cmd")
cli.add_lazy("explain", "appliance.commands.auditor:explain_cmd")
cli.add_lazy("replay", "appliance.commands.auditor:replay_cmd")
cli.add_lazy("export-audit-package", "appliance.commands.auditor:export_package_cmd")
cli.add_lazy("verify-audit-package", "appliance.commands.auditor:verify_package_cmd")
cli.add_lazy("tui", "appliance.commands.tui:tui_cmd")
cli.add_lazy("push", "appliance.commands.serving:push_cmd")
cli.add_lazy("serve", "appliance.commands.serving:serve_cmd")
cli.add_lazy("gc", "appliance.commands.serving:gc_cmd")
cli.add_lazy("rescan", "appliance.commands.rescan:rescan_cmd")
cli.add_lazy("log", "appliance.commands.log:log_group")
cli.add_lazy("tenants", "appliance.commands.tenants:tenants_group")
cli.add_lazy("migrate", "appliance.commands.migrate:migrate_cmd")
cli.add_lazy("worker", "appliance.commands.worker:worker_cmd")
cli.add_lazy("queue", "appliance.commands.worker:queue_group")

if __name__ == "__main__":  # python -m appliance.cli: how 'stella worker --concurrency N' runs
    main()
