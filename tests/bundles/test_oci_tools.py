"""Interoperability with the real tools an operator meets: umoci and skopeo."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from bundles import canonical
from bundles.digest import Digest
from bundles.oci import ImageManifest, OCILayout
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03
from tests.bundles.oci_helpers import attach, build_image, require_tool, run

pytestmark = pytest.mark.tools


def _check_image(layout: OCILayout, tag: str, files: dict[str, bytes]) -> None:
    """Tag resolves; manifest, config and every layer are present, verified, consistent."""
    stored = layout.get_manifest(layout.resolve(tag))
    manifest = stored.manifest
    assert isinstance(manifest, ImageManifest)
    config = canonical.loads(layout.read_blob(manifest.config.digest))
    assert config["os"] == "linux"
    assert config["architecture"]
    assert len(config["rootfs"]["diff_ids"]) == len(manifest.layers)
    seen: dict[str, bytes] = {}
    for layer, diff_id in zip(manifest.layers, config["rootfs"]["diff_ids"], strict=True):
        with layout.open_blob(layer.digest) as fh, gzip.GzipFile(fileobj=fh) as gz:
            tar_bytes = gz.read()
        assert str(Digest.of_bytes(tar_bytes)) == diff_id
        with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
            for member in tar.getmembers():
                extracted = tar.extractfile(member) if member.isfile() else None
                if extracted is not None:
                    seen[member.name.removeprefix("./").lstrip("/")] = extracted.read()
    for name, data in files.items():
        assert seen[name] == data
    report = layout.verify()
    assert report.ok, report
    assert report.checked >= 2 + len(manifest.layers)


@pytest.fixture(scope="module")
def umoci_layout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    umoci = require_tool("umoci")
    work = tmp_path_factory.mktemp("umoci")
    layout = work / "layout"
    run(umoci, "init", "--layout", str(layout))
    run(umoci, "new", "--image", f"{layout}:latest")
    # unpack + repack rather than `umoci insert`: umoci 0.4's insert writes a tar without its
    # end-of-archive blocks, which strict tar readers (GNU tar, Python's tarfile) refuse.
    bundle = work / "bundle"
    run(umoci, "unpack", "--image", f"{layout}:latest", str(bundle))
    (bundle / "rootfs" / "etc").mkdir(parents=True, exist_ok=True)
    (bundle / "rootfs" / "etc" / "hello").write_bytes(b"hello from umoci\n")
    run(umoci, "repack", "--image", f"{layout}:latest", str(bundle))
    run(umoci, "tag", "--image", f"{layout}:latest", "stable")
    return layout


def test_reads_a_layout_written_by_umoci(umoci_layout: Path) -> None:
    layout = OCILayout.open(umoci_layout)
    assert list(layout.tags()) == ["latest", "stable"]
    assert layout.resolve("latest").digest == layout.resolve("stable").digest
    _check_image(layout, "latest", {"etc/hello": b"hello from umoci\n"})


def test_reads_a_layout_written_by_skopeo(umoci_layout: Path, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    target = tmp_path / "copied"
    run(skopeo, "copy", "--quiet", f"oci:{umoci_layout}:latest", f"oci:{target}:v1")
    run(skopeo, "copy", "--quiet", f"oci:{umoci_layout}:stable", f"oci:{target}:v2")
    layout = OCILayout.open(target)
    assert list(layout.tags()) == ["v1", "v2"]
    _check_image(layout, "v1", {"etc/hello": b"hello from umoci\n"})
    original = OCILayout.open(umoci_layout).resolve("latest")
    assert layout.resolve("v1").digest == original.digest


@pytest.fixture
def ours(tmp_path: Path) -> OCILayout:
    layout = OCILayout.init(tmp_path / "ours")
    image = build_image(layout, {"etc/hello": b"hi from stella\n", "usr/bin/tool": b"#!"}, tag="v1")
    attach(layout, image.manifest, b'{"rva":true}', artifact_type=SIGSTORE_BUNDLE_V03)
    build_image(layout, {"second": b"2"}, tag="second")
    return layout


def test_skopeo_inspects_our_layout(ours: OCILayout) -> None:
    skopeo = require_tool("skopeo")
    descriptor = ours.resolve("v1")
    info = json.loads(run(skopeo, "inspect", f"oci:{ours.path}:v1"))
    assert info["Digest"] == str(descriptor.digest)
    assert info["Os"] == "linux"
    assert info["Architecture"] == "amd64"
    manifest = ours.get_manifest(descriptor).manifest
    assert isinstance(manifest, ImageManifest)
    assert info["Layers"] == [str(layer.digest) for layer in manifest.layers]
    raw = run(skopeo, "inspect", "--raw", f"oci:{ours.path}:v1").encode()
    assert raw == ours.get_manifest(descriptor).raw


def test_umoci_lists_and_unpacks_our_layout(ours: OCILayout, tmp_path: Path) -> None:
    umoci = require_tool("umoci")
    listed = run(umoci, "ls", "--layout", str(ours.path)).split()
    assert sorted(listed) == ["second", "v1"]
    bundle = tmp_path / "bundle"
    run(umoci, "unpack", "--image", f"{ours.path}:v1", str(bundle))
    assert (bundle / "rootfs" / "etc" / "hello").read_bytes() == b"hi from stella\n"
    assert (bundle / "config.json").is_file()


def test_skopeo_copies_our_layout_and_keeps_our_referrers(ours: OCILayout, tmp_path: Path) -> None:
    skopeo = require_tool("skopeo")
    other = tmp_path / "other"
    run(skopeo, "copy", "--quiet", f"oci:{ours.path}:v1", f"oci:{other}:v1")
    copied = OCILayout.open(other)
    _check_image(copied, "v1", {"etc/hello": b"hi from stella\n"})
    assert copied.resolve("v1").digest == ours.resolve("v1").digest
    # skopeo rewrites index.json of a layout it writes into; our referrers must survive it.
    subject = ours.resolve("v1").digest
    before = ours.referrers(subject)
    run(skopeo, "copy", "--quiet", f"oci:{other}:v1", f"oci:{ours.path}:from-skopeo")
    reopened = OCILayout.open(ours.path)
    assert reopened.referrers(subject) == before
    assert len(before) == 1
    assert set(reopened.tags()) == {"v1", "second", "from-skopeo"}
    assert reopened.verify().ok


def test_require_tool_fails_loudly_without_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STELLA_ALLOW_SKIP", raising=False)
    with pytest.raises(pytest.fail.Exception) as failed:
        require_tool("stella-no-such-tool")
    assert "'stella-no-such-tool'" in str(failed.value)
    assert "make test" in str(failed.value)
    monkeypatch.setenv("STELLA_ALLOW_SKIP", "1")
    with pytest.raises(pytest.skip.Exception):
        require_tool("stella-no-such-tool")
