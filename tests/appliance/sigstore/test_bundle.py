"""The signed RVA as a Sigstore bundle v0.3 and its OCI referrers, in the form cosign v3
writes and standard tools discover."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft4Validator

from appliance.rva.evaluate import evaluate
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import (
    ANNOTATION_CONTENT,
    ANNOTATION_PREDICATE,
    ANNOTATION_SIGNER,
    EVIDENCE_ARTIFACT,
    attach_attestation,
    attach_evidence,
    attestations,
    layer_title,
)
from bundles.digest import Digest
from bundles.dsse import InvalidSignatureError
from bundles.errors import OCILayoutError
from bundles.intoto import PredicateTypeMismatchError, Statement, Subject
from bundles.keys import KeyType, PrivateKey
from bundles.oci import Descriptor, ImageManifest, OCILayout
from bundles.oci.mediatypes import OCI_EMPTY, SIGSTORE_BUNDLE_V03
from tests.appliance.rva.cases import CASES
from tests.appliance.scanner.layouts import F, build_image

SCHEMA_FILE = Path(__file__).parents[2] / "data/schemas/sigstore-bundle.schema.json"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


def _json_names(node: Any) -> Any:
    """The published schema is generated from protobuf: its properties use the JSON names
    (``publicKey``) but its ``oneOf``/``required`` lists use the proto field names
    (``public_key``), which no JSON document can satisfy together with
    ``additionalProperties: false``. Proto3's JSON mapping names the field ``publicKey``;
    this translates the required lists to those names, changing nothing else."""
    if isinstance(node, dict):
        out = {k: _json_names(v) for k, v in node.items()}
        if isinstance(out.get("required"), list):
            out["required"] = [_camel(n) for n in out["required"]]
        return out
    if isinstance(node, list):
        return [_json_names(v) for v in node]
    return node


VALIDATOR = Draft4Validator(_json_names(json.loads(SCHEMA_FILE.read_text())))


@pytest.fixture(params=[KeyType.ECDSA_P256, KeyType.ED25519])
def key(request: pytest.FixtureRequest) -> PrivateKey:
    return PrivateKey.generate(request.param)


def rva_statement() -> Statement:
    verdict = evaluate(CASES["fail"]())
    subject = Subject.of(
        "registry.example/app:1", Digest.parse(verdict.predicate["subject"]["digest"])
    )
    return Statement((subject,), PREDICATE_TYPE, verdict.predicate)


def test_bundle_conforms_to_the_sigstore_schema_and_verifies(key: PrivateKey) -> None:
    bundle = sigstore.sign(rva_statement(), key)
    doc = json.loads(bundle.to_json())
    assert list(VALIDATOR.iter_errors(doc)) == []
    assert doc["mediaType"] == "application/vnd.dev.sigstore.bundle.v0.3+json"
    assert doc["verificationMaterial"]["publicKey"]["hint"] == key.keyid
    assert doc["dsseEnvelope"]["signatures"][0]["keyid"] == key.keyid  # hints must agree
    read = sigstore.read(bundle.to_json())
    statement = sigstore.verify(read, [key.public_key], predicate_type=PREDICATE_TYPE)
    assert statement.predicate["verdict"] == "FAIL"
    assert read.tlog_entries == 0
    assert not read.inclusion_proof


def test_tampered_or_foreign_bundles_are_refused(key: PrivateKey) -> None:
    data = sigstore.sign(rva_statement(), key).to_json()
    doc = json.loads(data)
    payload = doc["dsseEnvelope"]["payload"]
    doc["dsseEnvelope"]["payload"] = payload[:-8] + (
        "A" * 8 if payload[-8:] != "A" * 8 else "B" * 8
    )
    with pytest.raises(InvalidSignatureError):
        sigstore.verify(
            sigstore.read(json.dumps(doc).encode()), [key.public_key], predicate_type=PREDICATE_TYPE
        )
    with pytest.raises(PredicateTypeMismatchError):
        sigstore.verify(sigstore.read(data), [key.public_key], predicate_type="https://other")
    for bad, message in [
        ({**json.loads(data), "mediaType": "x"}, "mediaType is 'x'"),
        (
            {k: v for k, v in json.loads(data).items() if k != "dsseEnvelope"},
            "holds no dsseEnvelope",
        ),
        (
            {k: v for k, v in json.loads(data).items() if k != "verificationMaterial"},
            "verificationMaterial is missing",
        ),
    ]:
        with pytest.raises(sigstore.SigstoreBundleError, match=re.escape(message)):
            sigstore.read(json.dumps(bad).encode())


def test_inclusion_proofs_are_read_from_tlog_entries(key: PrivateKey) -> None:
    doc = json.loads(sigstore.sign(rva_statement(), key).to_json())
    doc["verificationMaterial"]["tlogEntries"] = [
        {"logIndex": "1", "inclusionProof": {"logIndex": "1"}}
    ]
    read = sigstore.read(json.dumps(doc).encode())
    assert read.tlog_entries == 1
    assert read.inclusion_proof


def test_attached_as_a_referrer_in_cosign_v3_form(tmp_path: Path, key: PrivateKey) -> None:
    layout = build_image(tmp_path / "oci", [[F("etc/hostname", b"app\n")]], tag="app:1")
    image = layout.resolve("app:1")
    bundle = sigstore.sign(rva_statement(), key).to_json()
    referrer = attach_attestation(layout, image, bundle, PREDICATE_TYPE, "2026-11-23T06:00:00Z")
    again = attach_attestation(layout, image, bundle, PREDICATE_TYPE, "2026-11-23T06:00:00Z")
    assert again == referrer  # same verdict, same manifest, stored once
    (found,) = OCILayout.open(layout.path).referrers(
        image.digest, artifact_type=SIGSTORE_BUNDLE_V03
    )
    assert found.digest == referrer.digest
    assert found.annotations[ANNOTATION_PREDICATE] == PREDICATE_TYPE
    assert found.annotations[ANNOTATION_CONTENT] == "dsse-envelope"
    assert ANNOTATION_SIGNER not in found.annotations  # no keyid given: none named
    manifest = json.loads(layout.read_blob(referrer.digest))
    assert manifest["artifactType"] == SIGSTORE_BUNDLE_V03
    assert manifest["config"]["mediaType"] == OCI_EMPTY
    assert manifest["subject"]["digest"] == str(image.digest)
    assert [(layer["mediaType"], layer["size"]) for layer in manifest["layers"]] == [
        (SIGSTORE_BUNDLE_V03, len(bundle))
    ]
    # the file name oras pull saves the layer under
    assert manifest["layers"][0]["annotations"] == {
        "org.opencontainers.image.title": "risk-verdict.sigstore.json"
    }
    assert attestations(layout, image.digest) == [(found, bundle)]


@pytest.mark.parametrize(
    ("predicate_type", "title"),
    [
        ("https://stella-ops.org/attestations/risk-verdict/v1", "risk-verdict.sigstore.json"),
        ("https://cyclonedx.org/bom", "bom.sigstore.json"),
        ("https://cyclonedx.org/bom/v1.6", "bom.sigstore.json"),
        ("https://openvex.dev/ns/v0.2.0", "openvex.sigstore.json"),
        ("https://slsa.dev/provenance/v1", "provenance.sigstore.json"),
        ("https://example.com/a b/V2/", "a-b.sigstore.json"),
        ("v1", "attestation.sigstore.json"),
    ],
)
def test_layer_titles(predicate_type: str, title: str) -> None:
    assert layer_title(predicate_type) == title


def test_evidence_referrer_names_every_blob(tmp_path: Path) -> None:
    layout = build_image(tmp_path / "oci", [[F("etc/hostname", b"app\n")]], tag="app:1")
    image = layout.resolve("app:1")
    verdict = evaluate(CASES["fail"]())
    ref = attach_evidence(layout, image, verdict.evidence, "2026-11-23T06:00:00Z")
    (found,) = layout.referrers(image.digest, artifact_type=EVIDENCE_ARTIFACT)
    assert found.digest == ref.digest
    manifest = json.loads(layout.read_blob(ref.digest))
    roles = {
        layer["annotations"]["org.stella-ops.evidence.role"]: layer["digest"]
        for layer in manifest["layers"]
    }
    cited = verdict.predicate["evidence"]
    assert roles == {role: cited[role]["digest"] for role in cited if cited[role]}
    titles = [
        layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]
    ]
    assert titles == [f"{role}.json" for role in sorted(roles)]
    for digest in roles.values():
        assert layout.has_blob(Digest.parse(digest))


def test_read_verdict_verifies_then_validates(key: PrivateKey) -> None:
    from appliance.rva.reader import RvaSubjectMismatchError, read_verdict
    from bundles.schemas import SchemaValidationError

    good = sigstore.sign(rva_statement(), key).to_json()
    assert read_verdict(good, [key.public_key]).verdict == "FAIL"
    statement = rva_statement()
    broken = Statement(statement.subjects, PREDICATE_TYPE, {**statement.predicate, "verdict": "OK"})
    with pytest.raises(SchemaValidationError, match=r"\$\.verdict"):
        read_verdict(sigstore.sign(broken, key).to_json(), [key.public_key])
    other = Statement(
        (Subject.of("other", Digest.of_bytes(b"other")),),
        PREDICATE_TYPE,
        statement.predicate,
    )
    with pytest.raises(RvaSubjectMismatchError, match="not a subject of the signed statement"):
        read_verdict(sigstore.sign(other, key).to_json(), [key.public_key])


def _image_and_sbom(tmp_path: Path) -> tuple[OCILayout, Descriptor, Statement]:
    layout = build_image(tmp_path / "oci", [[F("etc/hostname", b"app\n")]], tag="app:1")
    image = layout.resolve("app:1")
    bom = "https://cyclonedx.org/bom"
    return (
        layout,
        image,
        Statement((Subject.of("app:1", image.digest),), bom, {"bomFormat": "CycloneDX"}),
    )


def test_the_gate_sees_the_attestations_others_attached_only(tmp_path: Path) -> None:
    from appliance.rva.gate import attached_attestations

    own, other = PrivateKey.generate(), PrivateKey.generate()
    layout, image, sbom = _image_and_sbom(tmp_path)
    bom, when = sbom.predicate_type, "2026-11-23T06:00:00Z"
    attach_attestation(
        layout, image, sigstore.sign(rva_statement(), own).to_json(), PREDICATE_TYPE, when
    )
    attach_attestation(layout, image, sigstore.sign(sbom, own).to_json(), bom, when)
    theirs = attach_attestation(layout, image, sigstore.sign(sbom, other).to_json(), bom, when)
    broken = attach_attestation(layout, image, b'{"mediaType": 1', "https://example/x", when)
    seen = attached_attestations(OCILayout.open(layout.path), image.digest, own.keyid)
    assert sorted((i.digest, i.predicate_type, i.signer) for i in seen) == sorted(
        [
            (str(theirs.digest), bom, other.keyid),
            (str(broken.digest), "https://example/x", "certificate"),  # unreadable: no signer
        ]
    )


def test_the_gate_passes_over_the_referrers_naming_its_key_unread(tmp_path: Path) -> None:
    from appliance.rva.gate import attached_attestations

    own, other = PrivateKey.generate(), PrivateKey.generate()
    layout, image, sbom = _image_and_sbom(tmp_path)
    bom, when = sbom.predicate_type, "2026-11-23T06:00:00Z"
    mine = attach_attestation(
        layout, image, sigstore.sign(sbom, own).to_json(), bom, when, keyid=own.keyid
    )
    theirs = attach_attestation(
        layout, image, sigstore.sign(sbom, other).to_json(), bom, when, keyid=other.keyid
    )
    listed = {r.digest: r for r in OCILayout.open(layout.path).referrers(image.digest)}
    assert listed[mine.digest].annotations[ANNOTATION_SIGNER] == own.keyid
    assert listed[theirs.digest].annotations[ANNOTATION_SIGNER] == other.keyid
    # the appliance's own bundle is gone: whatever read it would fail
    manifest = layout.get_manifest(mine).manifest
    assert isinstance(manifest, ImageManifest)
    (layer,) = manifest.layers
    layout.blob_path(layer.digest).unlink()
    seen = attached_attestations(OCILayout.open(layout.path), image.digest, own.keyid)
    assert [(i.digest, i.signer) for i in seen] == [(str(theirs.digest), other.keyid)]
    kept = attestations(layout, image.digest, leave_out_signers=(own.keyid,))
    assert [r.digest for r, _ in kept] == [theirs.digest]
    # without a key of its own to name, the annotation leaves nothing out
    with pytest.raises(OCILayoutError, match=layer.digest.encoded):
        attached_attestations(OCILayout.open(layout.path), image.digest, "")
