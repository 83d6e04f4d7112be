"""OCI image layout store: descriptors, manifests, media types and the on-disk layout.

``from bundles.oci import OCILayout, Descriptor`` is the usual entry point; the submodules are
``mediatypes`` (constants), ``descriptor``, ``manifest`` (read-only views), ``graph`` (the
referrers index) and ``layout`` (the store). See docs/oci-layout.md.
"""

from __future__ import annotations

from bundles.oci.descriptor import Descriptor, DescriptorError, Platform
from bundles.oci.graph import Graph, Node
from bundles.oci.layout import (
    BlobProblem,
    NotALayoutError,
    OCILayout,
    PlatformNotFoundError,
    Reachability,
    TagNotFoundError,
    VerifyReport,
    check_tag,
)
from bundles.oci.manifest import (
    ImageIndex,
    ImageManifest,
    Manifest,
    ManifestError,
    StoredManifest,
    parse_manifest,
    referrer_descriptor,
)

__all__ = [
    "BlobProblem",
    "Descriptor",
    "DescriptorError",
    "Graph",
    "ImageIndex",
    "ImageManifest",
    "Manifest",
    "ManifestError",
    "Node",
    "NotALayoutError",
    "OCILayout",
    "Platform",
    "PlatformNotFoundError",
    "Reachability",
    "StoredManifest",
    "TagNotFoundError",
    "VerifyReport",
    "check_tag",
    "parse_manifest",
    "referrer_descriptor",
]
