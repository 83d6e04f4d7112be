"""Hostile files handed to ``stella verify``, ``explain`` and ``replay``: things that are not
Sigstore bundles at all, bundles broken inside, and verdicts signed by a stranger.

Each case is refused with one exact line saying what the file is not, its exit code, within
the memory ceiling, leaving every byte of the home as it was; the last test compares what a
user sees with the untouched template.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from appliance.home import Home
from appliance.sigstore import bundle as sigstore
from bundles import dsse
from bundles.digest import Digest
from bundles.intoto import Statement, Subject
from bundles.keys import PrivateKey
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
NOT_BUNDLE = " (expected a Sigstore bundle (JSON), such as 'stella gate --out' writes)"
DEPTH = (
    "the nesting of arrays and objects in a JSON document is over the json.depth cap of 128 "
    "(found 200,000) (if this input is trusted and that large, raise the cap with "
    "STELLA_LIMIT_JSON_DEPTH=N (docs/limits.md))"
)
MEDIA_TYPE = "application/vnd.dev.sigstore.bundle.v0.3+json"
STRANGER = (
    "{f}: signed by key {stranger}, which the trust policy does not trust (trusted: appliance "
    "{appliance}) (the verdict was signed by another key than the appliance's; pass the "
    "signer's public key with --key only if you trust it)"
)

#: The one line each case is refused with; {f} is the file handed over.
EXPECTED: dict[str, str] = {
    "not-json": E + "{f}: not valid JSON: Expecting value: line 1 column 1 (char 0), so it is "
    "not a Sigstore bundle" + NOT_BUNDLE,
    "not-utf8": E + "{f}: not valid JSON: 'utf-8' codec can't decode byte 0xff in position 1: "
    "invalid start byte, so it is not a Sigstore bundle" + NOT_BUNDLE,
    "empty": E + "{f}: not valid JSON: Expecting value: line 1 column 1 (char 0), so it is not "
    "a Sigstore bundle" + NOT_BUNDLE,
    "array": E + "{f}: is an array, not a Sigstore bundle (a JSON object)" + NOT_BUNDLE,
    "string": E + "{f}: is a string, not a Sigstore bundle (a JSON object)" + NOT_BUNDLE,
    "no-media-type": E + "{f}: mediaType is missing, so it is not a Sigstore bundle" + NOT_BUNDLE,
    "foreign-media-type": E + "{f}: mediaType is 'application/spdx+json', so it is not a Sigstore "
    "bundle" + NOT_BUNDLE,
    "media-type-number": E
    + "{f}: mediaType is a number, so it is not a Sigstore bundle"
    + NOT_BUNDLE,
    "no-material": E
    + "{f}: verificationMaterial is missing, so it is not a Sigstore bundle"
    + NOT_BUNDLE,
    "material-string": E + "{f}: verificationMaterial is a string, so it is not a Sigstore "
    "bundle" + NOT_BUNDLE,
    "deep": E + "{f}: " + DEPTH,
    "over-size": E + "{f}: a Sigstore bundle or RVA file given to verify, explain or replay is "
    "over the sigstore.bundle_bytes cap of 32 MiB (found 33 MiB) (if this input is trusted and "
    "that large, raise the cap with STELLA_LIMIT_SIGSTORE_BUNDLE_BYTES=N (docs/limits.md))",
    "standard-without-key": E + "{f} is a standard Sigstore bundle: pass exactly one --key PUB, "
    "or --certificate-identity and --certificate-oidc-issuer for a keyless one",
    "envelope-string": E + "{f}: dsseEnvelope: a DSSE envelope must be a JSON object, got a string",
    "payload-deep": E + "{f} statement: " + DEPTH,
    "stranger-signed": E + STRANGER,
    "explain-not-json": E + "{f}: not valid JSON: Expecting value: line 1 column 1 (char 0), so "
    "it is not a Sigstore bundle" + NOT_BUNDLE,
    "explain-deep": E + "{f}: " + DEPTH,
    "replay-array": E + "{f}: is an array, not a Sigstore bundle (a JSON object)" + NOT_BUNDLE,
    "replay-deep": E + "{f}: " + DEPTH,
    "replay-stranger-signed": E + STRANGER,
    "key-garbage": E + "{f}: not a PEM public key (expected a BEGIN PUBLIC KEY block)",
}

Build = Callable[[Path, Template], tuple[list[Any], dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    build: Build
    code: int = 1


def _file(
    raw: bytes | None = None,
    doc: Any = None,
    *,
    command: str = "verify",
) -> Build:
    def build(tmp: Path, made: Template) -> tuple[list[Any], dict[str, Any]]:
        path = tmp / "verdict.sigstore.json"
        if raw is not None:
            path.write_bytes(raw)
        else:
            write_json(path, doc)
        appliance = Home(made.home).public_key().keyid
        return [command, path], {"f": path, "appliance": appliance, "stranger": _keyid(doc)}

    return build


def _keyid(doc: Any) -> str:
    try:
        return str(doc["dsseEnvelope"]["signatures"][0]["keyid"])
    except (KeyError, IndexError, TypeError):
        return ""


def _appliance_signed(payload: bytes) -> Build:
    """A deep payload signed with the appliance's own key (as a stolen key could)."""

    def build(tmp: Path, made: Template) -> tuple[list[Any], dict[str, Any]]:
        key = Home(made.home).signing_key()
        envelope = dsse.sign(payload, "application/vnd.in-toto+json", key)
        bundle = sigstore.SigstoreBundle(envelope, key.keyid, 0, False)
        path = tmp / "verdict.sigstore.json"
        path.write_bytes(bundle.to_json())
        return ["verify", path], {"f": path}

    return build


def _appliance_form(payload: bytes | None = None, envelope: Any = None) -> dict[str, Any]:
    """A bundle in the form the appliance signs, with a chosen payload or envelope."""
    key = PrivateKey.generate()
    statement = Statement(
        subjects=(Subject.of("app", Digest.of_bytes(b"image")),),
        predicate_type="https://stella-ops.org/attestations/risk-verdict/v1",
        predicate={"verdict": "PASS"},
    )
    bundle = sigstore.sign(statement, key).to_dict()
    if payload is not None:
        bundle["dsseEnvelope"]["payload"] = base64.b64encode(payload).decode()
    if envelope is not None:
        bundle["dsseEnvelope"] = envelope
    return bundle


def _over_size(tmp: Path, made: Template) -> tuple[list[Any], dict[str, Any]]:
    path = sparse_file(tmp / "huge.sigstore.json", 33 << 20, b"{")
    return ["verify", path], {"f": path}


def _standard(tmp: Path, made: Template) -> tuple[list[Any], dict[str, Any]]:
    doc = _appliance_form()
    doc["verificationMaterial"] = {"certificate": {"rawBytes": "AAAA"}, "tlogEntries": []}
    path = write_json(tmp / "keyless.sigstore.json", doc)
    return ["verify", path], {"f": path}


def _key_garbage(tmp: Path, made: Template) -> tuple[list[Any], dict[str, Any]]:
    bundle = write_json(tmp / "verdict.sigstore.json", _appliance_form())
    key = tmp / "key.pub"
    key.write_bytes(b"-----BEGIN PUBLIC KEY-----\n\xff\xfe\n-----END PUBLIC KEY-----\n")
    return ["verify", bundle, "--key", key], {"f": key}


CASES = [
    Case("not-json", _file(b"<html>not a bundle</html>")),
    Case("not-utf8", _file(b"{\xff}")),
    Case("empty", _file(b"")),
    Case("array", _file(doc=[{"mediaType": MEDIA_TYPE}])),
    Case("string", _file(doc=MEDIA_TYPE)),
    Case("no-media-type", _file(doc={"verificationMaterial": {}})),
    Case("foreign-media-type", _file(doc={"mediaType": "application/spdx+json"})),
    Case("media-type-number", _file(doc={"mediaType": 3})),
    Case("no-material", _file(doc={"mediaType": MEDIA_TYPE, "dsseEnvelope": {}})),
    Case("material-string", _file(doc={"mediaType": MEDIA_TYPE, "verificationMaterial": "k"})),
    Case("deep", _file(deep_json())),
    Case("over-size", _over_size),
    Case("standard-without-key", _standard, code=2),
    Case("envelope-string", _file(doc=_appliance_form(envelope="signed, honest"))),
    Case("payload-deep", _appliance_signed(deep_json())),
    Case("stranger-signed", _file(doc=_appliance_form())),
    Case("explain-not-json", _file(b"not json", command="explain")),
    Case("explain-deep", _file(deep_json(), command="explain")),
    Case("replay-array", _file(doc=[], command="replay")),
    Case("replay-deep", _file(deep_json(), command="replay")),
    Case("replay-stranger-signed", _file(doc=_appliance_form(), command="replay")),
    Case("key-garbage", _key_garbage),
]


def execute(case: Case, tmp: Path, made: Template, home: Path) -> tuple[Run, dict[str, Any]]:
    argv, fields = case.build(tmp, made)
    return run("stella", *argv, home=home), fields


made, home, outcomes = case_fixtures("verify", CASES, execute)


(
    test_hostile_file_is_refused,
    test_every_case_has_its_line,
    test_what_a_user_sees_is_unchanged_after_every_refusal,
) = case_tests(CASES, EXPECTED)


def test_a_bundle_is_still_verified(made: Template, tmp_path: Path) -> None:
    """The refusals above are not a verifier that refuses everything: a stranger's verdict
    verifies with the stranger's key."""
    key = PrivateKey.generate()
    statement = Statement(
        subjects=(Subject.of("app", Digest.of_bytes(b"image")),),
        predicate_type="https://cyclonedx.org/bom",
        predicate={"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1},
    )
    bundle = tmp_path / "ok.sigstore.json"
    bundle.write_bytes(sigstore.sign(statement, key).to_json())
    pub = tmp_path / "key.pub"
    pub.write_bytes(key.public_key.pem())
    result = run("stella", "--json", "verify", bundle, "--key", pub, home=made.home)
    assert result.code == 0, result.describe()
    assert key.keyid in json.dumps(json.loads(result.out))
