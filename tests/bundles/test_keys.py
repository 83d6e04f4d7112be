"""Keys: generation, PEM round trips, keyids, passphrases, file modes and refusals."""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from bundles.errors import KeyError_
from bundles.keys import (
    PASSPHRASE_ENV,
    KeyFileError,
    KeyFormatError,
    KeyType,
    PassphraseRequiredError,
    PrivateKey,
    PublicKey,
    UnsupportedKeyTypeError,
    WrongPassphraseError,
    passphrase_from_env,
)

ALL_TYPES = list(KeyType)


def _spki_sha256(pem: bytes) -> str:
    """The keyid computed without the module under test: a PUBLIC KEY PEM body is the
    base64 of the SubjectPublicKeyInfo DER."""
    lines = pem.decode("ascii").strip().splitlines()
    assert lines[0] == "-----BEGIN PUBLIC KEY-----"
    assert lines[-1] == "-----END PUBLIC KEY-----"
    return hashlib.sha256(base64.b64decode("".join(lines[1:-1]))).hexdigest()


@pytest.mark.parametrize("key_type", ALL_TYPES)
def test_generate_save_load_round_trip(tmp_path: Path, key_type: KeyType) -> None:
    key = PrivateKey.generate(key_type)
    key.save(tmp_path / "signing.key")
    key.public_key.save(tmp_path / "signing.pub")

    loaded = PrivateKey.load(tmp_path / "signing.key")
    public = PublicKey.load(tmp_path / "signing.pub")

    assert loaded.key_type is key_type
    assert loaded.keyid == key.keyid == public.keyid
    assert public == key.public_key
    assert public.key_type is key_type
    assert public.source == str(tmp_path / "signing.pub")
    assert loaded.pem() == key.pem()
    signature = loaded.sign(b"data")
    assert public.verify(signature, b"data")
    assert not public.verify(signature, b"other data")


@pytest.mark.parametrize("key_type", ALL_TYPES)
def test_keyid_is_sha256_of_spki_der(key_type: KeyType) -> None:
    key = PrivateKey.generate(key_type)
    assert key.keyid == _spki_sha256(key.public_key.pem())
    assert len(key.keyid) == 64
    assert key.keyid == key.keyid.lower()


def test_keyid_does_not_depend_on_point_encoding() -> None:
    """A P-256 key written with a compressed point has the same identity."""
    crypto = ec.generate_private_key(ec.SECP256R1()).public_key()
    compressed = crypto.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    reloaded = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), compressed)
    assert PublicKey.from_crypto(reloaded).keyid == PublicKey.from_crypto(crypto).keyid


def test_signatures_are_what_other_verifiers_expect() -> None:
    """ECDSA: DER over SHA-256; Ed25519: plain. Checked with cryptography directly."""
    ecdsa = PrivateKey.generate(KeyType.ECDSA_P256)
    pub = serialization.load_pem_public_key(ecdsa.public_key.pem())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    pub.verify(ecdsa.sign(b"m"), b"m", ec.ECDSA(hashes.SHA256()))

    edkey = PrivateKey.generate(KeyType.ED25519)
    edpub = serialization.load_pem_public_key(edkey.public_key.pem())
    assert isinstance(edpub, ed25519.Ed25519PublicKey)
    edpub.verify(edkey.sign(b"m"), b"m")
    assert edkey.sign(b"m") == edkey.sign(b"m")  # Ed25519 is deterministic


def test_schemes() -> None:
    assert KeyType.ECDSA_P256.scheme == "ecdsa-sha2-nistp256"
    assert KeyType.ED25519.scheme == "ed25519"
    assert PrivateKey.generate().key_type is KeyType.ECDSA_P256
    assert PrivateKey.generate(KeyType.ED25519).public_key.scheme == "ed25519"


@pytest.mark.parametrize("key_type", ALL_TYPES)
@pytest.mark.parametrize("passphrase", ["correct horse", b"correct horse"])
def test_passphrase_round_trip(tmp_path: Path, key_type: KeyType, passphrase: str | bytes) -> None:
    key = PrivateKey.generate(key_type)
    path = tmp_path / "signing.key"
    key.save(path, passphrase)
    text = path.read_bytes()
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in text
    loaded = PrivateKey.load(path, "correct horse")
    assert loaded.keyid == key.keyid


def test_missing_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    PrivateKey.generate().save(path, "secret")
    with pytest.raises(PassphraseRequiredError) as info:
        PrivateKey.load(path)
    text = info.value.diagnostics()
    assert str(path) in text
    assert "encrypted and no passphrase was given" in text
    assert PASSPHRASE_ENV in text
    assert PASSPHRASE_ENV == "STELLA_KEY_PASSPHRASE"


def test_wrong_passphrase(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    PrivateKey.generate(KeyType.ED25519).save(path, "secret")
    with pytest.raises(WrongPassphraseError) as info:
        PrivateKey.load(path, "not the secret")
    assert str(path) in info.value.message
    assert "passphrase does not decrypt" in info.value.message
    assert PASSPHRASE_ENV in info.value.diagnostics()


def test_passphrase_for_unencrypted_key_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    key = PrivateKey.generate()
    key.save(path)
    assert PrivateKey.load(path, "unused").keyid == key.keyid


def test_passphrase_from_env() -> None:
    assert passphrase_from_env({PASSPHRASE_ENV: "pw"}) == b"pw"
    assert passphrase_from_env({PASSPHRASE_ENV: ""}) is None
    assert passphrase_from_env({}) is None


@pytest.mark.parametrize("passphrase", [None, "pw"])
def test_private_key_file_mode_is_0600(tmp_path: Path, passphrase: str | None) -> None:
    path = tmp_path / "signing.key"
    old_umask = os.umask(0)  # the mode must not depend on a permissive umask
    try:
        PrivateKey.generate().save(path, passphrase)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["signing.key"]  # no temporary left


def test_public_key_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "signing.pub"
    PrivateKey.generate().public_key.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_private_key_is_not_overwritten_by_default(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    first = PrivateKey.generate()
    first.save(path)
    with pytest.raises(KeyFileError, match="a key file already exists there"):
        PrivateKey.generate().save(path)
    assert PrivateKey.load(path).keyid == first.keyid
    second = PrivateKey.generate()
    second.save(path, overwrite=True)
    assert PrivateKey.load(path).keyid == second.keyid
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_into_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "missing" / "signing.key"
    with pytest.raises(KeyFileError, match="cannot write key file"):
        PrivateKey.generate().save(path)


def _pem_private(key: object) -> bytes:
    assert isinstance(
        key,
        rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed448.Ed448PrivateKey | dsa.DSAPrivateKey,
    )
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


UNSUPPORTED = [
    pytest.param(lambda: rsa.generate_private_key(65537, 2048), "RSA-2048", id="rsa"),
    pytest.param(lambda: ec.generate_private_key(ec.SECP384R1()), "secp384r1", id="p384"),
    pytest.param(lambda: ec.generate_private_key(ec.SECP256K1()), "secp256k1", id="k256"),
    pytest.param(ed448.Ed448PrivateKey.generate, "Ed448", id="ed448"),
]


@pytest.mark.parametrize(("make", "name"), UNSUPPORTED)
def test_unsupported_private_key_refused(tmp_path: Path, make: object, name: str) -> None:
    assert callable(make)
    path = tmp_path / "other.key"
    path.write_bytes(_pem_private(make()))
    with pytest.raises(UnsupportedKeyTypeError) as info:
        PrivateKey.load(path)
    assert str(path) in info.value.message
    assert name in info.value.message
    assert "ECDSA P-256 or Ed25519" in info.value.diagnostics()


@pytest.mark.parametrize(("make", "name"), UNSUPPORTED)
def test_unsupported_public_key_refused(tmp_path: Path, make: object, name: str) -> None:
    assert callable(make)
    path = tmp_path / "other.pub"
    path.write_bytes(
        make()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(UnsupportedKeyTypeError) as info:
        PublicKey.load(path)
    assert str(path) in info.value.message
    assert name in info.value.message


def test_openssl_rsa_key_refused(tmp_path: Path) -> None:
    """An RSA key as openssl writes it (traditional format) is refused by type, not format."""
    path = tmp_path / "rsa.key"
    key = rsa.generate_private_key(65537, 2048)
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(UnsupportedKeyTypeError, match=r"unsupported key type RSA-2048"):
        PrivateKey.load(path)


def test_sec1_ec_private_key_accepted(tmp_path: Path) -> None:
    crypto = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "ec.key"
    path.write_bytes(
        crypto.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    assert PrivateKey.load(path).keyid == PublicKey.from_crypto(crypto.public_key()).keyid


@pytest.mark.parametrize(
    ("content", "error", "message"),
    [
        pytest.param(b"", KeyFormatError, "not a PEM private key", id="empty"),
        pytest.param(b"hello", KeyFormatError, "not a PEM private key", id="garbage"),
        pytest.param(
            b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n"
            b"-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
            KeyFormatError,
            "cosign's encrypted key format is not supported",
            id="cosign",
        ),
        pytest.param(b"x" * (65 << 10), KeyFormatError, "so not a PEM key file", id="huge"),
    ],
)
def test_bad_private_key_files(
    tmp_path: Path, content: bytes, error: type[KeyError_], message: str
) -> None:
    path = tmp_path / "bad.key"
    path.write_bytes(content)
    with pytest.raises(error) as info:
        PrivateKey.load(path)
    assert str(path) in info.value.message
    assert message in info.value.message


def test_private_key_given_as_public_key(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    PrivateKey.generate().save(path)
    with pytest.raises(KeyFormatError, match="is a private key, expected a public key"):
        PublicKey.load(path)


def test_public_key_not_pem(tmp_path: Path) -> None:
    path = tmp_path / "x.pub"
    path.write_bytes(b"not a key")
    with pytest.raises(KeyFormatError, match=r"x\.pub: not a PEM public key"):
        PublicKey.load(path)


def test_missing_key_file(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match=r"nope\.key: no such key file"):
        PrivateKey.load(tmp_path / "nope.key")
    with pytest.raises(KeyFileError, match=r"nope\.pub: no such key file"):
        PublicKey.load(tmp_path / "nope.pub")


def test_public_key_from_bad_der() -> None:
    with pytest.raises(KeyFormatError, match="trust-root.json: not a SubjectPublicKeyInfo"):
        PublicKey(b"\x30\x00", source="trust-root.json")


def test_private_key_repr_shows_no_secret() -> None:
    key = PrivateKey.generate(KeyType.ED25519)
    text = repr(key)
    assert key.keyid in text
    assert "PRIVATE" not in text
    assert key.pem().decode() not in text


def test_public_keys_compare_by_key() -> None:
    key = PrivateKey.generate()
    a = PublicKey.from_pem(key.public_key.pem(), source="a")
    b = PublicKey.from_pem(key.public_key.pem(), source="b")
    assert a == b
    assert hash(a) == hash(b)
    assert a != PrivateKey.generate().public_key
