"""Snapshots: reproducible digests, the content-addressed store, diff, and the CLI."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bundles import canonical
from bundles.digest import Digest
from mirror.cli import cli
from mirror.config import load_config
from mirror.errors import SnapshotError
from mirror.fetch import HttpFetcher
from mirror.snapshot import DatasetChange, Manifest, diff_snapshots
from mirror.sync import build_snapshot, sync
from mirror.workspace import Workspace
from tests.mirror.conftest import StepClock, write_config
from tests.mirror.feedserver import FeedServer

REPO = Path(__file__).resolve().parents[2]


def local_sources(feeds: Path) -> list[dict[str, Any]]:
    return [
        {"name": "osv-pypi", "kind": "osv", "path": str(feeds / "pypi-osv.jsonl.gz")},
        {"name": "osv-go", "kind": "osv", "path": str(feeds / "go-osv.jsonl.gz")},
        {"name": "osv-crates", "kind": "osv", "path": str(feeds / "rustsec-osv.jsonl.gz")},
        {
            "name": "debian",
            "kind": "debian-tracker",
            "path": str(feeds / "debian-security-tracker"),
        },
        {"name": "debian-12", "kind": "debian-tracker", "path": str(feeds / "debian-bookworm")},
        {"name": "alpine", "kind": "alpine-secdb", "path": str(feeds / "alpine-secdb")},
        {"name": "kev", "kind": "kev", "path": str(feeds / "kev")},
        {"name": "epss", "kind": "epss", "path": str(feeds / "epss")},
        {"name": "vex-acme", "kind": "openvex", "path": str(feeds / "openvex")},
        {"name": "policy", "kind": "policy", "path": str(feeds / "policy")},
        {"name": "rubysec", "kind": "rubysec", "path": str(feeds / "rubysec")},
        {
            "name": "npm",
            "kind": "npm-legacy",
            "path": str(feeds / "npm-nodejs-security-wg.jsonl.gz"),
        },
    ]


def cli_in_subprocess(home: Path, *args: str, seed: str, tz: str = "UTC") -> str:
    env = {**os.environ, "PYTHONHASHSEED": seed, "TZ": tz, "LC_ALL": "C"}
    proc = subprocess.run(
        [sys.executable, "-c", "from mirror.cli import main; main()", "--home", str(home),
         "--json", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_same_inputs_give_the_same_snapshot_bytes(tmp_path: Path, feeds: Path) -> None:
    """Different source order, clock, hash seed and time zone: same digest, same bytes."""
    sources = local_sources(feeds)
    cfg_a = write_config(tmp_path / "a", sources)
    cfg_b = write_config(tmp_path / "b", list(reversed(sources)))
    digests = []
    for cfg, seed, tz in ((cfg_a, "1", "UTC"), (cfg_b, "4242", "Asia/Tokyo")):
        home = cfg.parent / "home"
        cli_in_subprocess(home, "sync", "--config", str(cfg), seed=seed, tz=tz)
        out = json.loads(cli_in_subprocess(home, "snapshot", "build", seed=seed, tz=tz))
        digests.append(out["digest"])
    assert digests[0] == digests[1]
    hexd = Digest.parse(digests[0]).hex
    snap_a = tmp_path / "a" / "home" / "mirror" / "snapshots" / hexd / "manifest.json"
    snap_b = tmp_path / "b" / "home" / "mirror" / "snapshots" / hexd / "manifest.json"
    assert snap_a.read_bytes() == snap_b.read_bytes()
    manifest = Manifest.from_bytes(snap_a.read_bytes())
    assert manifest.digest == Digest.parse(digests[0])
    assert canonical.is_canonical(snap_a.read_bytes())
    assert {s.status.value for s in manifest.sources} == {"ok"}
    for d in manifest.datasets:
        a = tmp_path / "a" / "home" / "mirror" / "datasets" / f"{d.digest.hex}.jsonl"
        b = tmp_path / "b" / "home" / "mirror" / "datasets" / f"{d.digest.hex}.jsonl"
        assert a.read_bytes() == b.read_bytes()
        assert Digest.of_bytes(a.read_bytes()) == d.digest
    # volatile facts stay out of the digested manifest
    for word in (b"fetched_at", b"built_at", b"location", str(tmp_path).encode()):
        assert word not in snap_a.read_bytes()
    prov_a = json.loads(snap_a.with_name("provenance.json").read_bytes())
    assert prov_a["sources"]["kev"]["location"] == str(feeds / "kev")
    assert prov_a["sources"]["kev"]["last_attempt"]["ok"] is True


def test_packing_does_not_change_dataset_digests(tmp_path: Path, feeds: Path) -> None:
    """A directory and a tarball of it over HTTP give the same dataset bytes."""
    tarball = tmp_path / "alpine.tar.gz"
    with tarfile.open(tarball, "w:gz") as tf:
        tf.add(feeds / "alpine-secdb", arcname="secdb")
    with FeedServer() as server, HttpFetcher(backoff=0, sleep=lambda _s: None) as fetcher:
        server.put("alpine.tar.gz", tarball.read_bytes())
        cfg_dir = write_config(
            tmp_path / "d",
            [{"name": "alpine", "kind": "alpine-secdb", "path": str(feeds / "alpine-secdb")}],
        )
        cfg_tar = write_config(
            tmp_path / "t",
            [{"name": "alpine", "kind": "alpine-secdb", "url": server.url("alpine.tar.gz")}],
        )
        clock = StepClock(datetime(2026, 3, 1, tzinfo=UTC))
        ws_dir, ws_tar = Workspace(tmp_path / "wd"), Workspace(tmp_path / "wt")
        [a] = sync(load_config(cfg_dir), ws_dir, fetcher=fetcher, clock=clock)
        [b] = sync(load_config(cfg_tar), ws_tar, fetcher=fetcher, clock=clock)
    assert a.dataset == b.dataset
    assert a.records == b.records


def test_diff_lists_added_changed_and_removed_records(tmp_path: Path, feeds: Path) -> None:
    lines = gzip.decompress((feeds / "go-osv.jsonl.gz").read_bytes()).splitlines()
    feed = tmp_path / "feed" / "go.jsonl"
    feed.parent.mkdir()
    feed.write_bytes(b"\n".join(lines[:300]))
    cfg = write_config(tmp_path / "cfg", [
        {"name": "osv-go", "kind": "osv", "path": str(feed)},
        {"name": "kev", "kind": "kev", "path": str(feeds / "kev")},
    ])  # fmt: skip
    ws = Workspace(tmp_path / "ws")
    clock = StepClock(datetime(2026, 3, 1, tzinfo=UTC))
    sync(load_config(cfg), ws, clock=clock)
    base = build_snapshot(ws, clock=clock).digest
    changed_rec = json.loads(lines[10])
    changed_rec["summary"] = "changed upstream"
    new_lines = [*lines[20:300], canonical.dumps(changed_rec), *lines[300:310]]
    feed.write_bytes(b"\n".join(new_lines))
    sync(load_config(cfg), ws, clock=clock)
    target = build_snapshot(ws, clock=clock).digest
    result = diff_snapshots(ws.store, base, target)
    go = next(d for d in result.datasets if d.name == "osv-go")
    kev = next(d for d in result.datasets if d.name == "kev")
    assert kev.change is DatasetChange.UNCHANGED
    assert go.change is DatasetChange.CHANGED
    ids = [json.loads(line)["id"] for line in lines]
    assert set(go.added) == set(ids[300:310])
    assert set(go.removed) == set(ids[:20]) - {ids[10]}
    assert go.changed == (ids[10],)
    assert list(go.added) == sorted(go.added)


def test_store_resolves_references(tmp_path: Path, feeds: Path) -> None:
    cfg = write_config(
        tmp_path / "cfg", [{"name": "kev", "kind": "kev", "path": str(feeds / "kev")}]
    )
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(SnapshotError, match="no snapshot has been built yet"):
        ws.store.resolve("latest")
    with pytest.raises(SnapshotError, match="nothing has been synced"):
        build_snapshot(ws)
    sync(load_config(cfg), ws)
    digest = build_snapshot(ws).digest
    assert ws.store.resolve("latest") == digest
    assert ws.store.resolve("latest~0") == digest
    with pytest.raises(SnapshotError, match="'latest~1': only 1 snapshots have been built"):
        ws.store.resolve("latest~1")
    assert ws.store.resolve(digest.hex[:8]) == digest
    assert ws.store.resolve(str(digest)) == digest
    with pytest.raises(SnapshotError, match="no snapshot matches"):
        ws.store.resolve("ffff" if not digest.hex.startswith("ffff") else "0000")
    with pytest.raises(SnapshotError, match="not a snapshot reference"):
        ws.store.resolve("xyz")
    entry = ws.store.manifest(digest).dataset("kev")
    records = list(ws.store.records(entry.digest))
    assert len(records) == entry.records == 200
    ws.store.dataset_path(entry.digest).write_bytes(b"tampered\n")
    with pytest.raises(SnapshotError, match="content digest mismatch"):
        ws.store.dataset_bytes(entry.digest)


def test_cli_sync_build_list_show_diff(tmp_path: Path, feeds: Path) -> None:
    cfg = write_config(tmp_path / "cfg", [
        {"name": "kev", "kind": "kev", "path": str(feeds / "kev")},
        {"name": "vex", "kind": "openvex", "path": str(feeds / "openvex")},
    ])  # fmt: skip
    home = tmp_path / "home"
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        result = runner.invoke(cli, ["--home", str(home), "--json", *args])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    synced = invoke("sync", "--config", str(cfg))
    assert [s["status"] for s in synced["sources"]] == ["updated", "updated"]
    built = invoke("snapshot", "build")
    assert built["records"] == 201
    assert built["unknowns"] == 1
    listed = invoke("snapshot", "list")
    assert [s["digest"] for s in listed["snapshots"]] == [built["digest"]]
    shown = invoke("snapshot", "show", built["digest"][7:19])
    vex = next(s for s in shown["manifest"]["sources"] if s["name"] == "vex")
    assert vex["unknowns"][0]["item"] == "acme-broken.json"
    again = invoke("sync", "--config", str(cfg), "--source", "kev")
    assert [s["status"] for s in again["sources"]] == ["unchanged"]
    diff = invoke("snapshot", "diff", "latest", built["digest"])
    assert {d["change"] for d in diff["datasets"]} == {"unchanged"}
    text = runner.invoke(cli, ["--home", str(home), "snapshot", "show", "latest"])
    assert text.exit_code == 0
    assert "kev" in text.stdout
    assert "200 records" in text.stdout


def test_cli_sync_failure_exits_1_after_reporting(tmp_path: Path, feeds: Path) -> None:
    shutil.copytree(feeds / "kev", tmp_path / "kev")
    cfg = write_config(
        tmp_path / "cfg", [{"name": "kev", "kind": "kev", "path": str(tmp_path / "kev")}]
    )
    home = tmp_path / "home"
    runner = CliRunner()
    assert runner.invoke(cli, ["--home", str(home), "sync", "--config", str(cfg)]).exit_code == 0
    (tmp_path / "kev" / "known_exploited_vulnerabilities.json").write_text("{}")
    result = runner.invoke(cli, ["--home", str(home), "sync", "--config", str(cfg)])
    assert result.exit_code == 1
    assert result.stderr.splitlines()[-1] == (
        "stella-mirror: error: 1 of 1 sources failed: kev (parse) (their last good data is kept "
        "and the next snapshot records the failure)"
    )
    built = runner.invoke(cli, ["--home", str(home), "--json", "snapshot", "build"])
    [kev] = json.loads(built.stdout)["sources"]
    assert kev == {"name": "kev", "status": "stale"}
