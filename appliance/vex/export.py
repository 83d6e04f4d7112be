"""OpenVEX 0.2.0 out of the appliance: the statements in force as one document, signed as an
in-toto attestation, and attached to images as OCI referrers the way ``cosign attest --type
openvex`` attaches them (docs/vex.md).

The document is a pure function of the statements and the time: statements sorted by key,
``@id`` derived from the content, ``timestamp`` the latest statement's time (the moment the set
last changed). OpenVEX has no field for an exception's expiry, so an exception's
``status_notes`` says when it expires; a statement that expired or was revoked by then is not
in force and is left out.

The attestation is an in-toto Statement v1 with predicate type ``https://openvex.dev/ns/v0.2.0``
and the document as the predicate, DSSE-signed with the appliance key, in a Sigstore bundle
v0.3: the layer cosign v3 writes, which ``trivy image --vex oci`` reads from a referrer whose
``artifactType`` is ``application/vnd.dev.sigstore.bundle.v0.3+json`` and whose
``dev.sigstore.bundle.predicateType`` annotation is OpenVEX's.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import attach_attestation
from appliance.vex.model import VexError, VexStatement, VexStatus, format_time
from appliance.vex.openvex import CONTEXT
from appliance.vex.products import ImageIdentity, is_image_product, names_image, parse_purl
from bundles import canonical
from bundles.digest import Digest
from bundles.errors import DigestError, StellaError
from bundles.intoto import Statement, Subject
from bundles.oci import Descriptor, OCILayout
from bundles.signer import Signer

PREDICATE_TYPE: Final = CONTEXT  # "https://openvex.dev/ns/v0.2.0", as cosign --type openvex
ID_PREFIX: Final = "https://stella-ops.org/vex/export/"
TOOLING: Final = "stella-ops"


def in_force(statements: Iterable[VexStatement], at: datetime) -> list[VexStatement]:
    """The statements known by ``at``, not expired at ``at`` and not revoked by a statement
    in force at ``at``, by key."""
    known = [s for s in statements if s.timestamp <= at]
    revoked = {s.revokes for s in known if s.revokes and s.in_force(at)}
    return sorted(
        (s for s in known if s.in_force(at) and s.key not in revoked), key=lambda s: s.key
    )


def about_image(statements: Iterable[VexStatement], image: ImageIdentity) -> list[VexStatement]:
    """The statements that may apply to ``image``: those naming it, and those naming only
    components (they apply wherever the component is); statements about other images are
    left out."""
    out = []
    for s in statements:
        images = [p for p in s.products if is_image_product(p.id)]
        if not images or any(names_image(p.id, image) for p in images):
            out.append(s)
    return out


def image_digests(statements: Iterable[VexStatement]) -> list[Digest]:
    """The image manifest digests the statements' products name, sorted."""
    found: set[Digest] = set()
    for s in statements:
        for p in s.products:
            text = p.id
            if text.startswith("pkg:"):
                purl = parse_purl(text)
                if purl is None or purl.type != "oci":
                    continue
                text = purl.version
            try:
                found.add(Digest.parse(text.lower()))
            except DigestError:
                continue
    return sorted(found, key=str)


def _component(ident: str) -> dict[str, Any]:
    if ident.startswith("pkg:"):
        return {"@id": ident, "identifiers": {"purl": ident}}
    return {"@id": ident}


def statement_dict(s: VexStatement) -> dict[str, Any]:
    """One statement in OpenVEX 0.2.0 form."""
    vulnerability: dict[str, Any] = {"name": s.vulnerability}
    if s.aliases:
        vulnerability["aliases"] = list(s.aliases)
    doc: dict[str, Any] = {
        "vulnerability": vulnerability,
        "products": [
            {
                **_component(p.id),
                **(
                    {"subcomponents": [_component(c) for c in p.subcomponents]}
                    if p.subcomponents
                    else {}
                ),
            }
            for p in s.products
        ],
        "status": s.status.value,
        "timestamp": format_time(s.timestamp),
    }
    if s.justification is not None:
        doc["justification"] = s.justification.value
    if s.impact:
        doc["impact_statement"] = s.impact
    if s.action:
        doc["action_statement"] = s.action
    elif s.status is VexStatus.AFFECTED:
        doc["action_statement"] = "no action statement given"
    notes = s.notes
    if s.expires is not None and format_time(s.expires) not in notes:
        notes = "; ".join(n for n in (notes, f"exception; expires {format_time(s.expires)}") if n)
    if notes:
        doc["status_notes"] = notes
    return doc


def document(
    statements: Sequence[dict[str, Any]], *, author: str, timestamp: datetime
) -> dict[str, Any]:
    """An OpenVEX 0.2.0 document of ``statements`` (already in OpenVEX form, in order)."""
    if not statements:
        raise VexError(
            "no VEX statements in force to export (an OpenVEX document needs at least one)",
            hint="see 'stella vex list'; add one with 'stella vex add'",
        )
    body = {
        "@context": CONTEXT,
        "author": author,
        "timestamp": format_time(timestamp),
        "version": 1,
        "tooling": TOOLING,
        "statements": list(statements),
    }
    return {"@id": ID_PREFIX + canonical.digest(body).hex, **body}


def export_document(statements: Sequence[VexStatement], *, author: str) -> dict[str, Any]:
    """The OpenVEX document of ``statements`` (see :func:`in_force`), dated by the latest."""
    latest = max((s.timestamp for s in statements), default=None)
    if latest is None:
        return document([], author=author, timestamp=datetime.now(UTC))  # refuses
    ordered = sorted(statements, key=lambda s: s.key)
    return document([statement_dict(s) for s in ordered], author=author, timestamp=latest)


def attestation(doc: dict[str, Any], subjects: Sequence[Subject], key: Signer) -> bytes:
    """The signed attestation of ``doc``: a Sigstore bundle v0.3 (JSON bytes)."""
    if not subjects:
        raise VexError(
            "the statements name no image to attest them for",
            hint="name the image with --image",
        )
    statement = Statement(tuple(subjects), PREDICATE_TYPE, doc)
    return sigstore.sign(statement, key).to_json()


@dataclass(frozen=True, slots=True)
class Attached:
    """An OpenVEX attestation stored as a referrer of an image in the store."""

    subject: Digest
    referrer: Descriptor
    document: str  # the OpenVEX document's @id


def attach(
    layout: OCILayout,
    subject: Descriptor,
    name: str,
    statements: Sequence[VexStatement],
    *,
    author: str,
    key: Signer,
    created: datetime,
) -> Attached:
    """Sign the OpenVEX document of ``statements`` for the image ``subject`` and store it as
    its referrer (the form of ``cosign attest --type openvex``; the referrer names ``key``'s
    keyid, so the gate passes it over unread as the appliance's own)."""
    doc = export_document(statements, author=author)
    bundle = attestation(doc, [Subject.of(name, subject.digest)], key)
    referrer = attach_attestation(
        layout, subject, bundle, PREDICATE_TYPE, format_time(created), keyid=key.keyid
    )
    return Attached(subject.digest, referrer, str(doc["@id"]))


def stored_subject(layout: OCILayout, digest: Digest) -> Descriptor | None:
    """The descriptor of image manifest ``digest`` when the store holds it, else None."""
    if not layout.has_blob(digest):
        return None
    try:
        return layout.get_manifest(digest).descriptor
    except StellaError:
        return None
