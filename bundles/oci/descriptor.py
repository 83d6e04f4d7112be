"""OCI content descriptors and platforms (image-spec v1.1 descriptor.md, image-index.md).

A descriptor is how one OCI object points at another: media type, digest, size, plus optional
annotations, ``artifactType`` and (inside indexes) ``platform``. Fields this code does not model
(``urls``, ``data``, future additions) are kept in ``extra`` so a descriptor read from another
tool's document is written back without loss.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from bundles.digest import Digest
from bundles.errors import DigestError, OCILayoutError
from bundles.oci.mediatypes import ANNOTATION_REF_NAME

# RFC 6838 restricted names, as quoted by descriptor.md for mediaType and artifactType.
_MEDIA_TYPE: Final = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}/[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
)
_DESCRIPTOR_KEYS: Final = frozenset(
    {"mediaType", "digest", "size", "annotations", "artifactType", "platform"}
)
_PLATFORM_KEYS: Final = frozenset(
    {"architecture", "os", "os.version", "os.features", "variant", "features"}
)
_EMPTY: Final[Mapping[str, Any]] = MappingProxyType({})


class DescriptorError(OCILayoutError):
    """A descriptor or platform object is malformed; the message names where it was read."""


def _frozen(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(dict(mapping)) if mapping else _EMPTY


def check_media_type(value: object, *, source: str, field_name: str = "mediaType") -> str:
    """Return ``value`` if it is an RFC 6838 media type, else raise naming ``source``."""
    if not isinstance(value, str) or not _MEDIA_TYPE.fullmatch(value):
        raise DescriptorError(
            f"{source}: field {field_name!r} is not a media type: {value!r}",
            hint="expected type/subtype, e.g. application/vnd.oci.image.manifest.v1+json",
        )
    return value


def _string_map(value: object, *, source: str, field_name: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise DescriptorError(
            f"{source}: field {field_name!r} must be an object of strings to strings"
        )
    return dict(value)


def _string_list(value: object, *, source: str, field_name: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise DescriptorError(f"{source}: field {field_name!r} must be an array of strings")
    return tuple(value)


@dataclass(frozen=True, slots=True)
class Platform:
    """The platform an index entry runs on (image-index.md ``platform``)."""

    architecture: str
    os: str
    os_version: str | None = None
    os_features: tuple[str, ...] = ()
    variant: str | None = None
    features: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "extra", _frozen(self.extra))

    def __reduce__(self) -> tuple[Any, ...]:  # a read-only mapping does not pickle; a dict does
        return (
            Platform,
            (
                self.architecture,
                self.os,
                self.os_version,
                self.os_features,
                self.variant,
                self.features,
                dict(self.extra),
            ),
        )

    def __str__(self) -> str:
        text = f"{self.os}/{self.architecture}"
        return f"{text}/{self.variant}" if self.variant else text

    @classmethod
    def from_dict(cls, value: object, *, source: str = "platform") -> Platform:
        if not isinstance(value, dict):
            raise DescriptorError(f"{source}: platform must be a JSON object, got {value!r}")
        for key in ("architecture", "os"):
            if not isinstance(value.get(key), str) or not value[key]:
                raise DescriptorError(f"{source}: platform field {key!r} must be a string")
        os_version = value.get("os.version")
        variant = value.get("variant")
        for key, item in (("os.version", os_version), ("variant", variant)):
            if item is not None and not isinstance(item, str):
                raise DescriptorError(f"{source}: platform field {key!r} must be a string")
        return cls(
            architecture=value["architecture"],
            os=value["os"],
            os_version=os_version,
            os_features=_string_list(
                value.get("os.features", []), source=source, field_name="os.features"
            ),
            variant=variant,
            features=_string_list(value.get("features", []), source=source, field_name="features"),
            extra={k: v for k, v in value.items() if k not in _PLATFORM_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = dict(self.extra)
        out["architecture"] = self.architecture
        out["os"] = self.os
        if self.os_version is not None:
            out["os.version"] = self.os_version
        if self.os_features:
            out["os.features"] = list(self.os_features)
        if self.variant is not None:
            out["variant"] = self.variant
        if self.features:
            out["features"] = list(self.features)
        return out

    def matches(self, os: str, architecture: str, variant: str | None = None) -> bool:
        """True when os and architecture are equal and, if asked for, the variant too."""
        if self.os != os or self.architecture != architecture:
            return False
        return variant is None or self.variant == variant


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A pointer to content by digest (descriptor.md).

    ``annotations`` and ``extra`` are read-only mappings; ``extra`` holds every field this
    class does not model, so ``from_dict(d).to_dict() == d`` for any valid ``d`` (an empty
    ``annotations`` object is the one thing not told apart from an absent one).
    """

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    artifact_type: str | None = None
    platform: Platform | None = None
    extra: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        check_media_type(self.media_type, source="descriptor")
        if self.artifact_type is not None:
            check_media_type(self.artifact_type, source="descriptor", field_name="artifactType")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise DescriptorError(f"descriptor: size must be a non-negative integer: {self.size!r}")
        object.__setattr__(self, "annotations", _frozen(self.annotations))
        object.__setattr__(self, "extra", _frozen(self.extra))

    def __hash__(self) -> int:
        return hash((self.media_type, self.digest, self.size, self.artifact_type))

    def bare(self) -> Descriptor:
        """Media type, digest and size alone: what a manifest's ``subject`` names, or a tag
        points at without the annotations an index entry carried."""
        return Descriptor(self.media_type, self.digest, self.size)

    def __reduce__(self) -> tuple[Any, ...]:  # handed between processes (appliance/rva/pool.py)
        return (
            Descriptor,
            (
                self.media_type,
                self.digest,
                self.size,
                dict(self.annotations),
                self.artifact_type,
                self.platform,
                dict(self.extra),
            ),
        )

    @property
    def ref_name(self) -> str | None:
        """The tag this descriptor carries in an ``index.json`` (``ref.name`` annotation)."""
        return self.annotations.get(ANNOTATION_REF_NAME)

    def with_annotations(self, annotations: Mapping[str, str]) -> Descriptor:
        """A copy whose annotations are exactly ``annotations``."""
        return Descriptor(
            media_type=self.media_type,
            digest=self.digest,
            size=self.size,
            annotations=annotations,
            artifact_type=self.artifact_type,
            platform=self.platform,
            extra=self.extra,
        )

    @classmethod
    def from_dict(cls, value: object, *, source: str = "descriptor") -> Descriptor:
        """Parse a descriptor object; errors name ``source`` (e.g. ``index.json manifests[2]``)."""
        if not isinstance(value, dict):
            raise DescriptorError(f"{source}: descriptor must be a JSON object, got {value!r}")
        for key in ("mediaType", "digest", "size"):
            if key not in value:
                raise DescriptorError(f"{source}: descriptor has no {key!r} field")
        media_type = check_media_type(value["mediaType"], source=source)
        try:
            digest = Digest.parse(value["digest"])
        except DigestError as e:
            raise DescriptorError(f"{source}: field 'digest': {e.message}", hint=e.hint) from e
        size = value["size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise DescriptorError(
                f"{source}: field 'size' must be a non-negative integer: {size!r}"
            )
        artifact_type = value.get("artifactType")
        if artifact_type is not None:
            check_media_type(artifact_type, source=source, field_name="artifactType")
        annotations = _string_map(
            value.get("annotations", {}), source=source, field_name="annotations"
        )
        platform = value.get("platform")
        return cls(
            media_type=media_type,
            digest=digest,
            size=size,
            annotations=annotations,
            artifact_type=artifact_type,
            platform=None if platform is None else Platform.from_dict(platform, source=source),
            extra={k: v for k, v in value.items() if k not in _DESCRIPTOR_KEYS},
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON object form, unknown fields included."""
        out: dict[str, Any] = dict(self.extra)
        out["mediaType"] = self.media_type
        out["digest"] = str(self.digest)
        out["size"] = self.size
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        if self.platform is not None:
            out["platform"] = self.platform.to_dict()
        return out
