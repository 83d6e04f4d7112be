"""``stella images load|list|inspect|rm`` and ``stella scan`` through the real command line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from appliance.cli import cli as stella
from bundles import canonical
from bundles.digest import Digest
from bundles.oci import OCILayout
from bundles.oci.manifest import ImageManifest
from bundles.oci.mediatypes import OCI_EMPTY, OCI_MANIFEST, SIGSTORE_BUNDLE_V03
from tests.appliance.scanner.layouts import (
    OS_RELEASE,
    STATUS_BASE,
    F,
    build_image,
    build_index,
    docker_archive,
)

BASE = [F("etc/os-release", OS_RELEASE), F("var/lib/dpkg/status", STATUS_BASE)]


def run(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(stella, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


def ok_json(home: Path, *args: str) -> dict[str, Any]:
    code, out, err = run(home, "--json", *args)
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out)
    return doc


@pytest.fixture
def initialized(home: Path) -> Path:
    assert run(home, "init")[0] == 0
    return home


def add_referrer(layout: OCILayout, subject_tag: str) -> str:
    subject = layout.resolve(subject_tag)
    empty = layout.put_blob(b"{}", media_type=OCI_EMPTY)
    layer = layout.put_blob(b'{"bundle":1}', media_type=SIGSTORE_BUNDLE_V03)
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": SIGSTORE_BUNDLE_V03,
        "config": empty.to_dict(),
        "layers": [layer.to_dict()],
        "subject": {
            "mediaType": subject.media_type,
            "digest": str(subject.digest),
            "size": subject.size,
        },
    }
    return str(layout.put_manifest(canonical.dumps(manifest), OCI_MANIFEST).digest)


def test_load_list_inspect_rm(initialized: Path, tmp_path: Path) -> None:
    layout = build_image(tmp_path / "l", [BASE], tag="app:1.0")
    referrer = add_referrer(layout, "app:1.0")
    loaded = ok_json(initialized, "images", "load", f"oci:{tmp_path / 'l'}")
    assert loaded["name"] == "app:1.0"
    assert loaded["referrers"] == 1
    listed = ok_json(initialized, "images", "list")["images"]
    assert [(i["name"], i["digest"], i["platforms"]) for i in listed] == [
        ("app:1.0", loaded["digest"], ["linux/amd64"])
    ]
    assert listed[0]["size"] > 0
    info = ok_json(initialized, "images", "inspect", "app:1.0")
    assert info["platforms"] == ["linux/amd64"]
    assert len(info["manifests"][0]["layers"]) == 1
    assert [r["digest"] for r in info["referrers"][SIGSTORE_BUNDLE_V03]] == [referrer]
    by_digest = ok_json(initialized, "images", "inspect", f"app@{loaded['digest']}")
    assert by_digest["digest"] == loaded["digest"]
    assert ok_json(initialized, "images", "rm", "app:1.0") == {"untagged": ["app:1.0"]}
    assert ok_json(initialized, "images", "list") == {"images": []}
    store = OCILayout.open(initialized / "oci")
    assert store.has_blob(Digest.parse(loaded["digest"]))  # untagged; blobs stay until gc


def test_load_with_tag_and_multi_platform(initialized: Path, tmp_path: Path) -> None:
    build_index(tmp_path / "l", {"amd64": [BASE], "arm64": [BASE]}, tag="latest")
    named = ok_json(initialized, "images", "load", f"oci:{tmp_path / 'l'}")
    assert named["name"] == "l:latest"
    loaded = ok_json(initialized, "images", "load", f"oci:{tmp_path / 'l'}", "--tag", "multi:2")
    assert loaded["name"] == "multi:2"
    listed = ok_json(initialized, "images", "list")["images"]
    assert listed[0]["platforms"] == ["linux/amd64", "linux/arm64"]
    summary = ok_json(initialized, "scan", "multi:2", "--platform", "linux/arm64")
    assert summary["image"]["platform"] == "linux/arm64"
    assert summary["image"]["otherPlatforms"] == ["linux/amd64"]


def test_load_docker_archive_keeps_config_bytes(initialized: Path, tmp_path: Path) -> None:
    config, digests = docker_archive(tmp_path / "a.tar", [BASE], repo_tag="arch:7")
    loaded = ok_json(initialized, "images", "load", f"docker-archive:{tmp_path / 'a.tar'}")
    assert loaded["name"] == "arch:7"
    store = OCILayout.open(initialized / "oci")
    manifest = store.get_manifest(store.resolve("arch:7")).manifest
    assert isinstance(manifest, ImageManifest)
    assert store.read_blob(manifest.config.digest) == config
    assert [layer.digest for layer in manifest.layers] == digests
    summary = ok_json(initialized, "scan", "arch:7")
    assert summary["packages"] == 3
    assert summary["os"] == "debian-12"


def test_load_refuses_a_damaged_docker_archive(initialized: Path, tmp_path: Path) -> None:
    docker_archive(tmp_path / "a.tar", [BASE])
    data = bytearray((tmp_path / "a.tar").read_bytes())
    at = data.index(b"Package: libc6")
    data[at] ^= 0x20
    (tmp_path / "a.tar").write_bytes(bytes(data))
    code, _, err = run(initialized, "images", "load", f"docker-archive:{tmp_path / 'a.tar'}")
    assert code == 1
    assert "blob refused" in err


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["images", "inspect", "nope:1"], 1, "'nope:1' is not in the local store"),
        (["images", "rm", "nope"], 1, "in the local store"),
        (["images", "load", "dir:/x"], 2, "only oci:DIR[:TAG] and docker-archive:FILE"),
        (["scan", "nope:1"], 1, "is not in the local store"),
        (["scan", "x", "--platform", "linux"], 2, "is not OS/ARCH"),
    ],
)
def test_errors_are_one_line(initialized: Path, args: list[str], code: int, message: str) -> None:
    got, _, err = run(initialized, *args)
    assert got == code
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_scan_formats(initialized: Path, tmp_path: Path) -> None:
    build_image(tmp_path / "l", [BASE], tag="app:1.0")
    ref = f"oci:{tmp_path / 'l'}"
    code, table, err = run(initialized, "scan", ref)
    assert code == 0, err
    lines = table.splitlines()
    assert lines[1].split() == ["TYPE", "NAME", "VERSION", "LAYER", "PATH"]
    assert lines[3].split()[:3] == ["deb", "libc6", "2.36-9+deb12u7"]
    assert lines[3].split()[4] == "/var/lib/dpkg/status"
    code, out, _ = run(initialized, "scan", ref, "--format", "json")
    inventory = json.loads(out)
    assert {p["name"] for p in inventory["packages"]} == {"base-files", "libc6", "login"}
    assert "entryTrace" in inventory
    assert "unknowns" in inventory
    summary = ok_json(
        initialized, "scan", ref, "--format", "cyclonedx", "--out", str(tmp_path / "s.json")
    )
    sbom = (tmp_path / "s.json").read_bytes()
    assert json.loads(sbom)["bomFormat"] == "CycloneDX"
    assert summary["sbomDigest"] == "sha256:" + __import__("hashlib").sha256(sbom).hexdigest()
    assert summary["byType"] == {"deb": 3}
    assert summary["out"] == str(tmp_path / "s.json")
