"""Media types and annotation keys of the OCI image spec v1.1 and Docker's schema 2.

Media types form an open set (any artifact may bring its own), so they are plain string
constants rather than an enum; the frozensets below say which of them this package knows how
to walk. Docker's schema 2 types are listed because images copied from registries still use
them; their documents have the same shape as the OCI ones.
"""

from __future__ import annotations

from typing import Final

# Image manifests and indexes.
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"

# Configs.
OCI_CONFIG: Final = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG: Final = "application/vnd.docker.container.image.v1+json"
OCI_EMPTY: Final = "application/vnd.oci.empty.v1+json"

# Layers.
OCI_LAYER_TAR: Final = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD: Final = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST_TAR: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD: Final = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
DOCKER_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP: Final = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

# The layout's own header type (the ``oci-layout`` file).
OCI_LAYOUT_HEADER: Final = "application/vnd.oci.layout.header.v1+json"

# Artifacts Stella Ops attaches as referrers (the form cosign v3 uses).
SIGSTORE_BUNDLE_V03: Final = "application/vnd.dev.sigstore.bundle.v0.3+json"

# The empty descriptor's content: the two bytes ``{}`` (image-spec manifest.md, "Guidance for an
# Empty Descriptor"). Artifacts without a config point at it.
EMPTY_JSON: Final = b"{}"
EMPTY_JSON_DIGEST: Final = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

MANIFEST_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
CONFIG_TYPES: Final = frozenset({OCI_CONFIG, DOCKER_CONFIG})
LAYER_TYPES: Final = frozenset(
    {
        OCI_LAYER_TAR,
        OCI_LAYER_GZIP,
        OCI_LAYER_ZSTD,
        OCI_LAYER_NONDIST_TAR,
        OCI_LAYER_NONDIST_GZIP,
        OCI_LAYER_NONDIST_ZSTD,
        DOCKER_LAYER_GZIP,
        DOCKER_FOREIGN_LAYER_GZIP,
    }
)

# Annotation keys (image-spec annotations.md).
ANNOTATION_REF_NAME: Final = "org.opencontainers.image.ref.name"
ANNOTATION_CREATED: Final = "org.opencontainers.image.created"


def is_manifest(media_type: str) -> bool:
    """True for an image manifest type (OCI or Docker schema 2)."""
    return media_type in MANIFEST_TYPES


def is_index(media_type: str) -> bool:
    """True for an image index type (OCI index or Docker manifest list)."""
    return media_type in INDEX_TYPES
