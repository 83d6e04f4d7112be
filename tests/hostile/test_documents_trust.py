"""Hostile trust roots handed to ``stella trust add`` and ``trust rotate``, and hostile keys
handed to ``stella trust upstream add``.

Each case is refused with one exact line naming the field, its exit code, within the memory
ceiling, leaving every byte of the home as it was; the last test compares what a user sees
with the untouched template.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bundles.keys import PrivateKey
from bundles.trust import TrustRoot, sign_root
from tests.hostile.documents import (
    Template,
    case_fixtures,
    case_tests,
    deep_json,
    sparse_file,
    write_json,
)
from tests.hostile.harness import Run, run

E = "stella: error: "
USE = " (use the trust-root.json written by 'stella-mirror keys generate')"

#: The one line each case is refused with; {f} is the file handed over, {k} a keyid in it.
EXPECTED: dict[str, str] = {
    "deep": E + "{f}: the nesting of arrays and objects in a JSON document is over the "
    "json.depth cap of 128 (found 200,000) (if this input is trusted and that large, raise the "
    "cap with STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))",
    "over-size": E + "{f}: a trust root file is over the trust.root_bytes cap of 1 MiB (found "
    "2 MiB) (if this input is trusted and that large, raise the cap with "
    "STELLA_LIMIT_TRUST_ROOT_BYTES=N (docs/limits.md))",
    "not-json": E + "{f}: not valid JSON: Expecting value: line 1 column 1 (char 0)" + USE,
    "top-array": E + "{f}: the document must be a JSON object, not an array" + USE,
    "keys-array": E + "{f}: signed.keys must be an object, not an array" + USE,
    "roles-array": E + "{f}: signed.roles must be an object, not an array" + USE,
    "signed-string": E + "{f}: signed must be an object, not a string" + USE,
    "signatures-object": E + "{f}: signatures must be an array, not an object" + USE,
    "signature-string": E + "{f}: signatures[0] must be an object, not a string" + USE,
    "sig-number": E + "{f}: signatures[0].sig must be a string, not a number" + USE,
    "version-string": E + "{f}: signed.version must be a whole number, not a string" + USE,
    "version-zero": E + "{f}: signed.version is 0, not a positive number" + USE,
    "version-bool": E + "{f}: signed.version must be a whole number, not a boolean" + USE,
    "expires-garbage": E + "{f}: signed.expires is 'next year', not a UTC time like "
    "2030-01-01T00:00:00Z" + USE,
    "type-targets": E + "{f}: signed._type is 'targets', not 'root'" + USE,
    "spec-version": E + "{f}: signed.spec_version is '2.0.0', not a TUF 1.x specification "
    "version" + USE,
    "channel-number": E + "{f}: signed.x-stella-channel must be a string, not a number" + USE,
    "keytype-rsa": E + "{f}: signed.keys['{k}'] is a 'rsa' key with scheme 'rsassa-pss-sha256'; "
    "trust roots use ecdsa (ecdsa-sha2-nistp256) or ed25519 keys" + USE,
    "keyval-array": E + "{f}: signed.keys['{k}'].keyval must be an object, not an array" + USE,
    "public-not-pem": E + "{f}: signed.keys['{k}'].keyval.public is not a PEM public key "
    "(expected a BEGIN PUBLIC KEY block)",
    "threshold-zero": E + "{f}: signed.roles.root.threshold is 0, not within 1..1" + USE,
    "threshold-above-keys": E + "{f}: signed.roles.targets.threshold is 3, not within 1..1" + USE,
    "threshold-string": E + "{f}: signed.roles.root.threshold must be a whole number, not a "
    "string" + USE,
    "role-keyid-unknown": E + "{f}: signed.roles.root.keyids[0] '" + "ab" * 32 + "' is not in "
    "signed.keys" + USE,
    "role-missing": E + "{f}: signed.roles.timestamp is missing" + USE,
    "role-extra": E + "{f}: signed.roles names role 'mirror'; a trust root has exactly root, "
    "targets, snapshot, timestamp" + USE,
    "keyids-twice": E + "{f}: signed.roles.root.keyids names a key twice" + USE,
    "too-many-signatures": E + "{f}: signatures: the keys, signatures or keyids of one role in "
    "a trust root is over the trust.root_keys cap of 256 (found 257) (if this input is trusted "
    "and that large, raise the cap with STELLA_LIMIT_TRUST_ROOT_KEYS=N (docs/limits.md))",
    "unsigned": E + "{f}: version 1 is signed by 0 of the 1 root keys it requires",
    "expired": E + "{f}: trust root version 1 expired at 2020-01-01T00:00:00+00:00 (import a "
    "newer trust root signed by the current root keys)",
    "channel-traversal": E + "channel name '../../etc' is not allowed (use [A-Za-z0-9._-])",
    "rotate-skips-a-version": E + "{f}: trust root version 3 does not follow the trusted version "
    "1 (supply version 2 (rotate one version at a time))",
    "rotate-by-stranger": E + "{f}: version 2 is signed by 0 of the 1 current root keys it "
    "requires (a new trust root must be signed by a threshold of the keys trusted now)",
    "rotate-garbage": E + "{f}: signed.roles must be an object, not an array" + USE,
    "upstream-key-garbage": E + "{f}: not a PEM public key (expected a BEGIN PUBLIC KEY block)",
    "upstream-private-key": E + "{f}: is a private key, expected a public key (pass the .pub "
    "file, never the private key)",
    "upstream-key-huge": E + "{f}: larger than…",
}

Build = Callable[[Path, Template], tuple[list[Any], Path, str]]


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    build: Build  # -> argv, the file handed over, a keyid named in the message
    code: int = 1


def _root(made: Template) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(made.trust_root.read_bytes())
    return doc


def _bundle_keyid(doc: dict[str, Any]) -> str:
    keyid: str = doc["signed"]["roles"]["targets"]["keyids"][0]
    return keyid


def _add(edit: Callable[[dict[str, Any]], Any] | None = None, *, raw: bytes | None = None) -> Build:
    """``trust add`` of the template's root (already trusted) after ``edit``, on a channel of
    its own so that only the edit can be the reason for the refusal."""

    def build(tmp: Path, made: Template) -> tuple[list[Any], Path, str]:
        path = tmp / "trust-root.json"
        doc = _root(made)
        doc["signed"]["x-stella-channel"] = "hostile"
        keyid = _bundle_keyid(doc)
        if raw is not None:
            path.write_bytes(raw)
        else:
            if edit is not None:
                edit(doc)
            write_json(path, doc)
        return ["trust", "add", path], path, keyid

    return build


def _signed(key: PrivateKey, **fields: Any) -> Build:
    """A root made and signed in code (valid in form), changed by ``fields``."""

    def build(tmp: Path, made: Template) -> tuple[list[Any], Path, str]:
        now = datetime.now(UTC)
        root = TrustRoot.create(
            [key], [made.bundle_key.public_key], now=now, channel=fields.get("channel", "other")
        )
        if "expires" in fields:
            root.root.expires = fields["expires"]
            root = sign_root(type(root.metadata)(root.root), [key])
        path = tmp / "root.json"
        path.write_bytes(root.to_bytes())
        return ["trust", "add", path], path, ""

    return build


def _rotation(version: int, signer: str) -> Build:
    def build(tmp: Path, made: Template) -> tuple[list[Any], Path, str]:
        current = TrustRoot.load(made.trust_root)
        successor = current.successor(now=datetime.now(UTC))
        successor.signed.version = version
        key = made.root_key if signer == "root" else PrivateKey.generate()
        path = tmp / f"root-v{version}.json"
        path.write_bytes(sign_root(successor, [key]).to_bytes())
        return ["trust", "rotate", path], path, ""

    return build


def _rotate_garbage(tmp: Path, made: Template) -> tuple[list[Any], Path, str]:
    doc = _root(made)
    doc["signed"]["roles"] = []
    path = write_json(tmp / "root-v2.json", doc)
    return ["trust", "rotate", path], path, ""


def _upstream(data: bytes | None = None, *, size: int = 0) -> Build:
    def build(tmp: Path, made: Template) -> tuple[list[Any], Path, str]:
        path = tmp / "upstream.pub"
        if size:
            sparse_file(path, size, b"-----BEGIN PUBLIC KEY-----\n")
        else:
            path.write_bytes(data if data is not None else PrivateKey.generate().pem())
        argv = ["trust", "upstream", "add", "--repository", "docker.io/library/*", "--key", path]
        return argv, path, ""

    return build


def _over_size(tmp: Path, made: Template) -> tuple[list[Any], Path, str]:
    path = sparse_file(tmp / "huge-root.json", 2 << 20, b"{")
    return ["trust", "add", path], path, ""


def _pop(*path: str) -> Callable[[dict[str, Any]], Any]:
    def edit(doc: dict[str, Any]) -> None:
        for step in path[:-1]:
            doc = doc[step]
        doc.pop(path[-1])

    return edit


def _put(value: Any, *path: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(doc: dict[str, Any]) -> None:
        for step in path[:-1]:
            doc = doc[step]
        doc[path[-1]] = value

    return edit


def _bundle_key(field: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def edit(doc: dict[str, Any]) -> None:
        doc["signed"]["keys"][_bundle_keyid(doc)][field] = value

    return edit


def _bundle_keyval(value: Any) -> Callable[[dict[str, Any]], Any]:
    return _bundle_key("keyval", value)


def _root_keyids_twice(doc: dict[str, Any]) -> None:
    role = doc["signed"]["roles"]["root"]
    role["keyids"] = role["keyids"] * 2


def _rsa(doc: dict[str, Any]) -> None:
    key = doc["signed"]["keys"][_bundle_keyid(doc)]
    key["keytype"], key["scheme"] = "rsa", "rsassa-pss-sha256"


CASES = [
    Case("deep", _add(raw=deep_json())),
    Case("over-size", _over_size),
    Case("not-json", _add(raw=b"trust me")),
    Case("top-array", _add(raw=b"[1, 2, 3]")),
    Case("keys-array", _add(_put([], "signed", "keys"))),
    Case("roles-array", _add(_put([], "signed", "roles"))),
    Case("signed-string", _add(_put("root", "signed"))),
    Case("signatures-object", _add(_put({}, "signatures"))),
    Case("signature-string", _add(_put(["sig"], "signatures"))),
    Case("sig-number", _add(lambda d: d["signatures"][0].__setitem__("sig", 7))),
    Case("version-string", _add(_put("1", "signed", "version"))),
    Case("version-zero", _add(_put(0, "signed", "version"))),
    Case("version-bool", _add(_put(True, "signed", "version"))),
    Case("expires-garbage", _add(_put("next year", "signed", "expires"))),
    Case("type-targets", _add(_put("targets", "signed", "_type"))),
    Case("spec-version", _add(_put("2.0.0", "signed", "spec_version"))),
    Case("channel-number", _add(_put(7, "signed", "x-stella-channel"))),
    Case("keytype-rsa", _add(_rsa)),
    Case("keyval-array", _add(_bundle_keyval([]))),
    Case("public-not-pem", _add(_bundle_keyval({"public": "not a key"}))),
    Case("threshold-zero", _add(lambda d: d["signed"]["roles"]["root"].update(threshold=0))),
    Case(
        "threshold-above-keys",
        _add(lambda d: d["signed"]["roles"]["targets"].update(threshold=3)),
    ),
    Case(
        "threshold-string",
        _add(lambda d: d["signed"]["roles"]["root"].update(threshold="1")),
    ),
    Case(
        "role-keyid-unknown",
        _add(lambda d: d["signed"]["roles"]["root"].update(keyids=["ab" * 32])),
    ),
    Case("role-missing", _add(_pop("signed", "roles", "timestamp"))),
    Case(
        "role-extra",
        _add(lambda d: d["signed"]["roles"].update(mirror={"keyids": [], "threshold": 1})),
    ),
    Case(
        "keyids-twice",
        _add(
            lambda d: d["signed"]["roles"]["root"].update(
                keyids=d["signed"]["roles"]["root"]["keyids"] * 2
            )
        ),
    ),
    Case(
        "too-many-signatures",
        _add(lambda d: d.update(signatures=d["signatures"] * 257)),
    ),
    Case("unsigned", _add(_put([], "signatures"))),
    Case(
        "expired",
        _signed(PrivateKey.generate(), expires=datetime(2020, 1, 1, tzinfo=UTC)),
    ),
    Case("channel-traversal", _signed(PrivateKey.generate(), channel="../../etc")),
    Case("rotate-skips-a-version", _rotation(3, "root")),
    Case("rotate-by-stranger", _rotation(2, "stranger")),
    Case("rotate-garbage", _rotate_garbage),
    Case("upstream-key-garbage", _upstream(b"-----BEGIN PUBLIC KEY-----\nAAAA\n")),
    Case("upstream-private-key", _upstream()),
    Case("upstream-key-huge", _upstream(size=64 << 20)),
]


def execute(case: Case, tmp: Path, made: Template, home: Path) -> tuple[Run, dict[str, Any]]:
    argv, handed, keyid = case.build(tmp, made)
    return run("stella", *argv, home=home), {"f": handed, "k": keyid}


made, home, outcomes = case_fixtures("trust", CASES, execute)


(
    test_hostile_trust_root_is_refused,
    test_every_case_has_its_line,
    test_what_a_user_sees_is_unchanged_after_every_refusal,
) = case_tests(CASES, EXPECTED)
