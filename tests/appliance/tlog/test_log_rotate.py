"""``stella log rotate``: the current shard is frozen read-only and stays trusted for its
proofs; the next attestation starts a new shard with a new key."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from appliance import tlog
from appliance.home import Home
from appliance.rva.gate import attestation_info, gate
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from bundles.tlog import TlogError
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.rva.factories import AT
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.cli import stella, stella_json


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    install_knowledge(h, kev=[KEV], sequence=2)
    return h


def _log_index(bundle: bytes) -> str:
    (entry,) = json.loads(bundle)["verificationMaterial"]["tlogEntries"]
    index: str = entry["logIndex"]
    return index


def test_rotate_freezes_the_shard_and_the_next_attestation_starts_a_new_one(
    tmp_path: Path, home: Home
) -> None:
    first = gate(home, "app:1", at=AT)
    old_pub = (tlog.root(home) / "log.pub").read_bytes()
    rotated = stella_json(home, "log", "rotate")
    origin = tlog.origin_for(home)
    assert (rotated["origin"], rotated["newOrigin"]) == (origin, origin + "/2")
    shard = Path(rotated["frozen"])
    assert shard == tlog.root(home) / "frozen" / "1"
    assert not (shard / "log.key").exists()
    assert (shard / "frozen-at").is_file()
    assert not os.stat(shard / "checkpoint").st_mode & stat.S_IWUSR
    assert tlog.read_checkpoint(shard / "checkpoint").checkpoint.size == rotated["size"]

    second = gate(home, "app:1", at=AT)
    assert _log_index(second.bundle) == "0"
    assert (tlog.root(home) / "log.pub").read_bytes() != old_pub
    logs = tlog.trusted_logs(home)
    assert [v.name for v in logs] == [origin + "/2", origin]
    for result in (first, second):
        info = attestation_info(
            "sha256:" + "d" * 64, PREDICATE_TYPE, sigstore.read(result.bundle), logs
        )
        assert info.inclusion_proof
    old_rva = tmp_path / "old.json"
    old_rva.write_bytes(first.bundle)
    proved = stella_json(home, "log", "prove", str(old_rva))
    assert proved["checkpoint"].startswith(origin + "\n")
    assert stella_json(home, "log", "verify")["size"] == 2
    root = tmp_path / "root.json"
    assert stella(home, "log", "trusted-root", "--out", str(root)).exit_code == 0
    tlogs = json.loads(root.read_text())["tlogs"]
    assert [bool(t["publicKey"]["validFor"].get("end")) for t in tlogs] == [False, True]
    # A second rotation numbers the next shard on.
    assert stella_json(home, "log", "rotate")["newOrigin"] == origin + "/3"


def test_an_empty_shard_is_not_rotated(home: Home) -> None:
    gate(home, "app:1", at=AT)
    stella_json(home, "log", "rotate")
    out = stella(home, "log", "rotate")
    assert out.exit_code != 0
    assert "has no entry yet, there is nothing to freeze" in out.stderr


def test_an_interrupted_rotation_blocks_appends_until_finished(home: Home) -> None:
    gate(home, "app:1", at=AT)
    directory = tlog.root(home)
    staging = directory / tlog.ROTATING
    staging.mkdir()
    for name in ("checkpoint", "tile"):  # a crash after the first moves
        (directory / name).rename(staging / name)
    with pytest.raises(TlogError, match="a rotation of the log was interrupted"):
        gate(home, "app:1", at=AT)
    finished = stella_json(home, "log", "rotate")
    assert finished["origin"] == tlog.origin_for(home)
    assert not staging.exists()
    assert _log_index(gate(home, "app:1", at=AT).bundle) == "0"
    assert [v.name for v in tlog.trusted_logs(home)][1] == tlog.origin_for(home)
