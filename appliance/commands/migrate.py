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
    "and 'state'); give the password in PGPASSWORD or ~/.pgpass rather than in the URL.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Copy and check everything, then roll it back; the home is not changed.",
)
@click.option("--force", is_flag=True, help="Replace tables the target schemas already hold.")
@pass_ctx
def migrate_cmd(ctx: CliContext, url: str, dry_run: bool, force: bool) -> None:
    """Copy the home's knowledge and state stores into PostgreSQL, one checked transaction per
    store (row counts, and the audit log's signed chain verified in PostgreSQL); then record
    the database as the home's databaseUrl. Keys, images and log files stay in the home."""
    from appliance.store.migrate import Migration, migrate

    home = Home(ctx.home).require()
    ctx.info(f"copying {home.knowledge_db.name} and {home.state_db.name} ...")
    result = migrate(home, url, dry_run=dry_run, force=force)

    def text(done: Migration = result) -> str:
        lines = []
        for store in done.stores:
            if not store.copied:
                lines.append(
                    f"{store.store}: nothing stored yet ({store.source} absent) -> empty tables "
                    f"in schema {store.schema}"
                )
                continue
            audit = (
                f", audit log verified ({store.audit_records} records)"
                if store.audit_records is not None
                else ""
            )
            lines.append(
                f"{store.store}: {store.rows} rows in {len(store.tables)} tables -> schema "
                f"{store.schema}{audit}"
            )
        if done.dry_run:
            lines.append(f"dry run: copied and checked into {done.url}, then rolled back")
        else:
            lines.append(
                f"moved to {done.url}; the home's databaseUrl now names it (the SQLite files "
                "are kept, unused)"
            )
        return "\n".join(lines)

    ctx.emit(result.to_dict(), text)
