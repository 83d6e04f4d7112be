"""What ``stella scan`` and ``stella images load`` read: image references and opened inputs.

A reference names one of four inputs (shared/DESIGN.md §3)::

    NAME:TAG | NAME@sha256:HEX | sha256:HEX   an image in the appliance's store ($STELLA_HOME/oci)
    oci:DIR[:TAG|@sha256:HEX]                 an OCI image layout (several images: name one)
    docker-archive:FILE                       what ``docker save`` / ``skopeo copy`` write
    dir:ROOTFS                                an unpacked root file system

Opening one gives an :class:`OpenedImage`: the manifest and config bytes, the layers in order
(each a :class:`LayerBlob` that can be reopened in another process) and, for a multi-platform
index, the chosen platform and the others. Nothing is extracted to disk; a layer is read as a
stream and checked against its digest while it is read.
"""

from __future__ import annotations

import enum
import hashlib
import json
import os
import platform as host_platform
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Final

from bundles import limits
from bundles.bounded import Section, check_json
from bundles.decompress import Format, sniff
from bundles.digest import Digest
from bundles.errors import DigestError, OCILayoutError, StellaError, UsageError
from bundles.limits import Unit
from bundles.oci.descriptor import Descriptor, Platform
from bundles.oci.layout import OCILayout
from bundles.oci.manifest import ImageIndex, ImageManifest
from bundles.oci.mediatypes import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_LAYER_GZIP,
    OCI_LAYER_TAR,
    OCI_LAYER_ZSTD,
)
from bundles.tarstream import EXTENDED_HEADER

CONFIG_BYTES: Final = limits.cap(
    "image.config_bytes", 8 << 20, Unit.BYTES, "an image's config blob, read whole"
)
ARCHIVE_MEMBERS: Final = limits.cap(
    "image.archive_members", 100_000, Unit.COUNT, "the members of a docker-archive"
)
ARCHIVE_MANIFEST_BYTES: Final = limits.cap(
    "image.archive_manifest_bytes",
    4 << 20,
    Unit.BYTES,
    "the manifest.json of a docker-archive, read whole",
)
DEFAULT_TAG: Final = "latest"
LAYER_TYPES: Final = {
    Format.NONE: OCI_LAYER_TAR,
    Format.GZIP: OCI_LAYER_GZIP,
    Format.ZSTD: OCI_LAYER_ZSTD,
}
"""The OCI media type of a layer blob, by what it is compressed with."""
_MACHINE_TO_ARCH: Final = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "i686": "386",
    "i386": "386",
    "ppc64le": "ppc64le",
    "s390x": "s390x",
    "riscv64": "riscv64",
}


class ImageInputError(StellaError):
    """An image reference cannot be read: bad syntax, missing input, damaged archive."""


class ImageRefError(ImageInputError, UsageError):
    """The text given as IMAGE is not a reference this program understands."""


class InputKind(enum.StrEnum):
    STORE = "store"
    OCI = "oci"
    DOCKER_ARCHIVE = "docker-archive"
    DIR = "dir"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A parsed IMAGE argument. ``location`` is the path (or, for the store, the image name);
    ``reference`` is a tag or ``sha256:...`` digest, when one was given."""

    kind: InputKind
    location: str
    reference: str | None = None

    @classmethod
    def parse(cls, text: str) -> ImageRef:
        if not text or not text.strip():
            raise ImageRefError("image reference is empty", hint=_REF_HINT)
        prefix, sep, rest = text.partition(":")
        if sep and prefix in (InputKind.DOCKER_ARCHIVE, InputKind.DIR):
            if not rest:
                raise ImageRefError(f"image reference {text!r} names no path", hint=_REF_HINT)
            return cls(InputKind(prefix), rest)
        if sep and prefix == InputKind.OCI:
            if not rest:
                raise ImageRefError(f"image reference {text!r} names no directory", hint=_REF_HINT)
            return cls(InputKind.OCI, *_split_oci(rest))
        return cls(InputKind.STORE, *_split_store(text))

    def __str__(self) -> str:
        if self.kind is InputKind.STORE:
            if self.reference and self.reference.startswith("sha256:"):
                return f"{self.location}@{self.reference}" if self.location else self.reference
            return f"{self.location}:{self.reference or DEFAULT_TAG}"
        if self.kind is InputKind.OCI and self.reference:
            sep = "@" if self.reference.startswith("sha256:") else ":"
            return f"oci:{self.location}{sep}{self.reference}"
        return f"{self.kind.value}:{self.location}"


_REF_HINT = "use NAME:TAG, NAME@sha256:HEX, oci:DIR[:TAG], docker-archive:FILE or dir:ROOTFS"


def _split_oci(rest: str) -> tuple[str, str | None]:
    """``DIR``, ``DIR:TAG`` or ``DIR@sha256:HEX``. Tags may hold colons (``app:latest``), so
    the directory is the shortest prefix ending before a colon that exists as a directory."""
    if "@sha256:" in rest:
        directory, _, digest = rest.rpartition("@")
        return directory, digest
    if Path(rest).is_dir():
        return rest, None
    for at, char in enumerate(rest):
        if char == ":" and at and Path(rest[:at]).is_dir():
            return rest[:at], rest[at + 1 :] or None
    return rest, None  # opening it reports that the directory is missing


def _split_store(text: str) -> tuple[str, str | None]:
    if text.startswith("sha256:"):
        return "", text
    name, at, digest = text.partition("@")
    if at:
        if not digest.startswith("sha256:"):
            raise ImageRefError(f"image reference {text!r}: digest must be sha256:<hex>")
        return name, digest
    slash = text.rfind("/")
    colon = text.rfind(":")
    if colon > slash:
        return text[:colon], text[colon + 1 :]
    return text, DEFAULT_TAG


@dataclass(frozen=True, slots=True)
class LayerBlob:
    """Where one layer's bytes are, in a form another process can reopen: a file, and the
    byte range of the blob inside it (a docker-archive member sits inside the archive)."""

    digest: Digest
    file: str
    offset: int
    size: int

    def open(self) -> BinaryIO:
        """The blob's bytes, as stored (compressed or not), checked against ``digest`` at EOF."""
        handle = open(self.file, "rb")  # noqa: SIM115 - owned by the returned reader
        handle.seek(self.offset)

        def short(got: int, size: int) -> ImageInputError:
            return ImageInputError(
                f"{self.file}: layer {self.digest} ends after {got} of {size} bytes",
                hint="the image was copied incompletely; copy it again",
            )

        def mismatch(actual: Digest, _size: int) -> DigestError:
            return DigestError(
                f"{self.file}: layer content is {actual}, expected {self.digest}",
                hint="the image is damaged or was tampered with; copy it again",
            )

        section = Section(
            handle,
            self.size,
            expected=self.digest,
            short=short,
            mismatch=mismatch,
            close_source=True,
        )
        return section.buffered(1 << 20)


@dataclass(frozen=True, slots=True)
class Layer:
    """One layer of an image, bottom first. ``digest`` names the blob as stored,
    ``diff_id`` the uncompressed tar (from the config)."""

    index: int
    digest: Digest
    diff_id: Digest | None
    size: int
    media_type: str
    blob: LayerBlob

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "digest": str(self.digest),
            "diffID": str(self.diff_id) if self.diff_id else None,
            "size": self.size,
            "mediaType": self.media_type,
        }


@dataclass(frozen=True, slots=True)
class OpenedImage:
    """An image ready to scan. ``manifest_digest`` is None only for ``dir:`` inputs, which
    have no manifest, no config and no layers (``rootfs`` is set instead)."""

    ref: ImageRef
    name: str
    tag: str | None
    manifest_digest: Digest | None
    config_digest: Digest | None
    config_raw: bytes
    layers: tuple[Layer, ...]
    platform: Platform | None
    platforms: tuple[str, ...] = ()
    index_digest: Digest | None = None
    rootfs: Path | None = None
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def host_os_arch() -> tuple[str, str]:
    machine = host_platform.machine().lower()
    return "linux", _MACHINE_TO_ARCH.get(machine, machine)


def parse_platform(text: str) -> tuple[str, str, str | None]:
    """``OS/ARCH[/VARIANT]`` -> its parts; anything else is a usage error."""
    parts = text.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ImageRefError(
            f"platform {text!r} is not OS/ARCH[/VARIANT]", hint="e.g. linux/amd64, linux/arm64/v8"
        )
    return parts[0], parts[1], parts[2] if len(parts) == 3 else None


def _config_doc(raw: bytes, source: str) -> dict[str, Any]:
    check_json(raw, source=source)
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImageInputError(f"{source}: image config is not JSON: {e}") from e
    if not isinstance(doc, dict):
        raise ImageInputError(f"{source}: image config is not a JSON object")
    return doc


def diff_ids(config: Mapping[str, Any], source: str) -> tuple[Digest, ...]:
    rootfs = config.get("rootfs")
    ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
    if not isinstance(ids, list):
        raise ImageInputError(
            f"{source}: image config has no rootfs.diff_ids list",
            hint="this is not a container image config",
        )
    try:
        return tuple(Digest.parse(d) for d in ids)
    except DigestError as e:
        raise ImageInputError(f"{source}: rootfs.diff_ids: {e.message}") from e


# ---------------------------------------------------------------- OCI layouts (store and oci:)


def pick_entry(layout: OCILayout, reference: str | None, source: str) -> Descriptor:
    """The index.json entry a reference names; without one, the layout's only image."""
    if reference is not None:
        try:
            return layout.resolve(reference)
        except OCILayoutError as e:
            if reference.startswith("sha256:"):
                raise
            matches = [d for n, d in layout.tags().items() if n.rpartition(":")[2] == reference]
            if len({d.digest for d in matches}) == 1:
                return matches[0]
            if matches:
                raise ImageInputError(
                    f"{source}: tag {reference!r} matches several images",
                    hint="name one in full: " + ", ".join(sorted(n for n in layout.tags())),
                ) from e
            raise ImageInputError(
                f"{source}: no image tagged {reference!r}",
                hint=f"tags: {', '.join(layout.tags()) or 'none'}",
            ) from e
    images = [
        e
        for e in layout.entries()
        if e.media_type in MANIFEST_TYPES | INDEX_TYPES and e.artifact_type is None
    ]
    if len({e.digest for e in images}) == 1:
        return images[0]
    if not images:
        raise ImageInputError(f"{source}: the layout holds no image")
    names = sorted(e.ref_name or str(e.digest) for e in images)
    raise ImageInputError(
        f"{source}: the layout holds {len(names)} images; name one",
        hint="use oci:DIR:TAG or oci:DIR@sha256:HEX; images: " + ", ".join(names),
    )


def choose_manifest(
    layout: OCILayout, entry: Descriptor, wanted: tuple[str, str, str | None] | None, source: str
) -> tuple[Descriptor, Platform | None, tuple[str, ...], Digest | None]:
    """The image manifest for the wanted platform (default: the host's), the platform, every
    platform the index offers, and the index digest (None for a single manifest)."""
    if entry.media_type in MANIFEST_TYPES:
        return entry, entry.platform, (), None
    available: list[tuple[Descriptor, Platform]] = []
    for stored in layout.walk(entry):
        if isinstance(stored.manifest, ImageIndex):
            for child in stored.manifest.manifests:
                if child.media_type in MANIFEST_TYPES and child.platform is not None:
                    if child.platform.os == "unknown":  # attestation manifests (buildkit)
                        continue
                    available.append((child, child.platform))
    names = tuple(sorted({str(p) for _, p in available}))
    os_name, arch, variant = wanted or (*host_os_arch(), None)
    for child, plat in available:
        if plat.matches(os_name, arch, variant):
            return child, plat, names, entry.digest
    want = f"{os_name}/{arch}" + (f"/{variant}" if variant else "")
    raise ImageInputError(
        f"{source}: image index {entry.digest} has no manifest for {want}",
        hint=f"choose one with --platform: {', '.join(names) or 'none'}",
    )


def open_layout_image(
    layout: OCILayout,
    ref: ImageRef,
    *,
    name: str,
    platform: tuple[str, str, str | None] | None,
) -> OpenedImage:
    source = str(ref)
    entry = pick_entry(layout, ref.reference, source)
    chosen, plat, platforms, index_digest = choose_manifest(layout, entry, platform, source)
    stored = layout.get_manifest(chosen)
    manifest = stored.manifest
    if not isinstance(manifest, ImageManifest):
        raise ImageInputError(f"{source}: {chosen.digest} is not an image manifest")
    config_raw = read_config(layout, manifest.config.digest, source)
    config = _config_doc(config_raw, f"{source} config {manifest.config.digest}")
    ids = diff_ids(config, source)
    if len(ids) != len(manifest.layers):
        raise ImageInputError(
            f"{source}: manifest has {len(manifest.layers)} layers but the config lists "
            f"{len(ids)} diff_ids",
            hint="the image is malformed",
        )
    layers = tuple(
        Layer(
            index=i,
            digest=d.digest,
            diff_id=ids[i],
            size=d.size,
            media_type=d.media_type,
            blob=LayerBlob(
                d.digest, str(layout.blob_path(d.digest)), 0, layout.blob_size(d.digest)
            ),
        )
        for i, d in enumerate(manifest.layers)
    )
    if (
        plat is None
        and isinstance(config.get("os"), str)
        and isinstance(config.get("architecture"), str)
    ):
        plat = Platform(
            architecture=config["architecture"],
            os=config["os"],
            variant=config.get("variant") if isinstance(config.get("variant"), str) else None,
        )
    tag = entry.ref_name
    return OpenedImage(
        ref=ref,
        name=name,
        tag=tag,
        manifest_digest=chosen.digest,
        config_digest=manifest.config.digest,
        config_raw=config_raw,
        layers=layers,
        platform=plat,
        platforms=platforms,
        index_digest=index_digest,
        config=MappingProxyType(config),
    )


def read_config(layout: OCILayout, digest: Digest, source: str) -> bytes:
    """An image's config blob, refused over ``image.config_bytes`` before it is read."""
    limits.check(CONFIG_BYTES, layout.blob_size(digest), f"{source} config {digest}")
    return layout.read_blob(digest, limit=CONFIG_BYTES.value())


def image_name(ref_name: str | None, fallback: str) -> str:
    """The repository part of a tag (``app:latest`` -> ``app``); ``fallback`` without one."""
    if not ref_name:
        return fallback
    slash = ref_name.rfind("/")
    colon = ref_name.rfind(":")
    return ref_name[:colon] if colon > slash else ref_name


# ---------------------------------------------------------------- docker-archive


@dataclass(frozen=True, slots=True)
class ArchiveImage:
    """One image of a docker-archive, as its ``manifest.json`` lists it."""

    config_raw: bytes
    repo_tags: tuple[str, ...]
    layers: tuple[tuple[tarfile.TarInfo, Format, Digest | None], ...]


_BLOCK: Final = 512


def check_archive_headers(path: Path, source: str) -> None:
    """Walk a docker-archive's tar headers (seeking over contents) and refuse what
    :mod:`tarfile` would allocate for before it does: an extended header (PAX, GNU long
    name) over ``tar.extended_header_bytes``, a negative or unreadable size, more members than
    ``image.archive_members``."""
    members = 0
    with open(path, "rb") as fh:
        end = os.fstat(fh.fileno()).st_size
        while True:
            header = fh.read(_BLOCK)
            if len(header) < _BLOCK or not header.strip(b"\0"):
                return
            try:
                size = tarfile.nti(header[124:136])  # type: ignore[attr-defined]
            except tarfile.HeaderError as e:
                raise ImageInputError(
                    f"{source}: not a tar archive (a header's size field is not a number)",
                    hint="a docker-archive is what 'docker save' or 'skopeo copy' writes",
                ) from e
            if size < 0 or fh.tell() + size > end:
                raise ImageInputError(
                    f"{source}: a tar header claims {size} bytes, past the end of the archive",
                    hint="the archive is damaged or truncated; write it again",
                )
            if header[156:157] in (b"x", b"g", b"L", b"K"):
                limits.check(EXTENDED_HEADER, size, f"{source}: an extended tar header")
            else:
                members += 1
                limits.check(ARCHIVE_MEMBERS, members, source)
            fh.seek((size + _BLOCK - 1) // _BLOCK * _BLOCK, os.SEEK_CUR)


def _entries(listing: object, source: str) -> list[dict[str, Any]]:
    if not isinstance(listing, list) or not listing:
        raise ImageInputError(f"{source}: manifest.json lists no image")
    if not all(isinstance(e, dict) for e in listing):
        raise ImageInputError(f"{source}: manifest.json holds an entry that is not an object")
    for entry in listing:
        tags = entry.get("RepoTags")
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
        ):
            raise ImageInputError(f"{source}: manifest.json RepoTags is not a list of names")
    return listing


def read_docker_archive(path: Path, wanted_tag: str | None = None) -> ArchiveImage:
    """Parse a docker-archive's ``manifest.json``, its config and where each layer is."""
    source = f"docker-archive:{path}"
    try:
        check_archive_headers(path, source)
        archive = tarfile.open(path, "r:")  # noqa: SIM115 - closed below
    except (OSError, tarfile.TarError) as e:
        raise ImageInputError(f"{source}: cannot read the archive: {e}") from e
    with archive:
        try:
            found = archive.getmembers()
        except (OSError, tarfile.TarError) as e:
            raise ImageInputError(f"{source}: cannot read the archive: {e}") from e
        members = {m.name.removeprefix("./"): m for m in found}

        def read(name: str, cap: limits.Cap) -> bytes:
            member = members.get(name)
            if member is None or not member.isfile():
                raise ImageInputError(f"{source}: member {name!r} is missing")
            limits.check(cap, member.size, f"{source}: member {name!r}")
            handle = archive.extractfile(member)
            assert handle is not None
            return handle.read()

        raw = read("manifest.json", ARCHIVE_MANIFEST_BYTES)
        check_json(raw, source=f"{source}: manifest.json")
        try:
            listing = _entries(json.loads(raw), source)
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ImageInputError(f"{source}: manifest.json is not JSON: {e}") from e
        chosen = listing[0]
        if wanted_tag is not None or len(listing) > 1:
            tagged = [
                e for e in listing if wanted_tag in (e.get("RepoTags") or []) or wanted_tag is None
            ]
            if len(tagged) != 1:
                every = sorted(t for e in listing for t in e.get("RepoTags") or [])
                raise ImageInputError(
                    f"{source}: holds {len(listing)} images; name one with --tag",
                    hint=f"tags: {', '.join(every) or 'none'}",
                )
            chosen = tagged[0]
        if not isinstance(chosen.get("Config"), str) or not isinstance(chosen.get("Layers"), list):
            raise ImageInputError(f"{source}: manifest.json entry lacks Config or Layers")
        config_raw = read(chosen["Config"], CONFIG_BYTES)
        layers = []
        for name in chosen["Layers"]:
            member = members.get(str(name).removeprefix("./"))
            if member is None or not member.isfile():
                raise ImageInputError(f"{source}: layer {name!r} is missing from the archive")
            handle = archive.fileobj
            assert handle is not None
            handle.seek(member.offset_data)
            compression = sniff(handle.read(4))
            known: Digest | None = None
            parts = str(name).split("/")
            if len(parts) == 3 and parts[0] == "blobs" and parts[1] == "sha256":
                known = Digest(parts[2])  # newer docker: the member is named by its digest
            layers.append((member, compression, known))
        tags = tuple(t for t in chosen.get("RepoTags") or [] if isinstance(t, str))
        return ArchiveImage(config_raw, tags, tuple(layers))


def _hash_range(path: Path, offset: int, size: int) -> Digest:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(offset)
        left = size
        while left:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            digest.update(chunk)
            left -= len(chunk)
    return Digest(digest.hexdigest())


def open_docker_archive(ref: ImageRef) -> OpenedImage:
    path = Path(ref.location)
    if not path.is_file():
        raise ImageInputError(
            f"docker-archive:{path}: no such file", hint="check the path of the archive"
        )
    image = read_docker_archive(path)
    config = _config_doc(image.config_raw, f"docker-archive:{path} config")
    ids = diff_ids(config, f"docker-archive:{path}")
    if len(ids) != len(image.layers):
        raise ImageInputError(
            f"docker-archive:{path}: {len(image.layers)} layers but {len(ids)} diff_ids"
        )
    layers = []
    for i, (member, compression, known) in enumerate(image.layers):
        if known is not None:
            digest = known
        elif compression is Format.NONE:
            digest = ids[i]  # an uncompressed layer's digest is its diff_id; checked on read
        else:
            digest = _hash_range(path, member.offset_data, member.size)
        layers.append(
            Layer(
                index=i,
                digest=digest,
                diff_id=ids[i],
                size=member.size,
                media_type=LAYER_TYPES[compression],
                blob=LayerBlob(digest, str(path), member.offset_data, member.size),
            )
        )
    config_digest = Digest.of_bytes(image.config_raw)
    plat = None
    if isinstance(config.get("os"), str) and isinstance(config.get("architecture"), str):
        plat = Platform(architecture=config["architecture"], os=config["os"])
    tag = image.repo_tags[0] if image.repo_tags else None
    return OpenedImage(
        ref=ref,
        name=image_name(tag, path.stem.split(".")[0]),
        tag=tag,
        manifest_digest=None,
        config_digest=config_digest,
        config_raw=image.config_raw,
        layers=tuple(layers),
        platform=plat,
        config=MappingProxyType(config),
    )


# ---------------------------------------------------------------- any reference


def open_image(
    ref: ImageRef,
    *,
    store: Path | None = None,
    platform: str | None = None,
) -> OpenedImage:
    """Open what ``ref`` names. ``store`` is the appliance's OCI layout (for store names)."""
    wanted = parse_platform(platform) if platform else None
    match ref.kind:
        case InputKind.DIR:
            root = Path(ref.location)
            if not root.is_dir():
                raise ImageInputError(f"dir:{root}: no such directory")
            return OpenedImage(
                ref=ref,
                name=root.resolve().name or "rootfs",
                tag=None,
                manifest_digest=None,
                config_digest=None,
                config_raw=b"",
                layers=(),
                platform=None,
                rootfs=root,
            )
        case InputKind.DOCKER_ARCHIVE:
            return open_docker_archive(ref)
        case InputKind.OCI:
            layout = OCILayout.open(Path(ref.location))
            entry_name: str | None = None
            if ref.reference and not ref.reference.startswith("sha256:"):
                entry_name = ref.reference
            else:
                try:
                    entry_name = pick_entry(layout, ref.reference, str(ref)).ref_name
                except ImageInputError:
                    entry_name = None
            fallback = Path(ref.location).resolve().name
            return open_layout_image(
                layout, ref, name=image_name(entry_name, fallback), platform=wanted
            )
        case InputKind.STORE:
            if store is None or not (store / "oci-layout").is_file():
                raise ImageInputError(
                    f"image {ref} is not in the local store (it is empty)",
                    hint="load it with 'stella images load oci:DIR' or name oci:DIR, "
                    "docker-archive:FILE or dir:ROOTFS",
                )
            layout = OCILayout.open(store)
            reference = ref.reference
            if reference is None or not reference.startswith("sha256:"):
                reference = f"{ref.location}:{ref.reference or DEFAULT_TAG}"
            try:
                entry = layout.resolve(reference)
            except OCILayoutError as e:
                raise ImageInputError(
                    f"image {ref} is not in the local store",
                    hint="see 'stella images list', or load it with 'stella images load'",
                ) from e
            name = ref.location or image_name(entry.ref_name, "image")
            direct = ImageRef(InputKind.STORE, ref.location, str(entry.digest))
            opened = open_layout_image(layout, direct, name=name, platform=wanted)
            tag = reference if not reference.startswith("sha256:") else None
            return OpenedImage(
                ref=ref,
                name=opened.name,
                tag=tag,
                manifest_digest=opened.manifest_digest,
                config_digest=opened.config_digest,
                config_raw=opened.config_raw,
                layers=opened.layers,
                platform=opened.platform,
                platforms=opened.platforms,
                index_digest=opened.index_digest,
                config=opened.config,
            )
