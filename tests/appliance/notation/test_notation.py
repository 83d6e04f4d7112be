"""Notary Project signatures of verdicts: the envelope's byte form against the Notary
Project's JWS conformance vector, the envelope the gate attaches against a JSON schema
written from the specification, verified by the project's code and by an independent JWS
check with ``cryptography`` primitives only, and refused with its reason when the payload is
tampered with, a certificate is outside its validity, the root is not trusted, the identity
is not trusted or the algorithm is substituted; trust policies in Notation's own format."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from appliance.cli import cli
from appliance.home import Home
from appliance.notation import ca
from appliance.notation.envelope import (
    ARTIFACT_TYPE,
    MEDIA_TYPE,
    THUMBPRINTS,
    NotationError,
    b64url,
    parse,
    protected_header,
    thumbprints,
)
from appliance.notation.oci import signatures, target_descriptor
from appliance.notation.service import own_trust, verify_image
from appliance.notation.trust import TrustPolicyDocument, TrustStore, verify
from appliance.rva.gate import gate
from appliance.sigstore.attach import attestations
from bundles.oci import OCILayout
from bundles.pkcs11_uri import PIN_ENV
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.softhsm import PIN, softhsm

DATA = Path(__file__).resolve().parents[2] / "data"
SCHEMA = json.loads((DATA / "schemas" / "notation-jws-envelope.schema.json").read_text())
NOW = datetime.now(UTC)


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _home(root: Path, *, subject: str | None = None) -> Home:
    home = Home(root)
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    add_snapshot(home, BASE_RECORDS, 1)
    ca.init_ca(home, now=NOW, subject_text=subject)
    gate(home, "app:1", at=NOW, now=lambda: NOW)
    return home


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> Home:
    return _home(tmp_path_factory.mktemp("notation") / "home")


def _envelope(home: Home) -> tuple[bytes, dict[str, Any], Any]:
    layout = OCILayout.open(home.oci)
    subject = layout.resolve("app:1").digest
    (referrer, _), *_ = [
        (r, d)
        for r, d in attestations(layout, subject)
        if "risk-verdict" in r.annotations.get("dev.sigstore.bundle.predicateType", "")
    ]
    ((signature, data),) = signatures(layout, referrer.digest)
    manifest = json.loads(layout.read_blob(signature.digest))
    return data, manifest, referrer


def test_the_protected_header_has_the_conformance_vectors_byte_form() -> None:
    vector = json.loads((DATA / "notation" / "conformance.json").read_text())
    ours = protected_header(
        datetime(2022, 8, 29, 13, 50, tzinfo=UTC),
        alg="ES256",
        expiry=datetime(2099, 8, 30, 13, 50, tzinfo=UTC),
        extended={
            "signedCritKey1": "signedCritValue1",
            **{f"signedKey{i}": "signedValue1" for i in range(1, 5)},
        },
        critical=("signedCritKey1",),
    )
    assert b64url(ours) == vector["protected"]
    assert b64url(b'"aGVsbG8gSldT"') == vector["payload"]
    jsonschema.validate(
        json.loads(ours), {**SCHEMA["$defs"]["protectedHeader"], "$defs": SCHEMA["$defs"]}
    )


def test_the_attached_signature_follows_the_specification(signed: Home) -> None:
    data, manifest, referrer = _envelope(signed)
    envelope = json.loads(data)
    jsonschema.validate(envelope, SCHEMA)
    header = json.loads(_b64url_decode(envelope["protected"]))
    jsonschema.validate(header, {**SCHEMA["$defs"]["protectedHeader"], "$defs": SCHEMA["$defs"]})
    assert header["alg"] == "ES256"
    assert header["crit"] == ["io.cncf.notary.signingScheme"]
    payload = json.loads(_b64url_decode(envelope["payload"]))
    jsonschema.validate(payload, {**SCHEMA["$defs"]["payload"], "$defs": SCHEMA["$defs"]})
    assert payload == {"targetArtifact": target_descriptor(referrer)}
    # The signature manifest: an OCI 1.1 referrer of the verdict's manifest.
    assert manifest["artifactType"] == ARTIFACT_TYPE
    assert manifest["config"]["mediaType"] == "application/vnd.oci.empty.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [MEDIA_TYPE]
    assert manifest["subject"]["digest"] == str(referrer.digest)
    chain = parse(data).chain
    assert json.loads(manifest["annotations"][THUMBPRINTS]) == thumbprints(chain)


def test_an_independent_jws_check_with_cryptography_primitives(signed: Home) -> None:
    """The signature and the chain verified without the project's envelope code."""
    envelope = json.loads(_envelope(signed)[0])
    certs = [x509.load_der_x509_certificate(base64.b64decode(c)) for c in envelope["header"]["x5c"]]
    leaf, root = certs
    signing_input = f"{envelope['protected']}.{envelope['payload']}".encode()
    raw = _b64url_decode(envelope["signature"])
    assert len(raw) == 64  # JWS ES256: r || s, 32 bytes each
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = leaf.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    public.verify(der, signing_input, ec.ECDSA(hashes.SHA256()))
    root_key = root.public_key()
    assert isinstance(root_key, ec.EllipticCurvePublicKey)
    assert leaf.signature_hash_algorithm is not None
    root_key.verify(
        leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm)
    )
    root_key.verify(root.signature, root.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
    assert leaf.issuer == root.subject
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    # The leaf certifies the appliance key itself.
    spki = public.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki == signed.public_key().der


def test_verify_image_with_the_appliance_trust(signed: Home) -> None:
    store, policy = own_trust(signed)
    result = verify_image(signed, "app:1", store=store, policy=policy, now=NOW)
    assert result.verification.level == "strict"
    assert result.verification.logged == ()
    assert result.to_dict()["verdict"] in ("PASS", "FAIL", "PASS_WITH_EXCEPTIONS")


def _check(home: Home, data: bytes, **overrides: Any) -> Any:
    store, policy = own_trust(home)
    _, _, referrer = _envelope(home)
    args: dict[str, Any] = {
        "policy": policy,
        "store": store,
        "repository": "app",
        "target": target_descriptor(referrer),
        "now": NOW,
        "source": "sig",
    }
    args.update(overrides)
    return verify(data, **args)


def _reencode(data: bytes, **changes: Any) -> bytes:
    doc = json.loads(data)
    doc.update(changes)
    return json.dumps(doc).encode()


def test_a_tampered_payload_is_refused(signed: Home) -> None:
    data, _, referrer = _envelope(signed)
    other = {**target_descriptor(referrer), "size": referrer.size + 1}
    forged = _reencode(data, payload=b64url(json.dumps({"targetArtifact": other}).encode()))
    with pytest.raises(NotationError, match="the signature does not verify over the protected"):
        _check(signed, forged)


def test_a_signature_for_another_artifact_is_refused(signed: Home) -> None:
    data, _, referrer = _envelope(signed)
    wrong = {**target_descriptor(referrer), "digest": "sha256:" + "0" * 64}
    with pytest.raises(NotationError, match="the signature is for digest"):
        _check(signed, data, target=wrong)


def test_certificates_outside_their_validity_are_refused(signed: Home) -> None:
    data, _, _ = _envelope(signed)
    later = NOW + timedelta(days=400)
    with pytest.raises(NotationError, match=r"is valid from .* not at "):
        _check(signed, data, now=later)
    earlier = NOW - timedelta(days=1)
    with pytest.raises(NotationError, match="not at"):
        _check(signed, data, now=earlier)


def test_an_untrusted_root_is_refused_and_audit_level_only_logs_it(
    signed: Home, tmp_path: Path
) -> None:
    data, _, _ = _envelope(signed)
    other = Home(tmp_path / "other")
    other.init()
    ca.init_ca(other, now=NOW)
    store, policy = own_trust(other)
    with pytest.raises(NotationError, match="in none of the trust stores ca:stella-appliance"):
        _check(signed, data, store=store, policy=policy)
    audit = _policy({"level": "audit"}, stores=["ca:stella-appliance"], identities=["*"])
    result = _check(signed, data, store=store, policy=audit)
    assert result.logged
    assert result.logged[0].startswith("authenticity: sig: the certificate chain ends at")


def _policy(
    verification: dict[str, Any],
    *,
    scopes: list[str] | None = None,
    stores: list[str] | None = None,
    identities: list[str] | None = None,
) -> TrustPolicyDocument:
    doc = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "p",
                "registryScopes": scopes or ["*"],
                "signatureVerification": verification,
                "trustStores": stores or ["ca:stella-appliance"],
                "trustedIdentities": identities or ["*"],
            }
        ],
    }
    return TrustPolicyDocument.from_bytes(json.dumps(doc).encode(), source="trustpolicy.json")


def test_an_untrusted_identity_is_refused(signed: Home) -> None:
    data, _, _ = _envelope(signed)
    policy = _policy(
        {"level": "strict"}, identities=["x509.subject: C=US, ST=WA, O=acme-rockets.io"]
    )
    with pytest.raises(NotationError, match="is not a trusted identity of trust policy 'p'"):
        _check(signed, data, policy=policy)
    ok = _policy({"level": "strict"}, identities=["x509.subject: C=ZZ, ST=Enclave, O=Stella Ops"])
    assert _check(signed, data, policy=ok).logged == ()


def test_an_exact_scope_wins_and_skip_verifies_nothing(signed: Home) -> None:
    data, _, _ = _envelope(signed)
    doc = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "skip-app",
                "registryScopes": ["app"],
                "signatureVerification": {"level": "skip"},
            },
            {
                "name": "global",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:nowhere"],
                "trustedIdentities": ["*"],
            },
        ],
    }
    policy = TrustPolicyDocument.from_bytes(json.dumps(doc).encode(), source="tp")
    assert _check(signed, data, policy=policy).level == "skip"
    with pytest.raises(NotationError, match="names trust store ca:nowhere"):
        _check(signed, data, policy=policy, repository="other")


def test_an_algorithm_substitution_is_refused(signed: Home) -> None:
    data, _, _ = _envelope(signed)
    doc = json.loads(data)
    header = json.loads(_b64url_decode(doc["protected"]))
    header["alg"] = "ES384"
    forged = _reencode(data, protected=b64url(json.dumps(header).encode()))
    with pytest.raises(NotationError, match="alg ES384 does not match the signing certificate"):
        _check(signed, forged)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda h: h.update(
                crit=[*h["crit"], "io.example.plugin"], **{"io.example.plugin": "x"}
            ),
            "critical attribute 'io.example.plugin' is not understood",
        ),
        (lambda h: h.update(cty="application/json"), "protected header cty"),
        (lambda h: h.update(alg="none"), "alg 'none' is not a Notary Project algorithm"),
        (lambda h: h.pop("io.cncf.notary.signingTime"), "signingTime is required"),
        (
            lambda h: h.update(**{"io.cncf.notary.signingScheme": "notary.x509.signingAuthority"}),
            "signing scheme 'notary.x509.signingAuthority' is not supported",
        ),
    ],
)
def test_malformed_protected_headers_are_refused(signed: Home, change: Any, message: str) -> None:
    data, _, _ = _envelope(signed)
    doc = json.loads(data)
    header = json.loads(_b64url_decode(doc["protected"]))
    change(header)
    with pytest.raises(NotationError, match=message):
        parse(_reencode(data, protected=b64url(json.dumps(header).encode())))


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ({"version": "2.0", "trustPolicies": []}, "not a Notation trust policy version 1.0"),
        (
            {"version": "1.0", "trustPolicies": [
                {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "skip"}}
            ]},
            "level skip cannot be used with the global scope",
        ),
        (
            {"version": "1.0", "trustPolicies": [
                {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                 "trustStores": ["ca:x"], "trustedIdentities": ["x509.subject: CN=me"]}
            ]},
            "lacks C, ST, O",
        ),
        (
            {"version": "1.0", "trustPolicies": [
                {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                 "trustStores": ["ca:x"], "trustedIdentities": ["*"]},
                {"name": "b", "registryScopes": ["*"], "signatureVerification": {"level": "audit"},
                 "trustStores": ["ca:x"], "trustedIdentities": ["*"]},
            ]},
            "only one trust policy may use the global scope",
        ),
        (
            {"version": "1.0", "trustPolicies": [
                {"name": "a", "registryScopes": ["*"],
                 "signatureVerification": {"level": "strict", "override": {"integrity": "log"}},
                 "trustStores": ["ca:x"], "trustedIdentities": ["*"]}
            ]},
            "override 'integrity'",
        ),
        (
            {"version": "1.0", "trustPolicies": [
                {"name": "a", "registryScopes": ["*"], "signatureVerification": {"level": "strict"},
                 "trustStores": ["ca:x"], "trustedIdentities": [
                     "x509.subject: C=US, ST=WA, O=w", "x509.subject: C=US, ST=WA, O=w, OU=o"]}
            ]},
            "overlap",
        ),
    ],
)  # fmt: skip
def test_bad_trust_policies_are_refused_by_name(policy: Any, message: str) -> None:
    with pytest.raises(NotationError, match=message):
        TrustPolicyDocument.from_bytes(json.dumps(policy).encode(), source="trustpolicy.json")


def test_a_symlinked_trust_store_certificate_is_refused(signed: Home, tmp_path: Path) -> None:
    named = tmp_path / "x509" / "ca" / "s"
    named.mkdir(parents=True)
    real = tmp_path / "root.pem"
    real.write_bytes(ca.trust_files(signed)["truststore/x509/ca/stella-appliance/root.pem"])
    (named / "root.pem").symlink_to(real)
    with pytest.raises(NotationError, match="must not be a symlink"):
        TrustStore.load(tmp_path)


def _stella(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


def test_the_command_line(signed: Home, tmp_path: Path) -> None:
    trust = tmp_path / "trust"
    code, out, err = _stella(signed.root, "keys", "notation", "export", "--out", str(trust))
    assert code == 0, err
    code, out, err = _stella(
        signed.root, "--json", "verify", "app:1", "--notation",
        "--trust-store", str(trust / "truststore"),
        "--trust-policy", str(trust / "trustpolicy.json"),
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert result["notation"]["level"] == "strict"
    assert result["notation"]["signer"].startswith("CN=stella-appliance")
    # Another appliance's trust: refused in one line naming why.
    other = Home(tmp_path / "other")
    other.init()
    ca.init_ca(other, now=NOW)
    foreign = tmp_path / "foreign"
    _stella(other.root, "keys", "notation", "export", "--out", str(foreign))
    code, _, err = _stella(
        signed.root, "verify", "app:1", "--notation", "--trust-store", str(foreign / "truststore")
    )
    assert code == 1
    assert "in none of the trust stores ca:stella-appliance" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = _stella(signed.root, "verify", "app:1", "--trust-store", str(trust))
    assert code == 2
    assert "--trust-store goes with --notation" in err


def test_a_verdict_without_a_notation_signature_is_named(tmp_path: Path) -> None:
    home = Home(tmp_path / "plain")
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    gate(home, "app:1", at=NOW, now=lambda: NOW)
    ca.init_ca(home, now=NOW)
    code, _, err = _stella(home.root, "verify", "app:1", "--notation")
    assert code == 1
    assert "has no Notary Project signature" in err
    assert "stella keys notation init" in err


def test_a_bad_subject_is_refused_at_init(tmp_path: Path) -> None:
    home = Home(tmp_path / "h")
    home.init()
    code, _, err = _stella(home.root, "keys", "notation", "init", "--subject", "CN=only")
    assert code == 1
    assert "--subject 'CN=only' must name C, ST and O" in err
    assert "notation" not in home.settings()  # nothing was turned on
    assert not (home.keys / "notation").exists()


def test_a_token_key_signs_notation_envelopes(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hsm = softhsm(tmp_path_factory)
    monkeypatch.setenv(PIN_ENV, PIN)
    root = tmp_path / "home"
    code, _, err = _stella(root, "init", "--signer", hsm.uri("notation-signer"))
    assert code == 0, err
    home = Home(root)
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    code, _, err = _stella(root, "keys", "notation", "init")
    assert code == 0, err
    # The CLI certified the key at the wall clock's now, which may be minutes after this module
    # was imported: sign and verify at a time the fresh certificate covers.
    now = datetime.now(UTC)
    gate(home, "app:1", at=now, now=lambda: now)
    store, policy = own_trust(home)
    result = verify_image(home, "app:1", store=store, policy=policy, now=now)
    assert result.verification.envelope is not None
    leaf = result.verification.envelope.chain[0]
    spki = leaf.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert spki == home.public_key().der  # the token's key is the certified one


def test_an_ed25519_home_cannot_turn_notation_on(tmp_path: Path) -> None:
    home = Home(tmp_path / "ed")
    code, _, err = _stella(home.root, "init", "--key-type", "ed25519")
    assert code == 0, err
    code, _, err = _stella(home.root, "keys", "notation", "init")
    assert code == 1
    assert "Notary Project signatures need an ECDSA P-256 key" in err
    assert "notation" not in home.settings()


def test_a_notation_home_rotates_to_ecdsa_keys_only(signed: Home, tmp_path: Path) -> None:
    code, _, err = _stella(signed.root, "keys", "rotate", "--key-type", "ed25519")
    assert code == 2
    assert "needs an ECDSA P-256 key" in err
