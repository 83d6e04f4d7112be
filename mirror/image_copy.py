"""Copying images from registries into the mirror workspace's OCI layout (``images add``).

A copy has three phases so a failure leaves nothing half-done in the layout:

1. **plan**: resolve the reference to a digest once, then fetch every manifest by digest
   (the index, the chosen platforms' manifests, referrers found through the referrers API or
   the ``sha256-<hex>`` fallback tag, cosign's ``.sig``/``.att``/``.sbom`` tags). Manifests
   are small, held in memory, and checked against their digests.
2. **transfer**: every blob not yet in the layout is streamed into ``OCILayout.put_blob``,
   which hashes while writing and renames into ``blobs/`` only when the digest matches;
   broken connections resume with ``Range`` (``bundles.distribution.blobs.BlobStream``).
3. **commit**: manifests are stored byte for byte, children before parents, then the tags,
   then the record in ``images.json``. Blobs verified in a failed run stay (a retry reuses
   them); nothing refers to them until a commit does.

See docs/images.md for the tag encoding and the ``images.json`` format.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import click

from bundles import canonical
from bundles.clikit import CliContext, pass_ctx
from bundles.digest import Digest
from bundles.distribution.client import RegistryClient, RegistryManifest, RegistryOptions
from bundles.distribution.credentials import default_docker_config
from bundles.distribution.errors import RegistryError
from bundles.distribution.reference import ImageReference
from bundles.distribution.reference import fallback_tag as referrers_tag
from bundles.distribution.transport import MAX_JOBS
from bundles.errors import (
    CanonicalJSONError,
    DigestError,
    OCILayoutError,
    SizeLimitError,
    StellaError,
    UsageError,
)
from bundles.files import atomic_write
from bundles.oci import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    OCILayout,
    Platform,
    check_tag,
    parse_manifest,
    referrer_descriptor,
)
from bundles.oci.mediatypes import CONFIG_TYPES, INDEX_TYPES, MANIFEST_TYPES
from mirror.registry import PullClient

IMAGES_FILE: Final = "images.json"
IMAGES_VERSION: Final = 1
CONFIG_LIMIT: Final = 16 << 20
COSIGN_SUFFIXES: Final = ("sig", "att", "sbom")
REFERRER_DEPTH: Final = 4  # referrers of referrers (a signature on an SBOM) down to this depth
# buildx attaches provenance as index entries that point at the platform manifest they describe.
_DOCKER_REFERENCE_DIGEST: Final = "vnd.docker.reference.digest"


class ImagesError(StellaError):
    """An image could not be mirrored; the layout keeps its previous tags and manifests."""


class ReferrerSource(StrEnum):
    """How a referrer was found in the registry."""

    REFERRERS_API = "referrers-api"
    FALLBACK_TAG = "fallback-tag"
    COSIGN_TAG = "cosign-tag"


@dataclass(frozen=True, slots=True)
class PlatformSpec:
    """A platform asked for on the command line: ``os/architecture[/variant]``."""

    os: str
    architecture: str
    variant: str | None = None

    @classmethod
    def parse(cls, text: str) -> PlatformSpec:
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise UsageError(
                f"platform {text!r} is not OS/ARCH or OS/ARCH/VARIANT",
                hint="for example --platform linux/amd64,linux/arm64/v8",
            )
        return cls(parts[0], parts[1], parts[2] if len(parts) == 3 else None)

    def matches(self, platform: Platform) -> bool:
        return platform.matches(self.os, self.architecture, self.variant)

    def __str__(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


def parse_platforms(values: Iterable[str]) -> tuple[PlatformSpec, ...]:
    """``--platform`` values, each possibly comma-separated, deduplicated in order."""
    specs: list[PlatformSpec] = []
    for value in values:
        for item in value.split(","):
            if item.strip():
                spec = PlatformSpec.parse(item)
                if spec not in specs:
                    specs.append(spec)
    return tuple(specs)


def ref_name_for(reference: ImageReference, digest: Digest) -> str:
    """The ``org.opencontainers.image.ref.name`` that tags ``reference`` in the layout.

    ``registry/repository:tag`` verbatim when it fits the annotation's grammar (it nearly
    always does: host names, ports, paths and most tags do); otherwise, and for references
    without a tag, ``registry/repository@sha256:<hex>``. ``images.json`` keeps the exact
    source reference either way.
    """
    candidates = []
    if reference.tag is not None:
        candidates.append(f"{reference.name}:{reference.tag}")
    candidates.append(f"{reference.name}@{digest}")
    for candidate in candidates:
        try:
            return check_tag(candidate)
        except OCILayoutError:
            continue
    raise ImagesError(
        f"image reference {reference} cannot be written as an OCI ref.name tag",
        hint="IPv6 registry addresses are not expressible in a layout tag; use a host name",
    )


@dataclass(frozen=True, slots=True)
class CopiedReferrer:
    """A referrer (signature, attestation, SBOM) copied along with an image.

    ``descriptor`` is as the referrers API lists it (artifactType, annotations);
    ``tag`` is the registry tag it was found under (fallback or cosign tag), if any, and
    ``ref_name`` the layout tag given to cosign-tag artifacts (they have no ``subject``, so
    only their tag ties them to the image)."""

    subject: Digest
    descriptor: Descriptor
    source: ReferrerSource
    tag: str | None = None
    ref_name: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "subject": str(self.subject),
            "digest": str(self.descriptor.digest),
            "mediaType": self.descriptor.media_type,
            "size": self.descriptor.size,
            "source": self.source.value,
        }
        if self.descriptor.artifact_type is not None:
            out["artifactType"] = self.descriptor.artifact_type
        if self.tag is not None:
            out["tag"] = self.tag
        if self.ref_name is not None:
            out["refName"] = self.ref_name
        return out


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something found in the registry and deliberately not copied, with the reason."""

    digest: Digest
    reason: str

    def to_json(self) -> dict[str, str]:
        return {"digest": str(self.digest), "reason": self.reason}


@dataclass(frozen=True, slots=True)
class CopyResult:
    """What :func:`copy_image` put into the layout.

    ``descriptor`` is the resolved image (index or manifest) as tagged under ``ref_name``;
    ``omitted`` lists index children left out by the platform filter (the index is kept byte
    for byte, so it still names them: the layout holds a *sparse* index); ``manifests`` is
    every manifest and index stored, referrers included.
    """

    reference: ImageReference
    descriptor: Descriptor
    ref_name: str
    platforms: tuple[str, ...]
    omitted: tuple[Descriptor, ...]
    manifests: tuple[Digest, ...]
    referrers: tuple[CopiedReferrer, ...]
    skipped: tuple[Skipped, ...]
    blobs: int
    blobs_fetched: int
    bytes_fetched: int
    mirrored_at: str

    def to_json(self) -> dict[str, Any]:
        return {
            "reference": str(self.reference),
            "registry": self.reference.registry,
            "repository": self.reference.repository,
            "tag": self.reference.tag,
            "digest": str(self.descriptor.digest),
            "mediaType": self.descriptor.media_type,
            "size": self.descriptor.size,
            "refName": self.ref_name,
            "platforms": list(self.platforms),
            "omitted": [
                {
                    "digest": str(d.digest),
                    "platform": str(d.platform) if d.platform is not None else None,
                }
                for d in self.omitted
            ],
            "manifests": [str(d) for d in self.manifests],
            "referrers": [r.to_json() for r in self.referrers],
            "skipped": [s.to_json() for s in self.skipped],
            "blobs": self.blobs,
            "blobsFetched": self.blobs_fetched,
            "bytesFetched": self.bytes_fetched,
            "mirroredAt": self.mirrored_at,
        }


# ------------------------------------------------------------------------------ planning


@dataclass(slots=True)
class _Plan:
    """Everything one copy will store, gathered before any blob moves."""

    manifests: dict[Digest, tuple[RegistryManifest, bool]] = field(default_factory=dict)
    blobs: dict[Digest, Descriptor] = field(default_factory=dict)
    preloaded: dict[Digest, bytes] = field(default_factory=dict)
    referrers: list[CopiedReferrer] = field(default_factory=list)
    cosign_tags: list[tuple[str, Descriptor]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    subjects: list[Digest] = field(default_factory=list)


class _Copier:
    def __init__(
        self,
        client: RegistryClient,
        reference: ImageReference,
        layout: OCILayout,
    ) -> None:
        self.client = client
        self.layout = layout
        self.reference = reference
        self.repo = reference.repository
        self.plan = _Plan()

    # -- manifests --------------------------------------------------------------------------

    def fetch(self, descriptor: Descriptor) -> RegistryManifest:
        bare = descriptor.bare()
        return self.client.get_manifest(self.repo, str(descriptor.digest), expected=bare)

    def collect(
        self, manifest: RegistryManifest, platforms: Sequence[PlatformSpec]
    ) -> tuple[list[str], list[Descriptor]]:
        """Add ``manifest`` and everything below it to the plan; returns the platforms
        copied and the index children the platform filter left out."""
        if manifest.digest in self.plan.manifests:
            return [], []
        parsed = parse_manifest(manifest.raw, manifest.media_type, source=str(manifest.digest))
        copied: list[str] = []
        omitted: list[Descriptor] = []
        if isinstance(parsed, ImageIndex):
            chosen = _choose(parsed, platforms)
            for child in parsed.manifests:
                if child.media_type not in MANIFEST_TYPES | INDEX_TYPES:
                    self.plan.blobs[child.digest] = child
                    continue
                if child.digest not in chosen:
                    omitted.append(child)
                    continue
                sub_copied, sub_omitted = self.collect(self.fetch(child), platforms)
                if child.platform is not None and child.media_type in MANIFEST_TYPES:
                    copied.append(str(child.platform))
                else:
                    copied.extend(sub_copied)
                omitted.extend(sub_omitted)
            self.plan.manifests[manifest.digest] = (manifest, not omitted)
        else:
            assert isinstance(parsed, ImageManifest)
            for child in parsed.children():
                if "urls" in child.extra:
                    continue  # non-distributable layer: stays where its urls point
                self.plan.blobs[child.digest] = child
            self.plan.manifests[manifest.digest] = (manifest, True)
        self.plan.subjects.append(manifest.digest)
        return copied, omitted

    def single_platform(self, manifest: RegistryManifest) -> Platform | None:
        """The platform an image manifest's config declares (read now, kept for commit)."""
        parsed = parse_manifest(manifest.raw, manifest.media_type, source=str(manifest.digest))
        assert isinstance(parsed, ImageManifest)
        config = parsed.config
        if config.media_type not in CONFIG_TYPES:
            return None
        if self.layout.has_blob(config.digest):
            data = self.layout.read_blob(config.digest, limit=CONFIG_LIMIT)
        else:
            data = self.client.read_blob(self.repo, config, limit=CONFIG_LIMIT)
            self.plan.preloaded[config.digest] = data
        try:
            doc = canonical.loads(data, limit=CONFIG_LIMIT, source=f"config {config.digest}")
            return Platform.from_dict(doc, source=f"config {config.digest}")
        except (CanonicalJSONError, SizeLimitError, OCILayoutError):
            return None

    # -- referrers --------------------------------------------------------------------------

    def collect_referrers(self, subject: Digest, depth: int = 0) -> None:
        listed = self.client.referrers(self.repo, subject)
        source = ReferrerSource.REFERRERS_API
        fallback_tag: str | None = None
        if listed is None:
            source = ReferrerSource.FALLBACK_TAG
            fallback_tag = referrers_tag(subject)
            found = self.client.find_manifest(self.repo, fallback_tag)
            listed = []
            if found is not None:
                parsed = parse_manifest(found.raw, found.media_type, source=fallback_tag)
                if isinstance(parsed, ImageIndex):
                    listed = list(parsed.manifests)
                else:
                    self.plan.skipped.append(
                        Skipped(found.digest, f"fallback tag {fallback_tag} is not an index")
                    )
        for entry in listed:
            if entry.digest in self.plan.manifests:
                continue
            if entry.media_type not in MANIFEST_TYPES | INDEX_TYPES:
                self.plan.skipped.append(
                    Skipped(entry.digest, f"referrer of media type {entry.media_type}")
                )
                continue
            manifest = self.fetch(entry)
            parsed = parse_manifest(manifest.raw, manifest.media_type, source=str(entry.digest))
            if parsed.subject is None or parsed.subject.digest != subject:
                self.plan.skipped.append(
                    Skipped(entry.digest, f"listed as a referrer of {subject} without that subject")
                )
                continue
            self.collect(manifest, ())
            self.plan.referrers.append(
                CopiedReferrer(
                    subject=subject,
                    descriptor=referrer_descriptor(manifest.descriptor, parsed),
                    source=source,
                    tag=fallback_tag,
                )
            )
            if depth + 1 < REFERRER_DEPTH:
                self.collect_referrers(manifest.digest, depth + 1)
        for suffix in COSIGN_SUFFIXES:
            tag = f"sha256-{subject.hex}.{suffix}"
            found = self.client.find_manifest(self.repo, tag)
            if found is None:
                continue
            self.collect(found, ())
            ref = ImageReference(self.reference.registry, self.repo, tag=tag)
            ref_name = ref_name_for(ref, found.digest)
            parsed = parse_manifest(found.raw, found.media_type, source=tag)
            self.plan.cosign_tags.append((ref_name, found.descriptor))
            self.plan.referrers.append(
                CopiedReferrer(
                    subject=subject,
                    descriptor=referrer_descriptor(found.descriptor, parsed),
                    source=ReferrerSource.COSIGN_TAG,
                    tag=tag,
                    ref_name=ref_name,
                )
            )


def _choose(index: ImageIndex, platforms: Sequence[PlatformSpec]) -> set[Digest]:
    """The index children to copy: all, or those of the chosen platforms plus the
    attestation manifests buildx attaches to them."""
    walkable = [c for c in index.manifests if c.media_type in MANIFEST_TYPES | INDEX_TYPES]
    if not platforms:
        return {c.digest for c in walkable}
    chosen = {
        c.digest
        for c in walkable
        if c.platform is not None
        and c.platform.os != "unknown"
        and any(p.matches(c.platform) for p in platforms)
    }
    chosen |= {
        c.digest
        for c in walkable
        if c.annotations.get(_DOCKER_REFERENCE_DIGEST) in {str(d) for d in chosen}
    }
    return chosen


# ------------------------------------------------------------------------------ copying


def copy_image(
    client: RegistryClient,
    reference: ImageReference,
    layout: OCILayout,
    *,
    platforms: Sequence[PlatformSpec] = (),
    referrers: bool = True,
    jobs: int = 4,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CopyResult:
    """Copy ``reference`` (all platforms, or those in ``platforms``) with its referrers from
    ``client``'s registry into ``layout`` and tag it there (:func:`ref_name_for`).

    The tag is resolved to a digest once; everything after is fetched by digest. Raises
    :class:`ImagesError` (or a :class:`~bundles.distribution.errors.RegistryError`) on any
    failure, in which case no manifest or tag of this image has been written.
    """
    if reference.registry != client.registry:
        raise ImagesError(
            f"image {reference} is not in registry {client.registry}",
            hint="use a client for the image's own registry",
        )
    copier = _Copier(client, reference, layout)
    top = client.get_manifest(reference.repository, reference.fetch_reference)
    if reference.digest is not None and reference.tag is not None:
        tagged = client.manifest_digest(reference.repository, reference.tag)
        if tagged is not None and tagged != top.digest:
            copier.plan.skipped.append(
                Skipped(tagged, f"tag {reference.tag} now points elsewhere; copied the digest")
            )
    if top.is_index:
        copied, omitted = copier.collect(top, platforms)
        if platforms and not copied:
            parsed = parse_manifest(top.raw, top.media_type, source=str(reference))
            available = sorted({str(c.platform) for c in parsed.children() if c.platform})
            raise ImagesError(
                f"image {reference} ({top.digest}) has no manifest for "
                f"{', '.join(map(str, platforms))}",
                hint=f"available platforms: {', '.join(available) or 'none'}",
            )
    else:
        single = copier.single_platform(top)
        if platforms and (single is None or not any(p.matches(single) for p in platforms)):
            raise ImagesError(
                f"image {reference} ({top.digest}) is a single-platform image for "
                f"{single or 'an unknown platform'}, not {', '.join(map(str, platforms))}",
                hint="drop --platform for this image, or name its platform",
            )
        copier.collect(top, ())
        copied, omitted = ([str(single)] if single else []), []
    with _Transfer(client, reference, layout, jobs) as transfer:
        transfer.submit(copier.plan)  # the image's blobs move while its referrers are found
        if referrers:
            for subject in list(copier.plan.subjects):
                copier.collect_referrers(subject)
            transfer.submit(copier.plan)
        fetched, fetched_bytes = transfer.finish()
    ref_name = ref_name_for(reference, top.digest)
    _commit(layout, copier.plan)
    descriptor = layout.tag(ref_name, top.descriptor)
    return CopyResult(
        reference=reference,
        descriptor=descriptor,
        ref_name=ref_name,
        platforms=tuple(copied),
        omitted=tuple(omitted),
        manifests=tuple(copier.plan.manifests),
        referrers=tuple(copier.plan.referrers),
        skipped=tuple(copier.plan.skipped),
        blobs=len(copier.plan.blobs),
        blobs_fetched=fetched,
        bytes_fetched=fetched_bytes,
        mirrored_at=clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


class _Transfer:
    """Streams a plan's missing blobs into the layout, ``jobs`` at a time, while the caller
    goes on discovering referrers: on a loopback or LAN registry the probes for referrers
    (API, fallback tag, cosign tags) cost as much as moving a 100 MB image.

    Leaving the ``with`` block early (an error) cancels what has not started and waits for
    what has, so no blob is left half-written behind the caller's back.
    """

    def __init__(
        self, client: RegistryClient, reference: ImageReference, layout: OCILayout, jobs: int
    ) -> None:
        self.client = client
        self.reference = reference
        self.layout = layout
        self.pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="blob")
        self.futures: dict[Digest, Future[int]] = {}
        self.preloaded = 0
        self.preloaded_bytes = 0

    def __enter__(self) -> _Transfer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def submit(self, plan: _Plan) -> None:
        """Start every blob of ``plan`` not yet stored or on its way (largest first)."""
        for digest, data in plan.preloaded.items():
            if digest not in self.futures and not self.layout.has_blob(digest):
                self.layout.put_blob(data, expected=digest, size=len(data))
                self.preloaded += 1
                self.preloaded_bytes += len(data)
        todo = [
            d
            for d in plan.blobs.values()
            if d.digest not in self.futures and not self.layout.has_blob(d.digest)
        ]
        for descriptor in sorted(todo, key=lambda d: -d.size):
            self.futures[descriptor.digest] = self.pool.submit(self._one, descriptor)

    def finish(self) -> tuple[int, int]:
        """Wait for every blob; returns how many blobs and bytes were fetched. The first
        failure is raised once the others have been cancelled."""
        done, pending = wait(self.futures.values(), return_when=FIRST_EXCEPTION)
        for future in pending:
            future.cancel()
        for future in done:
            error = future.exception()
            if error is not None:
                raise error
        fetched = sum(f.result() for f in self.futures.values())
        return self.preloaded + len(self.futures), self.preloaded_bytes + fetched

    def _one(self, descriptor: Descriptor) -> int:
        client, reference = self.client, self.reference
        try:
            client.copy_blob(reference.repository, descriptor, self.layout)
        except (DigestError, SizeLimitError) as e:
            raise ImagesError(
                f"registry {client.registry} served blob {descriptor.digest} of "
                f"{reference.repository} with the wrong content: {e.message}",
                hint="the registry or something in between altered the data; nothing of "
                "this image was stored; try again or report it to the registry's operator",
            ) from e
        return descriptor.size


def _commit(layout: OCILayout, plan: _Plan) -> None:
    """Store the manifests (children first, as collected) and the cosign tags."""
    for manifest, complete in plan.manifests.values():
        layout.put_manifest(manifest.raw, manifest.media_type, check_references=complete)
    for ref_name, descriptor in plan.cosign_tags:
        layout.tag(ref_name, descriptor)


# ------------------------------------------------------------------------------ workspace


def workspace_layout(home: Path) -> OCILayout:
    """The mirror workspace's OCI layout (``<home>/mirror/oci``), created when absent."""
    path = home / "mirror" / "oci"
    path.parent.mkdir(parents=True, exist_ok=True)
    return OCILayout.init(path, exist_ok=True)


def images_file(home: Path) -> Path:
    return home / "mirror" / IMAGES_FILE


def load_images(home: Path) -> dict[str, dict[str, Any]]:
    """The ``images.json`` records, by source reference (empty when none were mirrored)."""
    path = images_file(home)
    if not path.is_file():
        return {}
    try:
        doc = canonical.load_file(path, limit=64 << 20)
    except (CanonicalJSONError, SizeLimitError) as e:
        raise ImagesError(
            f"{path}: {e.message}", hint="the image index is damaged; restore or delete it"
        ) from e
    if not isinstance(doc, dict) or doc.get("version") != IMAGES_VERSION:
        raise ImagesError(
            f"{path}: not a version {IMAGES_VERSION} image index",
            hint="the image index is damaged or from another version; restore or delete it",
        )
    images = doc.get("images")
    if not isinstance(images, dict):
        raise ImagesError(f"{path}: field 'images' must be an object")
    return images


def record_images(home: Path, results: Sequence[CopyResult]) -> None:
    """Add (or replace) the records of ``results`` in ``images.json``, under a lock."""
    path = images_file(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(IMAGES_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        images = load_images(home)
        for result in results:
            images[str(result.reference)] = result.to_json()
        doc = {"version": IMAGES_VERSION, "images": dict(sorted(images.items()))}
        atomic_write(path, canonical.dumps(doc), tmp_dir=path.parent)
    finally:
        os.close(fd)


def add_images(
    home: Path,
    references: Sequence[str],
    *,
    platforms: Sequence[PlatformSpec] = (),
    options: RegistryOptions | None = None,
    referrers: bool = True,
    jobs: int = 4,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Callable[[str], None] = lambda _m: None,
) -> tuple[list[CopyResult], list[tuple[str, StellaError]]]:
    """Mirror each reference into the workspace layout and record it in ``images.json``.

    One failing reference does not stop the others; returns the results and the failures.
    """
    parsed = [ImageReference.parse(r) for r in references]
    options = options or RegistryOptions()
    layout = workspace_layout(home)
    clients: dict[str, RegistryClient] = {}
    results: list[CopyResult] = []
    failures: list[tuple[str, StellaError]] = []
    try:
        for reference in parsed:
            progress(f"copying {reference}")
            try:
                client = clients.get(reference.registry)
                if client is None:
                    client = clients[reference.registry] = PullClient(reference.registry, options)
                result = copy_image(
                    client,
                    reference,
                    layout,
                    platforms=platforms,
                    referrers=referrers,
                    jobs=jobs,
                    clock=clock,
                )
            except StellaError as e:
                failures.append((str(reference), e))
                continue
            record_images(home, [result])
            results.append(result)
    finally:
        for client in clients.values():
            client.close()
    return results, failures


# ------------------------------------------------------------------------------ command line


def _summary(result: CopyResult) -> str:
    platforms = ", ".join(result.platforms) or "no platform"
    text = (
        f"{result.reference} -> {result.descriptor.digest} ({platforms}; "
        f"{len(result.referrers)} referrers; {result.blobs_fetched} of {result.blobs} blobs "
        f"fetched) as {result.ref_name}"
    )
    if result.omitted:
        text += f"; {len(result.omitted)} platform manifests left out"
    return text


@click.group("images")
def images_group() -> None:
    """Copy container images (with signatures and attestations) into the mirror workspace."""


@images_group.command("add")
@click.argument("references", nargs=-1, required=True, metavar="REF...")
@click.option(
    "--platform",
    "platform_values",
    multiple=True,
    metavar="OS/ARCH[,...]",
    help="Copy only these platforms of a multi-platform image [default: all].",
)
@click.option(
    "--docker-config",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="Credentials file [default: $DOCKER_CONFIG/config.json, else ~/.docker/config.json].",
)
@click.option(
    "--ca-bundle",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="PEM file of CA certificates to verify registries' TLS with.",
)
@click.option(
    "--allow-http",
    multiple=True,
    metavar="REGISTRY",
    help="Allow plain HTTP to this registry (host:port) if its TLS fails; loopback always may.",
)
@click.option("--no-referrers", is_flag=True, help="Do not copy signatures and attestations.")
@click.option(
    "--jobs", type=click.IntRange(1, MAX_JOBS), default=4, show_default=True, help="Parallel blobs."
)
@pass_ctx
def add_cmd(
    ctx: CliContext,
    references: tuple[str, ...],
    platform_values: tuple[str, ...],
    docker_config: Path | None,
    ca_bundle: Path | None,
    allow_http: tuple[str, ...],
    no_referrers: bool,
    jobs: int,
) -> None:
    """Copy images by digest, with their referrers, into the workspace's OCI layout."""
    options = RegistryOptions(
        docker_config=docker_config or default_docker_config(),
        ca_bundle=ca_bundle,
        allow_http=frozenset(allow_http),
    )
    results, failures = add_images(
        ctx.home,
        references,
        platforms=parse_platforms(platform_values),
        options=options,
        referrers=not no_referrers,
        jobs=jobs,
        progress=ctx.info,
    )
    ctx.emit(
        {
            "images": [r.to_json() for r in results],
            "failed": [{"reference": ref, "error": e.diagnostics()} for ref, e in failures],
        },
        lambda: "\n".join(f"mirrored {_summary(r)}" for r in results),
    )
    if failures:
        ref, error = failures[0]
        if len(references) == 1:
            raise error
        raise ImagesError(
            f"{len(failures)} of {len(references)} images failed; {ref}: {error.message}",
            hint=error.hint,
        )


@images_group.command("list")
@pass_ctx
def list_cmd(ctx: CliContext) -> None:
    """List the images mirrored into the workspace (from images.json)."""
    images = load_images(ctx.home)

    def text() -> str:
        if not images:
            return "no images mirrored"
        return "\n".join(
            f"{ref}  {rec.get('digest')}  {', '.join(rec.get('platforms', [])) or '-'}  "
            f"{len(rec.get('referrers', []))} referrers  {rec.get('mirroredAt')}"
            for ref, rec in images.items()
        )

    ctx.emit({"images": images}, text)


__all__ = [
    "CopiedReferrer",
    "CopyResult",
    "ImagesError",
    "PlatformSpec",
    "ReferrerSource",
    "RegistryError",
    "Skipped",
    "add_images",
    "copy_image",
    "images_group",
    "load_images",
    "parse_platforms",
    "record_images",
    "ref_name_for",
    "workspace_layout",
]
