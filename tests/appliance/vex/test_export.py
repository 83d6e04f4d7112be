"""``stella vex export`` and the OpenVEX referrer: the statements in force as an OpenVEX 0.2.0
document (validated against the official schema), the signed attestation, and the referrer
``vex add`` attaches, which ``stella push`` carries and ``stella serve``'s referrers API finds
with ``?artifactType=`` filtering, as ``trivy image --vex oci`` looks for it."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import requests
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.registry.auth import Authenticator
from appliance.registry.push import push
from appliance.registry.server import ListenAddress, RegistryServer, ServeOptions
from appliance.sigstore import bundle as sigstore
from bundles.digest import Digest
from bundles.distribution.credentials import Credentials
from bundles.oci import OCILayout
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03
from tests.appliance.registry.homes import make_home
from tests.appliance.sigstore.test_bundle import VALIDATOR as BUNDLE

SCHEMAS = Path(__file__).resolve().parents[2] / "data" / "schemas"
OPENVEX = jsonschema.Draft202012Validator(
    json.loads((SCHEMAS / "openvex-0.2.0.schema.json").read_bytes())
)
PREDICATE = "https://openvex.dev/ns/v0.2.0"
CVE = "CVE-2018-18074"
REQUESTS = "pkg:pypi/requests@2.19.0"
USER = ("builder", "correct horse")


@pytest.fixture
def home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "home")


def run(home: Home, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home.root), *args])
    return result.exit_code, result.stdout, result.stderr


def add(home: Home, *extra: str, at: str = "2026-11-22T00:00:00Z") -> dict[str, Any]:
    code, out, err = run(
        home, "--json", "vex", "add", CVE, "--image", "app:1", "--component", REQUESTS,
        "--status", "not_affected", "--justification", "vulnerable_code_not_in_execute_path",
        "--at", at, *extra,
    )  # fmt: skip
    assert code == 0, err
    result: dict[str, Any] = json.loads(out)
    return result


def export(home: Home, *args: str) -> bytes:
    code, out, err = run(home, "vex", "export", *args)
    assert code == 0, err
    return out.encode()


def test_export_is_valid_openvex_of_the_statements_in_force(home: Home) -> None:
    add(home)
    data = export(home, "--at", "2026-11-23T00:00:00Z")
    doc = json.loads(data)
    OPENVEX.validate(doc)
    (statement,) = doc["statements"]
    assert statement["vulnerability"] == {"name": CVE}
    assert statement["status"] == "not_affected"
    assert statement["justification"] == "vulnerable_code_not_in_execute_path"
    product = statement["products"][0]
    assert product["@id"].startswith("pkg:oci/")
    assert product["subcomponents"] == [{"@id": REQUESTS, "identifiers": {"purl": REQUESTS}}]
    assert doc["timestamp"] == "2026-11-22T00:00:00Z"
    assert doc["@id"].startswith("https://stella-ops.org/vex/export/")
    # same statements, same bytes, whenever it is run after them
    assert export(home, "--at", "2026-12-01T00:00:00Z") == data
    assert export(home, "--image", "app:1", "--at", "2026-11-23T00:00:00Z") == data
    out = home.root.parent / "vex.json"
    code, _, err = run(home, "vex", "export", "--out", str(out), "--at", "2026-11-23T00:00:00Z")
    assert code == 0, err
    assert out.read_bytes() == data


def test_revoked_and_expired_statements_are_not_in_force(home: Home) -> None:
    key = add(home, "--expires", "2026-12-31")["statements"][0]
    doc = json.loads(export(home, "--at", "2026-11-23T00:00:00Z"))
    (statement,) = doc["statements"]
    assert statement["status_notes"] == "exception; expires 2026-12-31T00:00:00Z"
    code, _, err = run(home, "vex", "export", "--at", "2027-01-01T00:00:00Z")
    assert code == 2
    assert err.startswith("stella: error: no VEX statements in force to export")
    code, _, err = run(home, "vex", "revoke", key, "--reason", "redirects now followed",
                       "--at", "2026-11-24T00:00:00Z")  # fmt: skip
    assert code == 0, err
    (after,) = json.loads(export(home, "--at", "2026-11-25T00:00:00Z"))["statements"]
    assert after["status"] == "under_investigation"
    assert after["status_notes"].startswith(f"revokes {key}")
    OPENVEX.validate(json.loads(export(home, "--at", "2026-11-25T00:00:00Z")))
    # the revocation attached a new referrer; the newest says what is in force now
    referrers = sorted(
        _vex_referrers(home), key=lambda r: r.annotations["org.opencontainers.image.created"]
    )
    assert [r.annotations["org.opencontainers.image.created"] for r in referrers] == [
        "2026-11-22T00:00:00Z",
        "2026-11-24T00:00:00Z",
    ]
    layout = OCILayout.open(home.oci)
    layer = json.loads(layout.read_blob(referrers[-1].digest))["layers"][0]["digest"]
    newest = _statement(layout.read_blob(Digest.parse(layer)), home)["predicate"]
    assert [s["status"] for s in newest["statements"]] == ["under_investigation"]


def _statement(bundle: bytes, home: Home) -> dict[str, Any]:
    read = sigstore.read(bundle)
    statement = sigstore.verify(read, [home.public_key()], predicate_type=PREDICATE)
    return {"subjects": statement.subjects, "predicate": statement.predicate}


def test_signed_export_is_the_openvex_attestation(home: Home) -> None:
    add(home)
    plain = json.loads(export(home, "--at", "2026-11-23T00:00:00Z"))
    bundle = export(home, "--signed", "--image", "app:1", "--at", "2026-11-23T00:00:00Z")
    BUNDLE.validate(json.loads(bundle))
    envelope = json.loads(bundle)["dsseEnvelope"]
    payload = json.loads(base64.b64decode(envelope["payload"]))
    assert payload["_type"] == "https://in-toto.io/Statement/v1"
    assert payload["predicateType"] == PREDICATE
    assert payload["predicate"] == plain
    image = OCILayout.open(home.oci).resolve("app:1")
    assert payload["subject"][0]["digest"] == {"sha256": image.digest.hex}
    assert _statement(bundle, home)["predicate"] == plain


def _vex_referrers(home: Home) -> list[Any]:
    layout = OCILayout.open(home.oci)
    image = layout.resolve("app:1")
    return [
        r
        for r in layout.referrers(image.digest, artifact_type=SIGSTORE_BUNDLE_V03)
        if r.annotations.get("dev.sigstore.bundle.predicateType") == PREDICATE
    ]


def test_vex_add_attaches_the_signed_document_as_a_referrer(home: Home) -> None:
    assert _vex_referrers(home) == []
    result = add(home)
    (referrer,) = _vex_referrers(home)
    assert result["attached"][0]["referrer"] == str(referrer.digest)
    layout = OCILayout.open(home.oci)
    manifest = json.loads(layout.read_blob(referrer.digest))
    assert manifest["artifactType"] == SIGSTORE_BUNDLE_V03
    (layer,) = manifest["layers"]
    assert layer["annotations"]["org.opencontainers.image.title"] == "openvex.sigstore.json"
    assert manifest["annotations"]["org.opencontainers.image.created"] == "2026-11-22T00:00:00Z"
    # signed by the appliance: the gate passes it over unread
    assert manifest["annotations"]["org.stella-ops.signer.keyid"] == home.public_key().keyid
    bundle = layout.read_blob(Digest.parse(layer["digest"]))
    predicate = _statement(bundle, home)["predicate"]
    assert predicate == json.loads(export(home, "--at", "2026-11-22T00:00:00Z"))
    # the same statement made again changes nothing and attaches nothing
    assert add(home)["attached"] == []
    assert len(_vex_referrers(home)) == 1


def test_statements_about_an_image_not_in_the_store_attach_nothing(home: Home) -> None:
    other = "sha256:" + "ab" * 32
    code, out, err = run(
        home, "--json", "vex", "add", CVE, "--image", other, "--status", "under_investigation",
        "--at", "2026-11-22T00:00:00Z",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["attached"] == []
    # and exporting for app:1 leaves the statement about the other image out
    code, _, err = run(home, "vex", "export", "--image", "app:1")
    assert code == 2
    assert "no VEX statements in force" in err


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Home, RegistryServer]]:
    target = make_home(tmp_path / "target", tag="base:1")
    options = ServeOptions(
        ListenAddress("127.0.0.1", 0), True, Authenticator.single(Credentials(*USER))
    )
    with RegistryServer(target, options) as server:
        yield target, server


def test_pushed_and_served_the_referrers_api_finds_the_vex_referrer(
    home: Home, served: tuple[Home, RegistryServer]
) -> None:
    key = add(home)["statements"][0]
    (first,) = _vex_referrers(home)
    code, _, err = run(home, "vex", "revoke", key, "--at", "2026-11-24T00:00:00Z")
    assert code == 0, err
    (current,) = [r for r in _vex_referrers(home) if r.digest != first.digest]
    _target, server = served
    pushed = push(home, "app:1", f"{server.address}/team/app:1", credentials=Credentials(*USER))
    assert {first.digest, current.digest} <= set(pushed.referrers)
    image = OCILayout.open(home.oci).resolve("app:1")
    url = f"http://{server.address}/v2/team/app/referrers/{image.digest}"
    found = requests.get(url, params={"artifactType": SIGSTORE_BUNDLE_V03}, auth=USER, timeout=10)
    assert found.status_code == 200
    assert found.headers["OCI-Filters-Applied"] == "artifactType"
    vex = [
        d
        for d in found.json()["manifests"]
        if d["annotations"]["dev.sigstore.bundle.predicateType"] == PREDICATE
    ]
    # newest first: a client taking the first OpenVEX attestation (trivy) takes the current one
    assert [d["digest"] for d in vex] == [str(current.digest), str(first.digest)]
    assert {d["artifactType"] for d in vex} == {SIGSTORE_BUNDLE_V03}
    manifest = requests.get(
        f"http://{server.address}/v2/team/app/manifests/{vex[0]['digest']}", auth=USER, timeout=10
    ).json()
    layer = manifest["layers"][0]["digest"]
    blob = requests.get(f"http://{server.address}/v2/team/app/blobs/{layer}", auth=USER, timeout=10)
    predicate = _statement(blob.content, home)["predicate"]
    assert [s["status"] for s in predicate["statements"]] == ["under_investigation"]
    other = requests.get(
        url, params={"artifactType": "application/spdx+json"}, auth=USER, timeout=10
    )
    assert other.json()["manifests"] == []
