"""Bundles signed by a mirror whose signing key lives in a PKCS#11 token (SoftHSM2): made by
``stella-mirror keys generate --signer pkcs11:…``, used by ``export --key DIR/signing.uri`` or
``--key pkcs11:…``, checked by ``stella-mirror verify`` and imported by the appliance."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from bundles.keys import PublicKey
from bundles.pkcs11_uri import PIN_ENV
from bundles.trust import TrustRoot
from mirror.cli import cli as stella_mirror
from tests.softhsm import PIN, SoftHsm, softhsm

KEV = Path(__file__).resolve().parents[1] / "data" / "feeds" / "kev"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return softhsm(tmp_path_factory)


def run(prog: click.Command, *args: str | Path) -> dict[str, Any]:
    result = CliRunner().invoke(prog, ["--json", *map(str, args)])
    assert result.exit_code == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_bundles_signed_in_the_token_are_imported(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    uri = hsm.uri("mirror-bundles")
    keys, home = tmp_path / "keys", tmp_path / "mirror"
    made = run(stella_mirror, "--home", home, "keys", "generate", "--out", keys, "--signer", uri)
    assert made["signingKey"] == uri
    assert not (keys / "signing.key").exists()
    assert (keys / "signing.uri").read_text() == uri + "\n"
    assert PIN not in "".join(p.read_text() for p in keys.glob("*.*") if p.suffix != ".key")
    trust = TrustRoot.load(keys / "trust-root.json")
    assert list(trust.bundle_keys) == [PublicKey.load(keys / "signing.pub").keyid]

    config = tmp_path / "mirror.toml"
    config.write_text(
        f'[[source]]\nname = "kev"\nkind = "kev"\n'
        f'path = "{KEV / "known_exploited_vulnerabilities.json"}"\n'
    )
    run(stella_mirror, "--home", home, "sync", "--config", config)
    run(stella_mirror, "--home", home, "snapshot", "build")
    first, second = tmp_path / "b1.stella.tar.zst", tmp_path / "b2.stella.tar.zst"
    run(stella_mirror, "--home", home, "export", "--out", first, "--key", keys / "signing.uri")
    run(
        stella_mirror, "--home", home, "export", "--out", second, "--key", uri,
        "--channel", trust.channel,
    )  # fmt: skip
    root = keys / "trust-root.json"
    for bundle in (first, second):
        run(stella_mirror, "--home", home, "verify", bundle, "--trust-root", root)

    appliance = tmp_path / "appliance"
    run(stella, "--home", appliance, "init")
    run(stella, "--home", appliance, "trust", "add", root)
    assert run(stella, "--home", appliance, "import", first)["sequence"] == 1
    assert run(stella, "--home", appliance, "import", second)["sequence"] == 2

    # Split: the parts manifest is signed in the token too.
    split = tmp_path / "b3.stella.tar.zst"
    made = run(
        stella_mirror, "--home", home, "export", "--out", split, "--key", keys / "signing.uri",
        "--split", "64K",
    )  # fmt: skip
    parts = made["parts"]  # one part for so small a bundle, with its signed parts manifest
    assert Path(made["partsManifest"]).is_file()
    whole = run(stella_mirror, "--home", home, "verify", *reversed(parts), "--trust-root", root)
    assert whole["complete"] is True
    assert run(stella, "--home", appliance, "import", *parts)["sequence"] == 3


def test_a_token_signing_key_is_always_ecdsa(hsm: SoftHsm, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        stella_mirror,
        ["keys", "generate", "--out", str(tmp_path / "k"), "--type", "ed25519",
         "--signer", hsm.uri("never-made")],
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--type ed25519 does not go with a pkcs11: signer" in result.stderr
    assert not (tmp_path / "k").exists()


def test_rotating_away_from_a_token_key_retires_its_uri(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    keys, home = tmp_path / "keys", tmp_path / "mirror"
    run(stella_mirror, "--home", home, "keys", "generate", "--out", keys, "--signer",
        hsm.uri("rotated-away"))  # fmt: skip
    old = PublicKey.load(keys / "signing.pub").keyid
    run(stella_mirror, "--home", home, "keys", "rotate", "--keys", keys, "--signing")
    # The revoked token key must not stay where 'export --key DIR/signing.uri' would use it.
    assert not (keys / "signing.uri").exists()
    assert (keys / "retired" / f"signing-{old[:16]}.uri").is_file()
    trust = TrustRoot.load(keys / "trust-root.json")
    assert list(trust.bundle_keys) == [PublicKey.load(keys / "signing.pub").keyid]
    assert (keys / "signing.key").is_file()
