from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bundles import canonical
from bundles.digest import Digest
from bundles.oci import Descriptor, ImageManifest, Node, OCILayout
from bundles.oci.mediatypes import OCI_INDEX, OCI_MANIFEST, SIGSTORE_BUNDLE_V03
from tests.bundles.oci_helpers import attach, build_image

SBOM_CONFIG = "application/vnd.example.sbom.config+json"
PREDICATE = "dev.sigstore.bundle.predicateType"


class CountingLayout(OCILayout):
    """Counts manifests read to build the referrers graph."""

    scans = 0

    def _scan(self, descriptor: Descriptor) -> Node:
        type(self).scans += 1
        return OCILayout._scan(self, descriptor)


@pytest.fixture
def layout(tmp_path: Path) -> OCILayout:
    return OCILayout.init(tmp_path / "layout")


def _cache(layout: OCILayout) -> Path:
    return layout.path / ".stella" / "manifests.json"


def test_referrers_with_and_without_filter(layout: OCILayout) -> None:
    image = build_image(layout, {"etc/hello": b"hi\n"}, tag="v1").manifest
    other = build_image(layout, {"other": b"x"}, tag="v2").manifest
    rva = attach(
        layout,
        image,
        b'{"bundle":"rva"}',
        artifact_type=SIGSTORE_BUNDLE_V03,
        annotations={PREDICATE: "https://stella-ops.org/attestations/risk-verdict/v1"},
    )
    sbom = attach(layout, image, b'{"bom":1}', artifact_type=None, config_type=SBOM_CONFIG)
    attach(layout, other, b'{"bundle":"other"}', artifact_type=SIGSTORE_BUNDLE_V03)

    assert rva.artifact_type == SIGSTORE_BUNDLE_V03
    assert sbom.artifact_type == SBOM_CONFIG  # no artifactType: the config's media type

    found = layout.referrers(image.digest)
    assert [d.digest for d in found] == sorted([rva.digest, sbom.digest])
    by_digest = {d.digest: d for d in found}
    assert by_digest[rva.digest] == Descriptor(
        OCI_MANIFEST,
        rva.digest,
        rva.size,
        annotations={PREDICATE: "https://stella-ops.org/attestations/risk-verdict/v1"},
        artifact_type=SIGSTORE_BUNDLE_V03,
    )
    assert by_digest[sbom.digest].artifact_type == SBOM_CONFIG
    assert by_digest[sbom.digest].annotations == {}

    assert [d.digest for d in layout.referrers(image.digest, artifact_type=SBOM_CONFIG)] == [
        sbom.digest
    ]
    assert [
        d.digest for d in layout.referrers(image.digest, artifact_type=SIGSTORE_BUNDLE_V03)
    ] == [rva.digest]
    assert layout.referrers(image.digest, artifact_type="application/x-none") == []
    assert layout.referrers(Digest.of_bytes(b"no such subject")) == []
    assert len(layout.referrers(other.digest)) == 1


def test_referrers_are_untagged_index_entries(layout: OCILayout) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    rva = attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    again = attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    assert again.digest == rva.digest
    entries = json.loads((layout.path / "index.json").read_bytes())["manifests"]
    untagged = [e for e in entries if "annotations" not in e]
    assert untagged == [rva.to_dict()]
    assert untagged[0]["artifactType"] == SIGSTORE_BUNDLE_V03
    assert list(layout.tags()) == ["v1"]
    assert rva.digest in layout.reachable().blobs
    # Untagging the image keeps its referrer reachable.
    layout.untag("v1")
    assert rva.digest in layout.reachable().blobs
    assert [d.digest for d in layout.referrers(image.digest)] == [rva.digest]


def test_query_reads_no_manifest_when_the_cache_is_fresh(layout: OCILayout) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    for i in range(5):
        attach(layout, image, f'{{"n":{i}}}'.encode(), artifact_type=SIGSTORE_BUNDLE_V03)
    CountingLayout.scans = 0
    fresh = CountingLayout(layout.path)
    assert len(fresh.referrers(image.digest)) == 5
    assert CountingLayout.scans == 0
    # Adding one referrer through another instance re-reads only that manifest.
    attach(layout, image, b'{"n":"new"}', artifact_type=SIGSTORE_BUNDLE_V03)
    assert len(CountingLayout(layout.path).referrers(image.digest)) == 6
    assert CountingLayout.scans == 0  # the writer refreshed the cache under the lock


@pytest.mark.parametrize("damage", ["delete", "garbage", "wrong-version"])
def test_missing_or_damaged_cache_is_rebuilt(layout: OCILayout, damage: str) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    rva = attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    cache = _cache(layout)
    if damage == "delete":
        cache.unlink()
    elif damage == "garbage":
        cache.write_bytes(b"\x00not json")
    else:
        cache.write_bytes(canonical.dumps({"version": 99}))
    reopened = OCILayout.open(layout.path)
    assert [d.digest for d in reopened.referrers(image.digest)] == [rva.digest]
    assert json.loads(cache.read_bytes())["version"] == 1


def test_index_rewritten_by_another_tool_makes_the_cache_stale(layout: OCILayout) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    assert len(layout.referrers(image.digest)) == 1
    doc = json.loads((layout.path / "index.json").read_bytes())
    doc["manifests"] = [e for e in doc["manifests"] if "annotations" in e]
    (layout.path / "index.json").write_text(json.dumps(doc, indent=1))
    assert OCILayout.open(layout.path).referrers(image.digest) == []
    assert layout.referrers(image.digest) == []  # the same instance notices as well


def test_layout_written_by_another_tool(tmp_path: Path) -> None:
    """A layout with no cache, referrers recorded as an untagged index.json entry and inside a
    ``sha256-<hex>`` fallback-tag index (the distribution-spec fallback)."""
    scratch = OCILayout.init(tmp_path / "scratch")
    image = build_image(scratch, {"a": b"a"}).manifest
    direct = attach(scratch, image, b'{"one":1}', artifact_type=SIGSTORE_BUNDLE_V03)
    via_tag = attach(scratch, image, b'{"two":2}', artifact_type="application/vnd.example+json")
    fallback = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [via_tag.to_dict()],
    }
    fallback_desc = scratch.put_blob(canonical.dumps(fallback), media_type=OCI_INDEX)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    shutil.copytree(scratch.path / "blobs", foreign / "blobs")
    (foreign / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    index = {
        "schemaVersion": 2,
        "manifests": [
            image.with_annotations({"org.opencontainers.image.ref.name": "latest"}).to_dict(),
            direct.to_dict(),
            fallback_desc.with_annotations(
                {"org.opencontainers.image.ref.name": f"sha256-{image.digest.hex}"}
            ).to_dict(),
        ],
    }
    (foreign / "index.json").write_text(json.dumps(index))
    layout = OCILayout.open(foreign)
    assert not (foreign / ".stella").exists()
    found = layout.referrers(image.digest)
    assert {d.digest for d in found} == {direct.digest, via_tag.digest}
    assert {d.artifact_type for d in found} == {SIGSTORE_BUNDLE_V03, "application/vnd.example+json"}
    assert _cache(layout).is_file()


def test_verify_rebuilds_a_cache_that_lies(layout: OCILayout) -> None:
    image = build_image(layout, {"a": b"a"}, tag="v1").manifest
    rva = attach(layout, image, b"{}", artifact_type=SIGSTORE_BUNDLE_V03)
    cache = _cache(layout)
    doc = json.loads(cache.read_bytes())
    del doc["manifests"][str(rva.digest)]["subject"]  # hide the referrer
    cache.write_bytes(canonical.dumps(doc))
    assert OCILayout.open(layout.path).referrers(image.digest) == []
    report = OCILayout.open(layout.path).verify()
    assert [p.path for p in report.bad] == [cache]
    assert [d.digest for d in OCILayout.open(layout.path).referrers(image.digest)] == [rva.digest]


def test_batch_keeps_blobs_out_of_blobs_until_it_ends(layout: OCILayout) -> None:
    """Inside a batch, blobs are readable from this object but enter ``blobs/`` (synced)
    only when the block ends, and only then are its referrers listed in ``index.json``."""
    image = build_image(layout, {"etc/hello": b"hi\n"}, tag="v1").manifest
    before = (layout.path / "index.json").read_bytes()
    with layout.batch():
        referrer = attach(layout, image, b'{"bundle":1}', artifact_type=SIGSTORE_BUNDLE_V03)
        payload = Digest.of_bytes(b'{"bundle":1}')
        assert layout.has_blob(payload)
        assert layout.has_blob(referrer.digest)
        assert layout.read_blob(payload) == b'{"bundle":1}'
        assert layout.get_manifest(referrer).descriptor.digest == referrer.digest
        assert not layout.blob_path(payload).exists()
        assert not layout.blob_path(referrer.digest).exists()
        assert layout.put_blob(b'{"bundle":1}').digest == payload  # stored once
        assert (layout.path / "index.json").read_bytes() == before
    assert layout.blob_path(payload).read_bytes() == b'{"bundle":1}'
    assert layout.blob_path(referrer.digest).is_file()
    assert [r.digest for r in layout.referrers(image.digest)] == [referrer.digest]
    assert not list((layout.path / ".stella" / "tmp").iterdir())


def test_a_tag_inside_a_batch_names_only_durable_blobs(layout: OCILayout) -> None:
    with layout.batch():
        image = build_image(layout, {"etc/hello": b"hi\n"}, tag="v1").manifest
        # index.json names the manifest now: it, its config and its layer are in blobs/
        assert layout.resolve("v1").digest == image.digest
        manifest = layout.get_manifest(image).manifest
        assert isinstance(manifest, ImageManifest)
        for digest in (image.digest, manifest.config.digest, *(x.digest for x in manifest.layers)):
            assert layout.blob_path(digest).is_file(), digest
    assert not list((layout.path / ".stella" / "tmp").iterdir())


def test_batch_left_by_an_error_stores_its_blobs_and_lists_nothing(layout: OCILayout) -> None:
    image = build_image(layout, {"etc/hello": b"hi\n"}, tag="v1").manifest
    stored: list[Descriptor] = []

    def fail() -> None:
        with layout.batch():
            stored.append(attach(layout, image, b'{"bundle":2}', artifact_type=SIGSTORE_BUNDLE_V03))
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        fail()
    (referrer,) = stored
    assert layout.blob_path(referrer.digest).is_file()
    assert layout.referrers(image.digest) == []
    assert not list((layout.path / ".stella" / "tmp").iterdir())
