from __future__ import annotations

from typing import Any

import pytest

from bundles.digest import Digest
from bundles.oci import Descriptor, DescriptorError, Platform
from bundles.oci.mediatypes import EMPTY_JSON, EMPTY_JSON_DIGEST, OCI_MANIFEST

DIGEST = "sha256:" + "ab" * 32


def test_round_trip_keeps_unknown_fields() -> None:
    doc: dict[str, Any] = {
        "mediaType": OCI_MANIFEST,
        "digest": DIGEST,
        "size": 7,
        "urls": ["https://example.invalid/blob"],
        "data": "e30=",
        "x-vendor": {"nested": [1, 2]},
        "annotations": {"org.opencontainers.image.ref.name": "v1", "a": "b"},
        "artifactType": "application/vnd.example+json",
        "platform": {
            "architecture": "arm64",
            "os": "linux",
            "variant": "v8",
            "os.features": ["x"],
            "features": ["y"],
            "os.version": "1",
            "x-platform-extra": True,
        },
    }
    descriptor = Descriptor.from_dict(doc)
    assert descriptor.to_dict() == doc
    assert descriptor.digest == Digest.parse(DIGEST)
    assert descriptor.ref_name == "v1"
    assert descriptor.platform is not None
    assert str(descriptor.platform) == "linux/arm64/v8"
    assert descriptor.extra["urls"] == ["https://example.invalid/blob"]


def test_descriptor_is_read_only_and_hashable() -> None:
    descriptor = Descriptor(OCI_MANIFEST, Digest.parse(DIGEST), 7, annotations={"a": "b"})
    with pytest.raises(TypeError):
        descriptor.annotations["a"] = "c"  # type: ignore[index]  # read-only at run time too
    assert descriptor in {descriptor}
    assert descriptor.with_annotations({}).annotations == {}
    assert descriptor.annotations == {"a": "b"}


def test_empty_descriptor_constant_is_right() -> None:
    assert str(Digest.of_bytes(EMPTY_JSON)) == EMPTY_JSON_DIGEST


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ("nope", "descriptor must be a JSON object"),
        ({"digest": DIGEST, "size": 1}, "has no 'mediaType' field"),
        ({"mediaType": OCI_MANIFEST, "size": 1}, "has no 'digest' field"),
        ({"mediaType": OCI_MANIFEST, "digest": DIGEST}, "has no 'size' field"),
        ({"mediaType": "not a type", "digest": DIGEST, "size": 1}, "is not a media type"),
        ({"mediaType": OCI_MANIFEST, "digest": "md5:abc", "size": 1}, "field 'digest'"),
        ({"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": -1}, "non-negative integer"),
        ({"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": True}, "non-negative integer"),
        (
            {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 1, "annotations": {"a": 1}},
            "'annotations' must be an object of strings",
        ),
        (
            {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 1, "artifactType": "x"},
            "'artifactType' is not a media type",
        ),
        (
            {"mediaType": OCI_MANIFEST, "digest": DIGEST, "size": 1, "platform": {"os": "linux"}},
            "platform field 'architecture'",
        ),
    ],
)
def test_bad_descriptors_name_their_source(doc: object, message: str) -> None:
    with pytest.raises(DescriptorError) as caught:
        Descriptor.from_dict(doc, source="index.json manifests[3]")
    assert caught.value.message.startswith("index.json manifests[3]: ")
    assert message in caught.value.message


def test_platform_matching() -> None:
    platform = Platform(architecture="arm", os="linux", variant="v7")
    assert platform.matches("linux", "arm")
    assert platform.matches("linux", "arm", "v7")
    assert not platform.matches("linux", "arm", "v6")
    assert not platform.matches("linux", "amd64")
