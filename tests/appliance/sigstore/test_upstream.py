"""Upstream signer policy and signature checks: key-signed Sigstore bundles made here, the real
public-good keyless bundle against the shipped trusted root, cosign legacy simple signing, and
signatures found as referrers and ``.sig`` tags in a layout, all offline."""

from __future__ import annotations

import base64
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from appliance.cli import cli
from appliance.home import Home
from appliance.sigstore.bundle import sign
from appliance.sigstore.upstream import (
    COSIGN_SIGNATURE,
    COSIGN_SIMPLESIGNING,
    COSIGN_TLOG_BUNDLE,
    VERIFICATION_ARTIFACT,
    ImageVerification,
    Outcome,
    PolicyStore,
    Rule,
    SignatureCheck,
    SignatureForm,
    UpstreamPolicy,
    UpstreamPolicyError,
    UpstreamSignatureRefusedError,
    attach,
    check_cosign_legacy,
    check_sigstore_bundle,
    enforce,
    recorded,
    repository_of,
    subject_of,
    verify_image,
)
from bundles import canonical
from bundles.digest import Digest
from bundles.errors import StellaError
from bundles.intoto import Statement, Subject
from bundles.keys import KeyFormatError, PrivateKey
from bundles.oci import OCILayout
from bundles.oci.mediatypes import EMPTY_JSON, OCI_EMPTY, OCI_MANIFEST
from tests.bundles.oci_helpers import attach as attach_referrer
from tests.bundles.oci_helpers import build_image

SIGSTORE = Path(__file__).resolve().parents[2] / "data" / "sigstore"
WHEEL = SIGSTORE / "rfc8785-0.1.2-py3-none-any.whl.sigstore"
WHEEL_DIGEST = Digest.parse(
    "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
)
WHEEL_ID = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
ACTIONS = "https://token.actions.githubusercontent.com"
BUNDLE_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
REPO = "registry.example/team/app"
IMAGE = Digest.of_bytes(b"an image manifest")


@pytest.fixture(scope="module")
def key() -> PrivateKey:
    return PrivateKey.generate()


@pytest.fixture(scope="module")
def other() -> PrivateKey:
    return PrivateKey.generate()


def signed_bundle(key: PrivateKey, subject: Digest = IMAGE) -> bytes:
    statement = Statement(
        subjects=(Subject.of(REPO, subject),),
        predicate_type="https://slsa.dev/provenance/v1",
        predicate={"builder": {"id": "upstream-ci"}},
    )
    return sign(statement, key).to_json()


def key_rule(
    key: PrivateKey, *, required: bool = False, pattern: str = "registry.example/*"
) -> Rule:
    return Rule(pattern, key=key.public_key, required=required)


# ---------------------------------------------------------------- policy


def test_policy_round_trip_add_replace_remove(tmp_path: Path, key: PrivateKey) -> None:
    store = PolicyStore(tmp_path)
    assert store.load() == UpstreamPolicy()
    policy, changed = store.load().with_rule(key_rule(key))
    assert changed
    keyless = Rule("ghcr.io/acme/*", identity=WHEEL_ID, issuer=ACTIONS, required=True)
    policy, changed = policy.with_rule(keyless)
    store.save(policy)
    assert store.load() == policy
    assert json.loads(store.path.read_text())["version"] == 1
    again, changed = store.load().with_rule(key_rule(key))
    assert not changed
    assert again == policy
    stricter, changed = policy.with_rule(key_rule(key, required=True))
    assert changed
    assert len(stricter.rules) == 2
    assert stricter.digest != policy.digest
    assert stricter.matching("registry.example/team/app") == (key_rule(key, required=True),)
    assert policy.matching("docker.io/library/alpine") == ()
    rest, removed = stricter.without("ghcr.io/acme/*")
    assert removed == (keyless,)
    assert rest.rules == (key_rule(key, required=True),)


def test_trust_upstream_changes_wait_for_the_policy_lock(tmp_path: Path, key: PrivateKey) -> None:
    """``stella trust upstream add`` loads, changes and saves the policy under its lock, so a
    change made meanwhile by another run is not lost."""
    home = Home(tmp_path / "home")
    home.init()
    pub = tmp_path / "upstream.pub"
    key.public_key.save(pub)
    store = PolicyStore(home.trust)
    done: list[Result] = []
    args = ["--home", str(home.root), "trust", "upstream", "add", "--repository", REPO]
    worker = threading.Thread(
        target=lambda: done.append(CliRunner().invoke(cli, [*args, "--key", str(pub)]))
    )
    with store.locked():
        worker.start()
        worker.join(timeout=0.5)
        assert worker.is_alive()  # waiting for the lock
        # a change made while the lock is held (as another run would) is kept
        store.save(UpstreamPolicy((Rule("ghcr.io/acme/*", identity=WHEEL_ID, issuer=ACTIONS),)))
    worker.join(timeout=30)
    (result,) = done
    assert result.exit_code == 0, result.stderr
    assert [r.repository for r in store.load().rules] == ["ghcr.io/acme/*", REPO]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"repository": ""}, "repository pattern '' is empty or has white space"),
        ({"repository": "a b"}, "repository pattern 'a b' is empty or has white space"),
        ({"repository": "x/*"}, "rule for 'x/*' must name either a key or a keyless identity"),
        ({"repository": "x/*", "identity": "me"}, "keyless rule for 'x/*' needs both"),
    ],
)
def test_bad_rules_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UpstreamPolicyError, match=message.replace("*", r"\*")):
        Rule(**kwargs)


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        (b"{", UpstreamPolicyError, "not valid JSON"),
        (
            b'{"version": 2, "rules": []}',
            UpstreamPolicyError,
            "not a version 1 upstream signer policy",
        ),
        (b'{"version": 1, "rules": {}}', UpstreamPolicyError, "'rules' must be an array"),
        (
            b'{"version": 1, "rules": [{"repository": "x"}]}',
            UpstreamPolicyError,
            r"rules\[0\]: the rule has neither",
        ),
        (
            b'{"version": 1, "rules": [{"repository": "x", "key": "nope"}]}',
            KeyFormatError,
            "not a PEM public key",
        ),
    ],
)
def test_bad_policy_files_name_the_file(
    tmp_path: Path, content: bytes, error: type[StellaError], message: str
) -> None:
    (tmp_path / "upstream.json").write_bytes(content)
    with pytest.raises(error, match=message) as caught:
        PolicyStore(tmp_path).load()
    assert str(tmp_path / "upstream.json") in caught.value.args[0]


@pytest.mark.parametrize(
    ("reference", "repository"),
    [
        ("registry.example/team/app:1.0", "registry.example/team/app"),
        ("127.0.0.1:5000/stella/multi:1.0", "127.0.0.1:5000/stella/multi"),
        ("127.0.0.1:5000/stella/multi", "127.0.0.1:5000/stella/multi"),
        ("docker.io/library/alpine@sha256:" + "a" * 64, "docker.io/library/alpine"),
        ("docker.io/library/alpine:3.20@sha256:" + "a" * 64, "docker.io/library/alpine"),
    ],
)
def test_repository_of(reference: str, repository: str) -> None:
    assert repository_of(reference) == repository


# ---------------------------------------------------------------- Sigstore bundles


def _bundle(
    data: bytes, image: Digest, rules: list[Rule]
) -> tuple[str, Outcome, str | None, str | None, tuple[str, ...]]:
    j = check_sigstore_bundle(data, image, rules)
    return j.kind, j.result, j.signer, j.reason, j.verified_by


def _legacy(
    payload: bytes, notes: dict[str, str], image: Digest, rules: list[Rule]
) -> tuple[Outcome, str | None, str | None, tuple[str, ...]]:
    j = check_cosign_legacy(payload, notes, image, rules)
    assert j.kind == "simplesigning"
    return j.result, j.signer, j.reason, j.verified_by


def test_key_signed_dsse_bundle_verifies_with_the_rule_key(key: PrivateKey) -> None:
    kind, outcome, signer, reason, by = _bundle(signed_bundle(key), IMAGE, [key_rule(key)])
    assert (kind, outcome, signer, reason) == ("dsse", Outcome.VERIFIED, f"key {key.keyid}", None)
    assert by == (f"registry.example/* key {key.keyid}",)


def test_another_key_fails_naming_the_signer(key: PrivateKey, other: PrivateKey) -> None:
    _, outcome, signer, reason, by = _bundle(signed_bundle(key), IMAGE, [key_rule(other)])
    assert (outcome, signer, by) == (Outcome.FAILED, None, ())
    assert reason is not None
    assert reason.startswith(f"key {other.keyid}: ")


def test_statement_about_another_image_fails(key: PrivateKey) -> None:
    other_image = Digest.of_bytes(b"another manifest")
    _, outcome, _, reason, _ = _bundle(signed_bundle(key, other_image), IMAGE, [key_rule(key)])
    assert outcome is Outcome.FAILED
    assert f"the statement is about {other_image}, not the artifact {IMAGE}" in str(reason)


def test_tampered_payload_fails_with_the_reason(key: PrivateKey) -> None:
    doc = json.loads(signed_bundle(key))
    payload = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    payload["predicate"]["builder"]["id"] = "someone-else"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(canonical.dumps(payload)).decode()
    _, outcome, _, reason, _ = _bundle(canonical.dumps(doc), IMAGE, [key_rule(key)])
    assert outcome is Outcome.FAILED
    assert "signature" in str(reason)
    assert "verif" in str(reason)


def test_no_rule_or_no_rule_of_that_kind_is_unverifiable(key: PrivateKey) -> None:
    _, outcome, _, reason, _ = _bundle(signed_bundle(key), IMAGE, [])
    assert (outcome, reason) == (
        Outcome.UNVERIFIABLE,
        "no upstream trust rule matches the repository",
    )
    keyless = Rule("registry.example/*", identity=WHEEL_ID, issuer=ACTIONS)
    _, outcome, _, reason, _ = _bundle(signed_bundle(key), IMAGE, [keyless])
    assert (outcome, reason) == (
        Outcome.UNVERIFIABLE,
        "signed with a key; no matching rule is of that kind",
    )


def test_not_a_bundle_fails() -> None:
    kind, outcome, _, reason, _ = _bundle(b"[1]", IMAGE, [])
    assert (kind, outcome) == ("unknown", Outcome.FAILED)
    assert "not a Sigstore bundle" in str(reason)


def test_public_good_keyless_bundle_verifies_offline(offline: None) -> None:
    """The real public-good bundle (it signs a wheel, so the wheel's digest is the artifact)
    against the trusted root shipped with the appliance: the keyless path needs no network."""
    rule = Rule("pypi/*", identity=WHEEL_ID, issuer=ACTIONS, required=True)
    kind, outcome, signer, reason, by = _bundle(WHEEL.read_bytes(), WHEEL_DIGEST, [rule])
    assert (kind, outcome, signer, reason) == (
        "message",
        Outcome.VERIFIED,
        f"{WHEEL_ID} ({ACTIONS})",
        None,
    )
    assert by == (rule.name,)
    wrong = Rule("pypi/*", identity=WHEEL_ID.replace("v0.1.2", "v9"), issuer=ACTIONS)
    _, outcome, _, reason, _ = _bundle(WHEEL.read_bytes(), WHEEL_DIGEST, [wrong])
    assert outcome is Outcome.FAILED
    assert "keyless verification failed" in str(reason)
    _, outcome, _, reason, _ = _bundle(WHEEL.read_bytes(), IMAGE, [rule])
    assert outcome is Outcome.FAILED
    assert "keyless verification failed" in str(reason)
    _, outcome, _, reason, _ = _bundle(WHEEL.read_bytes(), WHEEL_DIGEST, [])
    assert outcome is Outcome.UNVERIFIABLE


# ---------------------------------------------------------------- cosign legacy


def simple_signing(image: Digest = IMAGE) -> bytes:
    return json.dumps(
        {
            "critical": {
                "identity": {"docker-reference": REPO},
                "image": {"docker-manifest-digest": str(image)},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    ).encode()


def legacy_annotations(key: PrivateKey, payload: bytes) -> dict[str, str]:
    return {COSIGN_SIGNATURE: base64.b64encode(key.sign(payload)).decode()}


def test_cosign_legacy_signature_with_key_rules(key: PrivateKey, other: PrivateKey) -> None:
    payload = simple_signing()
    notes = legacy_annotations(key, payload)
    outcome, signer, reason, by = _legacy(payload, notes, IMAGE, [key_rule(key)])
    assert (outcome, signer, reason, by) == (
        Outcome.VERIFIED,
        f"key {key.keyid}",
        None,
        (key_rule(key).name,),
    )
    outcome, _, reason, _ = _legacy(payload, notes, IMAGE, [key_rule(other)])
    assert outcome is Outcome.FAILED
    assert f"does not verify with key {other.keyid}" in str(reason)
    outcome, _, reason, _ = _legacy(payload + b" ", notes, IMAGE, [key_rule(key)])
    assert outcome is Outcome.FAILED
    assert "does not verify" in str(reason)
    moved = simple_signing(Digest.of_bytes(b"x"))
    outcome, _, reason, _ = _legacy(moved, legacy_annotations(key, moved), IMAGE, [key_rule(key)])
    assert outcome is Outcome.FAILED
    assert f"not {IMAGE}" in str(reason)
    outcome, _, reason, _ = _legacy(payload, {}, IMAGE, [key_rule(key)])
    assert outcome is Outcome.FAILED
    assert "not a cosign simple-signing signature" in str(reason)
    keyless = Rule("registry.example/*", identity=WHEEL_ID, issuer=ACTIONS)
    outcome, _, reason, _ = _legacy(payload, notes, IMAGE, [keyless])
    assert outcome is Outcome.UNVERIFIABLE
    assert "keyless legacy signatures" in str(reason)


# ---------------------------------------------------------------- images in a layout


def put_legacy(layout: OCILayout, tag: str, key: PrivateKey, image: Digest) -> None:
    payload = simple_signing(image)
    layer = layout.put_blob(payload, media_type=COSIGN_SIMPLESIGNING)
    config = layout.put_blob(EMPTY_JSON, media_type=OCI_EMPTY)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.to_dict(),
        "layers": [
            {**layer.to_dict(), "annotations": legacy_annotations(key, payload)},
        ],
    }
    layout.tag(tag, layout.put_manifest(canonical.dumps(doc), OCI_MANIFEST))


def test_verify_image_finds_referrers_and_sig_tag_and_records_evidence(
    tmp_path: Path, key: PrivateKey, other: PrivateKey
) -> None:
    layout = OCILayout.init(tmp_path / "oci")
    image = build_image(layout, {"etc/os-release": b"ID=debian\n"}, tag=f"{REPO}:1.0")
    digest = image.manifest.digest
    good = attach_referrer(
        layout, image.manifest, signed_bundle(key, digest), artifact_type=BUNDLE_TYPE
    )
    bad = attach_referrer(
        layout, image.manifest, signed_bundle(other, digest), artifact_type=BUNDLE_TYPE
    )
    attach_referrer(layout, image.manifest, b"{}", artifact_type="application/spdx+json")
    put_legacy(layout, f"{REPO}:sha256-{digest.hex}.sig", key, digest)
    policy = UpstreamPolicy((key_rule(key, required=True),))
    result = verify_image(layout, f"{REPO}:1.0", digest, layout.entries(), policy)
    by_referrer = {(s.referrer, s.form): s for s in result.signatures}
    assert len(result.signatures) == 3
    assert by_referrer[(good.digest, SignatureForm.SIGSTORE_BUNDLE)].result is Outcome.VERIFIED
    assert by_referrer[(bad.digest, SignatureForm.SIGSTORE_BUNDLE)].result is Outcome.FAILED
    (legacy,) = [s for s in result.signatures if s.form is SignatureForm.COSIGN_LEGACY]
    assert (legacy.kind, legacy.result) == ("simplesigning", Outcome.VERIFIED)
    assert result.summary == "verified"
    assert result.unmet() == []
    enforce([result])

    evidence = attach(layout, subject_of(layout, digest, layout.entries()), result)
    (listed,) = layout.referrers(digest, artifact_type=VERIFICATION_ARTIFACT)
    assert listed.digest == evidence.digest
    assert listed.annotations["org.stella-ops.upstream.result"] == "verified"
    (doc,) = recorded(layout, digest)
    assert doc == {"evidence": str(evidence.digest), **result.to_dict()}
    assert doc["policy"]["digest"] == str(policy.digest)
    assert "key" not in doc["policy"]["rules"][0]  # the PEM is not repeated in evidence
    # The same result again is the same evidence, stored once.
    assert attach(layout, subject_of(layout, digest, []), result) == evidence


def test_required_rule_unmet_is_refused_naming_image_rule_and_why(
    tmp_path: Path, key: PrivateKey, other: PrivateKey
) -> None:
    layout = OCILayout.init(tmp_path / "oci")
    image = build_image(layout, {"a": b"a"}, tag=f"{REPO}:1.0")
    digest = image.manifest.digest
    attach_referrer(layout, image.manifest, signed_bundle(key, digest), artifact_type=BUNDLE_TYPE)
    rules = (key_rule(key), key_rule(other, required=True, pattern=f"{REPO}"))
    result = verify_image(layout, f"{REPO}:1.0", digest, (), UpstreamPolicy(rules))
    (check,) = result.signatures
    assert check.result is Outcome.VERIFIED
    assert check.verified_by == (rules[0].name,)
    ((rule, why),) = result.unmet()
    assert rule == rules[1]
    assert why == f"no signature is by key {other.keyid}"
    with pytest.raises(UpstreamSignatureRefusedError) as caught:
        enforce([result])
    message = caught.value.message
    assert message.startswith(f"image {REPO}:1.0 ({digest}): required upstream signature rule")
    assert f"'{REPO} key {other.keyid}' is not satisfied" in message

    only_required = UpstreamPolicy(rules[1:])
    result = verify_image(layout, f"{REPO}:1.0", digest, (), only_required)
    ((_, why),) = result.unmet()
    assert why.startswith(f"no signature verifies: key {other.keyid}: ")

    unsigned = build_image(layout, {"b": b"b"}, tag=f"{REPO}:2.0")
    result = verify_image(
        layout, f"{REPO}:2.0", unsigned.manifest.digest, (), UpstreamPolicy(rules)
    )
    assert result.summary == "unsigned"
    assert result.unmet()[0][1] == "the image carries no signature"


def test_unmet_rule_names_failures_not_the_caveat_of_a_verified_signature(
    key: PrivateKey, other: PrivateKey
) -> None:
    payload = simple_signing()
    notes = {**legacy_annotations(key, payload), COSIGN_TLOG_BUNDLE: "{}"}
    rules = (key_rule(key), key_rule(other, required=True))
    judged = check_cosign_legacy(payload, notes, IMAGE, rules)
    assert (judged.result, judged.reason) == (
        Outcome.VERIFIED,
        "transparency-log bundle annotation not checked",
    )
    verified = SignatureCheck(
        Digest.of_bytes(b"sig"),
        SignatureForm.COSIGN_LEGACY,
        judged.kind,
        judged.result,
        judged.signer,
        judged.reason,
        judged.verified_by,
    )
    failed = SignatureCheck(
        Digest.of_bytes(b"bundle"),
        SignatureForm.SIGSTORE_BUNDLE,
        "dsse",
        Outcome.FAILED,
        reason=f"key {other.keyid}: the signature does not verify",
    )
    policy = UpstreamPolicy(rules).digest
    alone = ImageVerification(f"{REPO}:1.0", REPO, IMAGE, (verified,), rules, policy)
    assert alone.unmet() == [(rules[1], f"no signature is by key {other.keyid}")]
    both = ImageVerification(f"{REPO}:1.0", REPO, IMAGE, (verified, failed), rules, policy)
    assert both.unmet() == [
        (rules[1], f"no signature verifies: key {other.keyid}: the signature does not verify")
    ]


def test_no_policy_makes_every_signature_unverifiable(tmp_path: Path, key: PrivateKey) -> None:
    layout = OCILayout.init(tmp_path / "oci")
    image = build_image(layout, {"a": b"a"}, tag=f"{REPO}:1.0")
    digest = image.manifest.digest
    attach_referrer(layout, image.manifest, signed_bundle(key, digest), artifact_type=BUNDLE_TYPE)
    result = verify_image(layout, f"{REPO}:1.0", digest, (), UpstreamPolicy())
    assert [s.result for s in result.signatures] == [Outcome.UNVERIFIABLE]
    assert result.to_dict()["policy"] is None
    assert result.summary == "unverifiable"


def test_image_verification_dict_is_the_evidence_shape(key: PrivateKey) -> None:
    verification = ImageVerification(f"{REPO}:1.0", REPO, IMAGE, (), (), UpstreamPolicy().digest)
    assert verification.to_dict() == {
        "reference": f"{REPO}:1.0",
        "repository": REPO,
        "digest": str(IMAGE),
        "result": "unsigned",
        "signatures": [],
        "policy": None,
    }
