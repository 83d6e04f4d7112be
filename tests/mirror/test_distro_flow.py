"""The distribution feed kinds go through the snapshot builder unchanged: content-addressed,
delta-able, signed, exported and imported by an appliance that trusts the mirror."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import click
from click.testing import CliRunner

from appliance.cli import cli as stella
from mirror.cli import cli as stella_mirror
from tests.mirror.conftest import write_config

KINDS = {
    "redhat": ("redhat-csaf", "redhat-csaf"),
    "rocky": ("rocky-osv", "rocky-osv"),
    "alma": ("alma-osv", "alma-osv"),
    "ubuntu": ("ubuntu-osv", "ubuntu-osv"),
    "wolfi": ("wolfi-secdb", "wolfi-secdb/security.json"),
    "chainguard": ("chainguard-secdb", "wolfi-secdb/security.json"),
}


def run(prog: click.Command, home: Path, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(prog, ["--json", "--home", str(home), *args])
    assert result.exit_code == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def test_distro_datasets_snapshot_export_delta_and_import(feeds: Path, tmp_path: Path) -> None:
    mirror, keys = tmp_path / "mirror", tmp_path / "keys"
    ubuntu = tmp_path / "ubuntu-osv"
    shutil.copytree(feeds / "ubuntu-osv", ubuntu)
    sources = [
        {"name": name, "kind": kind, "path": str(ubuntu if name == "ubuntu" else feeds / rel)}
        for name, (kind, rel) in KINDS.items()
    ]
    cfg = write_config(tmp_path / "cfg", sources)
    run(stella_mirror, mirror, "keys", "generate", "--out", str(keys))
    run(stella_mirror, mirror, "sync", "--config", str(cfg))
    s0 = run(stella_mirror, mirror, "snapshot", "build")["digest"]
    manifest = run(stella_mirror, mirror, "snapshot", "show", s0)["manifest"]
    records = {d["name"]: (d["type"], d["records"]) for d in manifest["datasets"]}
    assert records == {
        "redhat": ("osv", 6), "rocky": ("osv", 1), "alma": ("osv", 8), "ubuntu": ("osv", 3),
        "wolfi": ("osv", 84), "chainguard": ("osv", 84),
    }  # fmt: skip
    kinds = {s["name"]: (s["kind"], s["status"], s["unknowns"]) for s in manifest["sources"]}
    assert kinds == {name: (kind, "ok", []) for name, (kind, _rel) in KINDS.items()}

    # A daily-style change in one feed: a notice withdrawn upstream.
    (ubuntu / "osv/usn/USN-5844-1.json").unlink()
    run(stella_mirror, mirror, "sync", "--config", str(cfg))
    s1 = run(stella_mirror, mirror, "snapshot", "build")["digest"]
    assert s1 != s0
    diff = run(stella_mirror, mirror, "snapshot", "diff", s0, s1)
    changed = {
        d["name"]: (d["change"], d["added"], d["changed"], d["removed"])
        for d in diff["datasets"]
        if d["change"] != "unchanged"
    }
    assert changed == {"ubuntu": ("changed", [], [], ["USN-5844-1"])}

    full, delta = tmp_path / "full.stella.tar.zst", tmp_path / "delta.stella.tar.zst"
    key = str(keys / "signing.key")
    run(stella_mirror, mirror, "export", "--out", str(full), "--snapshot", s0, "--key", key,
        "--sequence", "1")  # fmt: skip
    run(stella_mirror, mirror, "export", "--out", str(delta), "--snapshot", s1, "--base", s0,
        "--key", key, "--sequence", "2")  # fmt: skip

    appliance = tmp_path / "appliance"
    run(stella, appliance, "init")
    run(stella, appliance, "trust", "add", str(keys / "history" / "trust-root.v1.json"))
    first = run(stella, appliance, "import", str(full))
    assert (first["kind"], first["snapshot"]) == ("full", s0)
    assert sorted(first["datasetsLoaded"]) == sorted(KINDS)
    second = run(stella, appliance, "import", str(delta))
    assert (second["kind"], second["snapshot"], second["base"]) == ("delta", s1, s0)
    assert (second["datasetsPatched"], second["datasetsReused"]) == (["ubuntu"], len(KINDS) - 1)
    listed = run(stella, appliance, "snapshot", "list")["snapshots"]
    assert [(s["digest"], s["active"]) for s in listed] == [(s0, False), (s1, True)]
