"""Signing a verdict the Notary Project way at the gate, and verifying it again
(``stella verify IMAGE --notation``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from appliance.home import Home
from appliance.notation import ca
from appliance.notation.envelope import NotationError, payload_for, sign
from appliance.notation.oci import attach_signature, signatures, target_descriptor
from appliance.notation.trust import NotationVerification, TrustPolicyDocument, TrustStore, verify
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import ANNOTATION_PREDICATE, attestations
from bundles.digest import Digest
from bundles.errors import StellaError
from bundles.intoto import Statement
from bundles.oci import Descriptor, OCILayout
from bundles.oci.mediatypes import ANNOTATION_CREATED
from bundles.signer import Signer


def sign_verdict(
    home: Home, layout: OCILayout, referrer: Descriptor, key: Signer, now: datetime
) -> Descriptor | None:
    """When Notary Project signing is on (``stella keys notation init``), sign the verdict's
    referrer manifest and attach the signature to it; else nothing."""
    if not ca.enabled(home):
        return None
    chain = ca.chain_for(home, key, now=now)
    envelope = sign(payload_for(target_descriptor(referrer)), chain, key, signing_time=now)
    return attach_signature(layout, referrer, envelope, chain, now)


def own_trust(home: Home) -> tuple[TrustStore, TrustPolicyDocument]:
    """The trust store and policy trusting this appliance's own CA (what
    ``stella keys notation export`` writes)."""
    files = ca.trust_files(home)
    store = TrustStore(
        Path(f"{home.keys}/notation (the appliance's own CA)"),
        {ca.STORE_NAME: (ca.root_certificate(home),)},
    )
    policy = TrustPolicyDocument.from_bytes(
        files["trustpolicy.json"], source="the appliance's own trust policy"
    )
    return store, policy


def repository_of(image: str) -> str | None:
    """The repository an image reference is scoped by: its name without tag or digest."""
    name = image.partition("@")[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        name = name[:colon]
    return name or None


@dataclass(frozen=True, slots=True)
class NotationResult:
    image: str
    subject: Digest
    referrer: Descriptor
    signature: Descriptor
    verification: NotationVerification
    statement: Statement

    def to_dict(self) -> dict[str, Any]:
        predicate = self.statement.predicate
        return {
            "ok": True,
            "source": self.image,
            "subject": str(self.subject),
            "referrer": str(self.referrer.digest),
            "signature": str(self.signature.digest),
            "notation": self.verification.to_dict(),
            "statement": str(self.statement.digest()),
            "predicateType": self.statement.predicate_type,
            "verdict": predicate.get("verdict"),
            "evaluationTime": predicate.get("evaluationTime"),
        }


def _newest_verdict(layout: OCILayout, subject: Digest, image: str) -> tuple[Descriptor, bytes]:
    found = [
        (ref.annotations.get(ANNOTATION_CREATED, ""), str(ref.digest), ref, data)
        for ref, data in attestations(layout, subject)
        if ref.annotations.get(ANNOTATION_PREDICATE) == PREDICATE_TYPE
    ]
    if not found:
        raise NotationError(
            f"image {image} ({subject}) has no risk verdict attached",
            hint="run 'stella gate' on it first",
        )
    found.sort(key=lambda item: (item[0], item[1]), reverse=True)
    return found[0][2], found[0][3]


def verify_image(
    home: Home,
    image: str,
    *,
    store: TrustStore,
    policy: TrustPolicyDocument,
    now: datetime,
) -> NotationResult:
    """Verify the Notary Project signature of the image's newest verdict: the signature over
    the verdict's referrer manifest, under the trust policy for the image's repository."""
    layout = OCILayout.open(home.oci)
    reference = image.rpartition("@")[2] if "@sha256:" in image else image
    try:
        subject = layout.resolve(reference).digest
    except StellaError as e:
        raise NotationError(
            f"image {image} is not in the appliance store: {e.message}",
            hint="name it as listed by 'stella images list'",
        ) from e
    referrer, bundle = _newest_verdict(layout, subject, image)
    found = signatures(layout, referrer.digest)
    if not found:
        raise NotationError(
            f"the verdict of {image} (referrer {referrer.digest}) has no Notary Project signature",
            hint="turn Notary Project signing on with 'stella keys notation init', then gate again",
        )
    target: Mapping[str, Any] = target_descriptor(referrer)
    failure: NotationError | None = None
    for signature, envelope in found:
        try:
            checked = verify(
                envelope,
                policy=policy,
                store=store,
                repository=repository_of(image),
                target=target,
                now=now,
                source=f"{image} signature {signature.digest}",
            )
        except NotationError as e:
            failure = failure or e
            continue
        statement = sigstore.payload_statement(sigstore.read(bundle, source=str(referrer.digest)))
        return NotationResult(image, subject, referrer, signature, checked, statement)
    assert failure is not None
    raise failure
