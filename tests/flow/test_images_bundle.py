"""Mirrored images cross the gap inside the bundle: blobs verified, tags and referrers kept;
a delta omits the blobs its base carried, and an appliance without them refuses it."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from bundles.errors import OCILayoutError
from bundles.oci import OCILayout
from tests.bundles.oci_helpers import attach, build_image
from tests.flow.conftest import Appliance, Mirror, copy_home, rewrite_bundle

REF = "registry.example/team/app:1.0"


@pytest.fixture(scope="module")
def image_mirror(mirror: Mirror, tmp_path_factory: pytest.TempPathFactory) -> Mirror:
    """A copy of the mirror workspace with one image (and a signature referrer) mirrored."""
    root = tmp_path_factory.mktemp("imirror")
    home = root / "home"
    copy_home(mirror.home, home)
    layout = OCILayout.init(home / "mirror" / "oci", exist_ok=True)
    image = build_image(
        layout, {"etc/os-release": b"ID=debian\n", "app/big": os.urandom(300_000)}, tag=REF
    )
    attach(
        layout,
        image.manifest,
        b'{"sig": 1}',
        artifact_type="application/vnd.dev.sigstore.bundle.v0.3+json",
    )
    return Mirror(home=home, keys=mirror.keys, feeds=mirror.feeds, snapshots=list(mirror.snapshots))


def test_images_travel_with_tags_and_referrers(
    image_mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    s0, s1, _ = image_mirror.snapshots
    full = tmp_path / "full.stella.tar.zst"
    image_mirror.export(full, "--snapshot", s0, "--sequence", "1")
    result = appliance.run("import", str(full))
    assert result["blobsStored"] >= 5  # layer, config, manifest, referrer manifest + its blobs
    store = OCILayout.open(appliance.home / "oci")
    assert REF in store.tags()
    tagged = store.tags()[REF]
    assert len(store.referrers(tagged.digest)) == 1
    assert store.verify().ok

    delta = tmp_path / "delta.stella.tar.zst"
    out = image_mirror.export(delta, "--snapshot", s1, "--base", s0, "--sequence", "2")
    assert delta.stat().st_size < 50_000  # the 300 kB layer is not carried again
    assert out["kind"] == "delta"
    assert appliance.run("import", str(delta))["snapshot"] == s1


def test_delta_without_the_base_blobs_is_refused_naming_them(
    image_mirror: Mirror, appliance: Appliance, tmp_path: Path, mirror: Mirror
) -> None:
    s0, s1, _ = image_mirror.snapshots
    # This appliance got the base snapshot from a bundle without images.
    plain = tmp_path / "plain.stella.tar.zst"
    mirror.export(plain, "--snapshot", s0, "--sequence", "1")
    image_mirror.export(tmp_path / "full.stella.tar.zst", "--snapshot", s0, "--sequence", "1")
    delta = tmp_path / "delta.stella.tar.zst"
    image_mirror.export(delta, "--snapshot", s1, "--base", s0, "--sequence", "2")
    appliance.run("import", str(plain))
    code, err = appliance.fail("import", str(delta))
    assert code == 1
    assert "delta needs" in err
    assert "image blob(s) this appliance does not have: sha256:" in err
    assert "first import the full bundle that carried them" in err


def test_refused_after_its_blobs_leaves_the_image_store_as_it_was(
    image_mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    """The blobs sort first and are still syncing when a later dataset member proves
    tampered: the import is refused and none of them, nor a temporary file, is left. (Past
    the importer's PENDING_BLOBS the earliest are already in place: verified, untagged, and
    collected by ``stella gc``.)"""
    s0 = image_mirror.snapshots[0]
    full = tmp_path / "full.stella.tar.zst"
    image_mirror.export(full, "--snapshot", s0, "--sequence", "1")

    def flip(info: tarfile.TarInfo, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
        if info.name.startswith("knowledge/datasets/"):
            data = data.replace(b"CVE-", b"CVE_", 1)
        return info, data

    forged = tmp_path / "forged.stella.tar.zst"
    rewrite_bundle(full, forged, flip)
    code, err = appliance.fail("import", str(forged))
    assert code == 1
    assert "does not match the signed" in err
    store = OCILayout.open(appliance.home / "oci")
    assert store.tags() == {}
    assert [p for p in (store.path / "blobs").rglob("*") if p.is_file()] == []
    assert [p for p in store.path.rglob("*") if p.name.endswith(".tmp")] == []
    assert appliance.run("import", str(full))["blobsStored"] >= 5
    assert store.verify().ok


def test_tags_that_cannot_be_written_refuse_the_bundle_and_keep_the_snapshot(
    image_mirror: Mirror,
    mirror: Mirror,
    appliance: Appliance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Writing the tags is the import's last step before its commit: when it fails the
    refusal is true, the previous snapshot stays active and the bundle can be imported later."""
    s0, s1, _ = image_mirror.snapshots
    plain = tmp_path / "plain.stella.tar.zst"
    mirror.export(plain, "--snapshot", s0, "--sequence", "1")
    appliance.run("import", str(plain))
    full = tmp_path / "full.stella.tar.zst"
    image_mirror.export(full, "--snapshot", s1, "--sequence", "2")

    def full_disk(*args: object, **kwargs: object) -> None:
        raise OCILayoutError("cannot write index.json: No space left on device")

    with monkeypatch.context() as m:
        m.setattr(OCILayout, "tag", full_disk)
        code, err = appliance.fail("import", str(full))
    assert code == 1
    assert "No space left on device" in err
    assert appliance.active() == s0
    assert [r["action"] for r in appliance.run("audit", "list")["records"]][-1] == (
        "import.refused"
    )
    assert appliance.run("import", str(full))["snapshot"] == s1
    assert REF in OCILayout.open(appliance.home / "oci").tags()


def test_a_blob_kept_from_a_refused_import_is_young_again_when_reused(
    image_mirror: Mirror, appliance: Appliance, tmp_path: Path
) -> None:
    """``stella gc`` spares young unreferenced blobs: one an import reuses (skipping its
    write) is touched, so gc cannot take it before the import tags it."""
    s0 = image_mirror.snapshots[0]
    full = tmp_path / "full.stella.tar.zst"
    image_mirror.export(full, "--snapshot", s0, "--sequence", "1")
    blobs = (image_mirror.home / "mirror" / "oci" / "blobs" / "sha256").iterdir()
    layer = max(blobs, key=lambda b: b.stat().st_size)  # the 300 kB layer
    store = OCILayout.init(appliance.home / "oci", exist_ok=True)
    kept = store.put_blob(layer.read_bytes()).digest
    old = 1_000_000_000  # 2001: far past any grace period
    os.utime(store.blob_path(kept), (old, old))
    appliance.run("import", str(full))
    assert store.blob_path(kept).stat().st_mtime > old + 3600
