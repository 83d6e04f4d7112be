"""``stella images load docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]``: an image and its
referrers from a registry into the home's store.

The transport skopeo calls ``docker://``. The image is pulled by :func:`pull_image`, the pull a
registry worker uses: an index with every platform, or one manifest, every part checked by
digest and size, with bounded reads. Unless ``--no-referrers``, every referrer of each of its
manifests comes along, and the referrers of those (a verdict's Notary Project signature), found
through the referrers API or else the ``sha256-<hex>`` fallback tag index: the RVA attestation
a worker pushed, the evidence manifest whose layers are the blobs the verdict pins by digest,
the SBOM attestation, the signatures and attestations others attached. So ``stella verify``,
``explain`` and ``export-audit-package`` find in the store what the gate left in the worker's.

Only when every part is stored is the image tagged (``--tag``, else the repository's last part
with the tag, or ``sha256-<hex>`` for a digest); a failed load tags nothing, and what it did
store is not fetched again. Loading again fetches no manifest and no blob the store holds: a
tag costs one ``HEAD``, the referrer listings are asked again for attestations added since.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from appliance.home import Home
from appliance.imagestore.catalog import store_tag
from appliance.registry.client import PullClient
from appliance.registry.pull import Pulled, every_referrer, pull_image, resolve_tag
from appliance.registry.worker import home_layout
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from bundles.digest import Digest
from bundles.distribution.credentials import Credentials
from bundles.distribution.errors import ImageReferenceError, RegistryError
from bundles.distribution.reference import DOCKER_HUB, ImageReference, fallback_tag
from bundles.errors import OCILayoutError, UsageError
from bundles.oci import Descriptor

SCHEME: Final = "docker://"
REFERRER_BLOB_LIMIT: Final = 1 << 30  # an evidence blob (an SBOM, the vulnerability data)


@dataclass(frozen=True, slots=True)
class RegistrySource:
    """``docker://HOST[:PORT]/REPO[:TAG|@sha256:DIGEST]`` (a tag and a digest together: the
    digest is pulled, the tag names it)."""

    registry: str
    repository: str
    tag: str | None
    digest: Digest | None

    @classmethod
    def parse(cls, text: str) -> RegistrySource:
        rest = text.removeprefix(SCHEME)
        hint = "e.g. docker://registry.enclave:5000/site/app:1 or …/site/app@sha256:HEX"
        try:
            ref = ImageReference.parse(rest)
        except ImageReferenceError as e:
            raise UsageError(
                f"{text!r} is not docker://HOST[:PORT]/REPO: {e.message}", hint=hint
            ) from e
        if ref.registry == DOCKER_HUB and not rest.startswith(f"{DOCKER_HUB}/"):
            raise UsageError(
                f"{text!r} names no registry host",
                hint=f"write the registry first, {hint}",
            )
        return cls(ref.registry, ref.repository, ref.tag, ref.digest)

    @property
    def where(self) -> str:
        """``REPO:TAG`` or ``REPO@sha256:…``, as messages name it."""
        if self.digest is not None:
            return f"{self.repository}@{self.digest}"
        return f"{self.repository}:{self.tag}"

    def __str__(self) -> str:
        return f"{SCHEME}{self.registry}/{self.where}"


@dataclass(frozen=True, slots=True)
class RegistryLoaded:
    tag: str
    named_from: str
    descriptor: Descriptor
    pulled: Pulled

    def to_dict(self) -> dict[str, Any]:
        p = self.pulled
        return {
            "name": self.tag,
            "namedFrom": self.named_from,
            "digest": str(self.descriptor.digest),
            "mediaType": self.descriptor.media_type,
            "blobs": p.blobs_fetched,
            "bytesCopied": p.bytes_fetched,
            "referrers": p.referrers,
            "registry": p.registry,
            "repository": p.repository,
            "manifestsFetched": p.manifests,
            "manifestsPresent": p.manifests_present,
            "blobsPresent": p.blobs_present,
            "referrersPresent": p.referrers_present,
        }

    def __str__(self) -> str:
        p = self.pulled
        return (
            f"loaded {self.tag} {self.descriptor.digest} from {p.registry}/{p.repository}: "
            f"{p.manifests} manifests and {p.blobs_fetched} blobs fetched "
            f"({p.bytes_fetched} bytes), {p.blobs_present} blobs already stored; "
            f"{p.referrers + p.referrers_present} referrers ({p.referrers} new)"
        )


def _name(source: RegistrySource, tag: str | None) -> tuple[str, str]:
    if tag:
        return store_tag(tag), "--tag"
    last = source.repository.rpartition("/")[2]
    if source.tag is not None:
        return store_tag(f"{last}:{source.tag}"), "the repository's last part and the tag"
    assert source.digest is not None
    return store_tag(f"{last}:{fallback_tag(source.digest)}"), (
        "the repository's last part and the digest"
    )


def load(
    home: Home,
    text: str,
    *,
    tag: str | None = None,
    referrers: bool = True,
    credentials: Credentials | None = None,
    plain_http: bool = False,
    ca_bundle: str | None = None,
    now: datetime | None = None,
) -> RegistryLoaded:
    """Pull the image ``text`` names, with its referrers unless ``referrers`` is false, into
    the home's store and tag it; recorded in the audit log."""
    source = RegistrySource.parse(text)
    target, named_from = _name(source, tag)  # a bad name is refused before any request
    layout = home_layout(home)
    digest = source.digest
    try:
        with PullClient(
            source.registry, credentials=credentials, plain_http=plain_http, ca_bundle=ca_bundle
        ) as client:
            if digest is None:
                assert source.tag is not None
                digest = resolve_tag(client, source.repository, source.tag)
            rule = every_referrer(REFERRER_BLOB_LIMIT) if referrers else None
            top, pulled = pull_image(
                client, layout, source.registry, source.repository, digest, referrers=rule
            )
    except (RegistryError, OCILayoutError) as e:  # a manifest the layout cannot read
        raise RegistryError(
            f"registry {source.registry}: cannot load {source.where}: "
            f"{' '.join(e.message.split())}",
            hint=e.hint or "check that the registry runs and holds the image; nothing was tagged",
        ) from e
    tagged = layout.tag(target, top.bare())
    loaded = RegistryLoaded(target, named_from, tagged, pulled)
    record_decision(
        home,
        AuditAction.IMAGE_LOAD,
        str(tagged.digest),
        command="images load",
        time=now or datetime.now(UTC),
        inputs={"source": str(source), "referrers": referrers},
        result={k: v for k, v in loaded.to_dict().items() if k != "digest"},
    )
    return loaded
