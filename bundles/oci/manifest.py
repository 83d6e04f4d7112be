"""Read-only views of image manifests and indexes (image-spec v1.1 manifest.md, image-index.md).

The bytes of a manifest are its identity, so a view never replaces them: stores keep the raw
bytes and parse them only to learn what they point at (config, layers, children, ``subject``)
and how they describe themselves (``artifactType``, annotations). Docker schema 2 manifests and
manifest lists have the same shape and parse into the same views.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from bundles import canonical
from bundles.errors import CanonicalJSONError, SizeLimitError
from bundles.oci.descriptor import Descriptor, DescriptorError, check_media_type
from bundles.oci.mediatypes import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    OCI_INDEX,
    OCI_MANIFEST,
)

MAX_MANIFEST_SIZE: Final = 4 << 20  # registries refuse manifests over 4 MiB; so do we


class ManifestError(DescriptorError):
    """A manifest or index document is malformed or not of the type it claims."""


def _annotations(doc: dict[str, Any], source: str) -> Mapping[str, str]:
    value = doc.get("annotations", {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ManifestError(f"{source}: field 'annotations' must be an object of strings")
    return MappingProxyType(dict(value))


def _descriptor_list(doc: dict[str, Any], key: str, source: str) -> tuple[Descriptor, ...]:
    value = doc.get(key)
    if not isinstance(value, list):
        raise ManifestError(f"{source}: field {key!r} must be an array of descriptors")
    return tuple(
        Descriptor.from_dict(item, source=f"{source} {key}[{i}]") for i, item in enumerate(value)
    )


def _optional_descriptor(doc: dict[str, Any], key: str, source: str) -> Descriptor | None:
    value = doc.get(key)
    return None if value is None else Descriptor.from_dict(value, source=f"{source} {key}")


def _artifact_type(doc: dict[str, Any], source: str) -> str | None:
    value = doc.get("artifactType")
    if value is None:
        return None
    return check_media_type(value, source=source, field_name="artifactType")


@dataclass(frozen=True, slots=True)
class ImageManifest:
    """An image (or artifact) manifest: one config and an ordered list of layers."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def effective_artifact_type(self) -> str:
        """What the referrers API reports: ``artifactType``, else the config's media type."""
        return self.artifact_type or self.config.media_type

    def children(self) -> tuple[Descriptor, ...]:
        """Every blob this manifest needs: config first, then the layers."""
        return (self.config, *self.layers)


@dataclass(frozen=True, slots=True)
class ImageIndex:
    """An image index (or Docker manifest list): descriptors of manifests, often per platform."""

    media_type: str
    manifests: tuple[Descriptor, ...]
    artifact_type: str | None = None
    subject: Descriptor | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def effective_artifact_type(self) -> str | None:
        """What the referrers API reports for an index: its ``artifactType``, if any."""
        return self.artifact_type

    def children(self) -> tuple[Descriptor, ...]:
        return self.manifests


Manifest = ImageManifest | ImageIndex


def parse_manifest(
    raw: bytes, media_type: str | None = None, *, source: str = "manifest"
) -> Manifest:
    """Parse manifest or index bytes.

    ``media_type`` is what the pointing descriptor says; when the document carries its own
    ``mediaType`` the two must agree (image-spec: the descriptor's type MUST match). Documents
    without either (older OCI writers omit ``mediaType``) are told apart by their fields.
    Every problem raises :class:`ManifestError` naming ``source``.
    """
    try:
        return _parse(raw, media_type, source)
    except ManifestError:
        raise
    except DescriptorError as e:
        raise ManifestError(e.message, hint=e.hint) from e


def _parse(raw: bytes, media_type: str | None, source: str) -> Manifest:
    try:
        doc = canonical.loads(raw, limit=MAX_MANIFEST_SIZE, source=source)
    except (CanonicalJSONError, SizeLimitError) as e:
        raise ManifestError(e.message, hint=e.hint) from e
    if not isinstance(doc, dict):
        raise ManifestError(f"{source}: a manifest must be a JSON object")
    if doc.get("schemaVersion") != 2:
        raise ManifestError(
            f"{source}: schemaVersion is {doc.get('schemaVersion')!r}, expected 2",
            hint="only image manifests and indexes of schema version 2 are supported",
        )
    declared = doc.get("mediaType")
    if declared is not None:
        check_media_type(declared, source=source)
        if media_type is not None and declared != media_type:
            raise ManifestError(
                f"{source}: document says mediaType {declared!r} but its descriptor says "
                f"{media_type!r}",
                hint="the descriptor's media type must match the document's",
            )
    kind = media_type or declared
    if kind is None:
        if "manifests" in doc:
            kind = OCI_INDEX
        elif "config" in doc:
            kind = OCI_MANIFEST
        else:
            raise ManifestError(f"{source}: neither a manifest (config) nor an index (manifests)")
    artifact_type = _artifact_type(doc, source)
    subject = _optional_descriptor(doc, "subject", source)
    annotations = _annotations(doc, source)
    if kind in MANIFEST_TYPES:
        config = _optional_descriptor(doc, "config", source)
        if config is None:
            raise ManifestError(f"{source}: image manifest has no 'config' descriptor")
        return ImageManifest(
            media_type=kind,
            config=config,
            layers=_descriptor_list(doc, "layers", source),
            artifact_type=artifact_type,
            subject=subject,
            annotations=annotations,
        )
    if kind in INDEX_TYPES:
        return ImageIndex(
            media_type=kind,
            manifests=_descriptor_list(doc, "manifests", source),
            artifact_type=artifact_type,
            subject=subject,
            annotations=annotations,
        )
    raise ManifestError(
        f"{source}: media type {kind!r} is not an image manifest or index",
        hint="expected one of " + ", ".join(sorted(MANIFEST_TYPES | INDEX_TYPES)),
    )


@dataclass(frozen=True, slots=True)
class StoredManifest:
    """A manifest as stored: its descriptor, its exact bytes, and the parsed view."""

    descriptor: Descriptor
    raw: bytes
    manifest: Manifest


def referrer_descriptor(descriptor: Descriptor, manifest: Manifest) -> Descriptor:
    """The descriptor the distribution-spec referrers API returns for ``manifest``.

    media type, digest and size of the manifest; ``artifactType`` from the manifest (for an
    image manifest without one, its config's media type); the manifest's own annotations.
    """
    return Descriptor(
        media_type=descriptor.media_type,
        digest=descriptor.digest,
        size=descriptor.size,
        annotations=manifest.annotations,
        artifact_type=manifest.effective_artifact_type,
    )
