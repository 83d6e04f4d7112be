from __future__ import annotations

import json

import pytest

from bundles.digest import Digest
from bundles.oci import (
    Descriptor,
    ImageIndex,
    ImageManifest,
    ManifestError,
    parse_manifest,
    referrer_descriptor,
)
from bundles.oci.mediatypes import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_CONFIG,
    OCI_EMPTY,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)

D1 = "sha256:" + "11" * 32
D2 = "sha256:" + "22" * 32
D3 = "sha256:" + "33" * 32


def _manifest(**extra: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "schemaVersion": 2,
        "config": {"mediaType": OCI_CONFIG, "digest": D1, "size": 10},
        "layers": [{"mediaType": OCI_LAYER_GZIP, "digest": D2, "size": 20}],
    }
    doc.update(extra)
    return doc


def test_manifest_without_media_type_field_is_recognized() -> None:
    # umoci 0.4 writes manifests without the (optional) mediaType field.
    parsed = parse_manifest(json.dumps(_manifest()).encode())
    assert isinstance(parsed, ImageManifest)
    assert parsed.media_type == OCI_MANIFEST
    assert [c.digest for c in parsed.children()] == [Digest.parse(D1), Digest.parse(D2)]
    assert parsed.subject is None


def test_index_and_docker_list() -> None:
    doc = {"schemaVersion": 2, "manifests": [{"mediaType": OCI_MANIFEST, "digest": D1, "size": 3}]}
    assert isinstance(parse_manifest(json.dumps(doc).encode()), ImageIndex)
    listed = parse_manifest(json.dumps(doc).encode(), DOCKER_MANIFEST_LIST)
    assert isinstance(listed, ImageIndex)
    assert listed.media_type == DOCKER_MANIFEST_LIST
    docker = parse_manifest(json.dumps(_manifest(mediaType=DOCKER_MANIFEST)).encode())
    assert docker.media_type == DOCKER_MANIFEST


def test_referrer_fields_and_effective_artifact_type() -> None:
    subject = {"mediaType": OCI_MANIFEST, "digest": D3, "size": 5}
    doc = _manifest(subject=subject, annotations={"k": "v"})
    doc["config"] = {"mediaType": "application/vnd.example.config+json", "digest": D1, "size": 2}
    parsed = parse_manifest(json.dumps(doc).encode(), OCI_MANIFEST)
    assert parsed.subject == Descriptor.from_dict(subject)
    assert parsed.effective_artifact_type == "application/vnd.example.config+json"
    described = referrer_descriptor(Descriptor(OCI_MANIFEST, Digest.parse(D2), 99), parsed)
    assert described.artifact_type == "application/vnd.example.config+json"
    assert described.annotations == {"k": "v"}
    doc["config"] = {"mediaType": OCI_EMPTY, "digest": D1, "size": 2}
    doc["artifactType"] = "application/vnd.example.sbom+json"
    parsed = parse_manifest(json.dumps(doc).encode(), OCI_MANIFEST)
    assert parsed.effective_artifact_type == "application/vnd.example.sbom+json"


@pytest.mark.parametrize(
    ("raw", "media_type", "message"),
    [
        (b"[]", None, "must be a JSON object"),
        (b"{", None, "not valid JSON"),
        (b'{"schemaVersion":2,"schemaVersion":2}', None, "duplicate JSON object key"),
        (json.dumps(_manifest(schemaVersion=1)).encode(), None, "schemaVersion is 1"),
        (json.dumps({"schemaVersion": 2}).encode(), None, "neither a manifest"),
        (
            json.dumps(_manifest(mediaType=OCI_MANIFEST)).encode(),
            OCI_INDEX,
            "but its descriptor says",
        ),
        (json.dumps(_manifest()).encode(), "application/json", "is not an image manifest"),
        (json.dumps(_manifest(layers={})).encode(), None, "'layers' must be an array"),
        (
            json.dumps(_manifest(config={"digest": D1, "size": 1})).encode(),
            None,
            "config: descriptor has no 'mediaType'",
        ),
        (b" " * (4 << 20) + b"{}", None, "exceeds the JSON size limit"),
    ],
)
def test_bad_manifests(raw: bytes, media_type: str | None, message: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(raw, media_type, source="blob X")
    assert message in caught.value.message
    assert "blob X" in caught.value.message
