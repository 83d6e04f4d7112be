from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from bundles import canonical
from bundles.digest import Digest
from bundles.errors import BlobNotFoundError, DigestError, OCILayoutError, SizeLimitError
from bundles.oci import (
    Descriptor,
    DescriptorError,
    ImageIndex,
    ImageManifest,
    NotALayoutError,
    OCILayout,
    PlatformNotFoundError,
    TagNotFoundError,
)
from bundles.oci.mediatypes import ANNOTATION_REF_NAME, OCI_INDEX, OCI_MANIFEST
from tests.bundles.oci_helpers import build_image

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    return OCILayout.init(tmp_path / "layout")


def _blob_files(layout: OCILayout) -> list[str]:
    return sorted(p.name for p in (layout.path / "blobs" / "sha256").iterdir())


def _tmp_files(layout: OCILayout) -> list[str]:
    tmp = layout.path / ".stella" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


# ------------------------------------------------------------------ init and open


def test_init_writes_a_spec_layout(tmp_path: Path) -> None:
    layout = OCILayout.init(tmp_path / "new")
    assert json.loads((layout.path / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout.path / "index.json").read_bytes())
    assert index == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}
    assert (layout.path / "blobs" / "sha256").is_dir()
    assert layout.tags() == {}
    assert OCILayout.open(layout.path).path == layout.path


def test_init_refuses_existing_or_nonempty(tmp_path: Path) -> None:
    layout = OCILayout.init(tmp_path / "l")
    with pytest.raises(OCILayoutError, match="already an OCI image layout"):
        OCILayout.init(layout.path)
    assert OCILayout.init(layout.path, exist_ok=True).path == layout.path
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "file").write_text("x")
    with pytest.raises(OCILayoutError, match="not an empty directory"):
        OCILayout.init(tmp_path / "busy")


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ({}, "no oci-layout file"),
        ({"oci-layout": b"{"}, "not valid JSON"),
        ({"oci-layout": b'{"imageLayoutVersion":"2.0.0"}'}, "imageLayoutVersion is '2.0.0'"),
        ({"oci-layout": b"[]"}, "imageLayoutVersion is None"),
        ({"oci-layout": b'{"imageLayoutVersion":"1.0.0"}'}, "index.json is missing"),
        (
            {"oci-layout": b'{"imageLayoutVersion":"1.0.0"}', "index.json": b"{}"},
            "blobs is missing",
        ),
    ],
)
def test_open_refuses_what_is_not_a_layout(
    tmp_path: Path, setup: dict[str, bytes], message: str
) -> None:
    root = tmp_path / "dir"
    root.mkdir()
    for name, data in setup.items():
        (root / name).write_bytes(data)
    with pytest.raises(NotALayoutError) as caught:
        OCILayout.open(root)
    assert message in caught.value.message
    assert str(root) in caught.value.message


def test_open_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(NotALayoutError, match="no such directory"):
        OCILayout.open(tmp_path / "absent")


# ------------------------------------------------------------------ blobs


def test_put_blob_from_bytes_and_stream(layout: OCILayout) -> None:
    data = b"hello layer"
    descriptor = layout.put_blob(data, expected=Digest.of_bytes(data), size=len(data))
    assert descriptor.digest == Digest.of_bytes(data)
    assert descriptor.size == len(data)
    assert layout.has_blob(descriptor.digest)
    assert layout.blob_size(descriptor.digest) == len(data)
    assert layout.read_blob(descriptor.digest) == data
    with layout.open_blob(descriptor.digest) as fh:
        assert fh.read() == data
    big = os.urandom(3 << 20)
    streamed = layout.put_blob(io.BytesIO(big), expected=Digest.of_bytes(big))
    assert layout.read_blob(streamed.digest) == big
    assert _tmp_files(layout) == []
    assert (layout.blob_path(streamed.digest).stat().st_mode & 0o777) == 0o644


def test_put_blob_is_idempotent(layout: OCILayout) -> None:
    first = layout.put_blob(b"same", media_type="text/plain")
    second = layout.put_blob(b"same", media_type="text/plain")
    third = layout.put_blob(io.BytesIO(b"ignored"), expected=first.digest, size=4)
    assert first == second
    assert third.digest == first.digest
    assert _blob_files(layout) == [first.digest.hex]
    with pytest.raises(SizeLimitError, match="but 5 were declared"):
        layout.put_blob(b"same!", expected=first.digest, size=5)


@pytest.mark.parametrize("as_stream", [False, True])
def test_mismatched_blob_never_lands(layout: OCILayout, as_stream: bool) -> None:
    claimed = Digest.of_bytes(b"the real thing")
    payload = b"something else entirely"
    data = io.BytesIO(payload) if as_stream else payload
    with pytest.raises(DigestError) as caught:
        layout.put_blob(data, expected=claimed)
    assert str(claimed) in caught.value.message
    assert str(layout.path) in caught.value.message
    assert _blob_files(layout) == []
    assert _tmp_files(layout) == []
    assert not layout.has_blob(claimed)
    assert not layout.has_blob(Digest.of_bytes(payload))


@pytest.mark.parametrize(
    ("data", "size", "limit", "message"),
    [
        (b"12345", 3, 100, "exceeds its size limit of 3"),
        (b"12", 3, 100, "stream is 2 bytes, expected 3"),
        (b"123456", None, 4, "exceeds its size limit of 4"),
        (b"1", 10, 4, "the limit is 4 bytes"),
    ],
)
def test_size_limits_always_apply(
    layout: OCILayout, data: bytes, size: int | None, limit: int, message: str
) -> None:
    with pytest.raises(SizeLimitError) as caught:
        layout.put_blob(io.BytesIO(data), size=size, limit=limit)
    assert message in caught.value.message
    assert _blob_files(layout) == []
    assert _tmp_files(layout) == []


def test_missing_blob_names_digest_and_layout(layout: OCILayout) -> None:
    digest = Digest.of_bytes(b"absent")
    for call in (layout.read_blob, layout.open_blob, layout.blob_size, layout.get_manifest):
        with pytest.raises(BlobNotFoundError) as caught:
            call(digest)
        assert str(digest) in caught.value.message
        assert str(layout.path) in caught.value.message


def test_corrupt_blob_is_detected_on_read(layout: OCILayout) -> None:
    descriptor = layout.put_blob(b"original content")
    path = layout.blob_path(descriptor.digest)
    path.chmod(0o644)
    path.write_bytes(b"tampered content")
    with pytest.raises(DigestError, match="is corrupt"):
        layout.read_blob(descriptor.digest)
    with layout.open_blob(descriptor.digest) as fh:
        assert fh.read(4) == b"tamp"
        with pytest.raises(DigestError, match="is corrupt"):
            fh.read()
    report = layout.verify()
    assert not report.ok
    assert [p.path for p in report.bad] == [path]
    with pytest.raises(SizeLimitError, match="over the read limit"):
        layout.read_blob(descriptor.digest, limit=3)


# ------------------------------------------------------------------ manifests


def test_put_manifest_keeps_exact_bytes(layout: OCILayout) -> None:
    image = build_image(layout, {"etc/hello": b"hi\n"})
    # Same manifest, different (non-canonical) spelling: a different blob, stored as given.
    doc = json.loads(image.raw_manifest)
    raw = json.dumps(doc, indent=3, sort_keys=False).encode() + b"\n"
    descriptor = layout.put_manifest(raw, OCI_MANIFEST)
    stored = layout.get_manifest(descriptor)
    assert stored.raw == raw
    assert layout.read_blob(descriptor.digest) == raw
    assert isinstance(stored.manifest, ImageManifest)
    assert stored.manifest.config.digest == image.config.digest
    by_digest = layout.get_manifest(descriptor.digest)
    assert by_digest.descriptor.media_type == OCI_MANIFEST
    assert by_digest.raw == raw


def test_put_manifest_checks_references(layout: OCILayout) -> None:
    missing = Digest.of_bytes(b"never stored")
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": str(missing),
            "size": 12,
        },
        "layers": [],
    }
    raw = canonical.dumps(doc)
    with pytest.raises(BlobNotFoundError, match=str(missing)):
        layout.put_manifest(raw, OCI_MANIFEST)
    assert not layout.has_blob(Digest.of_bytes(raw))
    assert layout.put_manifest(raw, OCI_MANIFEST, check_references=False).digest == Digest.of_bytes(
        raw
    )


def test_get_manifest_checks_descriptor_size(layout: OCILayout) -> None:
    image = build_image(layout, {"a": b"a"})
    wrong = Descriptor(OCI_MANIFEST, image.manifest.digest, image.manifest.size + 1)
    with pytest.raises(DescriptorError, match="says size"):
        layout.get_manifest(wrong)


def _multi_platform(layout: OCILayout) -> tuple[Descriptor, dict[str, Descriptor]]:
    images = {
        arch: build_image(layout, {"arch": arch.encode()}, architecture=arch)
        for arch in ("amd64", "arm64")
    }
    entries = []
    for arch, image in images.items():
        entry = image.manifest.to_dict()
        entry["platform"] = {"architecture": arch, "os": "linux"}
        entries.append(entry)
    nested = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entries[1]]}
    nested_desc = layout.put_manifest(canonical.dumps(nested), OCI_INDEX)
    top = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [entries[0], nested_desc.to_dict()],
    }
    return layout.put_manifest(canonical.dumps(top), OCI_INDEX), {
        a: i.manifest for a, i in images.items()
    }


def test_index_walk_and_platform_resolution(layout: OCILayout) -> None:
    index, manifests = _multi_platform(layout)
    walked = list(layout.walk(index))
    assert [type(s.manifest) for s in walked] == [
        ImageIndex,
        ImageManifest,
        ImageIndex,
        ImageManifest,
    ]
    assert layout.resolve_platform(index).digest == manifests["amd64"].digest
    arm = layout.resolve_platform(index, architecture="arm64")
    assert arm.digest == manifests["arm64"].digest
    assert arm.platform is not None
    assert arm.platform.architecture == "arm64"
    assert layout.resolve_platform(manifests["amd64"]) == manifests["amd64"]
    with pytest.raises(PlatformNotFoundError) as caught:
        layout.resolve_platform(index, architecture="s390x")
    assert "linux/amd64, linux/arm64" in (caught.value.hint or "")


# ------------------------------------------------------------------ tags


def test_tags_in_index_json(layout: OCILayout) -> None:
    one = build_image(layout, {"one": b"1"}, tag="app:1")
    two = build_image(layout, {"two": b"2"}, tag="other")
    assert list(layout.tags()) == ["app:1", "other"]
    assert layout.resolve("app:1").digest == one.manifest.digest
    assert layout.resolve("other").digest == two.manifest.digest
    # Re-pointing a tag replaces it.
    layout.tag("app:1", two.manifest)
    assert layout.resolve("app:1").digest == two.manifest.digest
    assert len(layout.entries()) == 2
    entry = json.loads((layout.path / "index.json").read_bytes())["manifests"][-1]
    assert entry["annotations"] == {ANNOTATION_REF_NAME: "app:1"}
    assert layout.untag("app:1").digest == two.manifest.digest
    assert list(layout.tags()) == ["other"]
    assert layout.has_blob(one.manifest.digest)
    with pytest.raises(TagNotFoundError) as caught:
        layout.resolve("app:1")
    assert "known tags: other" in (caught.value.hint or "")
    with pytest.raises(TagNotFoundError):
        layout.untag("app:1")
    assert layout.resolve(str(two.manifest.digest)).digest == two.manifest.digest
    assert layout.resolve(str(one.manifest.digest)).digest == one.manifest.digest


@pytest.mark.parametrize("name", ["", "-x", "a b", "a//b", "x/", "ünïcode", "a---b"])
def test_bad_tag_names(layout: OCILayout, name: str) -> None:
    image = build_image(layout, {"a": b"a"})
    with pytest.raises(OCILayoutError, match="invalid tag"):
        layout.tag(name, image.manifest)


def test_tag_refuses_missing_or_wrong_size_target(layout: OCILayout) -> None:
    with pytest.raises(BlobNotFoundError):
        layout.tag("x", Descriptor(OCI_MANIFEST, Digest.of_bytes(b"nope"), 4))
    image = build_image(layout, {"a": b"a"})
    with pytest.raises(DescriptorError, match="descriptor says"):
        layout.tag("x", Descriptor(OCI_MANIFEST, image.manifest.digest, 1))


def test_unknown_index_fields_survive_updates(layout: OCILayout) -> None:
    image = build_image(layout, {"a": b"a"})
    foreign_entry = {
        "mediaType": OCI_MANIFEST,
        "digest": str(image.manifest.digest),
        "size": image.manifest.size,
        "annotations": {},
        "x-entry": [1, {"deep": True}],
    }
    doc = {
        "schemaVersion": 2,
        "manifests": [foreign_entry],
        "annotations": {"org.example": "kept"},
        "x-top": "kept too",
    }
    (layout.path / "index.json").write_text(json.dumps(doc, indent=2))
    layout.tag("v1", image.manifest)
    after = json.loads((layout.path / "index.json").read_bytes())
    assert after["x-top"] == "kept too"
    assert after["annotations"] == {"org.example": "kept"}
    assert after["manifests"][0] == foreign_entry
    assert "mediaType" not in after


def test_ambiguous_tag_written_by_another_tool_is_refused(layout: OCILayout) -> None:
    one = build_image(layout, {"1": b"1"}).manifest
    two = build_image(layout, {"2": b"2"}).manifest
    entries = [d.with_annotations({ANNOTATION_REF_NAME: "dup"}).to_dict() for d in (one, two)]
    (layout.path / "index.json").write_bytes(
        canonical.dumps({"schemaVersion": 2, "manifests": entries})
    )
    with pytest.raises(OCILayoutError, match="names 2 different manifests"):
        layout.resolve("dup")


_TAGGER = """
import sys
from pathlib import Path
from bundles.oci import OCILayout
layout = OCILayout.open(Path(sys.argv[1]))
target = layout.resolve("base")
for i in range(int(sys.argv[3])):
    layout.tag(f"{sys.argv[2]}-{i}", target)
"""


def test_concurrent_taggers_lose_nothing(layout: OCILayout) -> None:
    build_image(layout, {"a": b"a"}, tag="base")
    count = 40
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TAGGER, str(layout.path), name, str(count)], cwd=REPO_ROOT
        )
        for name in ("left", "right", "middle")
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    tags = layout.tags()
    assert len(tags) == 1 + 3 * count
    assert {f"right-{i}" for i in range(count)} <= set(tags)
    assert _tmp_files(layout) == []


# ------------------------------------------------------------------ reachability and verify


def test_reachability_and_verify(layout: OCILayout) -> None:
    image = build_image(layout, {"etc/hello": b"hi\n"}, tag="v1")
    index, manifests = _multi_platform(layout)
    layout.tag("multi", index)
    unreferenced = layout.put_blob(b"garbage nobody points at")
    reach = layout.reachable()
    assert {image.manifest.digest, image.config.digest, image.layer.digest} <= reach.blobs
    assert manifests["arm64"].digest in reach.blobs
    assert unreferenced.digest not in reach.blobs
    assert reach.missing == frozenset()
    report = layout.verify()
    assert report.ok
    assert report.checked == len(_blob_files(layout))
    layout.blob_path(image.layer.digest).unlink()
    assert layout.reachable().missing == frozenset({image.layer.digest})
    assert layout.verify().missing == (image.layer.digest,)


def test_layer_stream_matches_config_diff_id(layout: OCILayout) -> None:
    image = build_image(layout, {"etc/hello": b"hi\n"})
    with layout.open_blob(image.layer.digest) as fh, gzip.GzipFile(fileobj=fh) as gz:
        tar_bytes = gz.read()
    assert Digest.of_bytes(tar_bytes) == image.diff_id
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        member = tar.extractfile("etc/hello")
        assert member is not None
        assert member.read() == b"hi\n"
