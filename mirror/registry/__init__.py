"""Pulling from OCI distribution registries: the mirror's one registry client.

This package is, with ``mirror.fetch``, the only part of the connected side that speaks HTTP.
Its modules follow the seams of the job: ``reference`` (image references), ``credentials``
(docker ``config.json``), ``transport`` (urllib3 pools, proxies, redirects), ``client`` (the
distribution API: base URL, authentication, manifests, referrers) and ``blobs`` (a blob
streamed and resumed with ``Range``). Credentials come from a docker ``config.json``.

It talks through urllib3 directly, not requests: requests adds nothing the client uses and
costs a noticeable share of the command's start-up.

oras-py was weighed for this and not used for transfers: its client parses manifests into
dicts (the bytes are the identity here), does not verify blobs while they stream, cannot
resume a blob, and keeps one token for all repositories. See docs/images.md.
"""

from __future__ import annotations

from bundles.oci.distribution import Challenge, is_loopback_host
from mirror.registry.blobs import BlobStream
from mirror.registry.client import (
    MANIFEST_ACCEPT,
    RegistryClient,
    RegistryManifest,
    RegistryOptions,
)
from mirror.registry.credentials import Credentials, default_docker_config, load_docker_credentials
from mirror.registry.errors import (
    ImageReferenceError,
    NotFoundError,
    RegistryAuthError,
    RegistryError,
)
from mirror.registry.reference import DOCKER_HUB, DOCKER_HUB_API, ImageReference
from mirror.registry.transport import CHUNK, MAX_JOBS, MAX_REDIRECTS, proxy_for

__all__ = [
    "CHUNK",
    "DOCKER_HUB",
    "DOCKER_HUB_API",
    "MANIFEST_ACCEPT",
    "MAX_JOBS",
    "MAX_REDIRECTS",
    "BlobStream",
    "Challenge",
    "Credentials",
    "ImageReference",
    "ImageReferenceError",
    "NotFoundError",
    "RegistryAuthError",
    "RegistryClient",
    "RegistryError",
    "RegistryManifest",
    "RegistryOptions",
    "default_docker_config",
    "is_loopback_host",
    "load_docker_credentials",
    "proxy_for",
]
