"""``stella --tenant NAME …`` and ``stella tenants list``: which tenant a command acts for;
``stella tenants roles``: a PostgreSQL role per tenant, so the server keeps them apart too.

The global option (or ``$STELLA_TENANT``) is resolved once, before any command runs: the
context's home becomes the tenant's directory, so every command finds the tenant's own stores
through :class:`~appliance.home.Home`, and the process is put behind the tenant's boundary
(appliance/tenancy.py), so no argument can lead it into another tenant's files.
"""

from __future__ import annotations

import os

import click

from appliance import tenancy
from appliance.home import Home
from bundles.clikit import CliContext, pass_ctx

TENANT_KEY = "tenant"


def enter(click_ctx: click.Context, ctx: CliContext, option: str | None) -> None:
    """Resolve the tenant of this invocation and confine the process to it.

    A home with tenants confines its administrator too (out of every tenant's directory);
    a home without any keeps running unconfined, exactly as before tenants existed.
    """
    tenant = tenancy.resolve_tenant(option, os.environ.get(tenancy.ENV))
    given = Home(ctx.home)
    if tenant is not None and given.tenant not in (None, tenant):
        raise tenancy.TenantError(
            f"--home {ctx.home} is the directory of tenant {given.tenant!r}, not of {tenant!r}",
            hint=f"give the home itself: --home {given.base} --tenant {tenant}",
        )
    home = Home.of(ctx.home, tenant) if tenant is not None and given.tenant is None else given
    _act_for(click_ctx, ctx, home)


def adopt(click_ctx: click.Context, ctx: CliContext, option: str | None, *, where: str) -> None:
    """A command's own ``--tenant`` (``init --tenant``, ``tui --tenant``): the same tenant as
    the global option or ``$STELLA_TENANT`` when those name one, else the tenant it switches to."""
    if option is None:
        return
    tenancy.check_name(option, source=where)
    current = ctx.extra.get(TENANT_KEY)
    if current is not None:
        if current != option:
            raise tenancy.TenantError(
                f"{where} {option!r} and the tenant this command runs for ({current!r}, from "
                f"the global --tenant or {tenancy.ENV}) disagree",
                hint="name the tenant once",
            )
        return
    _act_for(click_ctx, ctx, Home.of(ctx.home, option))


def _act_for(click_ctx: click.Context, ctx: CliContext, home: Home) -> None:
    ctx.home = home.root
    ctx.extra[TENANT_KEY] = home.tenant
    if home.tenant is None and not home.tenants_dir.is_dir():
        return
    before = tenancy.current()
    tenancy.confine(home.boundary)
    click_ctx.call_on_close(lambda: tenancy.confine(before))


@click.group("tenants")
def tenants_group() -> None:
    """Tenants of this home: each has its own stores, keys, trust roots, VEX and audit log,
    and reads the home's shared knowledge (create one with 'stella --tenant NAME init')."""


@tenants_group.command("list")
@pass_ctx
def tenants_list_cmd(ctx: CliContext) -> None:
    """List the tenants of the home (names and PostgreSQL schemas; nothing inside them)."""
    home = Home(ctx.home)
    names = tenancy.list_tenants(home.base)
    rows = [{"name": name, "schema": tenancy.pg_schema(name)} for name in names]
    ctx.emit(
        {"home": str(home.base), "current": home.tenant, "tenants": rows},
        "\n".join(
            f"{'*' if name == home.tenant else ' '} {name:<32} {tenancy.pg_schema(name)}"
            for name in names
        )
        or f"no tenants in {home.base} (create one with 'stella --tenant NAME init')",
    )


@tenants_group.command("roles")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option(
    "--apply",
    is_flag=True,
    help="Run the statements in the home's database (its role must be allowed to create "
    "roles), then record each tenant's role in its databaseUrl; without it they are printed.",
)
@pass_ctx
def tenants_roles_cmd(ctx: CliContext, names: tuple[str, ...], apply: bool) -> None:
    """Give each tenant (every tenant, or the NAMEs) a PostgreSQL role of its own: it owns the
    tenant's schema and its job queue's schema and may read the shared knowledge, nothing
    else, so the server itself keeps the tenants apart (docs/scale-out.md). Prints the SQL, or
    runs it with --apply."""
    from appliance.store import database_url
    from appliance.store.db import DatabaseError
    from appliance.store.migrate import apply_tenant_roles, tenant_roles

    home = Home(ctx.home).require()
    if home.tenant is not None:
        raise tenancy.TenantError(
            f"tenant {home.tenant!r}: tenants' roles are given by the home's administrator",
            hint="run it without --tenant or STELLA_TENANT",
        )
    known = tenancy.list_tenants(home.base)
    for name in names:
        if tenancy.check_name(name, source="NAME") not in known:
            raise tenancy.TenantError(
                f"tenant {name!r} does not exist in {home.base}",
                hint="list the tenants with 'stella tenants list'",
            )
    url = database_url(home)
    if url is None:
        raise DatabaseError(
            f"{home.root}: the home's stores are not in PostgreSQL",
            hint="move them first with 'stella migrate --to URL' (or set STELLA_DATABASE_URL)",
        )
    roles = tenant_roles(url, list(names) or known)
    if apply:
        apply_tenant_roles(home, url, roles)
    from appliance.store.postgres import redact

    def text() -> str:
        if apply:
            return (
                "\n".join(
                    f"tenant {r.tenant}: role {r.role} owns schemas {r.schema} and "
                    f"{r.queue_schema} (its queue), reads knowledge; "
                    f"its databaseUrl is now {r.url}"
                    for r in roles
                )
                or "no tenants"
            )
        return "\n".join(r.sql for r in roles) or "-- no tenants"

    ctx.emit(
        {
            "database": redact(url),
            "applied": apply,
            "tenants": [r.to_dict() for r in roles],
        },
        text,
    )
