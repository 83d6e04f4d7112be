"""``stella images load|list|inspect|rm``: the appliance's local image store."""

from __future__ import annotations

import click

from appliance.home import Home
from appliance.imagestore import catalog as images
from bundles.clikit import CliContext, pass_ctx


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
    help="Store it as NAME:TAG (default: the name the layout gives, else the directory's name).",
)
@pass_ctx
def load_cmd(ctx: CliContext, source: str, tag: str | None) -> None:
    """Copy an image from oci:DIR[:TAG] or docker-archive:FILE into the store, verifying
    every blob by its digest."""
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
