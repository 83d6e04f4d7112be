"""A worker's images in the enclave's registry (``stella worker --registry HOST:PORT[/PREFIX]``).

A job names a stored image (``NAME:TAG``) and its manifest digest. A worker given a registry
does not need the image in its own home: it pulls it by digest from ``PREFIX/NAME`` into its
home's OCI layout, which serves as a cache, gates it as any worker does, then pushes the
referrers the gate attached (the RVA attestation with ``subject``, its Notary Project
signature, the evidence and the SBOM attestation) back to the same repository, so that any
client finds them through the referrers API, or the ``sha256-<hex>`` fallback tag index on a
registry without one. It is the one registry client of the appliance (``PushClient``, with
``stella push``'s options), used the same way.

Pulling (:mod:`appliance.registry.pull`, shared with ``stella images load docker://…``) checks
everything it stores: every manifest against the digest it is fetched by (and
a child's against the size its parent names), every blob against its descriptor's digest and
size while it streams into the layout; nothing of the image is tagged unless all of it is
stored. Manifests are read up to ``MAX_MANIFEST_SIZE`` and the attestations of others up to
:data:`REFERRER_BLOB_LIMIT`. What the layout already holds is not fetched again, so a worker
pays for an image's layers and manifests once and for the referrer listings on every job.

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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from appliance.home import Home
from appliance.imagestore.catalog import open_store, store_tag
from appliance.registry.client import PushClient
from appliance.registry.pull import Pulled, ReferrerRule, pull_image
from appliance.registry.push import ReferrersMethod, _Pusher, push_referrers
from bundles.digest import Digest
from bundles.distribution.credentials import Credentials
from bundles.distribution.errors import RegistryError
from bundles.distribution.reference import DOMAIN, REPOSITORY, fallback_tag
from bundles.errors import (
    ConfigError,
    UsageError,
)
from bundles.oci import Descriptor, ImageManifest, OCILayout
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03

REGISTRY_ENV: Final = "STELLA_REGISTRY"
REGISTRY_SETTING: Final = "registry"  # in the home's config.json
REFERRER_BLOB_LIMIT: Final = 64 << 20  # an attestation pulled with an image: a Sigstore bundle
ANNOTATION_PREDICATE: Final = "dev.sigstore.bundle.predicateType"


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
        if not registry or not DOMAIN.fullmatch(registry):
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


def home_layout(home: Home) -> OCILayout:
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
        layout = home_layout(home)
        try:
            with self._client() as client:
                top, pulled = pull_image(
                    client,
                    layout,
                    self.place.registry,
                    repository,
                    subject,
                    referrers=self._rule(),
                )
        except RegistryError as e:
            raise self._failed("pull", image, f"{repository}@{digest}", e) from e
        layout.tag(_tag_for(image, subject), top)
        return pulled

    def _rule(self) -> ReferrerRule:
        """The attestations others attached (Sigstore bundles), not the appliance's verdicts."""
        skip = self.skip_predicates

        def accept(referrer: Descriptor, manifest: ImageManifest | None) -> bool:
            if manifest is None:
                return (
                    referrer.artifact_type in (None, SIGSTORE_BUNDLE_V03)
                    and referrer.annotations.get(ANNOTATION_PREDICATE) not in skip
                )
            kind = manifest.artifact_type or manifest.config.media_type
            return (
                kind == SIGSTORE_BUNDLE_V03
                and manifest.annotations.get(ANNOTATION_PREDICATE) not in skip
            )

        return ReferrerRule(accept, deep=False, blob_limit=REFERRER_BLOB_LIMIT)

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
        layout = home_layout(home)
        try:
            with self._client() as client:
                top = layout.get_manifest(subject).descriptor
                pusher = _Pusher(layout, client, repository)
                done = push_referrers(pusher, top.bare(), only_missing=True)
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
