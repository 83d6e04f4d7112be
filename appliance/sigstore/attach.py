"""Store attestations and evidence as OCI 1.1 referrers of an image in a local layout.

An attestation is an artifact manifest in the form cosign v3 writes: ``artifactType``
``application/vnd.dev.sigstore.bundle.v0.3+json``, the empty config, one layer holding the
Sigstore bundle JSON, ``subject`` = the image manifest, and the annotations
``dev.sigstore.bundle.content`` and ``dev.sigstore.bundle.predicateType``; one the appliance
signed also carries ``org.stella-ops.signer.keyid`` (the keyid of the key that signed it), so
its own attestations can be told apart from the referrers' list alone. Evidence blobs go
into one more referrer (``application/vnd.stella-ops.rva-evidence.v1+json``), one layer per
piece, each annotated with its role, so the verdict's evidence is reachable (never garbage)
and addressable by the digests the predicate cites. Every layer carries
``org.opencontainers.image.title`` (``risk-verdict.sigstore.json``, ``sbom.json``, …), the
file name ``oras pull`` saves it under.

Manifests are canonical JSON and carry no wall-clock time (``created`` is the evaluation time),
so attaching the same verdict twice stores the same manifest once.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any, Final

from bundles import canonical
from bundles.digest import Digest
from bundles.oci import Descriptor, ImageManifest, OCILayout
from bundles.oci.mediatypes import (
    ANNOTATION_CREATED,
    EMPTY_JSON,
    EMPTY_JSON_DIGEST,
    OCI_EMPTY,
    OCI_MANIFEST,
    SIGSTORE_BUNDLE_V03,
)

EVIDENCE_ARTIFACT: Final = "application/vnd.stella-ops.rva-evidence.v1+json"
ANNOTATION_CONTENT: Final = "dev.sigstore.bundle.content"
ANNOTATION_PREDICATE: Final = "dev.sigstore.bundle.predicateType"
ANNOTATION_ROLE: Final = "org.stella-ops.evidence.role"
ANNOTATION_SIGNER: Final = "org.stella-ops.signer.keyid"
ANNOTATION_TITLE: Final = "org.opencontainers.image.title"
_VERSION_PART: Final = re.compile(r"v?\d+(\.\d+)*")
_TITLE_SAFE: Final = re.compile(r"[^a-z0-9._-]+")


def layer_title(predicate_type: str) -> str:
    """The file name of an attestation layer: the predicate type's last name that is not a
    version (``…/risk-verdict/v1`` -> ``risk-verdict.sigstore.json``; OpenVEX's ``…/ns/v0.2.0``
    -> ``openvex.sigstore.json``)."""
    if predicate_type.startswith("https://openvex.dev/"):
        return "openvex.sigstore.json"
    parts = [
        p
        for p in re.split(r"[/:#?]", predicate_type.lower())
        if p and not _VERSION_PART.fullmatch(p)
    ]
    name = _TITLE_SAFE.sub("-", parts[-1]).strip("-.") if parts else ""
    return f"{name or 'attestation'}.sigstore.json"


@dataclass(frozen=True, slots=True)
class Blob:
    """One piece of evidence: its role in the predicate, media type and exact bytes."""

    role: str
    media_type: str
    data: bytes

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.data)

    def ref(self) -> dict[str, Any]:
        return {"digest": str(self.digest), "mediaType": self.media_type, "size": len(self.data)}


def store_empty_config(layout: OCILayout) -> None:
    """Store the empty JSON config blob every referrer manifest names."""
    layout.put_blob(EMPTY_JSON, expected=Digest.parse(EMPTY_JSON_DIGEST), media_type=OCI_EMPTY)


def subject_ref(subject: Descriptor) -> dict[str, Any]:
    """The descriptor a referrer manifest names as its ``subject``."""
    return {"mediaType": subject.media_type, "digest": str(subject.digest), "size": subject.size}


def referrer_manifest(
    subject: Descriptor,
    artifact_type: str,
    layers: Sequence[dict[str, Any]],
    annotations: dict[str, str],
) -> bytes:
    """The canonical bytes of an OCI 1.1 referrer manifest of ``subject``: the empty config
    (:func:`store_empty_config` stores its blob), the given layers and annotations. Every
    referrer the appliance attaches (attestations, evidence, Notary Project signatures) is
    one of these."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": len(EMPTY_JSON)},
        "layers": list(layers),
        "subject": subject_ref(subject),
        "annotations": annotations,
    }
    return canonical.dumps(doc)


def attestation_manifest(
    subject: Descriptor, bundle: bytes, predicate_type: str, created: str, *, keyid: str = ""
) -> bytes:
    """The canonical bytes of the referrer manifest for one Sigstore bundle; ``keyid``, when
    given, is annotated as the key that signed it (:data:`ANNOTATION_SIGNER`)."""
    layer = {
        "mediaType": SIGSTORE_BUNDLE_V03,
        "digest": str(Digest.of_bytes(bundle)),
        "size": len(bundle),
        "annotations": {ANNOTATION_TITLE: layer_title(predicate_type)},
    }
    annotations = {
        ANNOTATION_CONTENT: "dsse-envelope",
        ANNOTATION_PREDICATE: predicate_type,
        ANNOTATION_CREATED: created,
    }
    if keyid:
        annotations[ANNOTATION_SIGNER] = keyid
    return referrer_manifest(subject, SIGSTORE_BUNDLE_V03, [layer], annotations)


def attach_attestation(
    layout: OCILayout,
    subject: Descriptor,
    bundle: bytes,
    predicate_type: str,
    created: str,
    *,
    keyid: str = "",
) -> Descriptor:
    """Store one Sigstore bundle as a referrer of ``subject``; returns the manifest's
    descriptor. ``keyid`` is the appliance's key that signed the bundle, for a bundle the
    appliance signed itself (one from elsewhere is attached without it)."""
    store_empty_config(layout)
    layout.put_blob(bundle, media_type=SIGSTORE_BUNDLE_V03)
    raw = attestation_manifest(subject, bundle, predicate_type, created, keyid=keyid)
    return layout.put_manifest(raw, OCI_MANIFEST)


def attach_evidence(
    layout: OCILayout, subject: Descriptor, blobs: Sequence[Blob], created: str
) -> Descriptor:
    """Store the evidence blobs and one referrer manifest naming them all."""
    store_empty_config(layout)
    layers = []
    for blob in sorted(blobs, key=lambda b: b.role):
        stored = layout.put_blob(blob.data, media_type=blob.media_type)
        layers.append(
            {
                "mediaType": blob.media_type,
                "digest": str(stored.digest),
                "size": stored.size,
                "annotations": {ANNOTATION_ROLE: blob.role, ANNOTATION_TITLE: f"{blob.role}.json"},
            }
        )
    raw = referrer_manifest(subject, EVIDENCE_ARTIFACT, layers, {ANNOTATION_CREATED: created})
    return layout.put_manifest(raw, OCI_MANIFEST)


def attestations(
    layout: OCILayout,
    subject: Digest,
    *,
    leave_out: Collection[str] = (),
    leave_out_signers: Collection[str] = (),
) -> list[tuple[Descriptor, bytes]]:
    """Every Sigstore bundle attached to ``subject``: the referrer descriptor and the bundle
    bytes (digest-verified on read); referrers whose predicate type annotation is one of
    ``leave_out``, or whose signer annotation (:data:`ANNOTATION_SIGNER`) is one of
    ``leave_out_signers``, are left out unread. Both go by the annotations alone, which
    nothing signs: a way to pass over what is known not to be wanted, never a check."""
    out = []
    for referrer in layout.referrers(subject, artifact_type=SIGSTORE_BUNDLE_V03):
        if leave_out and referrer.annotations.get(ANNOTATION_PREDICATE, "") in leave_out:
            continue
        if referrer.annotations.get(ANNOTATION_SIGNER) in leave_out_signers:
            continue  # one without the annotation (None) is read
        manifest = layout.get_manifest(referrer).manifest
        if not isinstance(manifest, ImageManifest):
            continue
        for layer in manifest.layers:
            if layer.media_type == SIGSTORE_BUNDLE_V03:
                out.append((referrer, layout.read_blob(layer.digest)))
    return out
