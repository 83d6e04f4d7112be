"""Keys and trust across the gap: generate and rotate on the mirror, add and rotate on the
appliance, through the real command lines."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from bundles.keys import PrivateKey, PublicKey
from bundles.trust import TrustRoot
from mirror.cli import cli as stella_mirror


def run(prog: click.Command, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(prog, list(args))
    return result.exit_code, result.stdout, result.stderr


def mirror_json(*args: str) -> dict[str, Any]:
    code, out, err = run(stella_mirror, "--json", *args)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


def stella_json(home: Path, *args: str) -> dict[str, Any]:
    code, out, err = run(stella, "--home", str(home), "--json", *args)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    mirror_json("keys", "generate", "--out", str(tmp_path / "keys"), "--channel", "lab")
    return tmp_path / "keys"


def test_generate_writes_the_contracted_files(keydir: Path) -> None:
    names = {p.name for p in keydir.iterdir()}
    assert {"signing.key", "signing.pub", "root.key", "root.pub", "trust-root.json"} <= names
    for key in ("signing.key", "root.key"):
        assert stat.S_IMODE((keydir / key).stat().st_mode) == 0o600
    trust = TrustRoot.load(keydir / "trust-root.json")
    signing = PrivateKey.load(keydir / "signing.key")
    assert list(trust.bundle_keys) == [signing.keyid]
    assert PublicKey.load(keydir / "signing.pub") == signing.public_key
    assert trust.channel == "lab"
    assert signing.keyid not in trust.root_keys


def test_generate_never_overwrites(keydir: Path) -> None:
    before = (keydir / "signing.key").read_bytes()
    code, _, err = run(stella_mirror, "keys", "generate", "--out", str(keydir))
    assert code == 2
    assert err.startswith(f"stella-mirror: error: {keydir}: already holds signing.key, ")
    assert (keydir / "signing.key").read_bytes() == before


def test_passphrase_protects_private_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STELLA_KEY_PASSPHRASE", "correct horse")
    info = mirror_json("keys", "generate", "--out", str(tmp_path / "k"))
    assert info["encrypted"] is True
    assert b"ENCRYPTED" in (tmp_path / "k/signing.key").read_bytes()
    monkeypatch.delenv("STELLA_KEY_PASSPHRASE")
    code, _, err = run(stella_mirror, "keys", "rotate", "--keys", str(tmp_path / "k"))
    assert code == 1
    assert "root.key" in err
    assert "STELLA_KEY_PASSPHRASE" in err


def test_appliance_init_is_idempotent_and_keeps_its_key(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = stella_json(home, "init")
    again = stella_json(home, "init")
    assert first["created"] is True
    assert again["created"] is False
    assert again["keyid"] == first["keyid"]
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    out = tmp_path / "appliance.pub"
    assert stella_json(home, "keys", "export-public", "--out", str(out))["keyid"] == first["keyid"]
    assert PublicKey.load(out).keyid == first["keyid"]


def test_commands_need_an_initialized_home(tmp_path: Path) -> None:
    code, _, err = run(stella, "--home", str(tmp_path / "none"), "trust", "list")
    assert code == 2
    assert err == (
        f"stella: error: {tmp_path / 'none'} is not an appliance home "
        f"(run 'stella --home {tmp_path / 'none'} init' first)\n"
    )


def test_trust_add_then_rotate_one_two_three(tmp_path: Path, keydir: Path) -> None:
    home = tmp_path / "home"
    stella_json(home, "init")
    added = stella_json(home, "trust", "add", str(keydir / "trust-root.json"))
    assert (added["added"], added["version"], added["channel"]) == (True, 1, "lab")
    assert stella_json(home, "trust", "add", str(keydir / "trust-root.json"))["added"] is False

    mirror_json("keys", "rotate", "--keys", str(keydir), "--signing")
    mirror_json("keys", "rotate", "--keys", str(keydir), "--root")
    history = sorted((keydir / "history").glob("*.json"))
    assert [p.name for p in history] == [f"trust-root.v{n}.json" for n in (1, 2, 3)]

    rotated = stella_json(home, "trust", "rotate", *map(str, history))
    assert [r["version"] for r in rotated["rotated"]] == [2, 3]
    listed = stella_json(home, "trust", "list")["roots"]
    assert listed[0]["version"] == 3
    assert listed[0]["bundleKeys"] == [PrivateKey.load(keydir / "signing.key").keyid]


def test_a_root_signed_by_a_stranger_is_refused_and_nothing_changes(
    tmp_path: Path, keydir: Path
) -> None:
    home = tmp_path / "home"
    stella_json(home, "init")
    stella_json(home, "trust", "add", str(keydir / "trust-root.json"))
    # Someone with their own keys writes a "version 2" for the same channel.
    mirror_json("keys", "generate", "--out", str(tmp_path / "evil"), "--channel", "lab")
    mirror_json("keys", "rotate", "--keys", str(tmp_path / "evil"))
    code, _, err = run(
        stella, "--home", str(home), "trust", "rotate", str(tmp_path / "evil/trust-root.json")
    )
    assert code == 1
    assert "is signed by 0 of the 1 current root keys it requires" in err
    assert stella_json(home, "trust", "list")["roots"][0]["version"] == 1


def test_changed_root_must_arrive_as_a_rotation(tmp_path: Path, keydir: Path) -> None:
    home = tmp_path / "home"
    stella_json(home, "init")
    stella_json(home, "trust", "add", str(keydir / "trust-root.json"))
    mirror_json("keys", "rotate", "--keys", str(keydir))
    code, _, err = run(stella, "--home", str(home), "trust", "add", str(keydir / "trust-root.json"))
    assert code == 2
    assert "channel 'lab' is already trusted at version 1" in err
    assert "'stella trust rotate FILE'" in err
