"""The PKCS#11 signer against a real SoftHSM2 token: keys made inside it stay there (sensitive,
never extractable), its signatures are DER ECDSA that every verifier accepts, and each way of
getting the URI, module, token, PIN or object wrong is refused with a line saying what to do."""

from __future__ import annotations

import hashlib
import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pkcs11
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from pkcs11 import exceptions as p11
from pkcs11.constants import Attribute, ObjectClass

from bundles import dsse
from bundles.archive import MemberSpec
from bundles.bundle import (
    BundleKind,
    BundlePredicate,
    BundleRefusedError,
    make_statement,
    sign_statement,
    verify_statement,
)
from bundles.digest import Digest
from bundles.keys import KeyType, PrivateKey
from bundles.pkcs11 import Pkcs11Signer, key_protection
from bundles.pkcs11_uri import (
    PIN_ENV,
    Pkcs11KeyMissingError,
    Pkcs11ModuleError,
    Pkcs11ObjectError,
    Pkcs11PinError,
    Pkcs11TokenError,
)
from bundles.signer import Signer, generate_signer, load_signer
from bundles.trust import TrustRoot
from tests.softhsm import MODULE, PIN, SoftHsm, softhsm

_labels = itertools.count()


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return softhsm(tmp_path_factory)


@pytest.fixture
def pin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)


def opened(signer: Signer) -> Pkcs11Signer:
    """A signer from a ``pkcs11:`` URI, as the token signer it is (which closes its session
    as a context manager; the ``Signer`` protocol does not promise that)."""
    assert isinstance(signer, Pkcs11Signer)
    return signer


@pytest.fixture
def label() -> str:
    return f"signer-test-{next(_labels)}"


def test_a_key_generated_in_the_token_signs_what_every_verifier_accepts(
    hsm: SoftHsm, pin_env: None, label: str
) -> None:
    with opened(generate_signer(hsm.uri(label))) as signer:
        assert isinstance(signer, Pkcs11Signer)
        assert isinstance(signer, Signer)
        assert signer.public_key.key_type is KeyType.ECDSA_P256
        der = signer.public_key.der
        assert signer.keyid == hashlib.sha256(der).hexdigest()
        signature = signer.sign(b"the data")
        decode_dss_signature(signature)  # DER ECDSA-Sig-Value, not the token's raw r||s
        crypto = serialization.load_der_public_key(der)
        assert isinstance(crypto, ec.EllipticCurvePublicKey)
        crypto.verify(signature, b"the data", ec.ECDSA(hashes.SHA256()))
        assert signer.public_key.verify(signature, b"the data")
        assert not signer.public_key.verify(signature, b"other data")
        envelope = dsse.sign(b"payload", "text/plain", signer)
        assert dsse.verify(envelope, [signer.public_key]).keyids == (signer.keyid,)
        keyid = signer.keyid
    with opened(load_signer(hsm.uri(label))) as again:  # the key stays in the token for next time
        assert again.keyid == keyid


def test_the_private_key_cannot_leave_the_token(hsm: SoftHsm, pin_env: None, label: str) -> None:
    with opened(generate_signer(hsm.uri(label))) as signer:
        assert key_protection(signer) == {
            "sensitive": True,
            "extractable": False,
            "alwaysSensitive": True,
            "neverExtractable": True,
        }
    # Read back independently of our code, through the module itself.
    token = pkcs11.lib(str(MODULE)).get_token(token_label="stella")
    with token.open(user_pin=PIN) as session:
        (key,) = session.get_objects(
            {Attribute.CLASS: ObjectClass.PRIVATE_KEY, Attribute.LABEL: label}
        )
        assert key[Attribute.EXTRACTABLE] is False
        assert key[Attribute.SENSITIVE] is True
        with pytest.raises(p11.AttributeSensitive):
            key[Attribute.VALUE]
        with pytest.raises(p11.PKCS11Error):  # nor can it be re-marked extractable
            key[Attribute.EXTRACTABLE] = True


def test_pin_from_a_file_named_by_the_uri(hsm: SoftHsm, tmp_path: Path, label: str) -> None:
    uri = hsm.uri(label, pin_source=hsm.pin_file(tmp_path))
    with opened(generate_signer(uri, environ={})) as signer:
        assert signer.public_key.verify(signer.sign(b"x"), b"x")


def test_signatures_from_two_signers_of_one_token(hsm: SoftHsm, pin_env: None) -> None:
    a, b = f"pair-a-{next(_labels)}", f"pair-b-{next(_labels)}"
    with (
        opened(generate_signer(hsm.uri(a))) as first,
        opened(generate_signer(hsm.uri(b))) as second,
    ):
        envelope = dsse.sign(b"p", "t", [first, second])
        verified = dsse.verify(envelope, [first.public_key, second.public_key], threshold=2)
        assert set(verified.keyids) == {first.keyid, second.keyid}


def test_bundle_statement_and_trust_root_signed_in_the_token(
    hsm: SoftHsm, pin_env: None, label: str
) -> None:
    """The mirror's two signatures: a trust root signed by a root key in the token, naming a
    bundle key in the token, and a bundle statement signed by it, verified as an import does."""
    now = datetime(2026, 12, 1, tzinfo=UTC)
    with (
        opened(generate_signer(hsm.uri(label + "-root"))) as root_key,
        opened(generate_signer(hsm.uri(label))) as bundle_key,
    ):
        root = TrustRoot.create([root_key], [bundle_key.public_key], now=now, channel="lab")
        trust = TrustRoot.from_bytes(root.to_bytes())
        assert list(trust.root_keys) == [root_key.keyid]
        predicate = BundlePredicate(
            kind=BundleKind.FULL,
            sequence=1,
            created=now,
            expires=now + timedelta(days=7),
            channel="lab",
        )
        member = MemberSpec("knowledge/manifest.json", Digest.of_bytes(b"{}"), 2)
        signed = sign_statement(make_statement(predicate, [member]), bundle_key)
        facts = verify_statement(signed, trust, now=now + timedelta(hours=1))
        assert facts.keyids == (bundle_key.keyid,)
        assert facts.predicate.sequence == 1
        forged = sign_statement(make_statement(predicate, [member]), PrivateKey.generate())
        with pytest.raises(BundleRefusedError, match="signed only by keys that are not trusted"):
            verify_statement(forged, trust, now=now + timedelta(hours=1))


def test_missing_object_is_named(hsm: SoftHsm, pin_env: None) -> None:
    uri = hsm.uri("no-such-key")
    with pytest.raises(Pkcs11KeyMissingError) as caught:
        load_signer(uri)
    assert caught.value.message == (
        f"{uri}: the token (token=stella) holds no private key object=no-such-key"
    )
    assert caught.value.hint is not None
    assert "stella keys generate --signer" in caught.value.hint


def test_an_existing_key_is_never_replaced(hsm: SoftHsm, pin_env: None, label: str) -> None:
    with opened(generate_signer(hsm.uri(label))) as signer:
        keyid = signer.keyid
    with pytest.raises(Pkcs11ObjectError, match="already holds object="):
        generate_signer(hsm.uri(label))
    with opened(load_signer(hsm.uri(label))) as same:
        assert same.keyid == keyid


def test_absent_token_is_named(hsm: SoftHsm, pin_env: None) -> None:
    uri = hsm.uri("k", token="not-inserted")
    with pytest.raises(Pkcs11TokenError) as caught:
        load_signer(uri)
    assert caught.value.message == (f"{uri}: no token matches token=not-inserted in {MODULE}")
    assert caught.value.hint is not None
    assert "softhsm2-util --init-token" in caught.value.hint


def test_wrong_pin_is_named_with_its_source(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pin-test is a token no signer of this process is logged in to: a login is attempted.
    monkeypatch.setenv(PIN_ENV, "not-the-pin")
    with pytest.raises(
        Pkcs11PinError, match=r"refused the PIN from STELLA_PKCS11_PIN \(wrong"
    ) as caught:
        load_signer(hsm.uri("k", token="pin-test"))
    assert "not-the-pin" not in caught.value.diagnostics()
    uri = hsm.uri("k", token="pin-test", pin_source=hsm.pin_file(tmp_path, "not-this-pin-either"))
    with pytest.raises(Pkcs11PinError, match="refused the PIN from pin-source=") as caught:
        load_signer(uri)
    assert "not-this-pin-either" not in caught.value.diagnostics()


def test_missing_module_is_named(hsm: SoftHsm, pin_env: None, tmp_path: Path) -> None:
    missing = tmp_path / "libnothing.so"
    with pytest.raises(Pkcs11ModuleError) as caught:
        load_signer(hsm.uri("k", module=missing))
    assert f"module-path={missing} does not exist" in caught.value.message
    not_a_module = tmp_path / "notes.so"
    not_a_module.write_text("not a library")
    with pytest.raises(Pkcs11ModuleError, match="cannot be loaded as a PKCS#11 module"):
        load_signer(hsm.uri("k", module=not_a_module))


def test_no_pin_is_refused_before_the_token_is_touched(hsm: SoftHsm) -> None:
    with pytest.raises(Pkcs11PinError, match="no PIN for the token"):
        load_signer(hsm.uri("k"), environ={})
