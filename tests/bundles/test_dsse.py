"""DSSE: the PAE, envelope parsing, verification failures, thresholds, and interoperability
with securesystemslib's and sigstore-python's DSSE implementations, both ways."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sigstore.dsse as sigstore_dsse
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st
from securesystemslib.dsse import Envelope as SslibEnvelope
from securesystemslib.exceptions import VerificationError as SslibVerificationError
from securesystemslib.signer import CryptoSigner, SSlibKey

from bundles import canonical
from bundles.dsse import (
    Envelope,
    EnvelopeFormatError,
    EnvelopeTooLargeError,
    InvalidSignatureError,
    NoSignaturesError,
    PayloadTypeMismatchError,
    Signature,
    ThresholdError,
    UntrustedKeyError,
    Verified,
    add_signature,
    pae,
    sign,
    verify,
)
from bundles.errors import SignatureError, SizeLimitError
from bundles.keys import KeyType, PrivateKey, PublicKey

DATA = Path(__file__).parent.parent / "data" / "bundles" / "dsse"
INTOTO = "application/vnd.in-toto+json"
ALL_TYPES = list(KeyType)

# Keys made once: hypothesis runs a test body many times and must not regenerate them.
KEYS = {key_type: PrivateKey.generate(key_type) for key_type in KeyType}
OTHER = PrivateKey.generate()


def _sslib_signer(key: PrivateKey) -> CryptoSigner:
    """securesystemslib's signer for the same key, under our keyid."""
    crypto = serialization.load_pem_private_key(key.pem(), None)
    public = SSlibKey.from_crypto(crypto.public_key(), keyid=key.keyid)
    return CryptoSigner(crypto, public)


def _sslib_key(key: PublicKey) -> SSlibKey:
    return SSlibKey.from_crypto(key.crypto, keyid=key.keyid)


# --- PAE -------------------------------------------------------------------------------------


def test_pae_spec_vector() -> None:
    """The test vector of DSSE's protocol.md."""
    assert (
        pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )


@pytest.mark.parametrize(
    ("payload_type", "payload", "expected"),
    [
        pytest.param("", b"", b"DSSEv1 0  0 ", id="empty"),
        pytest.param("t", b"a b\n", b"DSSEv1 1 t 4 a b\n", id="spaces-in-body"),
        pytest.param("é", b"\x00\xff", b"DSSEv1 2 \xc3\xa9 2 \x00\xff", id="utf8-byte-length"),
    ],
)
def test_pae_lengths_are_byte_lengths(payload_type: str, payload: bytes, expected: bytes) -> None:
    assert pae(payload_type, payload) == expected


@given(payload_type=st.text(alphabet=st.characters(max_codepoint=127)), payload=st.binary())
def test_pae_matches_references(payload_type: str, payload: bytes) -> None:
    """securesystemslib's and sigstore-python's PAE agree with ours (for ASCII types; sigstore
    counts characters rather than bytes, so it differs on non-ASCII types)."""
    assert pae(payload_type, payload) == SslibEnvelope(payload, payload_type, {}).pae()
    assert pae(payload_type, payload) == sigstore_dsse._pae(payload_type, payload)


# --- interoperability with securesystemslib ---------------------------------------------------


@pytest.mark.parametrize("key_type", ALL_TYPES)
def test_securesystemslib_signed_verifies_here(key_type: KeyType) -> None:
    key = KEYS[key_type]
    theirs = SslibEnvelope(b'{"hello": "world"}', INTOTO, {})
    theirs.sign(_sslib_signer(key))
    data = json.dumps(theirs.to_dict()).encode()

    verified = verify(Envelope.from_json(data), [key.public_key], payload_type=INTOTO)

    assert verified == Verified(b'{"hello": "world"}', INTOTO, (key.keyid,))


@pytest.mark.parametrize("key_type", ALL_TYPES)
def test_signed_here_verifies_with_securesystemslib(key_type: KeyType) -> None:
    key = KEYS[key_type]
    envelope = sign(b"payload \x00 bytes", "text/x-test", key)
    parsed = json.loads(envelope.to_json())

    theirs = SslibEnvelope.from_dict(copy.deepcopy(parsed))  # from_dict mutates its input
    accepted = theirs.verify([_sslib_key(key.public_key)], 1)

    assert list(accepted) == [key.keyid]
    assert theirs.payload == b"payload \x00 bytes"
    assert theirs.payload_type == "text/x-test"


def test_securesystemslib_rejects_tampering_here_too() -> None:
    """The reference agrees that a changed payload type no longer verifies."""
    key = KEYS[KeyType.ECDSA_P256]
    parsed = json.loads(sign(b"x", "a", key).to_json())
    parsed["payloadType"] = "b"
    with pytest.raises(SslibVerificationError):
        SslibEnvelope.from_dict(parsed).verify([_sslib_key(key.public_key)], 1)


def test_multi_signature_envelope_interoperates() -> None:
    keys = list(KEYS.values())
    envelope = sign(b"both", INTOTO, keys)
    theirs = SslibEnvelope.from_dict(json.loads(envelope.to_json()))
    assert set(theirs.verify([_sslib_key(k.public_key) for k in keys], 2)) == {
        k.keyid for k in keys
    }

    back = SslibEnvelope(b"both", INTOTO, {})
    for key in keys:
        back.sign(_sslib_signer(key))
    verified = verify(
        Envelope.from_json(json.dumps(back.to_dict())), [k.public_key for k in keys], threshold=2
    )
    assert verified.keyids == tuple(sorted(k.keyid for k in keys))


@pytest.mark.parametrize("name", ["ed25519", "ecdsa-p256"])
def test_committed_securesystemslib_fixtures_verify(name: str) -> None:
    public = PublicKey.load(DATA / f"{name}.pub")
    envelope = Envelope.from_json((DATA / f"{name}.dsse.json").read_bytes(), source=name)
    verified = verify(envelope, [public], payload_type=INTOTO)
    assert verified.payload == (DATA / "statement.json").read_bytes()
    assert verified.keyids == (public.keyid,)
    assert PrivateKey.load(DATA / f"{name}.key").keyid == public.keyid


def test_ed25519_envelope_is_byte_identical_to_securesystemslib() -> None:
    """Ed25519 is deterministic, so the same key and payload must give the same envelope."""
    key = PrivateKey.load(DATA / "ed25519.key")
    ours = sign((DATA / "statement.json").read_bytes(), INTOTO, key)
    assert ours.to_json() == (DATA / "ed25519.dsse.json").read_bytes()


def test_securesystemslib_default_keyid_via_mapping() -> None:
    """A signer naming the key its own way is trusted when the caller maps that keyid."""
    key = KEYS[KeyType.ED25519]
    crypto = serialization.load_pem_private_key(key.pem(), None)
    signer = CryptoSigner(crypto)  # securesystemslib's own keyid scheme
    theirs = SslibEnvelope(b"x", "t", {})
    theirs.sign(signer)
    envelope = Envelope.from_json(json.dumps(theirs.to_dict()))

    with pytest.raises(UntrustedKeyError):
        verify(envelope, [key.public_key])
    verified = verify(envelope, {signer.public_key.keyid: key.public_key})
    assert verified.keyids == (key.keyid,)


# --- interoperability with sigstore-python ---------------------------------------------------


def test_sigstore_signed_verifies_here() -> None:
    """sigstore-python signs without a keyid; every trusted key is tried."""
    crypto = ec.generate_private_key(ec.SECP256R1())
    key = PrivateKey(crypto)
    statement = sigstore_dsse.StatementBuilder(
        subjects=[
            sigstore_dsse.Subject.model_validate({"name": "a", "digest": {"sha256": "0" * 64}})
        ],
        predicate_type="https://example.com/p/v1",
        predicate={"n": 3},
    ).build()
    theirs = sigstore_dsse._sign(crypto, statement)

    envelope = Envelope.from_json(theirs.to_json())
    assert envelope.signatures[0].keyid == ""
    verified = verify(envelope, [OTHER.public_key, key.public_key], payload_type=INTOTO)
    assert verified.keyids == (key.keyid,)
    assert verified.payload == statement._contents


def test_signed_here_verifies_with_sigstore() -> None:
    key = KEYS[KeyType.ECDSA_P256]
    envelope = sign(b'{"_type": "x"}', INTOTO, key)
    theirs = sigstore_dsse.Envelope._from_json(envelope.to_json())
    crypto = key.public_key.crypto
    assert isinstance(crypto, ec.EllipticCurvePublicKey)
    assert sigstore_dsse._verify(crypto, theirs) == b'{"_type": "x"}'


# --- envelope encoding -----------------------------------------------------------------------


def test_to_json_is_canonical_and_always_names_keyids() -> None:
    envelope = Envelope(b"\xfb\xff", "t", (Signature("", b"\x01"), Signature("k", b"\x02")))
    data = envelope.to_json()
    assert canonical.is_canonical(data)
    assert json.loads(data) == {
        "payload": "+/8=",
        "payloadType": "t",
        "signatures": [{"keyid": "", "sig": "AQ=="}, {"keyid": "k", "sig": "Ag=="}],
    }
    assert Envelope.from_json(data) == envelope


def test_url_safe_base64_and_unknown_fields_accepted() -> None:
    key = KEYS[KeyType.ED25519]
    doc = json.loads(sign(b"\xfb\xff\xfe", "t", key).to_json())
    doc["payload"] = base64.urlsafe_b64encode(b"\xfb\xff\xfe").decode()
    doc["extension"] = {"future": True}
    doc["signatures"][0]["extra"] = 1
    envelope = Envelope.from_json(json.dumps(doc))
    assert envelope.payload == b"\xfb\xff\xfe"
    assert verify(envelope, [key.public_key]).payload == b"\xfb\xff\xfe"


def test_missing_or_null_keyid_means_empty() -> None:
    key = KEYS[KeyType.ECDSA_P256]
    doc = json.loads(sign(b"p", "t", key).to_json())
    del doc["signatures"][0]["keyid"]
    envelope = Envelope.from_json(json.dumps(doc))
    assert envelope.signatures[0].keyid == ""
    assert verify(envelope, [OTHER.public_key, key.public_key]).keyids == (key.keyid,)
    doc["signatures"][0]["keyid"] = None
    assert Envelope.from_json(json.dumps(doc)).signatures[0].keyid == ""


def test_from_dict_does_not_modify_its_input() -> None:
    doc = json.loads(sign(b"p", "t", KEYS[KeyType.ED25519]).to_json())
    before = copy.deepcopy(doc)
    Envelope.from_dict(doc)
    assert doc == before


GOOD = {"payload": "cA==", "payloadType": "t", "signatures": [{"keyid": "k", "sig": "AQ=="}]}


def _with(path: tuple[str | int, ...], value: Any) -> bytes:
    doc: Any = copy.deepcopy(GOOD)
    target = doc
    for part in path[:-1]:
        target = target[part]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return json.dumps(doc).encode()


_DELETE = object()

MALFORMED = [
    pytest.param(b"[]", "must be a JSON object, got an array", id="array"),
    pytest.param(b"{", "env.json: not valid JSON", id="not-json"),
    pytest.param(b'{"payload": "", "payload": ""}', "duplicate JSON object key", id="duplicate"),
    pytest.param(_with(("payload",), _DELETE), "required field 'payload' is missing", id="no-p"),
    pytest.param(
        _with(("payloadType",), _DELETE), "required field 'payloadType' is missing", id="no-type"
    ),
    pytest.param(
        _with(("signatures",), _DELETE), "required field 'signatures' is missing", id="no-sigs"
    ),
    pytest.param(
        _with(("payload",), 5), "field 'payload' must be a string, got a number", id="p-number"
    ),
    pytest.param(
        _with(("payloadType",), None),
        "field 'payloadType' must be a string, got null",
        id="type-null",
    ),
    pytest.param(
        _with(("signatures",), {}),
        "field 'signatures' must be an array, got an object",
        id="sigs-object",
    ),
    pytest.param(
        _with(("signatures", 0), "AQ=="),
        "field 'signatures[0]' must be an object, got a string",
        id="sig-string",
    ),
    pytest.param(
        _with(("signatures", 0, "sig"), _DELETE),
        "required field 'signatures[0].sig' is missing",
        id="no-sig",
    ),
    pytest.param(
        _with(("signatures", 0, "keyid"), 7),
        "field 'signatures[0].keyid' must be a string, got a number",
        id="keyid-number",
    ),
    pytest.param(_with(("payload",), "cA"), "field 'payload' is not valid base64", id="unpadded"),
    pytest.param(_with(("payload",), "c A=="), "field 'payload' is not valid base64", id="space"),
    pytest.param(_with(("payload",), "+-=="), "mixes standard and URL-safe", id="mixed"),
    pytest.param(_with(("payload",), "cA==é"), "non-ASCII", id="non-ascii"),
    pytest.param(
        _with(("signatures", 0, "sig"), "!!!!"),
        "field 'signatures[0].sig' is not valid base64",
        id="sig-base64",
    ),
]


def test_malformed_baseline_is_well_formed() -> None:
    assert Envelope.from_json(json.dumps(GOOD)) == Envelope(b"p", "t", (Signature("k", b"\x01"),))


@pytest.mark.parametrize(("data", "message"), MALFORMED)
def test_malformed_envelopes_rejected(data: bytes, message: str) -> None:
    with pytest.raises(EnvelopeFormatError) as info:
        Envelope.from_json(data, source="env.json")
    assert info.value.message.startswith("env.json: ")
    assert message in info.value.message
    assert isinstance(info.value, SignatureError)


def test_oversized_envelope_rejected() -> None:
    data = json.dumps(GOOD).encode()
    with pytest.raises(EnvelopeTooLargeError, match=r"env\.json: \d+ bytes exceeds the envelope"):
        Envelope.from_json(data, limit=len(data) - 1, source="env.json")
    with pytest.raises(SizeLimitError):
        Envelope.from_json(data, limit=10)
    assert Envelope.from_json(data, limit=len(data)).payload == b"p"


# --- verification failures -------------------------------------------------------------------


def _tamper_payload(doc: dict[str, Any]) -> None:
    doc["payload"] = base64.b64encode(b"another payload").decode()


def _tamper_type(doc: dict[str, Any]) -> None:
    doc["payloadType"] = "application/vnd.other+json"


def _tamper_sig(doc: dict[str, Any]) -> None:
    sig = bytearray(base64.b64decode(doc["signatures"][0]["sig"]))
    sig[-1] ^= 0x01
    doc["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()


def _truncate_sig(doc: dict[str, Any]) -> None:
    doc["signatures"][0]["sig"] = doc["signatures"][0]["sig"][:8]


def _other_signer(doc: dict[str, Any]) -> None:
    other = json.loads(sign(b"the payload", INTOTO, OTHER).to_json())
    doc["signatures"] = other["signatures"]


@pytest.mark.parametrize("key_type", ALL_TYPES)
@pytest.mark.parametrize(
    ("tamper", "error", "message"),
    [
        pytest.param(_tamper_payload, InvalidSignatureError, "does not verify", id="payload"),
        pytest.param(_tamper_type, InvalidSignatureError, "does not verify", id="payloadType"),
        pytest.param(_tamper_sig, InvalidSignatureError, "does not verify", id="signature"),
        pytest.param(_truncate_sig, InvalidSignatureError, "does not verify", id="short-sig"),
        pytest.param(_other_signer, UntrustedKeyError, "not trusted", id="unknown-keyid"),
    ],
)
def test_tampering_is_rejected(
    key_type: KeyType,
    tamper: Callable[[dict[str, Any]], None],
    error: type[SignatureError],
    message: str,
) -> None:
    key = KEYS[key_type]
    doc = json.loads(sign(b"the payload", INTOTO, key).to_json())
    tamper(doc)
    envelope = Envelope.from_json(json.dumps(doc))
    with pytest.raises(error) as info:
        verify(envelope, [key.public_key])
    assert message in info.value.message
    if error is InvalidSignatureError:
        assert info.value.message == (
            f"signature by key {key.keyid} does not verify over the payload"
        )
    else:
        assert OTHER.keyid in info.value.message  # the untrusted signer, in full
        assert key.keyid[:16] in info.value.message  # the trusted keys, briefly


def test_keyless_signature_that_verifies_with_no_key() -> None:
    key = KEYS[KeyType.ED25519]
    envelope = sign(b"p", "t", key)
    stripped = Envelope(b"q", "t", (Signature("", envelope.signatures[0].sig),))
    with pytest.raises(InvalidSignatureError, match="without keyid does not verify"):
        verify(stripped, [key.public_key, OTHER.public_key])


def test_no_signatures() -> None:
    with pytest.raises(NoSignaturesError, match="envelope has no signatures"):
        verify(Envelope(b"p", "t"), [OTHER.public_key])
    with pytest.raises(NoSignaturesError):
        verify(Envelope.from_json(b'{"payload":"","payloadType":"","signatures":[]}'), [])


def test_payload_type_mismatch() -> None:
    key = KEYS[KeyType.ED25519]
    envelope = sign(b"p", "application/x-one", key)
    with pytest.raises(PayloadTypeMismatchError) as info:
        verify(envelope, [key.public_key], payload_type="application/x-two")
    assert info.value.message == (
        "envelope payload type is 'application/x-one', expected 'application/x-two'"
    )
    assert verify(envelope, [key.public_key], payload_type="application/x-one").payload == b"p"


# --- thresholds ------------------------------------------------------------------------------

THREE = [PrivateKey.generate(), PrivateKey.generate(KeyType.ED25519), PrivateKey.generate()]
THREE_PUBLIC = [k.public_key for k in THREE]


def test_two_of_three_with_two_distinct_keys() -> None:
    envelope = sign(b"p", "t", THREE[:2])
    verified = verify(envelope, THREE_PUBLIC, threshold=2)
    assert verified.keyids == tuple(sorted(k.keyid for k in THREE[:2]))


def test_one_key_signing_twice_counts_once() -> None:
    key = THREE[0]  # ECDSA: two signatures over the same bytes differ, both valid
    first = sign(b"p", "t", key)
    second = Signature(key.keyid, key.sign(first.pae()))
    assert second.sig != first.signatures[0].sig
    doubled = Envelope(b"p", "t", (*first.signatures, second))
    assert verify(doubled, THREE_PUBLIC).keyids == (key.keyid,)
    with pytest.raises(ThresholdError) as info:
        verify(doubled, THREE_PUBLIC, threshold=2)
    assert info.value.message.startswith(
        "only 1 of 2 required distinct trusted keys signed the envelope"
    )
    # the same key without keyid, as another "signature", still counts once
    keyless = Envelope(b"p", "t", (*first.signatures, Signature("", second.sig)))
    with pytest.raises(ThresholdError):
        verify(keyless, THREE_PUBLIC, threshold=2)


def test_threshold_names_the_signatures_that_did_not_count() -> None:
    envelope = sign(b"p", "t", [THREE[0], OTHER])
    with pytest.raises(ThresholdError) as info:
        verify(envelope, THREE_PUBLIC, threshold=2)
    assert f"untrusted: {OTHER.keyid[:16]}" in info.value.message


def test_bad_signature_tolerated_when_threshold_met() -> None:
    envelope = sign(b"p", "t", THREE[:2])
    broken = Signature(THREE[2].keyid, b"\x00" * 64)
    envelope = Envelope(b"p", "t", (*envelope.signatures, broken))
    assert len(verify(envelope, THREE_PUBLIC, threshold=2).keyids) == 2
    with pytest.raises(ThresholdError, match=f"not verifying: {THREE[2].keyid[:16]}"):
        verify(envelope, THREE_PUBLIC, threshold=3)


def test_add_signature_does_not_duplicate_a_key() -> None:
    envelope = sign(b"p", "t", [THREE[0], THREE[0]])
    assert len(envelope.signatures) == 1
    envelope = add_signature(add_signature(envelope, THREE[1]), THREE[1])
    assert [s.keyid for s in envelope.signatures] == [THREE[0].keyid, THREE[1].keyid]


def test_programming_errors() -> None:
    with pytest.raises(ValueError, match="threshold must be at least 1"):
        verify(sign(b"p", "t", OTHER), [OTHER.public_key], threshold=0)
    with pytest.raises(ValueError, match="at least one private key"):
        sign(b"p", "t", [])


# --- property --------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    payload=st.binary(max_size=4096),
    payload_type=st.text(max_size=80),
    key_types=st.lists(st.sampled_from(ALL_TYPES), min_size=1, max_size=2, unique=True),
)
def test_sign_verify_round_trip(
    payload: bytes, payload_type: str, key_types: list[KeyType]
) -> None:
    keys = [KEYS[t] for t in key_types]
    envelope = Envelope.from_json(sign(payload, payload_type, keys).to_json())
    verified = verify(
        envelope, [k.public_key for k in keys], threshold=len(keys), payload_type=payload_type
    )
    assert verified.payload == payload
    assert verified.payload_type == payload_type
    assert verified.keyids == tuple(sorted(k.keyid for k in keys))
