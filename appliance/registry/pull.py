"""Pull an image and its referrers from a registry into an OCI layout, everything checked.

The one pull of the appliance: a registry worker's (``stella worker --registry``, by the job's
digest, with the attestations others attached) and ``stella images load docker://…`` (by tag
or digest, with every referrer and the referrers of those) both go through
:func:`pull_image`.

Every manifest must hash to the digest it is fetched by (a child's also to the size its parent
names); every blob streams into the layout, which hashes it while writing and keeps it only
when digest and size are the ones its descriptor names. Manifests are read up to
``MAX_MANIFEST_SIZE``, referrers' blobs up to the rule's limit, layers up to the size their
manifest pins. Nothing the layout holds is fetched again: a manifest it has is read from it
(a tag costs one ``HEAD``), a blob it has is not asked for; the referrer listings are asked
for on every pull, so attestations attached since are found. Manifests are written only when
every blob is stored, children before parents; tagging is the caller's, after that.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from appliance.registry.client import PushClient
from appliance.registry.push import listed_referrers
from bundles.digest import Digest
from bundles.distribution.client import RegistryManifest
from bundles.distribution.errors import RegistryError
from bundles.errors import DigestError, OCILayoutError, SizeLimitError
from bundles.oci import Descriptor, ImageIndex, ImageManifest, OCILayout, parse_manifest
from bundles.oci.manifest import MAX_MANIFEST_SIZE
from bundles.oci.mediatypes import INDEX_TYPES, MANIFEST_TYPES

MAX_MANIFESTS: Final = 512  # manifests of one image (an index and its platforms)
MAX_REFERRERS: Final = 1024  # referrers taken with one image, their own referrers included


@dataclass(frozen=True, slots=True)
class ReferrerRule:
    """Which referrers a pull takes.

    ``accept`` judges a listed descriptor, then the parsed manifest (``None`` before it is
    fetched): a referrer is taken when both pass. With ``deep``, the referrers of a taken
    referrer are taken too (a verdict's signature). ``blob_limit`` caps each of their blobs
    (0: the size the descriptor pins)."""

    accept: Callable[[Descriptor, ImageManifest | None], bool]
    deep: bool
    blob_limit: int


def every_referrer(blob_limit: int) -> ReferrerRule:
    """Every referrer manifest, and theirs."""
    return ReferrerRule(lambda _d, _m: True, deep=True, blob_limit=blob_limit)


@dataclass(slots=True)
class Pulled:
    """What a pull fetched and what it found already stored."""

    registry: str
    repository: str
    manifests: int = 0  # fetched from the registry
    manifests_present: int = 0  # read from the layout instead
    blobs_fetched: int = 0
    blobs_present: int = 0
    bytes_fetched: int = 0
    referrers: int = 0  # referrer manifests fetched
    referrers_present: int = 0

    def __str__(self) -> str:
        return (
            f"pulled from {self.registry}/{self.repository}: {self.manifests} manifests, "
            f"{self.blobs_fetched} blobs fetched ({self.bytes_fetched} bytes), "
            f"{self.blobs_present} already stored, {self.referrers} attestations"
        )


@dataclass(slots=True)
class _Plan:
    manifests: dict[Digest, RegistryManifest] = field(default_factory=dict)  # children first
    fetched: set[Digest] = field(default_factory=set)  # of those, the ones not in the layout
    blobs: dict[Digest, tuple[Descriptor, int]] = field(default_factory=dict)  # with a limit
    referrers: int = 0


class _Pull:
    def __init__(
        self, client: PushClient, layout: OCILayout, repository: str, pulled: Pulled
    ) -> None:
        self.client = client
        self.layout = layout
        self.repository = repository
        self.pulled = pulled
        self.plan = _Plan()

    def manifest(
        self, reference: str, expected: Descriptor | None, *, referrer: bool = False
    ) -> RegistryManifest:
        """A manifest by digest from the layout when it holds it, else from the registry."""
        digest = expected.digest if expected is not None else None
        if digest is None and reference.startswith("sha256:"):
            digest = Digest.parse(reference)
        if digest is not None and self.layout.has_blob(digest):
            try:
                stored = self.layout.get_manifest(expected if expected is not None else digest)
            except (OCILayoutError, DigestError, SizeLimitError):
                pass  # not the manifest asked for after all: the registry's copy decides
            else:
                if not referrer:
                    self.pulled.manifests_present += 1
                return RegistryManifest(stored.raw, stored.descriptor.media_type, digest)
        bare = expected.bare() if expected is not None else None
        manifest = self.client.get_manifest(self.repository, reference, expected=bare)
        if not referrer:
            self.pulled.manifests += 1
        self.plan.fetched.add(manifest.digest)
        return manifest

    def image(
        self, reference: str, expected: Descriptor | None, limit: int = 0
    ) -> RegistryManifest:
        """Plan one manifest, its blobs and (for an index) its children."""
        if len(self.plan.manifests) >= MAX_MANIFESTS:
            raise RegistryError(f"image {reference} has over {MAX_MANIFESTS} manifests")
        manifest = self.manifest(reference, expected)
        parsed = parse_manifest(manifest.raw, manifest.media_type, source=str(manifest.digest))
        if isinstance(parsed, ImageIndex):
            for child in parsed.manifests:
                if child.media_type in MANIFEST_TYPES | INDEX_TYPES:
                    if child.digest not in self.plan.manifests:
                        self.image(str(child.digest), child, limit)
                else:
                    self.want(child, MAX_MANIFEST_SIZE)
        else:
            assert isinstance(parsed, ImageManifest)
            for child in parsed.children():
                if "urls" not in child.extra:  # a non-distributable layer stays where it is
                    self.want(child, limit)
        self.plan.manifests[manifest.digest] = manifest
        return manifest

    def want(self, descriptor: Descriptor, limit: int) -> None:
        if descriptor.digest in self.plan.blobs:
            return
        if self.layout.has_blob(descriptor.digest):
            self.pulled.blobs_present += 1
            return
        self.plan.blobs[descriptor.digest] = (descriptor, limit)

    def referrers(self, subjects: list[Digest], rule: ReferrerRule) -> None:
        """Plan the referrers ``rule`` takes of each subject (and, when deep, theirs)."""
        queue = deque(subjects)
        listed: set[Digest] = set()
        while queue:
            subject = queue.popleft()
            if subject in listed:
                continue
            listed.add(subject)
            found, _ = listed_referrers(self.client, self.repository, subject)
            for referrer in found:
                if referrer.digest in self.plan.manifests:
                    continue
                if referrer.media_type not in MANIFEST_TYPES or not rule.accept(referrer, None):
                    continue
                stored = self.layout.has_blob(referrer.digest)
                if stored and not rule.deep:
                    continue  # pulled before, with everything it names
                if self.plan.referrers >= MAX_REFERRERS:
                    raise RegistryError(
                        f"{subject} has over {MAX_REFERRERS} referrers",
                        hint="load it with --no-referrers",
                    )
                bare = referrer.bare()
                manifest = self.manifest(str(referrer.digest), bare, referrer=True)
                parsed = parse_manifest(manifest.raw, manifest.media_type, source=str(bare.digest))
                if not isinstance(parsed, ImageManifest) or parsed.subject is None:
                    continue
                if parsed.subject.digest != subject or not rule.accept(referrer, parsed):
                    continue  # a listing that names another image's referrer
                for child in parsed.children():
                    self.want(child, rule.blob_limit)
                self.plan.manifests[referrer.digest] = manifest
                self.plan.referrers += 1
                if manifest.digest in self.plan.fetched:
                    self.pulled.referrers += 1
                else:
                    self.pulled.referrers_present += 1
                if rule.deep:
                    queue.append(referrer.digest)

    def blob(self, descriptor: Descriptor, limit: int) -> None:
        if limit and descriptor.size > limit:
            raise RegistryError(
                f"blob {descriptor.digest} is {descriptor.size} bytes, over the limit of {limit}"
            )
        try:
            self.client.copy_blob(self.repository, descriptor, self.layout)
        except (DigestError, SizeLimitError) as e:
            raise RegistryError(
                f"blob {descriptor.digest} came with the wrong content: {e.message}",
                hint="the registry or something in between altered it; nothing was tagged",
            ) from e
        self.pulled.blobs_fetched += 1
        self.pulled.bytes_fetched += descriptor.size


def resolve_tag(client: PushClient, repository: str, tag: str) -> Digest:
    """The digest tag ``tag`` points at (a ``HEAD``; the manifest when the registry names no
    digest). A missing tag is the registry's ``no manifest`` error."""
    digest = client.manifest_digest(repository, tag)
    if digest is None:
        client.get_manifest(repository, tag)  # raises the registry's own 'no manifest'
        raise RegistryError(f"registry has no manifest {client.registry}/{repository}:{tag}")
    return digest


def pull_image(
    client: PushClient,
    layout: OCILayout,
    registry: str,
    repository: str,
    digest: Digest,
    *,
    referrers: ReferrerRule | None,
) -> tuple[Descriptor, Pulled]:
    """Pull image ``repository@digest`` of ``registry`` (an index with every platform, or
    one manifest) and the referrers ``referrers`` takes of each of its manifests into
    ``layout``: the image's descriptor there, and what was fetched. Untagged: the caller tags
    it, once this returned."""
    pulled = Pulled(registry, repository)
    pull = _Pull(client, layout, repository, pulled)
    top = pull.image(str(digest), None)
    if referrers is not None:
        pull.referrers(list(pull.plan.manifests), referrers)  # the index and its platforms
    for descriptor, limit in pull.plan.blobs.values():
        pull.blob(descriptor, limit)
    stored = None
    with layout.batch():  # one index.json rewrite for every referrer
        for manifest in pull.plan.manifests.values():  # children before parents, referrers
            put = layout.put_manifest(manifest.raw, manifest.media_type)
            stored = put if manifest.digest == top.digest else stored
    assert stored is not None
    return stored, pulled
