"""Regenerate the DSSE interoperability fixtures in this directory.

Run from the repository root: ``.venv/bin/python tests/data/bundles/dsse/make_fixtures.py``.
Keys are made with ``cryptography`` and the envelopes are signed with securesystemslib's DSSE,
an implementation independent of ``bundles.dsse``, so the tests that read these files check
that envelopes signed elsewhere verify here. The keys are test keys and protect nothing.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from securesystemslib.dsse import Envelope
from securesystemslib.signer import CryptoSigner, SSlibKey

HERE = Path(__file__).parent
PAYLOAD_TYPE = "application/vnd.in-toto+json"
STATEMENT: dict[str, Any] = {
    "_type": "https://in-toto.io/Statement/v1",
    "subject": [
        {"name": "hello.txt", "digest": {"sha256": hashlib.sha256(b"hello\n").hexdigest()}}
    ],
    "predicateType": "https://stella-ops.org/attestations/test/v1",
    "predicate": {"n": 3, "note": "fixture signed by securesystemslib"},
}


def main() -> None:
    payload = rfc8785.dumps(STATEMENT)
    (HERE / "statement.json").write_bytes(payload)
    keys: dict[str, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey] = {
        "ed25519": ed25519.Ed25519PrivateKey.generate(),
        "ecdsa-p256": ec.generate_private_key(ec.SECP256R1()),
    }
    for name, private in keys.items():
        spki = private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        keyid = hashlib.sha256(spki).hexdigest()
        signer = CryptoSigner(private, SSlibKey.from_crypto(private.public_key(), keyid=keyid))
        envelope = Envelope(payload, PAYLOAD_TYPE, {})
        envelope.sign(signer)
        (HERE / f"{name}.key").write_bytes(
            private.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        (HERE / f"{name}.pub").write_bytes(
            private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
        (HERE / f"{name}.dsse.json").write_bytes(rfc8785.dumps(envelope.to_dict()))


if __name__ == "__main__":
    main()
