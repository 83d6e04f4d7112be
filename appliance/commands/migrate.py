"""``stella migrate``: move an embedded home's stores into PostgreSQL (docs/scale-out.md)."""

from __future__ import annotations

import click

from appliance.home import Home
from bundles.clikit import CliContext, pass_ctx


@click.command("migrate")
@click.option(
    "--to",
    "url",
    required=True,
    metavar="postgresql://USER@HOST:PORT/DATABASE",
    help="The PostgreSQL database to copy knowledge.db and state.db into (schemas 'knowledge' "
    "and 'state'; each tenant's state.db into its schema 'tenant_NAME'); give the password in "
    "PGPASSWORD or ~/.pgpass rather than in the URL.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Copy and check everything, then roll it back; the home and its tenants are not changed.",
)
@click.option("--force", is_flag=True, help="Replace tables the target schemas already hold.")
@pass_ctx
def migrate_cmd(ctx: CliContext, url: str, dry_run: bool, force: bool) -> None:
    """Copy the home's knowledge and state stores, and each tenant's state store, into
    PostgreSQL in one checked transaction (every table read back: its row count and a digest
    of its rows; every audit log's signed chain verified), all committed or none; then
    record the database as the databaseUrl of every tenant and of the home. Keys, images and
    log files stay in the home."""
    from appliance import tenancy
    from appliance.store.migrate import Migration, migrate

    home = Home(ctx.home).require()
    tenants = len(tenancy.list_tenants(home.base))
    also = f" and the state.db of {tenants} tenant{'s' if tenants != 1 else ''}" if tenants else ""
    ctx.info(f"copying {home.knowledge_db.name}, {home.state_db.name}{also} ...")
    result = migrate(home, url, dry_run=dry_run, force=force)

    def text(done: Migration = result) -> str:
        lines = []
        for store in done.stores:
            name = f"tenant {store.tenant}" if store.tenant is not None else store.store
            if not store.copied:
                lines.append(
                    f"{name}: nothing stored yet ({store.source} absent) -> empty tables "
                    f"in schema {store.schema}"
                )
                continue
            audit = (
                f", audit log verified ({store.audit_records} records)"
                if store.audit_records is not None
                else ""
            )
            lines.append(
                f"{name}: {store.rows} rows in {len(store.tables)} tables -> schema "
                f"{store.schema}{audit}"
            )
        if done.dry_run:
            lines.append(f"dry run: copied and checked into {done.url}, then rolled back")
        else:
            whose = "the home's and its tenants'" if tenants else "the home's"
            lines.append(
                f"moved to {done.url}; {whose} databaseUrl now names it (the SQLite files "
                "are kept, unused)"
            )
        return "\n".join(lines)

    ctx.emit(result.to_dict(), text)
