"""Hostile images built in memory: layers from raw (already compressed) blobs, decompression
bombs made of small repeated gzip members or zstd frames, tar entries no honest tool writes.

Nothing large is ever written: a bomb that claims gigabytes is a few kilobytes on disk, because
a gzip member (or a zstd frame) of one mebibyte of zeros is repeated as many times as asked.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import zstandard

from bundles import canonical
from bundles.digest import Digest
from bundles.oci import OCILayout
from bundles.oci.mediatypes import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
)
from tests.appliance.scanner.layouts import F, compress, tar_bytes
from tests.hostile.harness import Run, run

MiB = 1 << 20
_ZEROS = bytes(MiB)
_END = bytes(1024)  # the two zero blocks that end a tar


def header(name: str, size: int, *, kind: bytes = tarfile.REGTYPE, link: str = "") -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.type = kind
    info.linkname = link
    info.mode = 0o644
    return info.tobuf(format=tarfile.GNU_FORMAT)


def zero_file_members(name: str, mib: int, fmt: str) -> bytes:
    """A layer holding one file of ``mib`` MiB of zeros, as concatenated gzip members or zstd
    frames: about a kilobyte per mebibyte claimed."""
    pack: Callable[[bytes], bytes]
    if fmt == "gzip":
        pack = lambda data: gzip.compress(data, compresslevel=9, mtime=0)  # noqa: E731
    else:
        pack = zstandard.ZstdCompressor(level=3).compress
    zeros = pack(_ZEROS)
    return pack(header(name, mib * MiB)) + zeros * mib + pack(_END)


@dataclass(frozen=True)
class Layer:
    """A layer blob as stored (compressed or not) and its media type."""

    blob: bytes
    media_type: str

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.blob)


def layer(entries: Sequence[F], compression: str = "gzip") -> Layer:
    blob, media_type = compress(tar_bytes(entries), compression)
    return Layer(blob, media_type)


def raw_layer(tar: bytes, compression: str = "gzip") -> Layer:
    blob, media_type = compress(tar, compression)
    return Layer(blob, media_type)


def bomb(mib: int, fmt: str = "gzip", name: str = "var/tmp/zeros") -> Layer:
    media = OCI_LAYER_GZIP if fmt == "gzip" else OCI_LAYER_ZSTD
    return Layer(zero_file_members(name, mib, fmt), media)


def image(path: Path, layers: Sequence[Layer], *, tag: str = "hostile:1") -> list[Digest]:
    """An OCI layout holding one image of ``layers`` (bottom first); returns their digests.
    The config's diff_ids are stand-ins: the scanner does not trust them anyway."""
    layout = OCILayout.init(path, exist_ok=True)
    descriptors = [layout.put_blob(x.blob, media_type=x.media_type) for x in layers]
    diff_ids = ["sha256:" + hashlib.sha256(b"layer %d" % i).hexdigest() for i in range(len(layers))]
    config = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }
    config_desc = layout.put_blob(json.dumps(config).encode(), media_type=OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_dict(),
        "layers": [d.to_dict() for d in descriptors],
    }
    layout.tag(tag, layout.put_manifest(canonical.dumps(manifest), OCI_MANIFEST))
    return [d.digest for d in descriptors]


def docker_archive(path: Path, members: Iterable[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def uncompressed(entries: Sequence[F]) -> Layer:
    return Layer(tar_bytes(entries), OCI_LAYER_TAR)


@dataclass
class Case:
    """One hostile input: how to build it (into a fresh directory), what to run on it."""

    name: str
    build: Callable[[Path], Sequence[str]]  # returns the command's arguments
    env: dict[str, str] = field(default_factory=dict)


def run_all(cases: Sequence[Case], root: Path, *, workers: int = 3) -> dict[str, Run]:
    """Build every case, then run them a few at a time (each child capped on its own)."""
    prepared = []
    for case in cases:
        where = root / case.name
        where.mkdir(parents=True)
        prepared.append((case, where, list(case.build(where))))

    def one(item: tuple[Case, Path, list[str]]) -> tuple[str, Run]:
        case, where, args = item
        return case.name, run("stella", *args, home=where / "home", env=case.env)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(pool.map(one, prepared))
