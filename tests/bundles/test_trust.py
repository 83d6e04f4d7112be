"""Trust roots: first trust, rotation by threshold, rollback, expiry, channel, tampering."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bundles.errors import TrustError
from bundles.keys import KeyType, PrivateKey
from bundles.trust import (
    TrustRoot,
    TrustRootExpiredError,
    TrustRootFormatError,
    TrustRootRollbackError,
    TrustRootSignatureError,
    sign_root,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def keys() -> list[PrivateKey]:
    return [PrivateKey.generate(), PrivateKey.generate(KeyType.ED25519), PrivateKey.generate()]


@pytest.fixture(scope="module")
def signer() -> PrivateKey:
    return PrivateKey.generate()


def reload(root: TrustRoot, name: str = "root.json") -> TrustRoot:
    return TrustRoot.from_bytes(root.to_bytes(), source=name)


def test_create_save_load_and_first_trust(
    tmp_path: Path, keys: list[PrivateKey], signer: PrivateKey
) -> None:
    root = TrustRoot.create(keys[:1], [signer.public_key], now=NOW, channel="site-a")
    path = tmp_path / "trust-root.json"
    root.save(path)
    loaded = TrustRoot.load(path)
    loaded.check_signed(now=NOW)
    assert loaded.describe() == {
        "version": 1,
        "channel": "site-a",
        "expires": "2027-11-23T12:00:00Z",
        "rootKeys": [keys[0].keyid],
        "rootThreshold": 1,
        "bundleKeys": [signer.keyid],
        "bundleThreshold": 1,
    }
    assert loaded.bundle_keys[signer.keyid].pem() == signer.public_key.pem()
    doc = json.loads(path.read_bytes())
    assert doc["signed"]["_type"] == "root"
    assert doc["signed"]["x-stella-channel"] == "site-a"


def test_rotation_one_two_three(keys: list[PrivateKey], signer: PrivateKey) -> None:
    v1 = reload(TrustRoot.create(keys[:1], [signer.public_key], now=NOW))
    # v2 replaces root key 0 by keys 1 and 2 with threshold 2; signed by old (0) and new (1, 2).
    m2 = v1.successor(now=NOW, root_keys=[keys[1].public_key, keys[2].public_key], root_threshold=2)
    v2 = reload(sign_root(m2, [keys[0], keys[1], keys[2]]), "v2.json")
    v1.check_successor(v2, now=NOW)
    assert v2.root_threshold == 2
    assert sorted(v2.root_keys) == sorted([keys[1].keyid, keys[2].keyid])
    # v3 revokes the bundle signer; needs 2 of v2's keys and 2 of its own.
    new_signer = PrivateKey.generate()
    m3 = v2.successor(now=NOW, bundle_keys=[new_signer.public_key])
    v3 = reload(sign_root(m3, [keys[1], keys[2]]), "v3.json")
    v2.check_successor(v3, now=NOW)
    assert list(v3.bundle_keys) == [new_signer.keyid]
    assert signer.keyid not in v3.root.keys


def test_successor_signed_below_the_current_threshold_is_refused(
    keys: list[PrivateKey], signer: PrivateKey
) -> None:
    v1 = reload(TrustRoot.create(keys[:2], [signer.public_key], now=NOW, root_threshold=2))
    m2 = v1.successor(now=NOW, root_keys=[keys[2].public_key], root_threshold=1)
    v2 = reload(sign_root(m2, [keys[0], keys[2]]), "v2.json")
    with pytest.raises(TrustRootSignatureError, match="signed by 1 of the 2 current root keys"):
        v1.check_successor(v2, now=NOW)


def test_successor_not_signed_by_its_own_keys_is_refused(
    keys: list[PrivateKey], signer: PrivateKey
) -> None:
    v1 = reload(TrustRoot.create(keys[:1], [signer.public_key], now=NOW))
    m2 = v1.successor(now=NOW, root_keys=[keys[1].public_key])
    v2 = reload(sign_root(m2, [keys[0]]), "v2.json")
    with pytest.raises(TrustRootSignatureError, match="signed by 0 of its own 1 root keys"):
        v1.check_successor(v2, now=NOW)


@pytest.mark.parametrize("version", [1, 3])
def test_non_sequential_versions_are_refused(
    keys: list[PrivateKey], signer: PrivateKey, version: int
) -> None:
    v1 = reload(TrustRoot.create(keys[:1], [signer.public_key], now=NOW))
    other = reload(
        TrustRoot.create(keys[:1], [signer.public_key], now=NOW, version=version), "x.json"
    )
    with pytest.raises(
        TrustRootRollbackError, match=f"version {version} does not follow the trusted version 1"
    ):
        v1.check_successor(other, now=NOW)


def test_other_channel_is_refused(keys: list[PrivateKey], signer: PrivateKey) -> None:
    v1 = reload(TrustRoot.create(keys[:1], [signer.public_key], now=NOW, channel="a"))
    other = reload(TrustRoot.create(keys[:1], [signer.public_key], now=NOW, channel="b", version=2))
    with pytest.raises(TrustError, match="is for channel 'b', this appliance trusts channel 'a'"):
        v1.check_successor(other, now=NOW)


def test_expired_root_is_refused(keys: list[PrivateKey], signer: PrivateKey) -> None:
    root = reload(
        TrustRoot.create(keys[:1], [signer.public_key], now=NOW, validity=timedelta(days=1))
    )
    root.check_signed(now=NOW + timedelta(hours=23))
    with pytest.raises(TrustRootExpiredError, match="version 1 expired at 2026-11-24T12:00:00"):
        root.check_signed(now=NOW + timedelta(days=2))


def test_tampered_root_fails_its_signature(keys: list[PrivateKey], signer: PrivateKey) -> None:
    doc = json.loads(TrustRoot.create(keys[:1], [signer.public_key], now=NOW).to_bytes())
    doc["signed"]["roles"]["targets"]["threshold"] = 1
    doc["signed"]["expires"] = "2099-01-01T00:00:00Z"
    forged = TrustRoot.from_bytes(json.dumps(doc).encode(), source="forged.json")
    with pytest.raises(
        TrustRootSignatureError, match="forged.json: version 1 is signed by 0 of the 1"
    ):
        forged.check_signed(now=NOW)


def test_keyid_must_match_the_key(keys: list[PrivateKey], signer: PrivateKey) -> None:
    doc = json.loads(TrustRoot.create(keys[:1], [signer.public_key], now=NOW).to_bytes())
    key = doc["signed"]["keys"].pop(signer.keyid)
    doc["signed"]["keys"]["ab" * 32] = key
    for role in ("targets", "snapshot", "timestamp"):
        doc["signed"]["roles"][role]["keyids"] = ["ab" * 32]
    with pytest.raises(TrustRootFormatError, match=f"keyid {'ab' * 32} does not match its key"):
        TrustRoot.from_bytes(json.dumps(doc).encode(), source="x.json")


@pytest.mark.parametrize(
    "data", [b"", b"{}", b'{"signed": {"_type": "targets"}, "signatures": []}', b"[1, 2]"]
)
def test_malformed_roots_are_refused(data: bytes) -> None:
    with pytest.raises(TrustRootFormatError, match="bad.json: "):
        TrustRoot.from_bytes(data, source="bad.json")


def test_bad_thresholds_are_refused(keys: list[PrivateKey], signer: PrivateKey) -> None:
    with pytest.raises(TrustError, match="root threshold 2 is not within 1..1"):
        TrustRoot.create(keys[:1], [signer.public_key], now=NOW, root_threshold=2)


def _shape_error(edit: Callable[[dict[str, Any]], object]) -> str:
    root_key, bundle_key = PrivateKey.generate(), PrivateKey.generate()
    doc = json.loads(TrustRoot.create([root_key], [bundle_key.public_key], now=NOW).to_bytes())
    edit(doc)
    with pytest.raises(TrustRootFormatError) as raised:
        TrustRoot.from_bytes(json.dumps(doc).encode(), source="r.json")
    return raised.value.message


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["signed"].update(keys=[]),
            "r.json: signed.keys must be an object, not an array",
        ),
        (
            lambda d: d["signed"].update(roles="root"),
            "r.json: signed.roles must be an object, not a string",
        ),
        (
            lambda d: d.update(signatures=[1]),
            "r.json: signatures[0] must be an object, not a number",
        ),
        (
            lambda d: d["signed"].update(version=False),
            "r.json: signed.version must be a whole number, not a boolean",
        ),
        (
            lambda d: d["signed"]["roles"].pop("snapshot"),
            "r.json: signed.roles.snapshot is missing",
        ),
        (
            lambda d: d["signed"]["roles"]["root"].update(threshold=2),
            "r.json: signed.roles.root.threshold is 2, not within 1..1",
        ),
        (
            lambda d: d["signed"]["roles"]["root"].update(keyids=[None]),
            "r.json: signed.roles.root.keyids[0] must be a string, not null",
        ),
        (
            lambda d: d["signed"].update(expires="2030-01-01"),
            "r.json: signed.expires is '2030-01-01', not a UTC time like 2030-01-01T00:00:00Z",
        ),
    ],
    ids=["keys", "roles", "signature", "version", "role", "threshold", "keyid", "expires"],
)
def test_a_malformed_field_is_named(edit: Callable[[dict[str, Any]], object], message: str) -> None:
    assert _shape_error(edit) == message
