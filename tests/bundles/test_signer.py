"""The Signer interface, the key-file backend, RFC 7512 URI parsing and PIN sources (no token
needed here; tests/bundles/test_signer_pkcs11.py signs with a real SoftHSM2 token)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bundles import dsse
from bundles.errors import KeyError_, SignerError
from bundles.keys import KeyType, PrivateKey
from bundles.pkcs11_uri import (
    PIN_ENV,
    Pkcs11PinError,
    Pkcs11UriError,
    is_pkcs11_uri,
    parse_pkcs11_uri,
    token_pin,
)
from bundles.signer import Signer, generate_signer, load_signer

SO = "module-path=/usr/lib/softhsm/libsofthsm2.so"


@pytest.mark.parametrize("key_type", list(KeyType))
def test_a_key_file_is_a_signer_with_unchanged_signatures(
    tmp_path: Path, key_type: KeyType
) -> None:
    key = PrivateKey.generate(key_type)
    path = tmp_path / "k.key"
    key.save(path)
    signer = load_signer(path)
    assert isinstance(signer, Signer)
    assert isinstance(signer, PrivateKey)
    assert (signer.keyid, signer.public_key.key_type, signer.public_key) == (
        key.keyid,
        key_type,
        key.public_key,
    )
    envelope = dsse.sign(b"payload", "text/plain", signer)
    assert dsse.verify(envelope, [key.public_key]).keyids == (key.keyid,)
    if key_type is KeyType.ED25519:  # deterministic: the same bytes as signing with the key
        assert envelope == dsse.sign(b"payload", "text/plain", key)


def test_generate_signer_writes_a_key_file_and_never_replaces_one(tmp_path: Path) -> None:
    path = tmp_path / "new.key"
    signer = generate_signer(path, KeyType.ED25519)
    assert PrivateKey.load(path).keyid == signer.keyid
    assert (tmp_path / "new.pub").read_bytes() == signer.public_key.pem()
    with pytest.raises(SignerError, match="a key file already exists there"):
        generate_signer(path)


def test_generate_signer_refuses_ed25519_in_a_token() -> None:
    with pytest.raises(Pkcs11UriError, match="a token key is ECDSA P-256"):
        generate_signer(f"pkcs11:token=t;object=o?{SO}", KeyType.ED25519)


def test_is_pkcs11_uri() -> None:
    assert is_pkcs11_uri("pkcs11:token=a")
    assert is_pkcs11_uri("PKCS11:token=a")
    assert not is_pkcs11_uri("keys/pkcs11:x")
    assert not is_pkcs11_uri(Path("pkcs11:token=a"))  # a Path is a file, whatever its name


def test_uri_fields_are_percent_decoded() -> None:
    uri = parse_pkcs11_uri(
        "pkcs11:token=My%20Token;object=appliance;id=%01%ff;serial=42;slot-id=7;type=private;"
        "manufacturer=SoftHSM%20project;model=SoftHSM%20v2"
        "?module-path=/opt/hsm/lib%20p11.so&pin-source=file:///run/stella/pin"
    )
    assert uri.token == "My Token"
    assert uri.object == "appliance"
    assert uri.id == b"\x01\xff"
    assert (uri.serial, uri.slot_id) == ("42", 7)
    assert (uri.manufacturer, uri.model) == ("SoftHSM project", "SoftHSM v2")
    assert uri.module_path == Path("/opt/hsm/lib p11.so")
    assert uri.pin_source == Path("/run/stella/pin")
    assert str(uri).startswith("pkcs11:token=My%20Token;")
    assert uri.key_name == "object=appliance;id=%01%ff"
    assert parse_pkcs11_uri(f"pkcs11:token=R&D;object=a=b?{SO}").token == "R&D"
    assert parse_pkcs11_uri(f"PKCS11:token=t;object=o?{SO}").token == "t"
    assert parse_pkcs11_uri(f"pkcs11:token=R&D;object=a=b?{SO}").object == "a=b"


@pytest.mark.parametrize(
    "pin_source", ["file:/run/pin", "file:///run/pin", "file://localhost/run/pin", "/run/pin"]
)
def test_pin_source_forms(pin_source: str) -> None:
    uri = parse_pkcs11_uri(f"pkcs11:token=t;object=o?{SO}&pin-source={pin_source}")
    assert uri.pin_source == Path("/run/pin")


BAD_URIS = [
    ("token=t;object=o?" + SO, "is not a pkcs11: URI"),
    ("pkcs11:token=t;object=o", "module-path is missing"),
    ("pkcs11:token=t;object=o?module-path=lib.so", "module-path=lib.so is not an absolute path"),
    ("pkcs11:object=o?" + SO, "the URI names no token"),
    ("pkcs11:token=t?" + SO, "the URI names no key object"),
    ("pkcs11:token=t;object=o;token=u?" + SO, "attribute 'token' appears twice"),
    ("pkcs11:token=t;object=o;x-vendor=1?" + SO, "unknown attribute 'x-vendor'"),
    ("pkcs11:token=t;object=o?" + SO + "&module-name=softhsm2", "'module-name' is not supported"),
    ("pkcs11:token=t;object=o;slot-description=a?" + SO, "'slot-description' is not supported"),
    ("pkcs11:token=t;object=o;module-path=/x.so", "'module-path' belongs in the URI's query"),
    ("pkcs11:token=t?" + SO + "&object=o", "'object' belongs in the URI's path"),
    ("pkcs11:token=t;object=o;type=public?" + SO, "type=public names no signing key"),
    ("pkcs11:token=t;object=o;slot-id=0x1?" + SO, "slot-id=0x1 is not a decimal number"),
    ("pkcs11:token=a b;object=o?" + SO, "attribute 'token' contains ' ', which must be"),
    ("pkcs11:token=a/b;object=o?" + SO, "attribute 'token' contains '/', which must be"),
    ("pkcs11:token=t;object=o?" + SO + "&pin-source=/a;b", "'pin-source' contains ';'"),
    ("pkcs11:token=a%2;object=o?" + SO, "'%' not followed by two hex digits"),
    ("pkcs11:token=a%zz;object=o?" + SO, "'%' not followed by two hex digits"),
    ("pkcs11:token=%ff;object=o?" + SO, "attribute 'token' is not UTF-8 once decoded"),
    ("pkcs11:token=;object=o?" + SO, "attribute 'token' is empty"),
    ("pkcs11:token=t;object=o;id=?" + SO, "attribute 'id' is empty"),
    ("pkcs11:token;object=o?" + SO, "'token' is not a name=value attribute"),
    ("pkcs11:token=t;object=o?" + SO + "#frag", "has no fragment"),
    ("pkcs11:token=t;object=o?" + SO + "&pin-source=|/bin/echo", "runs a program"),
    ("pkcs11:token=t;object=o?" + SO + "&pin-source=file:pin", "is not an absolute path"),
    ("pkcs11:token=t;object=o?" + SO + "&pin-source=file://h/pin", "names a file on another host"),
    ("pkcs11:" + "token=t;" * 600 + "?" + SO, "exceeds 4096"),
]


@pytest.mark.parametrize(("text", "message"), BAD_URIS)
def test_bad_uris_are_refused_naming_the_part(text: str, message: str) -> None:
    with pytest.raises(Pkcs11UriError) as caught:
        parse_pkcs11_uri(text)
    assert message in caught.value.message
    assert isinstance(caught.value, KeyError_)


def test_a_pin_in_the_uri_is_refused_with_the_reason() -> None:
    with pytest.raises(Pkcs11PinError) as caught:
        parse_pkcs11_uri(f"pkcs11:token=t;object=o?{SO}&pin-value=1234")
    assert "the URI carries the PIN (pin-value)" in caught.value.message
    assert "shell history" in caught.value.message
    assert caught.value.hint is not None
    assert PIN_ENV in caught.value.hint
    assert "1234" not in caught.value.diagnostics()  # the PIN is not echoed back
    with pytest.raises(Pkcs11PinError) as caught:
        parse_pkcs11_uri(f"pkcs11:token=a b;pin-value=99%2099;object=o?{SO}")
    assert "99" not in caught.value.diagnostics()
    for spaced in (
        f"pkcs11:token=t; pin-value=4321;object=o?{SO}",
        f"pkcs11:token=t;object=o?{SO}&\tpin-value =4321",
    ):
        with pytest.raises(Pkcs11PinError) as caught:
            parse_pkcs11_uri(spaced)
        assert "4321" not in caught.value.diagnostics()


def test_pin_comes_from_the_pin_source_file_first(tmp_path: Path) -> None:
    pin = tmp_path / "pin"
    pin.write_text("s3cret\n")
    uri = parse_pkcs11_uri(f"pkcs11:token=t;object=o?{SO}&pin-source=file:{pin}")
    assert token_pin(uri, {PIN_ENV: "from-env"}) == "s3cret"
    plain = parse_pkcs11_uri(f"pkcs11:token=t;object=o?{SO}")
    assert token_pin(plain, {PIN_ENV: "from-env"}) == "from-env"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        (b"", "is empty"),
        (b"\n", "is empty"),
        (b"x" * 2000, "is larger than 1024 bytes"),
        (b"\xff\xfe\n", "is not UTF-8 text"),
    ],
)
def test_bad_pin_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    pin = tmp_path / "pin"
    if content is not None:
        pin.write_bytes(content)
    uri = parse_pkcs11_uri(f"pkcs11:token=t;object=o?{SO}&pin-source=file:{pin}")
    with pytest.raises(Pkcs11PinError, match=message):
        token_pin(uri, {})


def test_no_pin_at_all_names_both_sources() -> None:
    uri = parse_pkcs11_uri(f"pkcs11:token=t;object=o?{SO}")
    with pytest.raises(Pkcs11PinError) as caught:
        token_pin(uri, {})
    assert "no PIN for the token" in caught.value.message
    assert caught.value.hint is not None
    assert PIN_ENV in caught.value.hint
    assert "pin-source=file:" in caught.value.hint


def test_a_uri_file_names_the_signer(tmp_path: Path) -> None:
    missing = tmp_path / "signing.uri"
    with pytest.raises(SignerError, match="no such signer file"):
        load_signer(missing)
    missing.write_text("/etc/keys/signing.key\n")
    with pytest.raises(SignerError, match="does not hold a pkcs11: URI"):
        load_signer(missing)
    missing.write_text("pkcs11:token=t;object=o\n")  # read, then parsed like any URI
    with pytest.raises(Pkcs11UriError, match="module-path is missing"):
        load_signer(missing)


@settings(max_examples=200, deadline=None)
@given(
    token=st.text(min_size=1, max_size=40).filter(lambda s: "\x00" not in s),
    obj=st.text(min_size=1, max_size=40),
    key_id=st.binary(min_size=1, max_size=20),
)
def test_any_percent_encoded_label_reads_back_exactly(token: str, obj: str, key_id: bytes) -> None:
    uri = parse_pkcs11_uri(
        f"pkcs11:token={quote(token, safe='')};object={quote(obj, safe='')};"
        f"id={quote(key_id, safe='')}?{SO}"
    )
    assert (uri.token, uri.object, uri.id) == (token, obj, key_id)
