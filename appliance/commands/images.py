"""``stella images load|list|inspect|rm``: the appliance's local image store."""

from __future__ import annotations

import click

from appliance.commands.registry_options import RegistryAccess, registry_options
from appliance.home import Home
from appliance.imagestore import catalog as images
from bundles.clikit import CliContext, pass_ctx
from bundles.errors import UsageError


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


@click.group("images")
def images_group() -> None:
    """Images in the appliance's local store ($STELLA_HOME/oci)."""


@images_group.command("load")
@click.argument("source")
@click.option(
    "--tag",
    default=None,
    help="Store it as NAME:TAG (default: the name the layout gives, else the directory's name; "
    "for docker://, the repository's last part and the tag).",
)
@click.option(
    "--no-referrers",
    is_flag=True,
    help="docker:// only: the image alone, without its attestations, signatures and verdicts.",
)
@registry_options("docker://")
@pass_ctx
def load_cmd(
    ctx: CliContext,
    source: str,
    tag: str | None,
    no_referrers: bool,
    access: RegistryAccess,
) -> None:
    """Copy an image from oci:DIR[:TAG], docker-archive:FILE or
    docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST] into the store, verifying every blob by its
    digest. From a registry the image's referrers (attestations, signatures, verdicts and their
    evidence) come along."""
    if source.startswith("docker://"):
        _load_from_registry(ctx, source, tag, no_referrers, access)
        return
    given = ["--no-referrers"] * no_referrers + access.given()
    if given:
        raise UsageError(
            f"{', '.join(given)} go with a docker://HOST[:PORT]/REPO source, not {source!r}",
            hint="an oci: or docker-archive: source is read from this machine",
        )
    loaded = images.load(Home(ctx.home), source, tag=tag)
    ctx.emit(
        {
            "name": loaded.tag,
            "namedFrom": loaded.named_from,
            "digest": str(loaded.descriptor.digest),
            "mediaType": loaded.descriptor.media_type,
            "blobs": loaded.blobs,
            "bytesCopied": loaded.bytes,
            "referrers": loaded.referrers,
        },
        f"loaded {loaded.tag} {loaded.descriptor.digest} "
        f"({loaded.blobs} blobs, {_size(loaded.bytes)} copied, {loaded.referrers} referrers)"
        + ("" if tag else f"\nnamed {loaded.tag} from {loaded.named_from}; choose with --tag"),
    )


def _load_from_registry(
    ctx: CliContext,
    source: str,
    tag: str | None,
    no_referrers: bool,
    access: RegistryAccess,
) -> None:
    from appliance.registry.load import load

    loaded = load(
        Home(ctx.home).require(),
        source,
        tag=tag,
        referrers=not no_referrers,
        credentials=access.credentials(),
        plain_http=access.plain_http,
        ca_bundle=access.ca_bundle,
    )
    ctx.emit(
        loaded.to_dict(),
        str(loaded)
        + ("" if tag else f"\nnamed {loaded.tag} from {loaded.named_from}; choose with --tag"),
    )


@images_group.command("list")
@pass_ctx
def list_cmd(ctx: CliContext) -> None:
    """Every tagged image: name, digest, platforms, size."""
    rows = images.list_images(Home(ctx.home))
    ctx.emit(
        {"images": [r.to_dict() for r in rows]},
        lambda: (
            "\n".join(
                f"{r.tag:<32} {r.digest.short()}  {','.join(r.platforms) or '-':<24} "
                f"{_size(r.size)}"
                for r in rows
            )
            or "no image in the local store"
        ),
    )


@images_group.command("inspect")
@click.argument("image")
@pass_ctx
def inspect_cmd(ctx: CliContext, image: str) -> None:
    """Platforms, layers and sizes of IMAGE, and its referrers by artifactType."""
    info = images.inspect(Home(ctx.home), image)

    def text() -> str:
        lines = [
            f"{', '.join(info['names'])} {info['digest']}",
            f"platforms: {', '.join(info['platforms']) or '-'}; size {_size(info['size'])}",
        ]
        for manifest in info["manifests"]:
            lines.append(f"  {manifest['platform'] or '-'} {manifest['digest']}")
            lines += [
                f"    layer {layer['digest']} {_size(layer['size'])} {layer['mediaType']}"
                for layer in manifest["layers"]
            ]
        for artifact_type, found in info["referrers"].items():
            lines.append(f"  referrers {artifact_type}: {len(found)}")
            lines += [f"    {r['digest']} -> {r['subject']}" for r in found]
        return "\n".join(lines)

    ctx.emit(info, text)


@images_group.command("rm")
@click.argument("image")
@pass_ctx
def rm_cmd(ctx: CliContext, image: str) -> None:
    """Untag IMAGE; its blobs stay until garbage collection."""
    removed = images.remove(Home(ctx.home), image)
    ctx.emit({"untagged": removed}, "\n".join(f"untagged {t}" for t in removed))
