"""Standard Sigstore bundles, offline: real public keyless bundles (public-good and staging,
v0.1 to v0.3, message signatures and DSSE) against the shipped or a given trusted root; the
transparency-log proof checks on a real public-good entry and its tampered variants; and
key-signed bundles, which sigstore-python refuses."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.rva.gate import GateResult
from appliance.sigstore.verify import (
    DEFAULT_TRUSTED_ROOT,
    Artifact,
    SignatureKind,
    SigstoreVerifyError,
    inclusion_root,
    read_trusted_root,
    verify_keyless,
    verify_tlog_entry,
    verify_with_key,
)
from bundles.digest import Digest
from bundles.keys import KeyType, PrivateKey
from bundles.limits import LimitError

DATA = Path(__file__).resolve().parents[2] / "data" / "sigstore"
STAGING_ROOT = DATA / "staging-trusted-root.json"
WHEEL = DATA / "rfc8785-0.1.2-py3-none-any.whl.sigstore"
WHEEL_DIGEST = "sha256:c4e92e9ecc828bef2aa7dba1de8ac983511f7532a0df11c770d39099a25cf201"
WHEEL_ID = (
    "https://github.com/trailofbits/rfc8785.py/.github/workflows/release.yml@refs/tags/v0.1.2"
)
ACTIONS = "https://token.actions.githubusercontent.com"
GITHUB = "https://github.com/login/oauth"
BEACON = (
    "https://github.com/sigstore-conformance/extremely-dangerous-public-oidc-beacon/.github/"
    "workflows/extremely-dangerous-oidc-beacon.yml@refs/heads/main"
)


def test_public_good_keyless_bundle_with_shipped_root_and_digest() -> None:
    result = verify_keyless(
        WHEEL.read_bytes(), identity=WHEEL_ID, issuer=ACTIONS, artifact=Artifact.parse(WHEEL_DIGEST)
    )
    assert result.kind is SignatureKind.MESSAGE
    assert result.media_type == "application/vnd.dev.sigstore.bundle+json;version=0.2"
    (entry,) = result.tlog
    assert (entry.log_index, entry.integrated_time, entry.inclusion_proof) == (
        79605083,
        1710888076,
        True,
    )


@pytest.mark.parametrize(
    ("identity", "issuer", "artifact"),
    [
        ("https://github.com/someone/else/.github/workflows/x.yml@refs/heads/main", ACTIONS, None),
        (WHEEL_ID, GITHUB, None),
        (WHEEL_ID, ACTIONS, "sha256:" + "00" * 32),
    ],
    ids=["identity", "issuer", "artifact"],
)
def test_public_good_keyless_refusals(identity: str, issuer: str, artifact: str | None) -> None:
    with pytest.raises(SigstoreVerifyError, match="keyless verification failed"):
        verify_keyless(
            WHEEL.read_bytes(),
            identity=identity,
            issuer=issuer,
            artifact=Artifact.parse(artifact or WHEEL_DIGEST),
        )


@pytest.mark.parametrize(
    ("name", "identity", "issuer", "media_type"),
    [
        (
            "bundle.txt",
            "a@tny.town",
            GITHUB,
            "application/vnd.dev.sigstore.bundle+json;version=0.1",
        ),
        (
            "bundle_v3.txt",
            "william@yossarian.net",
            GITHUB,
            "application/vnd.dev.sigstore.bundle.v0.3+json",
        ),
    ],
)
def test_staging_bundles_with_a_given_trusted_root(
    name: str, identity: str, issuer: str, media_type: str
) -> None:
    bundle = (DATA / f"{name}.sigstore").read_bytes()
    artifact = Artifact.parse(str(DATA / name))
    result = verify_keyless(
        bundle, identity=identity, issuer=issuer, artifact=artifact, trusted_root=STAGING_ROOT
    )
    assert result.media_type == media_type
    assert result.artifact == str(Digest.of_bytes((DATA / name).read_bytes()))
    # the same bundle is not trusted under the public-good root
    with pytest.raises(SigstoreVerifyError, match="keyless verification failed"):
        verify_keyless(bundle, identity=identity, issuer=issuer, artifact=artifact)


def test_staging_dsse_bundle() -> None:
    data = (DATA / "a.dsse.staging-rekor-v2.txt.sigstore.json").read_bytes()
    result = verify_keyless(
        data, identity=BEACON, issuer=ACTIONS, artifact=None, trusted_root=STAGING_ROOT
    )
    assert result.kind is SignatureKind.DSSE
    assert result.statement is not None


def test_cli_keyless(tmp_path: Path) -> None:
    args = [
        "--home", str(tmp_path / "nohome"), "verify", str(WHEEL),
        "--certificate-identity", WHEEL_ID, "--certificate-oidc-issuer", ACTIONS,
        "--artifact", WHEEL_DIGEST,
    ]  # fmt: skip
    out = CliRunner().invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert f"signed by {WHEEL_ID} ({ACTIONS})" in out.output
    assert (
        "transparency log entry 79605083 (hashedrekord) integrated at 1710888076: inclusion "
        "proof, signed checkpoint, signed entry timestamp" in out.output
    )
    out = CliRunner().invoke(cli, args[:6])
    assert out.exit_code == 2
    assert "needs both --certificate-identity and --certificate-oidc-issuer" in out.output


def test_shipped_trusted_root_is_the_public_good_root() -> None:
    doc = json.loads(DEFAULT_TRUSTED_ROOT.read_text())
    assert doc["mediaType"] == "application/vnd.dev.sigstore.trustedroot+json;version=0.1"
    assert any(t["baseUrl"] == "https://rekor.sigstore.dev" for t in doc["tlogs"])
    assert (
        Digest.of_bytes(DEFAULT_TRUSTED_ROOT.read_bytes()).hex
        in (Path(__file__).resolve().parents[3] / "docs" / "auditing.md").read_text()
    )


# ---------------------------------------------------------------- transparency log, by hand


def _entry() -> tuple[dict[str, Any], bytes]:
    doc = json.loads(WHEEL.read_bytes())
    entry: dict[str, Any] = doc["verificationMaterial"]["tlogEntries"][0]
    return entry, base64.b64decode(doc["messageSignature"]["signature"])


def test_tlog_entry_of_a_real_bundle_verifies() -> None:
    entry, signature = _entry()
    _, keys = read_trusted_root(None)
    check = verify_tlog_entry(entry, keys, signature, Digest.parse(WHEEL_DIGEST))
    assert check.inclusion_proof
    assert check.checkpoint
    assert check.signed_entry_timestamp


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[0] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _proof_hash(e: dict[str, Any]) -> None:
    e["inclusionProof"]["hashes"][3] = _flip(e["inclusionProof"]["hashes"][3])


def _root_hash(e: dict[str, Any]) -> None:
    e["inclusionProof"]["rootHash"] = _flip(e["inclusionProof"]["rootHash"])


def _checkpoint(e: dict[str, Any]) -> None:
    e["inclusionProof"]["checkpoint"]["envelope"] = e["inclusionProof"]["checkpoint"][
        "envelope"
    ].replace("\n75441653\n", "\n75441654\n")


def _integrated_time(e: dict[str, Any]) -> None:
    e["integratedTime"] = str(int(e["integratedTime"]) + 1)


def _log_id(e: dict[str, Any]) -> None:
    e["logId"]["keyId"] = base64.b64encode(b"\x00" * 32).decode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_proof_hash, "inclusion proof of entry 79605083 does not lead to its root hash"),
        (_root_hash, "inclusion proof of entry 79605083 does not lead to its root hash"),
        (_checkpoint, "checkpoint: no signature by a transparency log of the trusted root"),
        (_integrated_time, "the signed entry timestamp of entry 79605083 does not verify"),
        (_log_id, "is from log 0000.*, which the trusted root does not list"),
    ],
    ids=["proof hash", "root hash", "checkpoint", "integrated time", "log id"],
)
def test_tampered_tlog_entries(change: Any, message: str) -> None:
    entry, signature = _entry()
    entry = copy.deepcopy(entry)
    change(entry)
    _, keys = read_trusted_root(None)
    with pytest.raises(SigstoreVerifyError, match=message):
        verify_tlog_entry(entry, keys, signature, Digest.parse(WHEEL_DIGEST))


def test_tlog_entry_must_be_about_this_signature() -> None:
    entry, signature = _entry()
    _, keys = read_trusted_root(None)
    with pytest.raises(SigstoreVerifyError, match="about another signature or artifact"):
        verify_tlog_entry(entry, keys, signature, Digest.parse("sha256:" + "00" * 32))


def test_inclusion_root_of_small_trees() -> None:
    def leaf(n: int) -> bytes:
        return hashlib.sha256(b"\x00" + bytes([n])).digest()

    def node(a: bytes, b: bytes) -> bytes:
        return hashlib.sha256(b"\x01" + a + b).digest()

    l0, l1, l2 = leaf(0), leaf(1), leaf(2)
    root = node(node(l0, l1), l2)  # RFC 9162: a three-leaf tree
    assert inclusion_root(0, 3, l0, [l1, l2]) == root
    assert inclusion_root(2, 3, l2, [node(l0, l1)]) == root
    with pytest.raises(SigstoreVerifyError, match="outside tree size"):
        inclusion_root(3, 3, l0, [])
    with pytest.raises(SigstoreVerifyError, match="fewer hashes"):
        inclusion_root(0, 3, l0, [l1])


# ---------------------------------------------------------------- key-signed bundles


def _message_bundle(key: PrivateKey, artifact: bytes) -> bytes:
    doc = {
        "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        "verificationMaterial": {"publicKey": {"hint": key.keyid}, "tlogEntries": []},
        "messageSignature": {
            "messageDigest": {
                "algorithm": "SHA2_256",
                "digest": base64.b64encode(bytes.fromhex(Digest.of_bytes(artifact).hex)).decode(),
            },
            "signature": base64.b64encode(key.sign(artifact)).decode(),
        },
    }
    return json.dumps(doc).encode()


@pytest.mark.parametrize("key_type", [KeyType.ECDSA_P256, KeyType.ED25519])
def test_key_signed_message_signature(tmp_path: Path, key_type: KeyType) -> None:
    key = PrivateKey.generate(key_type)
    artifact = tmp_path / "artifact.tar"
    artifact.write_bytes(b"some release\n")
    bundle = _message_bundle(key, artifact.read_bytes())
    result = verify_with_key(bundle, key.public_key, artifact=Artifact.parse(str(artifact)))
    assert result.kind is SignatureKind.MESSAGE
    assert result.signer == f"key {key.keyid}"
    with pytest.raises(SigstoreVerifyError, match="the bundle signs sha256:.*, not the artifact"):
        verify_with_key(bundle, key.public_key, artifact=Artifact.parse("sha256:" + "00" * 32))
    with pytest.raises(SigstoreVerifyError, match="message signature does not verify with key"):
        verify_with_key(
            bundle, PrivateKey.generate(key_type).public_key, artifact=Artifact.parse(str(artifact))
        )
    with pytest.raises(SigstoreVerifyError, match="carries no transparency-log entry"):
        verify_with_key(
            bundle, key.public_key, artifact=Artifact.parse(str(artifact)), require_tlog=True
        )


def test_key_signed_dsse_is_our_rva(tmp_path: Path, home: Home, gated: GateResult) -> None:
    subject = Digest.parse(gated.verdict.predicate["subject"]["digest"])
    result = verify_with_key(gated.bundle, home.public_key(), artifact=Artifact(subject))
    assert result.kind is SignatureKind.DSSE
    assert result.statement is not None
    with pytest.raises(SigstoreVerifyError, match="does not verify|not trusted"):
        verify_with_key(gated.bundle, PrivateKey.generate().public_key, artifact=None)
    with pytest.raises(SigstoreVerifyError, match="signed with a certificate, not a key"):
        verify_with_key(WHEEL.read_bytes(), home.public_key(), artifact=None)


def test_cli_key_signed_standard_bundle(tmp_path: Path) -> None:
    key = PrivateKey.generate()
    pub = tmp_path / "k.pub"
    key.public_key.save(pub)
    artifact = tmp_path / "a.bin"
    artifact.write_bytes(b"x")
    bundle = tmp_path / "a.bin.sigstore.json"
    bundle.write_bytes(_message_bundle(key, b"x"))
    base = ["--home", str(tmp_path / "nohome"), "verify", str(bundle)]
    out = CliRunner().invoke(cli, [*base, "--key", str(pub), "--artifact", str(artifact)])
    assert out.exit_code == 0, out.output
    assert f"signed by key {key.keyid}" in out.output
    out = CliRunner().invoke(cli, [*base, "--artifact", str(artifact)])
    assert out.exit_code == 2
    assert "is a standard Sigstore bundle: pass exactly one --key PUB" in out.output


def test_the_bundle_cap_in_force_bounds_every_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """An operator's sigstore.bundle_bytes bounds the bundle parse too, not only the file read."""
    key = PrivateKey.generate()
    bundle = _message_bundle(key, b"x")
    monkeypatch.setenv("STELLA_LIMIT_SIGSTORE_BUNDLE_BYTES", str(len(bundle) - 1))
    with pytest.raises(LimitError, match="sigstore.bundle_bytes"):
        verify_with_key(bundle, key.public_key, artifact=None, source="a.sigstore.json")
    with pytest.raises(LimitError, match="sigstore.bundle_bytes"):
        verify_keyless(WHEEL.read_bytes(), identity=WHEEL_ID, issuer=ACTIONS, artifact=None)
