"""The appliance's local image store (``$STELLA_HOME/oci``): load, list, inspect, remove.

Images arrive from an OCI layout (``oci:DIR[:TAG]``) or a docker-archive
(``docker-archive:FILE``). Every blob is copied through :meth:`OCILayout.put_blob`, which
hashes it while writing and refuses a mismatch, so nothing unverified lands in the store.
A docker-archive becomes an OCI image: its config bytes are kept exactly (so the image ID does
not change), its layers are stored as they are (uncompressed layers must hash to the config's
``diff_ids``), and a new OCI manifest names them. Images are tagged ``NAME:TAG``; removing
one only untags it, the blobs stay until garbage collection.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from appliance.home import Home
from appliance.scanner.image import (
    DEFAULT_TAG,
    LAYER_TYPES,
    ImageInputError,
    ImageRef,
    InputKind,
    diff_ids,
    pick_entry,
    read_config,
    read_docker_archive,
)
from appliance.sigstore import upstream
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from bundles import canonical
from bundles.bounded import Section, check_json
from bundles.decompress import Format
from bundles.digest import Digest
from bundles.errors import DigestError, OCILayoutError, SizeLimitError, UsageError
from bundles.oci.descriptor import Descriptor
from bundles.oci.layout import OCILayout, Staging, check_tag
from bundles.oci.manifest import ImageIndex, ImageManifest, StoredManifest
from bundles.oci.mediatypes import (
    ANNOTATION_REF_NAME,
    MANIFEST_TYPES,
    OCI_CONFIG,
    OCI_MANIFEST,
)

ANNOTATION_CONTAINERD_NAME: Final = "io.containerd.image.name"
_BARE_TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")  # distribution-spec tag
_REPOSITORY: Final = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_NOT_IN_NAME: Final = re.compile(r"[^a-z0-9._-]+")


class ImageStoreError(ImageInputError):
    """The local store cannot do what was asked (unknown image, bad tag)."""


@dataclass(frozen=True, slots=True)
class LoadedImage:
    tag: str
    descriptor: Descriptor
    blobs: int
    bytes: int
    referrers: int
    named_from: str  # "--tag", or which annotation or name of the source gave the name


@dataclass(frozen=True, slots=True)
class ImageSummary:
    tag: str
    digest: Digest
    media_type: str
    platforms: tuple[str, ...]
    size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.tag,
            "digest": str(self.digest),
            "mediaType": self.media_type,
            "platforms": list(self.platforms),
            "size": self.size,
        }


def open_store(home: Home) -> OCILayout:
    """The home's OCI layout, created on first use."""
    path = home.require().oci
    if (path / "oci-layout").is_file():
        return OCILayout.open(path)
    return OCILayout.init(path)


def store_tag(text: str) -> str:
    """``NAME[:TAG]`` -> ``NAME:TAG`` (default tag ``latest``), checked."""
    slash, colon = text.rfind("/"), text.rfind(":")
    tag = text if colon > slash else f"{text}:{DEFAULT_TAG}"
    try:
        return check_tag(tag)
    except OCILayoutError as e:
        raise UsageError(e.message, hint="use NAME:TAG, e.g. app:1.0") from e


# ---------------------------------------------------------------- load


def _copy_blob(src: OCILayout, stage: Staging, descriptor: Descriptor) -> int:
    if stage.has_blob(descriptor.digest):
        return 0
    with src.open_blob(descriptor.digest) as stream:
        stage.put_blob(
            stream,
            expected=descriptor.digest,
            size=descriptor.size,
            media_type=descriptor.media_type,
        )
    return descriptor.size


def _stage_graph(src: OCILayout, stage: Staging, stored: list[StoredManifest]) -> tuple[int, int]:
    """Stage the configs and layers the manifests of ``stored`` name (verified as copied)."""
    blobs = copied = 0
    for item in stored:
        manifest = item.manifest
        if isinstance(manifest, ImageManifest):
            for child in manifest.children():
                if "urls" in child.extra and not src.has_blob(child.digest):
                    continue  # a non-distributable layer: not carried
                copied += _copy_blob(src, stage, child)
                blobs += 1
    return blobs, copied


def _put_manifests(dst: OCILayout, stored: list[StoredManifest]) -> tuple[int, int]:
    """Store the manifests of ``stored`` children before parents (walk yields parents first)."""
    for item in reversed(stored):
        dst.put_manifest(item.raw, item.descriptor.media_type)
    return len(stored), sum(len(item.raw) for item in stored)


def _repository_from_path(path: Path, ref: ImageRef) -> str:
    """A repository name made of a directory's or file's name: lower case, runs of characters
    a repository name cannot hold turned into ``-`` (``My Image_v2`` -> ``my-image_v2``)."""
    raw = path.resolve().name.lower()
    name = _NOT_IN_NAME.sub("-", raw).strip("-._")
    if not name or not _REPOSITORY.fullmatch(name):
        raise UsageError(
            f"{ref}: no image name can be made from {raw!r} and the layout names none",
            hint="give one with --tag NAME:TAG",
        )
    return name


def name_from_layout(ref: ImageRef, entry: Descriptor) -> tuple[str, str]:
    """The store name for an image loaded without ``--tag``, and where it came from.

    In order: a full ``NAME:TAG`` ``org.opencontainers.image.ref.name`` (as the store and
    ``stella-mirror`` write it); containerd's ``io.containerd.image.name`` (buildkit, nerdctl);
    a bare tag in ``ref.name`` (umoci, skopeo, buildah) under the directory's name; else the
    directory's name with the tag asked for (or ``latest``). ``org.opencontainers.image.base.name``
    is not used: the image-spec defines it as the image this one was built *from*.
    """
    ref_name = entry.ref_name
    if ref_name is not None and (":" in ref_name or "@" in ref_name):
        return ref_name, f"the layout's {ANNOTATION_REF_NAME} annotation"
    containerd = entry.annotations.get(ANNOTATION_CONTAINERD_NAME)
    if isinstance(containerd, str) and containerd:
        return containerd.removeprefix("docker.io/library/"), (
            f"the layout's {ANNOTATION_CONTAINERD_NAME} annotation"
        )
    directory = _repository_from_path(Path(ref.location), ref)
    if ref_name is not None and _BARE_TAG.fullmatch(ref_name):
        return f"{directory}:{ref_name}", (
            f"the directory's name and the layout's tag {ref_name!r}"
        )
    if ref_name is not None:
        return ref_name, f"the layout's {ANNOTATION_REF_NAME} annotation"
    wanted = ref.reference
    tag = wanted if wanted and _BARE_TAG.fullmatch(wanted) else DEFAULT_TAG
    return f"{directory}:{tag}", "the directory's name"


def _load_oci(home: Home, ref: ImageRef, tag: str | None) -> LoadedImage:
    src = OCILayout.open(Path(ref.location))
    entry = pick_entry(src, ref.reference, str(ref))
    name, named_from = (tag, "--tag") if tag else name_from_layout(ref, entry)
    target = store_tag(name)
    dst = open_store(home)
    # Every manifest is read and every blob verified before any of it enters the store.
    graphs = [list(src.walk(entry))]
    graphs += [
        list(src.walk(referrer))
        for item in graphs[0]
        for referrer in src.referrers(item.descriptor.digest)
    ]
    blobs = copied = 0
    with dst.staging() as stage:
        for stored in graphs:
            more_blobs, more = _stage_graph(src, stage, stored)
            blobs, copied = blobs + more_blobs, copied + more
    for stored in graphs:
        more_blobs, more = _put_manifests(dst, stored)
        blobs, copied = blobs + more_blobs, copied + more
    referrers = len(graphs) - 1
    plain = Descriptor(entry.media_type, entry.digest, entry.size, platform=entry.platform)
    tagged = dst.tag(target, plain)
    return LoadedImage(target, tagged, blobs, copied, referrers, named_from)


def _load_docker_archive(home: Home, ref: ImageRef, tag: str | None) -> LoadedImage:
    path = Path(ref.location)
    if not path.is_file():
        raise ImageInputError(f"docker-archive:{path}: no such file")
    image = read_docker_archive(path)
    if tag:
        name, named_from = tag, "--tag"
    elif image.repo_tags:
        name, named_from = image.repo_tags[0], "the archive's RepoTags"
    else:
        stem = path.with_name(path.name.split(".")[0] or path.name)
        name, named_from = f"{_repository_from_path(stem, ref)}:{DEFAULT_TAG}", "the file's name"
    target = store_tag(name.removeprefix("docker.io/library/"))
    check_json(image.config_raw, source=f"{ref} config")
    try:
        config = json.loads(image.config_raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ImageInputError(f"{ref}: image config is not JSON: {e}") from e
    if not isinstance(config, dict):
        raise ImageInputError(f"{ref}: image config is not a JSON object")
    ids = diff_ids(config, str(ref))
    if len(ids) != len(image.layers):
        raise ImageInputError(f"{ref}: {len(image.layers)} layers but {len(ids)} diff_ids")
    dst = open_store(home)
    layers = []
    copied = 0
    with open(path, "rb") as archive, dst.staging() as stage:
        for index, (member, compression, known) in enumerate(image.layers):
            expected = known or (ids[index] if compression is Format.NONE else None)
            archive.seek(member.offset_data)
            try:
                stored = stage.put_blob(
                    Section(archive, member.size).buffered(),
                    expected=expected,
                    size=member.size,
                    media_type=LAYER_TYPES[compression],
                )
            except DigestError as e:
                raise DigestError(
                    f"{ref}: layer {member.name!r} is not the layer the image names: {e.message}",
                    hint="the archive is damaged or was tampered with; write it again",
                ) from e
            layers.append(stored)
            copied += member.size
        config_desc = stage.put_blob(image.config_raw, media_type=OCI_CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc.to_dict(),
        "layers": [d.to_dict() for d in layers],
    }
    raw = canonical.dumps(manifest)
    descriptor = dst.put_manifest(raw, OCI_MANIFEST)
    tagged = dst.tag(target, descriptor)
    return LoadedImage(target, tagged, len(layers) + 2, copied + len(raw), 0, named_from)


def load(
    home: Home, source: str, *, tag: str | None = None, now: datetime | None = None
) -> LoadedImage:
    """Copy an image into the store and tag it; recorded in the audit log."""
    ref = ImageRef.parse(source)
    if ref.kind is InputKind.OCI:
        loaded = _load_oci(home, ref, tag)
    elif ref.kind is InputKind.DOCKER_ARCHIVE:
        loaded = _load_docker_archive(home, ref, tag)
    else:
        raise UsageError(
            f"cannot load {source!r}: only oci:DIR[:TAG] and docker-archive:FILE can be loaded",
            hint="a dir: root file system can be scanned directly with 'stella scan dir:PATH'",
        )
    record_decision(
        home,
        AuditAction.IMAGE_LOAD,
        str(loaded.descriptor.digest),
        command="images load",
        time=now or datetime.now(UTC),
        inputs={"source": source},
        result={
            "tag": loaded.tag,
            "namedFrom": loaded.named_from,
            "blobs": loaded.blobs,
            "bytes": loaded.bytes,
        },
    )
    return loaded


# ---------------------------------------------------------------- list, inspect, rm


def _platforms_and_size(layout: OCILayout, descriptor: Descriptor) -> tuple[tuple[str, ...], int]:
    platforms: set[str] = set()
    size = 0
    counted: set[Digest] = set()
    for stored in layout.walk(descriptor):
        size += stored.descriptor.size
        manifest = stored.manifest
        if isinstance(manifest, ImageIndex):
            for child in manifest.manifests:
                if child.platform is not None and child.platform.os != "unknown":
                    platforms.add(str(child.platform))
        else:
            for blob in manifest.children():
                if blob.digest not in counted:
                    counted.add(blob.digest)
                    size += blob.size
            if descriptor.media_type in MANIFEST_TYPES:
                platforms.add(_config_platform(layout, manifest))
    return tuple(sorted(p for p in platforms if p)), size


def _config_platform(layout: OCILayout, manifest: ImageManifest) -> str:
    try:
        raw = read_config(layout, manifest.config.digest, "image store")
        config = json.loads(check_json(raw, source=f"config {manifest.config.digest}"))
    except (ValueError, OCILayoutError, SizeLimitError):
        return ""  # an artifact's config, or none: no platform to show
    if isinstance(config, dict) and config.get("os") and config.get("architecture"):
        return f"{config['os']}/{config['architecture']}"
    return ""


def list_images(home: Home) -> list[ImageSummary]:
    path = home.require().oci
    if not (path / "oci-layout").is_file():
        return []
    layout = OCILayout.open(path)
    out = []
    for tag, descriptor in layout.tags().items():
        platforms, size = _platforms_and_size(layout, descriptor)
        out.append(ImageSummary(tag, descriptor.digest, descriptor.media_type, platforms, size))
    return out


def resolve(home: Home, image: str) -> tuple[OCILayout, Descriptor, list[str]]:
    """The store entry an IMAGE names, and every tag pointing at it."""
    layout = OCILayout.open(home.require().oci) if (home.oci / "oci-layout").is_file() else None
    if layout is None:
        raise ImageStoreError(f"image {image!r} is not in the local store (it is empty)")
    ref = ImageRef.parse(image)
    if ref.kind is not InputKind.STORE:
        raise UsageError(
            f"{image!r} is not a name in the local store: this command works on stored images",
            hint=f"load it first with 'stella images load {image}', then use the name it prints"
            if ref.kind is not InputKind.DIR
            else "a root file system cannot be stored; 'stella scan' reads it as it is",
        )
    tags = layout.tags()
    if ref.reference and ref.reference.startswith("sha256:"):
        digest = Digest.parse(ref.reference)
        names = [
            t
            for t, d in tags.items()
            if d.digest == digest and (not ref.location or t.rpartition(":")[0] == ref.location)
        ]
        if not names:
            raise ImageStoreError(
                f"no image {image!r} in the local store", hint="see 'stella images list'"
            )
        return layout, tags[names[0]], names
    name = f"{ref.location}:{ref.reference or DEFAULT_TAG}"
    if name not in tags:
        raise ImageStoreError(
            f"no image {name!r} in the local store",
            hint=f"known: {', '.join(tags) or 'none'}",
        )
    digest = tags[name].digest
    return layout, tags[name], [t for t, d in tags.items() if d.digest == digest]


def inspect(home: Home, image: str) -> dict[str, Any]:
    """Platforms, per-platform manifests with their layers and sizes, and referrers grouped
    by artifactType."""
    layout, descriptor, names = resolve(home, image)
    manifests = []
    referrers: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for stored in layout.walk(descriptor):
        for referrer in layout.referrers(stored.descriptor.digest):
            referrers[referrer.artifact_type or "unknown"].append(
                {
                    "digest": str(referrer.digest),
                    "size": referrer.size,
                    "subject": str(stored.descriptor.digest),
                    "annotations": dict(referrer.annotations),
                }
            )
        manifest = stored.manifest
        if not isinstance(manifest, ImageManifest):
            continue
        platform = stored.descriptor.platform
        layers = [
            {"digest": str(layer.digest), "size": layer.size, "mediaType": layer.media_type}
            for layer in manifest.layers
        ]
        manifests.append(
            {
                "digest": str(stored.descriptor.digest),
                "platform": str(platform) if platform else _config_platform(layout, manifest),
                "config": str(manifest.config.digest),
                "layers": layers,
                "size": stored.descriptor.size
                + manifest.config.size
                + sum(layer.size for layer in manifest.layers),
            }
        )
    platforms, size = _platforms_and_size(layout, descriptor)
    return {
        "names": names,
        "digest": str(descriptor.digest),
        "mediaType": descriptor.media_type,
        "platforms": list(platforms),
        "size": size,
        "manifests": manifests,
        "referrers": {
            k: sorted(v, key=lambda r: r["digest"]) for k, v in sorted(referrers.items())
        },
        "upstreamSignatures": upstream.recorded(layout, descriptor.digest),
    }


def remove(home: Home, image: str, *, now: datetime | None = None) -> list[str]:
    """Untag an image (``NAME@sha256:...`` removes every tag of NAME on that digest); the
    blobs stay until garbage collection. Returns the tags removed."""
    layout, descriptor, names = resolve(home, image)
    ref = ImageRef.parse(image)
    removed = (
        names
        if ref.reference and ref.reference.startswith("sha256:")
        else [f"{ref.location}:{ref.reference or DEFAULT_TAG}"]
    )
    for name in removed:
        layout.untag(name)
    record_decision(
        home,
        AuditAction.IMAGE_REMOVE,
        str(descriptor.digest),
        command="images rm",
        time=now or datetime.now(UTC),
        inputs={"image": image},
        result={"untagged": removed},
    )
    return removed
