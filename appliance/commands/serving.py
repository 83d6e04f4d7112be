"""``stella push``, ``stella serve`` and ``stella gc``: the store meets the enclave's registries."""

from __future__ import annotations

from pathlib import Path

import click

from appliance.commands.registry_options import RegistryAccess, registry_options
from appliance.home import Home
from appliance.imagestore import gc
from appliance.registry.auth import Authenticator, credentials_from_env
from appliance.registry.errors import ServeConfigError
from bundles.clikit import CliContext, pass_ctx


@click.command("push")
@click.argument("image")
@click.option("--to", "to", required=True, help="Destination REGISTRY/REPO[:TAG].")
@registry_options()
@pass_ctx
def push_cmd(
    ctx: CliContext,
    image: str,
    to: str,
    access: RegistryAccess,
) -> None:
    """Push IMAGE from the store with its referrers (RVA, SBOM attestation, evidence, VEX).

    Referrers go through the registry's referrers API when it has one, else into the
    sha256-<hex> fallback tag index, keeping the entries other clients put there."""
    from appliance.registry.push import push

    result = push(
        Home(ctx.home),
        image,
        to,
        credentials=access.credentials(),
        plain_http=access.plain_http,
        ca_bundle=access.ca_bundle,
    )
    methods = ", ".join(sorted({m.value for _, m in result.methods})) or "none"
    ctx.emit(
        result.to_dict(),
        f"pushed {result.destination}@{result.digest} ({result.blobs_uploaded} blobs uploaded, "
        f"{result.blobs_present} already there, {len(result.referrers)} referrers via {methods})",
    )


@click.command("serve")
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help="Address to bind [default: 127.0.0.1:5000]; a non-loopback address must be given here.",
)
@click.option("--allow-push", is_flag=True, help="Accept pushes (requires authentication).")
@click.option(
    "--htpasswd",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="htpasswd file (bcrypt) of the users allowed in.",
)
@click.option("--user", default=None, help="One user allowed in (with --password-env).")
@click.option(
    "--password-env",
    default=None,
    metavar="VAR",
    help="Environment variable holding --user's password.",
)
@click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), default=None)
@click.option("--access-log", is_flag=True, help="Log every request on stderr.")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="STORED=SERVED",
    help="Serve stored names under STORED/ as SERVED/ (repeatable; SERVED may be empty). "
    "By default a mirrored image's registry host is dropped: 127.0.0.1:22775/hidden/app is "
    "served as hidden/app.",
)
@pass_ctx
def serve_cmd(
    ctx: CliContext,
    listen: str | None,
    allow_push: bool,
    htpasswd: Path | None,
    user: str | None,
    password_env: str | None,
    tls_cert: Path | None,
    tls_key: Path | None,
    access_log: bool,
    maps: tuple[str, ...],
) -> None:
    """Serve the store as an OCI registry (pull, tags, catalog, referrers API); read-only
    unless --allow-push."""
    from appliance.registry.names import PrefixMap
    from appliance.registry.server import (
        DEFAULT_LISTEN,
        ListenAddress,
        RegistryServer,
        ServeOptions,
    )

    address = ListenAddress.parse(listen or DEFAULT_LISTEN)
    credentials = credentials_from_env(user, password_env)
    if htpasswd is not None and credentials is not None:
        raise ServeConfigError("give --htpasswd or --user/--password-env, not both")
    auth = None
    if htpasswd is not None:
        auth = Authenticator.from_htpasswd(htpasswd)
    elif credentials is not None:
        auth = Authenticator.single(credentials)
    prefixes = tuple(PrefixMap.parse(m) for m in maps)
    options = ServeOptions(address, allow_push, auth, tls_cert, tls_key, prefixes)
    server = RegistryServer(
        Home(ctx.home), options, log=(lambda m: click.echo(m, err=True)) if access_log else None
    )
    mode = "read-write" if allow_push else "read-only"
    served, _ = server.served_names()
    collisions = served.describe_collisions()
    ctx.emit(
        {
            "listen": server.address,
            "scheme": server.scheme,
            "allowPush": allow_push,
            "auth": auth is not None,
            "maps": {m.stored: m.served for m in prefixes},
            "repositories": dict(sorted(served.repositories.items())),
            "collisions": {n: list(r) for n, r in sorted(served.collisions.items())},
        },
        f"serving {Home(ctx.home).oci} on {server.scheme}://{server.address} ({mode}"
        f"{', authenticated' if auth else ''}; {len(served.repositories)} repositories)",
    )
    for line in collisions:
        click.echo(f"stella: warning: {line}", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        ctx.info("stopped")


@click.command("gc")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=gc.DEFAULT_GRACE,
    show_default=True,
    help="Keep unreferenced blobs younger than this many seconds (uploads in progress).",
)
@pass_ctx
def gc_cmd(ctx: CliContext, dry_run: bool, grace: float) -> None:
    """Delete blobs of the store that no tag, referrer, verdict or audit record references."""
    report = gc.collect(Home(ctx.home), dry_run=dry_run, grace=grace)

    def text() -> str:
        verb = "would remove" if dry_run else "removed"
        lines = [f"{verb} {c.digest} ({c.size} bytes)" for c in report.removed]
        lines.append(
            f"{verb} {len(report.removed)} of {report.examined} blobs, "
            f"{report.bytes_freed} bytes; kept {report.kept}"
            + (f" (+{report.young} younger than {grace:g}s)" if report.young else "")
        )
        return "\n".join(lines)

    ctx.emit(report.to_dict(), text)
