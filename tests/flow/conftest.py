"""A mirror workspace with real (sample) feeds, snapshots that differ the way daily ones do,
and an appliance home that trusts the mirror: the fixtures of the sneakernet flow."""

from __future__ import annotations

import copy
import io
import json
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import zstandard
from click.testing import CliRunner

from appliance.cli import cli as stella
from mirror.cli import cli as stella_mirror

FEEDS = Path(__file__).resolve().parent.parent / "data" / "feeds"


MemberEdit = Callable[[tarfile.TarInfo, bytes], tuple[tarfile.TarInfo | None, bytes]]
"""Changes one tar member: its new header (``None`` drops it) and bytes."""


def rewrite_bundle(src: Path, dst: Path, edit: MemberEdit) -> None:
    """Decompress, let ``edit`` change the tar members, recompress (statement untouched)."""
    raw = zstandard.ZstdDecompressor().decompressobj().decompress(src.read_bytes())
    out = io.BytesIO()
    with (
        tarfile.open(fileobj=io.BytesIO(raw)) as tin,
        tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tout,
    ):
        for info in tin.getmembers():
            member = tin.extractfile(info)
            assert member is not None, f"{info.name}: a bundle holds only regular files"
            edited, data = edit(info, member.read())
            if edited is not None:
                tout.addfile(edited, io.BytesIO(data))
    dst.write_bytes(zstandard.ZstdCompressor().compress(out.getvalue()))


def invoke(prog: click.Command, *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(prog, ["--json", *args])
    assert result.exit_code == 0, result.stderr
    out: dict[str, Any] = json.loads(result.stdout)
    return out


def config(kev: Path) -> str:
    return f"""
[[source]]
name = "osv-pypi"
kind = "osv"
path = "{FEEDS / "pypi-osv.jsonl.gz"}"

[[source]]
name = "alpine-3.20-main"
kind = "alpine-secdb"
path = "{FEEDS / "alpine-secdb/v3.20/main.json"}"

[[source]]
name = "epss"
kind = "epss"
path = "{FEEDS / "epss"}"

[[source]]
name = "kev"
kind = "kev"
path = "{kev}"
"""


@dataclass
class Mirror:
    home: Path
    keys: Path
    feeds: Path
    snapshots: list[str]

    def run(self, *args: str) -> dict[str, Any]:
        return invoke(stella_mirror, "--home", str(self.home), *args)

    def kev_variant(self, n: int) -> Path:
        """The real KEV file with a daily-style change: one entry edited, one removed, one
        added (n selects which)."""
        doc = json.loads((FEEDS / "kev/known_exploited_vulnerabilities.json").read_text())
        vulns = doc["vulnerabilities"]
        vulns[n]["shortDescription"] += " (updated)"
        vulns.pop(n + 1)
        added = copy.deepcopy(vulns[0])
        added["cveID"] = f"CVE-2099-{1000 + n}"
        vulns.append(added)
        doc["count"] = len(vulns)
        path = self.feeds / f"kev-{n}.json"
        path.write_text(json.dumps(doc))
        return path

    def snapshot(self, kev: Path) -> str:
        cfg = self.feeds / "mirror.toml"
        cfg.write_text(config(kev))
        self.run("sync", "--config", str(cfg))
        digest: str = self.run("snapshot", "build")["digest"]
        self.snapshots.append(digest)
        return digest

    def export(self, out: Path, *args: str) -> dict[str, Any]:
        return self.run("export", "--out", str(out), "--key", str(self.keys / "signing.key"), *args)


@pytest.fixture(scope="session")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Mirror:
    """Three snapshots: the sample feeds, then two daily-style changes to KEV."""
    root = tmp_path_factory.mktemp("mirror")
    feeds = root / "feeds"
    feeds.mkdir()
    m = Mirror(home=root / "home", keys=root / "keys", feeds=feeds, snapshots=[])
    m.run("keys", "generate", "--out", str(m.keys))
    m.snapshot(FEEDS / "kev/known_exploited_vulnerabilities.json")
    m.snapshot(m.kev_variant(3))
    m.snapshot(m.kev_variant(7))
    return m


@dataclass
class Appliance:
    home: Path

    def run(self, *args: str) -> dict[str, Any]:
        return invoke(stella, "--home", str(self.home), *args)

    def fail(self, *args: str) -> tuple[int, str]:
        result = CliRunner().invoke(stella, ["--home", str(self.home), *args])
        assert result.exit_code != 0, result.stdout
        return result.exit_code, result.stderr

    def active(self) -> str | None:
        rows = self.run("snapshot", "list")["snapshots"]
        return next((r["digest"] for r in rows if r["active"]), None)


@pytest.fixture
def appliance(tmp_path: Path, mirror: Mirror) -> Appliance:
    a = Appliance(tmp_path / "appliance")
    a.run("init")
    a.run("trust", "add", str(mirror.keys / "history" / "trust-root.v1.json"))
    return a


@pytest.fixture(autouse=True)
def _appliance_is_offline(offline: None) -> None:
    """Invariant 2: every appliance step of the flow runs with all sockets refused."""
