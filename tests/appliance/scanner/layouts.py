"""Small OCI images built inside tests with ``bundles.oci``: layers from lists of tar
entries (files, directories, symlinks, hard links, whiteouts), a config, a manifest, a tag;
multi-platform indexes; docker-archives written the way ``docker save`` writes them."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zstandard

from bundles import canonical
from bundles.digest import Digest
from bundles.oci import Descriptor, OCILayout, Platform
from bundles.oci.mediatypes import (
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)


@dataclass(frozen=True)
class F:
    """One tar entry. ``kind``: file, dir, symlink, hardlink."""

    path: str
    data: bytes = b""
    mode: int = 0o644
    kind: str = "file"
    link: str = ""


def d(path: str) -> F:
    return F(path, kind="dir", mode=0o755)


def sym(path: str, target: str) -> F:
    return F(path, kind="symlink", link=target, mode=0o777)


def hard(path: str, target: str, mode: int = 0o644) -> F:
    return F(path, kind="hardlink", link=target, mode=mode)


def wh(path: str) -> F:
    """A whiteout for ``path``."""
    directory, _, name = path.rpartition("/")
    return F(f"{directory}/.wh.{name}" if directory else f".wh.{name}")


def opaque(directory: str) -> F:
    return F(f"{directory}/.wh..wh..opq")


def tar_bytes(entries: Sequence[F]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            info = tarfile.TarInfo(entry.path)
            info.mode = entry.mode
            info.mtime = 0
            if entry.kind == "dir":
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            elif entry.kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = entry.link
                archive.addfile(info)
            elif entry.kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = entry.link
                archive.addfile(info)
            else:
                info.size = len(entry.data)
                archive.addfile(info, io.BytesIO(entry.data))
    return buffer.getvalue()


def compress(data: bytes, compression: str) -> tuple[bytes, str]:
    if compression == "gzip":
        return gzip.compress(data, mtime=0), OCI_LAYER_GZIP
    if compression == "zstd":
        return zstandard.ZstdCompressor().compress(data), OCI_LAYER_ZSTD
    return data, OCI_LAYER_TAR


def config_bytes(
    diff_ids: Sequence[str], *, arch: str = "amd64", config: dict[str, Any] | None = None
) -> bytes:
    doc = {
        "architecture": arch,
        "os": "linux",
        "config": config or {},
        "rootfs": {"type": "layers", "diff_ids": list(diff_ids)},
    }
    return json.dumps(doc, indent=1).encode()  # not canonical on purpose: kept as bytes


def add_image(
    layout: OCILayout,
    layers: Sequence[Sequence[F]],
    *,
    compression: str = "gzip",
    arch: str = "amd64",
    config: dict[str, Any] | None = None,
) -> Descriptor:
    """Store an image's blobs and manifest (untagged); returns the manifest descriptor."""
    layer_descriptors = []
    diff_ids = []
    for entries in layers:
        raw = tar_bytes(entries)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        blob, media_type = compress(raw, compression)
        layer_descriptors.append(layout.put_blob(blob, media_type=media_type))
    config_desc = layout.put_blob(
        config_bytes(diff_ids, arch=arch, config=config), media_type=OCI_CONFIG
    )
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_dict(),
        "layers": [x.to_dict() for x in layer_descriptors],
    }
    return layout.put_manifest(canonical.dumps(manifest), OCI_MANIFEST)


def build_image(
    path: Path,
    layers: Sequence[Sequence[F]],
    *,
    tag: str = "img:1",
    compression: str = "gzip",
    config: dict[str, Any] | None = None,
) -> OCILayout:
    layout = OCILayout.init(path, exist_ok=True)
    layout.tag(tag, add_image(layout, layers, compression=compression, config=config))
    return layout


def build_index(path: Path, per_arch: dict[str, Sequence[Sequence[F]]], tag: str) -> OCILayout:
    """A multi-platform image: one manifest per architecture, under one index."""
    layout = OCILayout.init(path, exist_ok=True)
    children = []
    for arch, layers in per_arch.items():
        descriptor = add_image(layout, layers, arch=arch)
        children.append(
            Descriptor(
                descriptor.media_type,
                descriptor.digest,
                descriptor.size,
                platform=Platform(architecture=arch, os="linux"),
            ).to_dict()
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}
    layout.tag(tag, layout.put_manifest(canonical.dumps(index), OCI_INDEX))
    return layout


def docker_archive(
    path: Path,
    layers: Sequence[Sequence[F]],
    *,
    repo_tag: str = "arch:1",
    gzip_layers: bool = False,
) -> tuple[bytes, list[Digest]]:
    """Write a docker-archive (``manifest.json``, config, ``<hex>/layer.tar``); returns the
    config bytes and the layer digests as stored."""
    raws = [tar_bytes(entries) for entries in layers]
    diff_ids = ["sha256:" + hashlib.sha256(r).hexdigest() for r in raws]
    config = config_bytes(diff_ids)
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    stored = [gzip.compress(r, mtime=0) if gzip_layers else r for r in raws]
    names = [f"{hashlib.sha256(s).hexdigest()[:12]}{i}/layer.tar" for i, s in enumerate(stored)]
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": names}]
    with tarfile.open(path, "w") as archive:
        for name, data in [
            (config_name, config),
            *zip(names, stored, strict=True),
            ("manifest.json", json.dumps(manifest).encode()),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return config, [Digest.of_bytes(s) for s in stored]


# Small but real package databases.
OS_RELEASE = (
    b'ID=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n'
    b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'
)
STATUS_BASE = b"""Package: base-files
Status: install ok installed
Architecture: amd64
Version: 12.4+deb12u5
Depends: libc6

Package: libc6
Status: install ok installed
Architecture: amd64
Source: glibc
Version: 2.36-9+deb12u7

Package: login
Status: install ok installed
Architecture: amd64
Source: shadow
Version: 1:4.13+dfsg1-1+b1
Depends: libc6
"""
STATUS_UPPER = (
    STATUS_BASE
    + b"""
Package: python3-minimal
Status: install ok installed
Architecture: amd64
Source: python3-defaults
Version: 3.11.2-1+b1
Depends: libc6
"""
)


def dist_info(name: str, version: str, site: str, files: Sequence[str] = ()) -> list[F]:
    base = f"{site}/{name}-{version}.dist-info"
    metadata = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n".encode()
    record = "".join(f"{f},,\n" for f in [*files, f"{name}-{version}.dist-info/METADATA"])
    return [F(f"{base}/METADATA", metadata), F(f"{base}/RECORD", record.encode())]
