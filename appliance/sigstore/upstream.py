"""Upstream image signatures: who may sign the images mirrored in, and checking them at import.

An image copied from a public registry usually comes with its publisher's signatures: Sigstore
bundle referrers (cosign v3: ``artifactType`` ``application/vnd.dev.sigstore.bundle.v0.3+json``,
the bundle JSON as the manifest's layer) and cosign's legacy ``sha256-<hex>.sig`` tags. Those
bytes prove nothing until they are checked against a policy the operator chose, so the
appliance keeps one, ``trust/upstream.json``::

    {"version": 1, "rules": [
      {"repository": "docker.io/library/*", "key": "-----BEGIN PUBLIC KEY-----…", "required": true},
      {"repository": "ghcr.io/acme/*", "keyless": {"identity": "…", "issuer": "…"},
       "required": false}]}

``repository`` is an ``fnmatch`` pattern over ``registry/repository``. At import every
signature of every image is checked against every rule matching its repository, fully offline
(:mod:`appliance.sigstore.verify` against the shipped Sigstore trusted root), with the
image's manifest digest as the artifact. Each signature comes out ``verified``, ``failed``
(an applicable rule was tried and it did not verify, with the reason) or ``unverifiable`` (no
rule matches the repository, or none of the matching rules can judge this form of signature).
A ``required`` rule no signature satisfies refuses the whole bundle. The results are evidence:
the import's audit record carries them and each image gets them as an OCI referrer
(``application/vnd.stella-ops.upstream-verification.v1+json``) that ``stella images inspect``
shows and the gate or an auditor can cite by digest.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from bundles import canonical, limits
from bundles.canonical import kind_of
from bundles.digest import Digest
from bundles.errors import BundleError, CanonicalJSONError, StellaError, TrustError
from bundles.files import atomic_write, exclusive_lock
from bundles.keys import PublicKey
from bundles.limits import Unit
from bundles.oci import Descriptor, ImageManifest, OCILayout
from bundles.oci.manifest import Manifest
from bundles.oci.mediatypes import EMPTY_JSON, EMPTY_JSON_DIGEST, OCI_EMPTY, OCI_MANIFEST

POLICY_FILE: Final = "upstream.json"
POLICY_VERSION: Final = 1
POLICY_LIMIT: Final = 4 << 20
POLICY_RULES: Final = limits.cap(
    "upstream.rules", 10_000, Unit.COUNT, "the rules of the upstream signer policy"
)
SIGNATURE_LIMIT: Final = 32 << 20
VERIFICATION_ARTIFACT: Final = "application/vnd.stella-ops.upstream-verification.v1+json"
SIGSTORE_BUNDLE_TYPES: Final = frozenset(
    {
        "application/vnd.dev.sigstore.bundle.v0.3+json",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
    }
)
COSIGN_SIMPLESIGNING: Final = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE: Final = "dev.cosignproject.cosign/signature"
COSIGN_CERTIFICATE: Final = "dev.sigstore.cosign/certificate"
COSIGN_TLOG_BUNDLE: Final = "dev.sigstore.cosign/bundle"
COSIGN_SIGNATURE_TYPE: Final = "cosign container image signature"
ANNOTATION_RESULT: Final = "org.stella-ops.upstream.result"
ANNOTATION_REFERENCE: Final = "org.stella-ops.upstream.reference"


class UpstreamPolicyError(TrustError):
    """The upstream signer policy file or a rule given for it is not usable."""


class UpstreamSignatureRefusedError(BundleError):
    """A required upstream signature rule is not satisfied by any signature of an image."""


class Outcome(StrEnum):
    VERIFIED = "verified"
    FAILED = "failed"
    UNVERIFIABLE = "unverifiable"


class SignatureForm(StrEnum):
    """How a signature travelled: a Sigstore bundle referrer or a cosign legacy ``.sig`` tag."""

    SIGSTORE_BUNDLE = "sigstore-bundle"
    COSIGN_LEGACY = "cosign-legacy"


# ---------------------------------------------------------------- policy


@dataclass(frozen=True, slots=True)
class Rule:
    """One trusted upstream signer for the repositories matching ``repository``: a public key,
    or a keyless (Fulcio certificate) identity and OIDC issuer."""

    repository: str
    key: PublicKey | None = None
    identity: str | None = None
    issuer: str | None = None
    required: bool = False

    def __post_init__(self) -> None:
        if not self.repository or any(c.isspace() for c in self.repository):
            raise UpstreamPolicyError(
                f"repository pattern {self.repository!r} is empty or has white space",
                hint="give registry/repository, with * wildcards, e.g. docker.io/library/*",
            )
        keyless = self.identity is not None or self.issuer is not None
        if (self.key is None) == (not keyless):
            raise UpstreamPolicyError(
                f"rule for {self.repository!r} must name either a key or a keyless identity",
                hint="use --key PUB, or --certificate-identity with --certificate-oidc-issuer",
            )
        if keyless and not (self.identity and self.issuer):
            raise UpstreamPolicyError(
                f"keyless rule for {self.repository!r} needs both an identity and an issuer",
                hint="give --certificate-identity ID and --certificate-oidc-issuer URL",
            )

    @property
    def signer(self) -> str:
        """The signer this rule trusts, as the verification reports it."""
        if self.key is not None:
            return f"key {self.key.keyid}"
        return f"{self.identity} ({self.issuer})"

    @property
    def name(self) -> str:
        return f"{self.repository} {self.signer}"

    def matches(self, repository: str) -> bool:
        return fnmatch.fnmatchcase(repository, self.repository)

    def same_signer(self, other: Rule) -> bool:
        return (self.repository, self.key, self.identity, self.issuer) == (
            other.repository,
            other.key,
            other.identity,
            other.issuer,
        )

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"repository": self.repository, "required": self.required}
        if self.key is not None:
            doc["key"] = self.key.pem().decode("ascii")
            doc["keyid"] = self.key.keyid
        else:
            doc["keyless"] = {"identity": self.identity, "issuer": self.issuer}
        return doc

    def describe(self) -> dict[str, Any]:
        """The rule without its PEM, for listings and evidence."""
        doc = self.to_dict()
        doc.pop("key", None)
        return doc

    @classmethod
    def from_dict(cls, doc: Any, *, source: str) -> Rule:
        if not isinstance(doc, Mapping):
            raise UpstreamPolicyError(f"{source}: a rule must be a JSON object, not {kind_of(doc)}")
        repository = doc.get("repository")
        if not isinstance(repository, str):
            raise UpstreamPolicyError(
                f"{source}: 'repository' must be a string, not {kind_of(repository)}",
                hint="give registry/repository, with * wildcards, e.g. docker.io/library/*",
            )
        required = doc.get("required", False)
        if not isinstance(required, bool):
            raise UpstreamPolicyError(
                f"{source}: 'required' must be true or false, not {kind_of(required)}"
            )
        pem, keyless = doc.get("key"), doc.get("keyless")
        if pem is not None and keyless is not None:
            raise UpstreamPolicyError(f"{source}: the rule has both 'key' and 'keyless'")
        if pem is not None:
            if not isinstance(pem, str):
                raise UpstreamPolicyError(
                    f"{source}: 'key' must be a PEM string, not {kind_of(pem)}"
                )
            key = PublicKey.from_pem(pem.encode("utf-8", "replace"), source=f"{source} key")
            return cls(repository, key=key, required=required)
        if keyless is None:
            raise UpstreamPolicyError(f"{source}: the rule has neither 'key' nor 'keyless'")
        if not isinstance(keyless, Mapping):
            raise UpstreamPolicyError(
                f"{source}: 'keyless' must be an object, not {kind_of(keyless)}",
                hint='give {"identity": "...", "issuer": "..."}',
            )
        identity, issuer = keyless.get("identity"), keyless.get("issuer")
        for name, value in (("identity", identity), ("issuer", issuer)):
            if not isinstance(value, str):
                raise UpstreamPolicyError(
                    f"{source}: 'keyless.{name}' must be a string, not {kind_of(value)}"
                )
        return cls(repository, identity=identity, issuer=issuer, required=required)


@dataclass(frozen=True, slots=True)
class UpstreamPolicy:
    rules: tuple[Rule, ...] = ()

    def matching(self, repository: str) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.matches(repository))

    def to_bytes(self) -> bytes:
        return canonical.dumps(
            {"version": POLICY_VERSION, "rules": [r.to_dict() for r in self.rules]}
        )

    @property
    def digest(self) -> Digest:
        return Digest.of_bytes(self.to_bytes())

    def with_rule(self, rule: Rule) -> tuple[UpstreamPolicy, bool]:
        """The policy with ``rule`` added, or replacing the rule for the same repository
        pattern and signer (to change ``required``); the flag says whether anything changed."""
        if rule in self.rules:
            return self, False
        if any(r.same_signer(rule) for r in self.rules):
            return UpstreamPolicy(
                tuple(rule if r.same_signer(rule) else r for r in self.rules)
            ), True
        return UpstreamPolicy((*self.rules, rule)), True

    def without(self, repository: str) -> tuple[UpstreamPolicy, tuple[Rule, ...]]:
        """The policy without the rules whose pattern is exactly ``repository``."""
        removed = tuple(r for r in self.rules if r.repository == repository)
        return UpstreamPolicy(tuple(r for r in self.rules if r.repository != repository)), removed

    @classmethod
    def from_bytes(cls, data: bytes, *, source: str) -> UpstreamPolicy:
        try:
            doc = canonical.loads(data, limit=POLICY_LIMIT, source=source)
        except CanonicalJSONError as e:
            raise UpstreamPolicyError(e.message, hint="fix or remove the file") from e
        if not isinstance(doc, Mapping) or doc.get("version") != POLICY_VERSION:
            raise UpstreamPolicyError(
                f"{source}: not a version {POLICY_VERSION} upstream signer policy",
                hint='expected {"version": 1, "rules": [...]}',
            )
        rules = doc.get("rules")
        if not isinstance(rules, list):
            raise UpstreamPolicyError(f"{source}: 'rules' must be an array, not {kind_of(rules)}")
        limits.check(POLICY_RULES, len(rules), f"{source}: rules")
        return cls(
            tuple(Rule.from_dict(r, source=f"{source} rules[{i}]") for i, r in enumerate(rules))
        )


class PolicyStore:
    """``trust/upstream.json``, replaced atomically."""

    def __init__(self, trust_dir: Path) -> None:
        self.path = trust_dir / POLICY_FILE

    def load(self) -> UpstreamPolicy:
        try:
            with open(self.path, "rb") as fh:
                data = fh.read(POLICY_LIMIT + 1)
        except FileNotFoundError:
            return UpstreamPolicy()
        except OSError as e:
            raise UpstreamPolicyError(f"{self.path}: cannot read: {e.strerror}") from e
        return UpstreamPolicy.from_bytes(data, source=str(self.path))

    def save(self, policy: UpstreamPolicy) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, policy.to_bytes() + b"\n", tmp_dir=self.path.parent)

    def locked(self) -> AbstractContextManager[None]:
        """An exclusive lock for a load, change and save of the policy, so two concurrent
        changes cannot lose one another's rule (taken by ``stella trust upstream``)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return exclusive_lock(self.path.with_name(f".{self.path.name}.lock"))


# ---------------------------------------------------------------- results


@dataclass(frozen=True, slots=True)
class Judgement:
    """What the policy made of one signature: its kind (``dsse``, ``message``,
    ``simplesigning``), the outcome, the verified signer, why (a failure's reason, or a caveat),
    and the names of the rules it satisfied."""

    kind: str
    result: Outcome
    signer: str | None = None
    reason: str | None = None
    verified_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    """One signature of an image and what the policy made of it."""

    referrer: Digest
    form: SignatureForm
    kind: str  # "dsse", "message" or "simplesigning"
    result: Outcome
    signer: str | None = None
    reason: str | None = None
    verified_by: tuple[str, ...] = ()  # names of the rules it satisfied

    def to_dict(self) -> dict[str, Any]:
        return {
            "referrer": str(self.referrer),
            "form": self.form.value,
            "kind": self.kind,
            "result": self.result.value,
            "signer": self.signer,
            "reason": self.reason,
            "verifiedBy": list(self.verified_by),
        }


@dataclass(frozen=True, slots=True)
class ImageVerification:
    reference: str
    repository: str
    digest: Digest
    signatures: tuple[SignatureCheck, ...]
    rules: tuple[Rule, ...]
    policy_digest: Digest

    @property
    def summary(self) -> str:
        """``verified`` if any signature verified, else ``failed`` if any failed, else
        ``unverifiable``; ``unsigned`` when the image came with no signature at all."""
        results = {s.result for s in self.signatures}
        for outcome in Outcome:
            if outcome in results:
                return outcome.value
        return "unsigned"

    def unmet(self) -> list[tuple[Rule, str]]:
        """Required rules no signature satisfied, each with why."""
        out = []
        for rule in self.rules:
            if not rule.required or any(rule.name in s.verified_by for s in self.signatures):
                continue
            # a verified signature's reason is a caveat, not why the rule is unmet
            reasons = [
                s.reason for s in self.signatures if s.reason and s.result is not Outcome.VERIFIED
            ]
            why = (
                "the image carries no signature"
                if not self.signatures
                else "no signature verifies: " + "; ".join(reasons)
                if reasons
                else f"no signature is by {rule.signer}"
            )
            out.append((rule, why))
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "reference": self.reference,
            "repository": self.repository,
            "digest": str(self.digest),
            "result": self.summary,
            "signatures": [s.to_dict() for s in self.signatures],
            "policy": {
                "digest": str(self.policy_digest),
                "rules": [r.describe() for r in self.rules],
            }
            if self.rules
            else None,
        }


# ---------------------------------------------------------------- finding signatures


@dataclass(frozen=True, slots=True)
class Found:
    """A signature found for an image: its manifest and what to check."""

    referrer: Digest
    form: SignatureForm
    layers: tuple[Descriptor, ...] = field(default=())
    problem: str | None = None


def repository_of(reference: str) -> str:
    """``registry/repository`` of a normalized reference (tag and digest dropped)."""
    name = reference.split("@", 1)[0]
    slash, colon = name.rfind("/"), name.rfind(":")
    return name[:colon] if colon > slash else name


def find_signatures(
    layout: OCILayout,
    image: Digest,
    repository: str,
    entries: Iterable[Descriptor],
    *,
    parsed: dict[Digest, Manifest | None] | None = None,
) -> list[Found]:
    """Sigstore bundle referrers of ``image`` and its cosign ``.sig`` tag, among ``entries``
    (the bundle's ``index.json``, whose blobs are in ``layout`` already) and the referrers
    the layout already lists. ``parsed`` caches manifests across the images of one import."""
    cache: dict[Digest, Manifest | None] = {} if parsed is None else parsed
    candidates: dict[Digest, Descriptor] = {}
    legacy_tag = f"{repository}:sha256-{image.hex}.sig"
    for entry in entries:
        candidates.setdefault(entry.digest, entry)
    known = layout.tags()
    if legacy_tag in known:
        candidates.setdefault(known[legacy_tag].digest, known[legacy_tag])
    for referrer in layout.referrers(image):
        candidates.setdefault(referrer.digest, referrer)
    found = []
    for digest, entry in sorted(candidates.items()):
        is_legacy = entry.ref_name == legacy_tag
        if entry.ref_name is not None and not is_legacy:
            continue
        if digest not in cache:
            try:
                cache[digest] = layout.get_manifest(entry).manifest
            except StellaError:
                cache[digest] = None  # not a manifest here: nothing to attribute to the image
        manifest = cache[digest]
        if not isinstance(manifest, ImageManifest):
            continue
        if is_legacy:
            layers = tuple(x for x in manifest.layers if x.media_type == COSIGN_SIMPLESIGNING)
            problem = None if layers else f"no {COSIGN_SIMPLESIGNING} layer"
            found.append(Found(digest, SignatureForm.COSIGN_LEGACY, layers, problem))
            continue
        if manifest.subject is None or manifest.subject.digest != image:
            continue
        if manifest.effective_artifact_type not in SIGSTORE_BUNDLE_TYPES:
            continue
        layers = tuple(x for x in manifest.layers if x.media_type in SIGSTORE_BUNDLE_TYPES)
        problem = None if layers else "the referrer has no Sigstore bundle layer"
        found.append(Found(digest, SignatureForm.SIGSTORE_BUNDLE, layers, problem))
    return found


# ---------------------------------------------------------------- checking one signature


def _bundle_form(data: bytes, source: str) -> tuple[str, str]:
    """(signer form, signature kind) of a Sigstore bundle: ``key`` or ``certificate``, and
    ``dsse`` or ``message``."""
    doc = canonical.loads(data, limit=SIGNATURE_LIMIT, source=source)
    material = doc.get("verificationMaterial") if isinstance(doc, Mapping) else None
    if not isinstance(material, Mapping):
        raise BundleError(f"{source}: not a Sigstore bundle (no verificationMaterial)")
    signer = "key" if "publicKey" in material else "certificate"
    kind = "dsse" if "dsseEnvelope" in doc else "message"
    return signer, kind


def check_sigstore_bundle(
    data: bytes,
    image: Digest,
    rules: Sequence[Rule],
    *,
    trusted_root: Path | None = None,
    source: str = "bundle",
) -> Judgement:
    """Check one Sigstore bundle whose artifact must be ``image`` against every applicable
    rule (key rules for key-signed bundles, keyless rules for certificate-signed ones)."""
    try:
        signer_form, kind = _bundle_form(data, source)
    except StellaError as e:
        return Judgement("unknown", Outcome.FAILED, reason=e.message)
    applicable = [r for r in rules if (r.key is not None) == (signer_form == "key")]
    if not applicable:
        wanted = "a key" if signer_form == "key" else "a certificate (keyless)"
        reason = (
            "no upstream trust rule matches the repository"
            if not rules
            else f"signed with {wanted}; no matching rule is of that kind"
        )
        return Judgement(kind, Outcome.UNVERIFIABLE, reason=reason)
    # Imported here: sigstore takes a third of a second to import, and most bundles carry
    # no upstream signature to verify.
    from appliance.sigstore.verify import Artifact, verify_keyless, verify_with_key

    artifact = Artifact(image)
    signer, reasons, verified = None, [], []
    for rule in applicable:
        try:
            if rule.key is not None:
                result = verify_with_key(
                    data, rule.key, artifact=artifact, trusted_root=trusted_root, source=source
                )
            elif rule.identity is not None and rule.issuer is not None:
                result = verify_keyless(
                    data,
                    identity=rule.identity,
                    issuer=rule.issuer,
                    artifact=artifact,
                    trusted_root=trusted_root,
                    source=source,
                )
            else:
                continue  # Rule.__post_init__ makes every rule one of the two
        except StellaError as e:
            reasons.append(f"{rule.signer}: {e.message}")
            continue
        signer = signer or result.signer
        verified.append(rule.name)
    if verified:
        return Judgement(kind, Outcome.VERIFIED, signer, None, tuple(verified))
    return Judgement(kind, Outcome.FAILED, reason="; ".join(reasons))


def check_cosign_legacy(
    payload: bytes,
    annotations: Mapping[str, str],
    image: Digest,
    rules: Sequence[Rule],
    *,
    source: str = "signature",
) -> Judgement:
    """Check one cosign simple-signing layer: the payload must name ``image`` as its
    ``docker-manifest-digest`` and the annotated signature must verify over the payload's
    exact bytes with a rule's key. Certificate (keyless) legacy signatures are not judged."""
    key_rules = [r for r in rules if r.key is not None]
    if not key_rules:
        reason = (
            "no upstream trust rule matches the repository"
            if not rules
            else "legacy cosign signatures are checked with key rules only; "
            "keyless legacy signatures are not supported"
        )
        return Judgement("simplesigning", Outcome.UNVERIFIABLE, reason=reason)
    try:
        doc = canonical.loads(payload, limit=SIGNATURE_LIMIT, source=source)
        critical = doc["critical"]
        signed = critical["image"]["docker-manifest-digest"]
        kind = critical["type"]
        signature = base64.b64decode(annotations[COSIGN_SIGNATURE], validate=True)
    except (StellaError, KeyError, TypeError, binascii.Error) as e:
        return Judgement(
            "simplesigning",
            Outcome.FAILED,
            reason=f"{source}: not a cosign simple-signing signature ({e})",
        )
    if kind != COSIGN_SIGNATURE_TYPE:
        return Judgement(
            "simplesigning", Outcome.FAILED, reason=f"{source}: payload type is {kind!r}"
        )
    if signed != str(image):
        return Judgement(
            "simplesigning",
            Outcome.FAILED,
            reason=f"{source}: the payload signs {signed}, not {image}",
        )
    verified = [r for r in key_rules if r.key is not None and r.key.verify(signature, payload)]
    if not verified:
        keys = ", ".join(r.signer for r in key_rules)
        return Judgement(
            "simplesigning",
            Outcome.FAILED,
            reason=f"{source}: the signature does not verify with {keys}",
        )
    note = (
        "transparency-log bundle annotation not checked"
        if COSIGN_TLOG_BUNDLE in annotations
        else None
    )
    return Judgement(
        "simplesigning", Outcome.VERIFIED, verified[0].signer, note, tuple(r.name for r in verified)
    )


def verify_image(
    layout: OCILayout,
    reference: str,
    image: Digest,
    entries: Iterable[Descriptor],
    policy: UpstreamPolicy,
    *,
    trusted_root: Path | None = None,
    parsed: dict[Digest, Manifest | None] | None = None,
) -> ImageVerification:
    """Every signature the image came with, checked against the rules for its repository."""
    repository = repository_of(reference)
    rules = policy.matching(repository)
    checks = []
    for found in find_signatures(layout, image, repository, entries, parsed=parsed):
        if found.problem is not None:
            checks.append(
                SignatureCheck(
                    found.referrer, found.form, "unknown", Outcome.FAILED, None, found.problem
                )
            )
            continue
        for layer in found.layers:
            source = f"{reference} signature {found.referrer} layer {layer.digest}"
            try:
                data = layout.read_blob(layer.digest, limit=SIGNATURE_LIMIT)
            except StellaError as e:
                checks.append(
                    SignatureCheck(
                        found.referrer, found.form, "unknown", Outcome.FAILED, None, e.message
                    )
                )
                continue
            judged = (
                check_sigstore_bundle(data, image, rules, trusted_root=trusted_root, source=source)
                if found.form is SignatureForm.SIGSTORE_BUNDLE
                else check_cosign_legacy(data, layer.annotations, image, rules, source=source)
            )
            checks.append(
                SignatureCheck(
                    found.referrer,
                    found.form,
                    judged.kind,
                    judged.result,
                    judged.signer,
                    judged.reason,
                    judged.verified_by,
                )
            )
    return ImageVerification(reference, repository, image, tuple(checks), rules, policy.digest)


def enforce(verifications: Iterable[ImageVerification]) -> None:
    """Refuse when a required rule is unmet for any image, naming the image, rule and why."""
    for v in verifications:
        for rule, why in v.unmet():
            raise UpstreamSignatureRefusedError(
                f"image {v.reference} ({v.digest}): required upstream signature rule "
                f"'{rule.name}' is not satisfied: {why}",
                hint="mirror the image with its signatures, or change the rule with "
                "'stella trust upstream add|remove'",
            )


# ---------------------------------------------------------------- evidence


def attach(layout: OCILayout, subject: Descriptor, verification: ImageVerification) -> Descriptor:
    """Store the verification as a referrer of the image: canonical JSON, no wall-clock time,
    so the same result for the same policy is stored once."""
    blob = canonical.dumps(verification.to_dict())
    layout.put_blob(EMPTY_JSON, expected=Digest.parse(EMPTY_JSON_DIGEST), media_type=OCI_EMPTY)
    stored = layout.put_blob(blob, media_type=VERIFICATION_ARTIFACT)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": VERIFICATION_ARTIFACT,
        "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_JSON_DIGEST, "size": len(EMPTY_JSON)},
        "layers": [
            {"mediaType": VERIFICATION_ARTIFACT, "digest": str(stored.digest), "size": stored.size}
        ],
        "subject": {
            "mediaType": subject.media_type,
            "digest": str(subject.digest),
            "size": subject.size,
        },
        "annotations": {
            ANNOTATION_RESULT: verification.summary,
            ANNOTATION_REFERENCE: verification.reference,
        },
    }
    return layout.put_manifest(canonical.dumps(doc), OCI_MANIFEST)


def recorded(layout: OCILayout, image: Digest) -> list[dict[str, Any]]:
    """The verification records attached to ``image``, each with the referrer's digest."""
    out = []
    for referrer in layout.referrers(image, artifact_type=VERIFICATION_ARTIFACT):
        manifest = layout.get_manifest(referrer).manifest
        if not isinstance(manifest, ImageManifest):
            continue
        for layer in manifest.layers:
            if layer.media_type == VERIFICATION_ARTIFACT:
                doc = canonical.loads(layout.read_blob(layer.digest), source=str(layer.digest))
                out.append({"evidence": str(referrer.digest), **doc})
    return out


def verify_import(
    layout: OCILayout,
    images: Sequence[Mapping[str, str]],
    entries: Sequence[Descriptor],
    policy: UpstreamPolicy,
    *,
    trusted_root: Path | None = None,
) -> list[ImageVerification]:
    """The verification of each image an import brings (``images.json``'s reference and
    digest), before anything is activated; refuses when a required rule is unmet."""
    parsed: dict[Digest, Manifest | None] = {}
    results = [
        verify_image(
            layout,
            image["reference"],
            Digest.parse(image["digest"]),
            entries,
            policy,
            trusted_root=trusted_root,
            parsed=parsed,
        )
        for image in images
    ]
    enforce(results)
    return results


def subject_of(layout: OCILayout, image: Digest, entries: Sequence[Descriptor]) -> Descriptor:
    """The image's descriptor: from the bundle's index when it names it, else its manifest."""
    for entry in entries:
        if entry.digest == image:
            return entry.bare()
    return layout.get_manifest(image).descriptor
