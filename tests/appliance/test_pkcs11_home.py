"""An appliance whose key lives in a PKCS#11 token (SoftHSM2), through the real command line:
``stella init --signer pkcs11:…``, then every artifact the appliance signs (VEX attestations,
the RVA and its SBOM attestation, the audit log head) is signed in the token and verifies with
the exported public key, by ``stella`` and by sigstore-js; the same run with the key file
shows the two backends are interchangeable. The PIN is stored nowhere in the home."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from appliance.store import open_state
from appliance.store.vex import VexStore
from appliance.vex import service as vex_service
from bundles import dsse
from bundles.intoto import verify_statement
from bundles.keys import PublicKey
from bundles.pkcs11_uri import PIN_ENV
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.node.test_verify_rva import _node, _run, trusted_root
from tests.softhsm import MODULE, PIN, SoftHsm, softhsm
from tests.test_runbooks import ROOT, check_command, shown_commands

_labels = itertools.count()


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return softhsm(tmp_path_factory)


@pytest.fixture(autouse=True)
def pin_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)


def stella(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


def stella_json(home: Path, *args: str) -> dict[str, Any]:
    code, out, err = stella(home, "--json", *args)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def label() -> str:
    return f"appliance-{next(_labels)}"


@pytest.mark.parametrize("backend", ["file", "pkcs11"])
def test_every_appliance_signature_verifies_with_either_backend(
    hsm: SoftHsm, tmp_path: Path, backend: str
) -> None:
    root = tmp_path / "home"
    uri = hsm.uri(label(), pin_source=hsm.pin_file(tmp_path))
    init = stella_json(root, "init", *(["--signer", uri] if backend == "pkcs11" else []))
    home = Home(root)
    if backend == "pkcs11":
        assert init["signer"] == uri
        assert not home.appliance_key.exists()  # nothing secret on disk
    else:
        assert init["signer"] == str(home.appliance_key)
    pub = tmp_path / "appliance.pub"
    exported = stella_json(root, "keys", "export-public", "--out", str(pub))
    assert exported["keyid"] == init["keyid"]
    key = PublicKey.load(pub)

    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    add_snapshot(home, BASE_RECORDS, 1)  # an import's audit record: signed head
    vex = stella_json(
        root, "vex", "add", "CVE-2018-0001", "--image", "app:1",
        "--component", "pkg:pypi/requests", "--status", "not_affected",
        "--justification", "vulnerable_code_not_in_execute_path",
        "--expires", "2027-01-01", "--at", "2026-11-22T00:00:00Z",
    )  # fmt: skip
    assert vex["auditSeq"] >= 2
    rva = tmp_path / "rva.sigstore.json"
    gated = stella_json(root, "gate", "app:1", "--at", "2026-11-23T06:00:00Z", "--out", str(rva))
    assert gated["verdict"] == "PASS_WITH_EXCEPTIONS"

    # The RVA: by our verifier with only the exported public key, and by the library itself.
    verified = stella_json(root, "verify", str(rva), "--key", str(pub))
    assert verified["ok"] is True
    assert verified["signer"]["keyid"] == key.keyid
    statement = sigstore.verify(
        sigstore.read(rva.read_bytes()), [key], predicate_type=PREDICATE_TYPE
    )
    assert statement.predicate["verdict"] == "PASS_WITH_EXCEPTIONS"
    # The VEX attestation stored for the exception.
    with open_state(home) as db:
        (document,) = VexStore(db).documents()
    envelope = dsse.Envelope.from_json(document.envelope)
    verify_statement(envelope, [key], predicate_type=vex_service.PREDICATE_TYPE)
    # The audit log: every record chained, the head signed by the appliance key.
    audit = stella_json(root, "audit", "verify", "--key", str(pub))
    assert audit["records"] == audit["verified"] >= 3
    # An implementation independent of ours.
    node = _node()
    code, out = _run(node, rva, pub, trusted_root(home, tmp_path))
    assert code == 0, out
    assert out["keyid"] == key.keyid
    # Nowhere in the home is the PIN kept.
    for path in root.rglob("*"):
        if path.is_file():
            assert PIN.encode() not in path.read_bytes(), path


def test_init_records_the_uri_and_is_idempotent(hsm: SoftHsm, tmp_path: Path) -> None:
    root = tmp_path / "home"
    uri = hsm.uri(label())
    first = stella_json(root, "init", "--signer", uri)
    assert first["created"] is True
    assert json.loads((root / "config.json").read_text()) == {"signer": uri}
    again = stella_json(root, "init", "--signer", uri)
    assert (again["created"], again["keyid"]) == (False, first["keyid"])
    plain = stella_json(root, "init")  # no file key appears beside the token key
    assert plain["keyid"] == first["keyid"]
    assert not Home(root).appliance_key.exists()
    code, _, err = stella(root, "init", "--signer", hsm.uri(label()))
    assert code == 2
    assert err.startswith(f"stella: error: {root / 'config.json'}: this home already signs with ")


def test_init_uses_a_key_made_earlier_in_the_token(hsm: SoftHsm, tmp_path: Path) -> None:
    uri = hsm.uri(label())
    pub = tmp_path / "made.pub"
    made = stella_json(tmp_path, "keys", "generate", "--signer", uri, "--out", str(pub))
    assert PublicKey.load(pub).keyid == made["keyid"]
    init = stella_json(tmp_path / "home", "init", "--signer", uri)
    assert init["keyid"] == made["keyid"]
    code, _, err = stella(tmp_path, "keys", "generate", "--signer", uri)
    assert code == 1
    assert "already holds object=" in err


def test_keys_generate_makes_a_key_file_too(tmp_path: Path) -> None:
    out = stella_json(tmp_path, "keys", "generate", "--signer", str(tmp_path / "k.key"))
    assert PublicKey.load(tmp_path / "k.pub").keyid == out["keyid"]


def test_a_file_home_does_not_switch_to_a_token(hsm: SoftHsm, tmp_path: Path) -> None:
    root = tmp_path / "home"
    stella_json(root, "init")
    code, _, err = stella(root, "init", "--signer", hsm.uri(label()))
    assert code == 2
    assert f"already signs with the key file {root / 'keys' / 'appliance.key'}" in err


def test_a_token_key_is_always_ecdsa(hsm: SoftHsm, tmp_path: Path) -> None:
    code, _, err = stella(tmp_path, "init", "--signer", hsm.uri(label()), "--key-type", "ed25519")
    assert code == 2
    assert "--key-type ed25519 does not go with a pkcs11: signer" in err


def test_a_swapped_token_key_is_refused(hsm: SoftHsm, tmp_path: Path) -> None:
    root = tmp_path / "home"
    stella_json(root, "init", "--signer", hsm.uri(label()))
    other = hsm.uri(label())
    stella_json(tmp_path, "keys", "generate", "--signer", other)
    (root / "config.json").write_text(json.dumps({"signer": other}))
    build_image(Home(root).oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    code, _, err = stella(root, "gate", "app:1")
    assert code == 2
    assert "is not the appliance key" in err
    assert "insert the appliance's own token, or correct the URI in config.json" in err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("stella: error: ")
    return lines[0]


def test_token_problems_are_one_line_naming_the_uri_part(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    absent = hsm.uri("k", token="not-inserted")
    code, _, err = stella(tmp_path, "keys", "generate", "--signer", absent)
    assert code == 1
    assert "no token matches token=not-inserted" in _one_line(err)

    missing = tmp_path / "libnothing.so"
    code, _, err = stella(tmp_path, "keys", "generate", "--signer", hsm.uri("k", module=missing))
    assert f"module-path={missing} does not exist" in _one_line(err)

    code, _, err = stella(
        tmp_path, "keys", "generate", "--signer", hsm.uri("k", extra="") + "&pin-value=1"
    )
    line = _one_line(err)
    assert "the URI carries the PIN (pin-value)" in line
    assert "pin-value=1" not in line

    root = tmp_path / "home"  # a home whose token lost its key
    stella_json(root, "init", "--signer", hsm.uri(label()))
    gone = hsm.uri("deleted-key")
    (root / "config.json").write_text(json.dumps({"signer": gone}))
    code, _, err = stella(root, "audit", "verify")
    assert code == 0  # verifying needs no token
    build_image(Home(root).oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    code, _, err = stella(root, "gate", "app:1")
    assert code == 1
    assert "holds no private key object=deleted-key" in _one_line(err)

    monkeypatch.setenv(PIN_ENV, "wrong-pin")
    code, _, err = stella(tmp_path, "keys", "generate", "--signer", hsm.uri("k", token="pin-test"))
    assert code == 1
    assert "refused the PIN from STELLA_PKCS11_PIN (wrong PIN)" in _one_line(err)
    assert "wrong-pin" not in err
    monkeypatch.delenv(PIN_ENV)
    code, _, err = stella(tmp_path, "keys", "generate", "--signer", hsm.uri(label()))
    assert "no PIN for the token" in _one_line(err)
    assert str(MODULE) in err


def test_the_commands_docs_keys_shows_exist() -> None:
    shown = shown_commands(ROOT / "docs" / "keys.md")
    paths = {check_command(c.argv) for c in shown}
    assert {"stella init", "stella keys export-public", "stella-mirror keys generate"} <= paths
    assert {
        "stella keys rotate",
        "stella keys revoke",
        "stella keys list",
        "stella keys notation init",
        "stella keys notation export",
        "stella verify",
    } <= paths
