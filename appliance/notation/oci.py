"""A Notary Project signature as an OCI referrer (notaryproject/specifications
``specs/signature-specification.md``, "OCI Signatures").

The signed artifact is the verdict's own referrer manifest (the cosign-form artifact holding
the Sigstore bundle, :mod:`appliance.sigstore.attach`): the envelope's ``targetArtifact`` is that
manifest's descriptor, and the signature manifest's ``subject`` is that manifest. The verdict's
bytes are bound by digest all the way down (signature → RVA manifest → bundle layer →
statement), so ``notation verify REPO@<rva-manifest-digest>`` and ``stella verify IMAGE
--notation`` check the same thing. The signature manifest: ``artifactType``
``application/vnd.cncf.notary.signature``, the empty config, one ``application/jose+json``
layer, and the ``io.cncf.notary.x509chain.thumbprint#S256`` annotation.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cryptography import x509

from appliance.notation.envelope import ARTIFACT_TYPE, MEDIA_TYPE, THUMBPRINTS, thumbprints
from appliance.sigstore.attach import referrer_manifest, store_empty_config, subject_ref
from bundles.digest import Digest
from bundles.keys import format_instant
from bundles.oci import Descriptor, ImageManifest, OCILayout
from bundles.oci.mediatypes import (
    ANNOTATION_CREATED,
    OCI_MANIFEST,
)

ENVELOPE_READ_LIMIT = 1 << 20


def target_descriptor(subject: Descriptor) -> dict[str, Any]:
    """The ``targetArtifact`` of a signature over ``subject``."""
    return subject_ref(subject)


def signature_manifest(
    subject: Descriptor,
    envelope: bytes,
    chain: Sequence[x509.Certificate],
    created: datetime,
) -> bytes:
    layer = {
        "mediaType": MEDIA_TYPE,
        "digest": str(Digest.of_bytes(envelope)),
        "size": len(envelope),
    }
    annotations = {
        THUMBPRINTS: json.dumps(thumbprints(chain), separators=(",", ":")),
        ANNOTATION_CREATED: format_instant(created),
    }
    return referrer_manifest(subject, ARTIFACT_TYPE, [layer], annotations)


def attach_signature(
    layout: OCILayout,
    subject: Descriptor,
    envelope: bytes,
    chain: Sequence[x509.Certificate],
    created: datetime,
) -> Descriptor:
    """Store the envelope and its signature manifest as a referrer of ``subject``."""
    store_empty_config(layout)
    layout.put_blob(envelope, media_type=MEDIA_TYPE)
    return layout.put_manifest(signature_manifest(subject, envelope, chain, created), OCI_MANIFEST)


def signatures(layout: OCILayout, subject: Digest) -> list[tuple[Descriptor, bytes]]:
    """Every Notary Project signature envelope attached to ``subject``, newest first:
    the signature manifest's descriptor and the envelope bytes (digest-verified)."""
    found = []
    for referrer in layout.referrers(subject, artifact_type=ARTIFACT_TYPE):
        manifest = layout.get_manifest(referrer).manifest
        if not isinstance(manifest, ImageManifest):
            continue
        for layer in manifest.layers:
            if layer.media_type == MEDIA_TYPE:
                data = layout.read_blob(layer.digest, limit=ENVELOPE_READ_LIMIT)
                found.append((referrer.annotations.get(ANNOTATION_CREATED, ""), referrer, data))
    found.sort(key=lambda item: (item[0], str(item[1].digest)), reverse=True)
    return [(ref, data) for _, ref, data in found]
