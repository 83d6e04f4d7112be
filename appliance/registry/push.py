"""``stella push IMAGE --to REGISTRY/REPO[:TAG]``: an image from the store and its referrers.

Order matters to a registry: blobs before the manifests naming them, child manifests before
their index, the image before its referrers. Each referrer (RVA, SBOM attestation, evidence,
VEX) is PUT by digest; a registry with a referrers API answers ``OCI-Subject`` and is done.
One without it (Debian's docker-registry 2.8) gets the distribution-spec fallback: the tag
``sha256-<hex of the subject>`` names an image index whose descriptors carry each referrer's
``artifactType`` and annotations. That index is read, merged and written back, then read again;
if an entry listed when we read it or one of this push's referrers is missing, the merge is
redone. Registries have no conditional PUT, so this catches only a concurrent write that lands
between our write and our re-read and drops entries we know of. It does not detect entries
another client wrote between our read and our write (our write drops them; that client's own
re-read catches it if it runs the same check), nor a write landing after our re-read that drops
ours: the last writer wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from appliance.home import Home
from appliance.imagestore import catalog as images
from appliance.registry.client import PushClient
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from bundles import canonical
from bundles.digest import Digest
from bundles.distribution.credentials import Credentials
from bundles.distribution.errors import RegistryError
from bundles.distribution.reference import REPOSITORY, TAG, fallback_tag
from bundles.errors import (
    CanonicalJSONError,
    DigestError,
    OCILayoutError,
    SizeLimitError,
    UsageError,
)
from bundles.oci import Descriptor, ImageIndex, OCILayout
from bundles.oci.manifest import MAX_MANIFEST_SIZE
from bundles.oci.mediatypes import INDEX_TYPES, MANIFEST_TYPES, OCI_INDEX

FALLBACK_ATTEMPTS: Final = 5


class ReferrersMethod(StrEnum):
    """How a subject's referrers became discoverable on the registry."""

    API = "referrers-api"  # the registry answered OCI-Subject
    FALLBACK = "fallback-tag"  # the sha256-<hex> tag index was updated


@dataclass(frozen=True, slots=True)
class Destination:
    """``REGISTRY/REPO[:TAG]`` as given to ``--to``."""

    registry: str
    repository: str
    tag: str | None

    @classmethod
    def parse(cls, text: str) -> Destination:
        registry, slash, rest = text.partition("/")
        if not slash or not registry or not rest:
            raise UsageError(
                f"--to {text!r} is not REGISTRY/REPO[:TAG]",
                hint="e.g. --to registry.enclave:5000/team/app:1.0",
            )
        repository, _, tag = rest.partition(":")
        if not REPOSITORY.fullmatch(repository):
            raise UsageError(
                f"--to {text!r}: repository {repository!r} is not a valid repository name",
                hint="lower-case letters, digits and . _ - separated by /",
            )
        if tag and not TAG.fullmatch(tag):
            raise UsageError(f"--to {text!r}: {tag!r} is not a valid tag")
        return cls(registry, repository, tag or None)

    def __str__(self) -> str:
        return f"{self.registry}/{self.repository}" + (f":{self.tag}" if self.tag else "")


@dataclass(frozen=True, slots=True)
class PushResult:
    destination: str
    digest: Digest
    blobs_uploaded: int
    blobs_present: int
    manifests: int
    referrers: tuple[Digest, ...]
    methods: tuple[tuple[Digest, ReferrersMethod], ...]  # per subject

    def to_dict(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "digest": str(self.digest),
            "blobsUploaded": self.blobs_uploaded,
            "blobsPresent": self.blobs_present,
            "manifests": self.manifests,
            "referrers": [str(d) for d in self.referrers],
            "subjects": {str(s): m.value for s, m in self.methods},
        }


class _Pusher:
    def __init__(self, layout: OCILayout, client: PushClient, repository: str) -> None:
        self.layout = layout
        self.client = client
        self.repository = repository
        self.uploaded = 0
        self.present = 0
        self.manifests = 0
        self._done: set[Digest] = set()

    def blob(self, descriptor: Descriptor) -> None:
        if descriptor.digest in self._done:
            return
        self._done.add(descriptor.digest)
        if "urls" in descriptor.extra and not self.layout.has_blob(descriptor.digest):
            return  # a non-distributable layer the store never carried
        if self.client.has_blob(self.repository, descriptor.digest):
            self.present += 1
            return
        size = self.layout.blob_size(descriptor.digest)
        digest = descriptor.digest
        with self.layout.open_blob(digest) as stream:
            self.client.upload_blob(
                self.repository, digest, size, stream, reopen=lambda: self.layout.open_blob(digest)
            )
        self.uploaded += 1

    def graph(self, root: Descriptor, reference: str | None = None) -> Digest | None:
        """Push a manifest or index with everything below it, children first; returns the
        OCI-Subject the registry answered for ``root`` (if any)."""
        stored = list(self.layout.walk(root))
        answer: Digest | None = None
        for item in reversed(stored):  # walk yields parents first
            manifest = item.manifest
            if not isinstance(manifest, ImageIndex):
                for child in manifest.children():
                    self.blob(child)
            is_root = item.descriptor.digest == root.digest
            ref = reference if is_root and reference else str(item.descriptor.digest)
            pushed = self.client.put_manifest(
                self.repository, ref, item.raw, item.descriptor.media_type
            )
            self.manifests += 1
            if is_root:
                answer = pushed.subject
        return answer


def _merge_fallback(
    client: PushClient, repository: str, subject: Digest, ours: list[Descriptor]
) -> None:
    """Read-modify-write the ``sha256-<hex>`` index, keeping every entry already listed."""
    tag = fallback_tag(subject)
    listed = {str(d.digest) for d in ours}
    for _ in range(FALLBACK_ATTEMPTS):
        found = client.find_manifest_bytes(repository, tag)
        doc: dict[str, Any]
        if found is None:
            doc = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
        else:
            try:
                loaded = canonical.loads(found[0], source=f"{repository}:{tag}")
            except CanonicalJSONError as e:
                raise RegistryError(
                    f"fallback referrers index {client.registry}/{repository}:{tag} is not "
                    f"valid JSON: {e.message}",
                    hint="remove or repair that tag; it is not an image index",
                ) from e
            if not isinstance(loaded, dict) or not isinstance(loaded.get("manifests"), list):
                raise RegistryError(
                    f"tag {client.registry}/{repository}:{tag} is not an image index",
                    hint="the sha256-<hex> tag is reserved for the referrers fallback index",
                )
            doc = loaded
        entries: list[Any] = list(doc["manifests"])
        before = {e.get("digest") for e in entries if isinstance(e, dict)}
        added = [d.to_dict() for d in ours if str(d.digest) not in before]
        if not added:
            return
        doc["manifests"] = entries + added
        doc.setdefault("mediaType", OCI_INDEX)
        client.put_manifest(repository, tag, canonical.dumps(doc), OCI_INDEX)
        check = client.find_manifest_bytes(repository, tag)
        after: set[Any] = set()
        if check is not None:
            now = canonical.loads(check[0], source=f"{repository}:{tag}")
            if isinstance(now, dict) and isinstance(now.get("manifests"), list):
                after = {e.get("digest") for e in now["manifests"] if isinstance(e, dict)}
        if (before | listed) <= after:
            return
        # A write that landed between our write and our re-read lost entries: merge again.
        # Entries written between our read and our write (and dropped by our write) or a
        # write after our re-read are not seen here (see the module docstring).
    raise RegistryError(
        f"the fallback referrers index {client.registry}/{repository}:{tag} kept changing "
        f"under {FALLBACK_ATTEMPTS} attempts",
        hint="another client is writing it at the same time; push again",
    )


def listed_referrers(
    client: PushClient, repository: str, subject: Digest
) -> tuple[list[Descriptor], bool]:
    """The referrers the registry lists for ``subject``, and whether it has a referrers API
    (else they are the entries of the ``sha256-<hex>`` fallback index, none when it is
    missing; a tag that is not an index is refused when it would be written)."""
    found = client.referrers(repository, subject)
    if found is not None:
        return found, True
    tag = fallback_tag(subject)
    raw = client.find_manifest_bytes(repository, tag)
    if raw is None:
        return [], False
    try:
        doc = canonical.loads(raw[0], limit=MAX_MANIFEST_SIZE, source=f"{repository}:{tag}")
    except (CanonicalJSONError, SizeLimitError):
        return [], False
    entries: Any = doc.get("manifests", []) if isinstance(doc, dict) else []
    out: list[Descriptor] = []
    for entry in entries if isinstance(entries, list) else []:
        try:
            out.append(Descriptor.from_dict(entry, source=f"{repository}:{tag}"))
        except (OCILayoutError, DigestError):
            continue  # an entry this client cannot read is not one of ours
    return out, False


@dataclass(frozen=True, slots=True)
class ReferrersPushed:
    """The referrers one push sent, those the registry already listed, and per subject how
    they became discoverable."""

    pushed: tuple[Digest, ...]
    present: int
    methods: tuple[tuple[Digest, ReferrersMethod], ...]
    top: frozenset[Digest]  # the root's referrers the registry lists now (pushed or not)


def push_referrers(
    pusher: _Pusher, root: Descriptor, *, only_missing: bool = False
) -> ReferrersPushed:
    """Push every referrer of ``root`` and of each manifest under it, and their own
    referrers (signatures of an RVA), each graph children first; with ``only_missing``, only
    those the registry does not list yet (a registry worker's push, run again after a
    retry: nothing is sent twice)."""
    layout, client, repository = pusher.layout, pusher.client, pusher.repository
    subjects = [s.descriptor for s in layout.walk(root)]
    pushed: list[Digest] = []
    present = 0
    methods: list[tuple[Digest, ReferrersMethod]] = []
    top: set[Digest] = set()
    seen: set[Digest] = set()
    while subjects:
        subject = subjects.pop(0)
        found = [r for r in layout.referrers(subject.digest) if r.digest not in seen]
        listed: set[Digest] = set()
        has_api = True  # as far as a plain push knows: the registry's answers tell
        if only_missing:
            remote, has_api = listed_referrers(client, repository, subject.digest)
            listed = {r.digest for r in remote}
        if subject.digest == root.digest:
            top = listed | {r.digest for r in found}
        if not found:
            continue
        fallback: list[Descriptor] = []
        for referrer in found:
            seen.add(referrer.digest)
            bare = referrer.bare()
            if referrer.digest in listed:
                present += 1
            else:
                answer = pusher.graph(bare)
                pushed.append(referrer.digest)
                if answer != subject.digest:
                    fallback.append(referrer)
            if referrer.media_type in MANIFEST_TYPES | INDEX_TYPES:
                subjects.append(bare)  # referrers of referrers (signatures of an RVA)
        if fallback:
            _merge_fallback(client, repository, subject.digest, fallback)
        api = has_api and not fallback
        methods.append((subject.digest, ReferrersMethod.API if api else ReferrersMethod.FALLBACK))
    return ReferrersPushed(tuple(pushed), present, tuple(methods), frozenset(top))


def push(
    home: Home,
    image: str,
    to: str,
    *,
    credentials: Credentials | None = None,
    plain_http: bool = False,
    ca_bundle: str | None = None,
    now: datetime | None = None,
) -> PushResult:
    """Push IMAGE (a name in the store) and its referrers to ``to``; recorded in the audit log."""
    destination = Destination.parse(to)
    layout, descriptor, names = images.resolve(home, image)
    tag = destination.tag or names[0].rpartition(":")[2]  # resolve() names at least one tag
    with PushClient(
        destination.registry, credentials=credentials, plain_http=plain_http, ca_bundle=ca_bundle
    ) as client:
        client.ping(destination.repository)
        pusher = _Pusher(layout, client, destination.repository)
        plain = descriptor.bare()
        pusher.graph(plain, tag)
        done = push_referrers(pusher, plain)
    result = PushResult(
        destination=f"{destination.registry}/{destination.repository}:{tag}",
        digest=descriptor.digest,
        blobs_uploaded=pusher.uploaded,
        blobs_present=pusher.present,
        manifests=pusher.manifests,
        referrers=done.pushed,
        methods=done.methods,
    )
    record_decision(
        home,
        AuditAction.PUSH,
        str(descriptor.digest),
        command="push",
        time=now or datetime.now(UTC),
        inputs={"image": image, "to": str(destination)},
        result=result.to_dict(),
    )
    return result
