"""A worker's images in the enclave's registry (``stella worker --registry HOST:PORT[/PREFIX]``).

A job names a stored image (``NAME:TAG``) and its manifest digest. A worker given a registry
does not need the image in its own home: it pulls it by digest from ``PREFIX/NAME`` into its
home's OCI layout, which serves as a cache, gates it as any worker does, then pushes the
referrers the gate attached (the RVA attestation with ``subject``, its Notary Project
signature, the evidence and the SBOM attestation) back to the same repository, so that any
client finds them through the referrers API, or the ``sha256-<hex>`` fallback tag index on a
registry without one. It is the one registry client of the appliance (``PushClient``, with
``stella push``'s options), used the same way.

Pulling checks everything it stores: every manifest against the digest it is fetched by (and
a child's against the size its parent names), every blob against its descriptor's digest and
size while it streams into the layout; nothing of the image is tagged unless all of it is
stored. Manifests are read up to ``MAX_MANIFEST_SIZE`` and the attestations of others up to
:data:`REFERRER_BLOB_LIMIT`. What the layout already holds is not fetched again, so a worker
pays for an image's layers once and for its manifest on every job.

Besides the image, the pull takes the Sigstore-bundle referrers of each of its manifests that
are not the appliance's own verdicts: the gate gives the attestations others attached to the
image to the policy, so a worker must see what the home that loaded the image sees.

Pushing is idempotent: a referrer the registry already lists (referrers API or fallback
index) is not sent again, and a blob it already has is not uploaded, so a job run twice
pushes nothing the second time.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import BinaryIO, Final, cast

from appliance.home import Home
from appliance.imagestore.catalog import open_store, store_tag
from appliance.registry.client import PushClient
from appliance.registry.push import ReferrersMethod, _Pusher, listed_referrers, push_referrers
from bundles.digest import Digest
from bundles.distribution.client import RegistryManifest
from bundles.distribution.credentials import Credentials
from bundles.distribution.errors import RegistryError
from bundles.distribution.reference import REPOSITORY, fallback_tag
from bundles.errors import (
    ConfigError,
    DigestError,
    SizeLimitError,
    UsageError,
)
from bundles.oci import Descriptor, ImageIndex, ImageManifest, OCILayout, parse_manifest
from bundles.oci.manifest import MAX_MANIFEST_SIZE
from bundles.oci.mediatypes import INDEX_TYPES, MANIFEST_TYPES, SIGSTORE_BUNDLE_V03

REGISTRY_ENV: Final = "STELLA_REGISTRY"
REGISTRY_SETTING: Final = "registry"  # in the home's config.json
REFERRER_BLOB_LIMIT: Final = 64 << 20  # an attestation pulled with an image: a Sigstore bundle
MAX_MANIFESTS: Final = 512  # manifests of one image (an index and its platforms)
ANNOTATION_PREDICATE: Final = "dev.sigstore.bundle.predicateType"
_HOST: Final = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@dataclass(frozen=True, slots=True)
class RegistryPlace:
    """``HOST[:PORT][/PREFIX]``: the registry the images are in, and the repository prefix
    under which image ``NAME:TAG`` is the repository ``PREFIX/NAME``."""

    registry: str
    prefix: str = ""

    @classmethod
    def parse(cls, text: str, *, source: str = "--registry") -> RegistryPlace:
        value = text.strip()
        registry, _, prefix = value.partition("/")
        prefix = prefix.strip("/")
        if not registry or not _HOST.fullmatch(registry):
            raise UsageError(
                f"{source} {text!r} is not HOST[:PORT][/PREFIX]",
                hint="e.g. registry.enclave:5000/stella",
            )
        if prefix and not REPOSITORY.fullmatch(prefix):
            raise UsageError(
                f"{source} {text!r}: prefix {prefix!r} is not a repository path",
                hint="lower-case letters, digits and . _ - separated by /",
            )
        return cls(registry, prefix)

    def repository(self, image: str) -> str:
        """The repository of stored image ``image`` (``NAME:TAG`` or ``NAME@sha256:…``)."""
        name = image.partition("@")[0]
        slash, colon = name.rfind("/"), name.rfind(":")
        if colon > slash:
            name = name[:colon]
        repository = f"{self.prefix}/{name}" if self.prefix else name
        if not REPOSITORY.fullmatch(repository):
            raise UsageError(
                f"image {image!r} has no repository in registry {self}: {repository!r} is "
                "not a valid repository name",
                hint="name stored images as lower-case NAME:TAG to queue them for registry workers",
            )
        return repository

    def __str__(self) -> str:
        return f"{self.registry}/{self.prefix}" if self.prefix else self.registry


def configured(
    home: Home, given: str | None, *, source: str = "--registry"
) -> RegistryPlace | None:
    """The registry a worker takes its images from: ``--registry`` (or ``STELLA_REGISTRY``,
    which the command line reads for it and names as ``source``), else the home's
    ``registry`` setting, else none (the images are in the home)."""
    if given is not None and given.strip():
        return RegistryPlace.parse(given, source=source)
    setting = home.settings().get(REGISTRY_SETTING)
    if setting is None:
        return None
    if not isinstance(setting, str) or not setting.strip():
        raise ConfigError(
            f"{home.config}: {REGISTRY_SETTING} must be HOST[:PORT][/PREFIX], got {setting!r}",
            hint="correct config.json, or remove the setting to gate the home's own images",
        )
    return RegistryPlace.parse(setting, source=f"{home.config}: {REGISTRY_SETTING}")


@dataclass(slots=True)
class Pulled:
    """What a pull fetched and what it found already stored."""

    registry: str
    digest: Digest
    repository: str
    manifests: int = 0
    blobs_fetched: int = 0
    blobs_present: int = 0
    bytes_fetched: int = 0
    referrers: int = 0

    def __str__(self) -> str:
        return (
            f"pulled from {self.registry}/{self.repository}: {self.manifests} manifests, "
            f"{self.blobs_fetched} blobs fetched ({self.bytes_fetched} bytes), "
            f"{self.blobs_present} already stored, {self.referrers} attestations"
        )


@dataclass(frozen=True, slots=True)
class Published:
    """What a worker pushed back: the referrers sent, and those the registry already listed."""

    registry: str
    repository: str
    pushed: tuple[Digest, ...]
    present: int
    methods: tuple[tuple[Digest, ReferrersMethod], ...]

    def __str__(self) -> str:
        how = ", ".join(sorted({m.value for _, m in self.methods})) or "none"
        return (
            f"pushed {len(self.pushed)} referrers to {self.registry}/{self.repository} "
            f"({self.present} already there; via {how})"
        )


@dataclass(slots=True)
class _Plan:
    manifests: dict[Digest, RegistryManifest] = field(default_factory=dict)  # children first
    blobs: dict[Digest, tuple[Descriptor, int]] = field(default_factory=dict)  # with a limit


def _cache(home: Home) -> OCILayout:
    """The home's layout, made on first use. The worker processes of one new home
    (``--concurrency``) start their first jobs together: under a lock on the directory one
    makes the layout and the others open it, instead of finding it half made."""
    directory = home.require().oci
    directory.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        return open_store(home)
    finally:
        os.close(fd)  # and the lock with it


def _tag_for(image: str, digest: Digest) -> str:
    """The name the pulled image gets in the worker's layout: the job's own ``NAME:TAG``, or
    for ``NAME@sha256:…`` the tag ``sha256-<hex>``."""
    name, at, _ = image.partition("@")
    if at:
        return store_tag(f"{name}:{fallback_tag(digest)}")
    return store_tag(image)


class RegistryImages:
    """Where a registry worker's images are: pulled by digest, referrers pushed back.

    ``skip_predicates`` are the predicate types of attestations not pulled with an image
    (the appliance's own verdicts, which the gate leaves out of its inputs)."""

    def __init__(
        self,
        place: RegistryPlace,
        *,
        credentials: Credentials | None = None,
        plain_http: bool = False,
        ca_bundle: str | None = None,
        timeout: float = 60.0,
        skip_predicates: Iterable[str] = (),
    ) -> None:
        self.place = place
        self.credentials = credentials
        self.plain_http = plain_http
        self.ca_bundle = ca_bundle
        self.timeout = timeout
        self.skip_predicates = frozenset(skip_predicates)

    def __str__(self) -> str:
        return str(self.place)

    def _client(self) -> PushClient:
        return PushClient(
            self.place.registry,
            credentials=self.credentials,
            plain_http=self.plain_http,
            ca_bundle=self.ca_bundle,
            timeout=self.timeout,
        )

    def _failed(self, doing: str, image: str, repository: str, e: RegistryError) -> RegistryError:
        """One line naming the registry, the repository and the job's image."""
        return RegistryError(
            f"registry {self.place.registry}: cannot {doing} {repository} for image {image}: "
            f"{' '.join(e.message.split())}",
            hint=e.hint or "the job is retried; check that the registry runs and holds the image",
        )

    # -- pull -------------------------------------------------------------------------------

    def fetch(self, home: Home, image: str, digest: str) -> Pulled:
        """Pull image ``image`` (manifest digest ``digest``) into the home's layout and tag
        it there by the job's name, unless every part of it is stored already."""
        subject = Digest.parse(digest)
        repository = self.place.repository(image)
        layout = _cache(home)
        pulled = Pulled(self.place.registry, subject, repository)
        try:
            with self._client() as client:
                plan = _Plan()
                top = self._collect(client, layout, repository, subject, None, plan, pulled)
                for manifest in list(plan.manifests.values()):  # the index and its platforms
                    self._collect_referrers(client, layout, repository, manifest, plan, pulled)
                for descriptor, limit in plan.blobs.values():
                    self._blob(client, layout, repository, descriptor, limit, pulled)
        except RegistryError as e:
            raise self._failed("pull", image, f"{repository}@{digest}", e) from e
        for manifest in plan.manifests.values():  # children before parents, then referrers
            layout.put_manifest(manifest.raw, manifest.media_type)
        layout.tag(_tag_for(image, subject), top.descriptor)
        return pulled

    def _collect(
        self,
        client: PushClient,
        layout: OCILayout,
        repository: str,
        digest: Digest,
        expected: Descriptor | None,
        plan: _Plan,
        pulled: Pulled,
    ) -> RegistryManifest:
        """Plan one manifest, its blobs and (for an index) its children, by digest."""
        if len(plan.manifests) >= MAX_MANIFESTS:
            raise RegistryError(f"image {digest} has over {MAX_MANIFESTS} manifests")
        bare = (
            Descriptor(expected.media_type, expected.digest, expected.size)
            if expected is not None
            else None
        )
        manifest = client.get_manifest(repository, str(digest), expected=bare)
        pulled.manifests += 1
        parsed = parse_manifest(manifest.raw, manifest.media_type, source=str(digest))
        if isinstance(parsed, ImageIndex):
            for child in parsed.manifests:
                if child.media_type in MANIFEST_TYPES | INDEX_TYPES:
                    if child.digest not in plan.manifests:
                        self._collect(client, layout, repository, child.digest, child, plan, pulled)
                else:
                    self._want(layout, plan, child, MAX_MANIFEST_SIZE, pulled)
        else:
            assert isinstance(parsed, ImageManifest)
            for child in parsed.children():
                if "urls" not in child.extra:  # a non-distributable layer stays where it is
                    self._want(layout, plan, child, 0, pulled)
        plan.manifests[digest] = manifest
        return manifest

    @staticmethod
    def _want(
        layout: OCILayout, plan: _Plan, descriptor: Descriptor, limit: int, pulled: Pulled
    ) -> None:
        if descriptor.digest in plan.blobs:
            return
        if layout.has_blob(descriptor.digest):
            pulled.blobs_present += 1
            return
        plan.blobs[descriptor.digest] = (descriptor, limit)

    def _collect_referrers(
        self,
        client: PushClient,
        layout: OCILayout,
        repository: str,
        subject: RegistryManifest,
        plan: _Plan,
        pulled: Pulled,
    ) -> None:
        """Plan the attestations others attached to ``subject`` (Sigstore bundles)."""
        found, _ = listed_referrers(client, repository, subject.digest)
        for referrer in found:
            if referrer.digest in plan.manifests or layout.has_blob(referrer.digest):
                continue
            if referrer.artifact_type not in (None, SIGSTORE_BUNDLE_V03):
                continue
            if referrer.annotations.get(ANNOTATION_PREDICATE) in self.skip_predicates:
                continue
            if referrer.media_type not in MANIFEST_TYPES:
                continue
            bare = Descriptor(referrer.media_type, referrer.digest, referrer.size)
            manifest = client.get_manifest(repository, str(referrer.digest), expected=bare)
            parsed = parse_manifest(manifest.raw, manifest.media_type, source=str(bare.digest))
            if not isinstance(parsed, ImageManifest) or parsed.subject is None:
                continue
            kind = parsed.artifact_type or parsed.config.media_type
            if kind != SIGSTORE_BUNDLE_V03:
                continue
            if parsed.annotations.get(ANNOTATION_PREDICATE) in self.skip_predicates:
                continue
            for child in parsed.children():
                self._want(layout, plan, child, REFERRER_BLOB_LIMIT, pulled)
            plan.manifests[referrer.digest] = manifest
            pulled.referrers += 1

    def _blob(
        self,
        client: PushClient,
        layout: OCILayout,
        repository: str,
        descriptor: Descriptor,
        limit: int,
        pulled: Pulled,
    ) -> None:
        if limit and descriptor.size > limit:
            raise RegistryError(
                f"blob {descriptor.digest} is {descriptor.size} bytes, over the limit of {limit}"
            )
        stream = client.open_blob(repository, descriptor)
        try:
            layout.put_blob(
                cast(BinaryIO, stream),
                expected=descriptor.digest,
                size=descriptor.size,
                media_type=descriptor.media_type,
            )
        except (DigestError, SizeLimitError) as e:
            raise RegistryError(
                f"blob {descriptor.digest} came with the wrong content: {e.message}",
                hint="the registry or something in between altered it; nothing was tagged",
            ) from e
        finally:
            stream.close()
        pulled.blobs_fetched += 1
        pulled.bytes_fetched += descriptor.size

    # -- push -------------------------------------------------------------------------------

    def publish(
        self, home: Home, image: str, digest: str, *, verdict: str | None = None
    ) -> Published:
        """Push the referrers of the image (and of its referrers) that the registry does not
        list yet. With ``verdict`` (the RVA referrer a verdict row names), refuse when it is
        neither listed by the registry nor in this home's layout: the verdict was recorded by
        a worker that stopped before it pushed it."""
        subject = Digest.parse(digest)
        repository = self.place.repository(image)
        layout = _cache(home)
        try:
            with self._client() as client:
                top = layout.get_manifest(subject).descriptor
                pusher = _Pusher(layout, client, repository)
                done = push_referrers(
                    pusher, Descriptor(top.media_type, top.digest, top.size), only_missing=True
                )
                if verdict is not None and verdict not in {str(d) for d in done.top}:
                    raise RegistryError(
                        f"the verdict's attestation {verdict} is neither in the registry nor "
                        "in this worker's store",
                        hint="the worker that recorded the verdict stopped before pushing it; "
                        "push it from that worker's home ('stella push'), or gate the image "
                        "again at a new evaluation time",
                    )
        except RegistryError as e:
            raise self._failed("push the referrers of", image, f"{repository}@{digest}", e) from e
        return Published(self.place.registry, repository, done.pushed, done.present, done.methods)
