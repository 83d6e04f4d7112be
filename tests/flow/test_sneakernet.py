"""Across the air gap: export on the mirror, verify, carry, import on the appliance."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tarfile
from pathlib import Path

import pytest

from bundles.archive import ArchiveReader
from bundles.bundle import peek_statement
from mirror.cli import cli as stella_mirror
from tests.flow.conftest import Appliance, Mirror, invoke, rewrite_bundle


@pytest.fixture(scope="module")
def bundles(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """full(s0), delta(s0→s1), delta(s1→s2), full(s2); sequences 1..4."""
    out = tmp_path_factory.mktemp("bundles")
    s0, s1, s2 = mirror.snapshots
    paths = {
        "full0": out / "full0.stella.tar.zst",
        "delta1": out / "delta1.stella.tar.zst",
        "delta2": out / "delta2.stella.tar.zst",
        "full2": out / "full2.stella.tar.zst",
    }
    mirror.export(paths["full0"], "--snapshot", s0, "--sequence", "1")
    mirror.export(paths["delta1"], "--snapshot", s1, "--base", s0, "--sequence", "2")
    mirror.export(paths["delta2"], "--snapshot", s2, "--base", s1, "--sequence", "3")
    mirror.export(paths["full2"], "--snapshot", s2, "--sequence", "4")
    return paths


def test_full_then_delta_then_delta_reproduces_every_snapshot(
    mirror: Mirror, appliance: Appliance, bundles: dict[str, Path]
) -> None:
    s0, s1, s2 = mirror.snapshots
    assert len({s0, s1, s2}) == 3
    first = appliance.run("import", str(bundles["full0"]))
    assert (first["kind"], first["snapshot"]) == ("full", s0)
    assert sorted(first["datasetsLoaded"]) == ["alpine-3.20-main", "epss", "kev", "osv-pypi"]
    second = appliance.run("import", str(bundles["delta1"]))
    assert (second["kind"], second["snapshot"], second["base"]) == ("delta", s1, s0)
    assert (second["datasetsPatched"], second["datasetsReused"]) == (["kev"], 3)
    third = appliance.run("import", str(bundles["delta2"]))
    assert third["snapshot"] == s2
    assert appliance.active() == s2
    listed = appliance.run("snapshot", "list")["snapshots"]
    assert [(s["digest"], s["sequence"]) for s in listed] == [(s0, 1), (s1, 2), (s2, 3)]
    # The appliance rebuilt byte-identical datasets: their digests are the mirror's.
    audit = appliance.run("audit", "list", "--action", "import")["records"]
    assert [(r["action"], r["result"]["sequence"]) for r in audit] == [
        ("import", 1),
        ("import", 2),
        ("import", 3),
    ]
    assert audit[1]["inputs"]["base"] == s0
    shown = appliance.run("snapshot", "show", s1)
    assert {d["name"]: d["digest"] for d in shown["datasets"]} == {
        d["name"]: d["digest"] for d in mirror.run("snapshot", "show", s1)["manifest"]["datasets"]
    }


def test_delta_is_small(bundles: dict[str, Path]) -> None:
    # Three KEV records changed among ~10k records: the delta is a small fraction of the full.
    assert bundles["delta1"].stat().st_size < 0.03 * bundles["full0"].stat().st_size


def test_low_side_verify(mirror: Mirror, bundles: dict[str, Path]) -> None:
    for path in bundles.values():
        ok = mirror.run("verify", str(path), "--trust-root", str(mirror.keys / "trust-root.json"))
        assert ok["verified"] is True


def test_export_is_deterministic_for_the_same_inputs(mirror: Mirror, tmp_path: Path) -> None:
    a, b = tmp_path / "a.stella.tar.zst", tmp_path / "b.stella.tar.zst"
    mirror.export(a, "--snapshot", mirror.snapshots[0], "--sequence", "9")
    mirror.export(b, "--snapshot", mirror.snapshots[0], "--sequence", "9")

    # The statement carries its creation time; every other member is byte-identical.
    def members(p: Path) -> dict[str, bytes]:
        with open(p, "rb") as fh:
            reader = ArchiveReader(fh)
            bundle = peek_statement(reader.read_first("statement.dsse.json"))
            return {m.name: m.read_all() for m in reader.members(bundle.members)}

    assert members(a) == members(b)


def test_delta_without_its_base_is_refused(appliance: Appliance, bundles: dict[str, Path]) -> None:
    code, err = appliance.fail("import", str(bundles["delta1"]))
    assert code == 1
    assert code == 1
    assert "delta against snapshot sha256:" in err
    assert "which this appliance has not imported" in err
    assert appliance.active() is None


def test_rollback_is_refused_and_quarantined(
    appliance: Appliance, bundles: dict[str, Path]
) -> None:
    appliance.run("import", str(bundles["full2"]))
    code, err = appliance.fail("import", str(bundles["full0"]))
    assert code == 1
    assert "bundle sequence 1 is not newer than the last imported sequence 4" in err
    assert "(import a bundle with sequence 5 or higher; reason in " in err
    reasons = list((appliance.home / "quarantine").glob("*.reason"))
    assert len(reasons) == 1
    assert b"not newer than the last imported sequence 4" in reasons[0].read_bytes()
    refused = appliance.run("audit", "list", "--action", "import.refused")["records"]
    assert len(refused) == 1
    assert "not newer than the last imported sequence 4" in refused[0]["result"]["reason"]
    assert appliance.run("audit", "verify")["ok"] is True
    # The media the bundle came from is not touched (it was not in the inbox).
    assert bundles["full0"].exists()


def test_bundle_dropped_in_the_inbox_moves_to_quarantine(
    appliance: Appliance, bundles: dict[str, Path]
) -> None:
    appliance.run("import", str(bundles["full2"]))
    dropped = appliance.home / "inbox" / "old.stella.tar.zst"
    dropped.write_bytes(bundles["full0"].read_bytes())
    appliance.fail("import", str(dropped))
    assert not dropped.exists()
    assert len(list((appliance.home / "quarantine").glob("*old.stella.tar.zst"))) == 1


def test_dry_run_changes_nothing(appliance: Appliance, bundles: dict[str, Path]) -> None:
    result = appliance.run("import", "--dry-run", str(bundles["full0"]))
    assert result["dryRun"] is True
    assert appliance.active() is None
    assert appliance.run("import", str(bundles["full0"]))["sequence"] == 1


def test_tampered_member_is_refused_and_nothing_changes(
    appliance: Appliance, bundles: dict[str, Path], tmp_path: Path
) -> None:
    appliance.run("import", str(bundles["full0"]))
    before = appliance.active()

    def flip(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if info.name.startswith("knowledge/patches/"):
            data = data.replace(b"(updated)", b"(UPDATED)")
        return info, data

    forged = tmp_path / "forged.stella.tar.zst"
    rewrite_bundle(bundles["delta1"], forged, flip)
    code, err = appliance.fail("import", str(forged))
    assert code == 1
    assert "does not match the signed" in err
    assert appliance.active() == before
    assert len(appliance.run("snapshot", "list")["snapshots"]) == 1


def test_truncated_bundle_is_refused(
    appliance: Appliance, bundles: dict[str, Path], tmp_path: Path
) -> None:
    cut = tmp_path / "cut.stella.tar.zst"
    data = bundles["full0"].read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    code, err = appliance.fail("import", str(cut))
    assert code == 1
    assert "truncated" in err
    assert appliance.active() is None


def test_unlisted_member_is_refused(
    appliance: Appliance, bundles: dict[str, Path], tmp_path: Path
) -> None:
    def smuggle(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if info.name == "knowledge.json":
            info.name = "knowledge/evil.json"
        return info, data

    forged = tmp_path / "smuggled.stella.tar.zst"
    rewrite_bundle(bundles["full0"], forged, smuggle)
    code, err = appliance.fail("import", str(forged))
    assert code == 1
    assert "'knowledge/evil.json' is not listed in the signed statement" in err


def test_bundle_from_an_untrusted_mirror_is_refused(
    appliance: Appliance, tmp_path: Path, mirror: Mirror
) -> None:
    invoke(stella_mirror, "keys", "generate", "--out", str(tmp_path / "rogue"))
    out = tmp_path / "rogue.stella.tar.zst"
    mirror.run(
        "export",
        "--out",
        str(out),
        "--key",
        str(tmp_path / "rogue/signing.key"),
        "--snapshot",
        mirror.snapshots[0],
    )
    code, err = appliance.fail("import", str(out))
    assert code == 1
    assert "not trusted" in err or "untrusted" in err
    assert "accepts bundles signed by 1 of:" in err


def test_signing_key_rotation_travels_in_the_bundle(
    appliance: Appliance, mirror: Mirror, tmp_path: Path
) -> None:
    keys = tmp_path / "keys"
    shutil.copytree(mirror.keys, keys)
    mirror.run("keys", "rotate", "--keys", str(keys), "--signing")
    out = tmp_path / "rotated.stella.tar.zst"
    mirror.run(
        "export",
        "--out",
        str(out),
        "--key",
        str(keys / "signing.key"),
        "--snapshot",
        mirror.snapshots[0],
        "--sequence",
        "50",
    )
    result = appliance.run("import", str(out))
    assert result["trustRotatedTo"] == 2
    assert appliance.run("trust", "list")["roots"][0]["version"] == 2
    actions = [r["action"] for r in appliance.run("audit", "list")["records"]]
    assert actions == ["trust.add", "trust.rotate", "import"]


def test_knowledge_db_is_consistent_after_every_refusal(
    appliance: Appliance, bundles: dict[str, Path], tmp_path: Path
) -> None:
    appliance.run("import", str(bundles["full0"]))
    cut = tmp_path / "cut.stella.tar.zst"
    data = bundles["delta1"].read_bytes()
    cut.write_bytes(data[:-200])
    appliance.fail("import", str(cut))
    conn = sqlite3.connect(appliance.home / "knowledge.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
    assert os.path.getsize(appliance.home / "knowledge.db") > 0


@pytest.fixture(scope="module")
def parts(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    out = tmp_path_factory.mktemp("parts") / "split.stella.tar.zst"
    result = mirror.export(
        out, "--snapshot", mirror.snapshots[0], "--sequence", "1", "--split", "256K"
    )
    assert not out.exists()
    assert Path(result["partsManifest"]).exists()
    return [Path(p) for p in result["parts"]]


def test_split_parts_each_verify_on_their_own(mirror: Mirror, parts: list[Path]) -> None:
    assert len(parts) >= 3
    assert parts[0].name == f"split.stella.tar.zst.part-001-of-{len(parts):03d}"
    root = str(mirror.keys / "trust-root.json")
    one = mirror.run("verify", str(parts[1]), "--trust-root", root, "--partial")
    assert (one["complete"], one["parts"][0]["index"]) == (False, 2)
    assert one["missing"] == [i for i in range(1, len(parts) + 1) if i != 2]
    whole = mirror.run("verify", *map(str, reversed(parts)), "--trust-root", root)
    assert whole["complete"] is True
    assert whole["sequence"] == 1


def test_parts_import_in_any_order(mirror: Mirror, appliance: Appliance, parts: list[Path]) -> None:
    shuffled = [parts[2], parts[0], *parts[3:], parts[1]]
    result = appliance.run("import", *map(str, shuffled))
    assert result["snapshot"] == mirror.snapshots[0]
    assert appliance.active() == mirror.snapshots[0]


def test_a_missing_part_is_named_and_nothing_is_quarantined(
    appliance: Appliance, parts: list[Path]
) -> None:
    code, err = appliance.fail("import", *map(str, parts[:1] + parts[2:]))
    assert code == 1
    assert (
        f"1 of {len(parts)} parts missing: split.stella.tar.zst.part-002-of-{len(parts):03d}" in err
    )
    assert list((appliance.home / "quarantine").iterdir()) == []
    assert appliance.active() is None


def test_a_corrupt_part_is_named(appliance: Appliance, parts: list[Path], tmp_path: Path) -> None:
    copies = []
    for p in parts:
        copies.append(tmp_path / p.name)
        shutil.copy(p, copies[-1])
    data = bytearray(copies[1].read_bytes())
    data[-100] ^= 0xFF
    copies[1].write_bytes(bytes(data))
    code, err = appliance.fail("import", *map(str, copies))
    assert code == 1
    assert f"{copies[1].name}: part 2 is corrupt" in err
    assert appliance.active() is None
