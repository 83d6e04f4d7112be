"""Does a VEX product name this image, or this component?

The cases where scanners are known to miss a statement are handled here, once:

- an image is identified by its digest (``pkg:oci/NAME@sha256:...``), whatever
  ``repository_url`` says or whether it is present: the digest is the identity;
- the digest may be percent-encoded (``sha256%3A...``) and in any letter case;
- a repository (for a purl without a digest) is compared after normalizing Docker Hub's
  spellings (``docker.io``, ``index.docker.io``, ``registry-1.docker.io``, with or without
  ``library/``) and scheme prefixes;
- a component purl matches when type, namespace and name agree after decoding, the version
  agrees when the statement gives one, and every qualifier the statement gives is present
  with the same value (a statement without ``arch`` covers every architecture).

Parsing is done by ``packageurl-python``; results are memoized, because one gate compares
the same few product strings against a thousand findings.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import unquote

from packageurl import PackageURL

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "hub.docker.com"})


@dataclass(frozen=True, slots=True)
class ImageIdentity:
    """What a statement may call the image under evaluation: its manifest digest, the
    index digest it was selected from (multi-platform images), and repository names."""

    digests: frozenset[str]
    repositories: frozenset[str] = frozenset()

    @classmethod
    def of(
        cls, manifest_digest: str, *, index_digest: str | None = None, names: tuple[str, ...] = ()
    ) -> ImageIdentity:
        digests = {manifest_digest.lower()}
        if index_digest:
            digests.add(index_digest.lower())
        return cls(frozenset(digests), frozenset(normalize_repository(n) for n in names if n))


@dataclass(frozen=True, slots=True)
class ParsedPurl:
    type: str
    namespace: str
    name: str
    version: str
    qualifiers: tuple[tuple[str, str], ...]


@lru_cache(maxsize=65536)
def parse_purl(text: str) -> ParsedPurl | None:
    """The decoded parts of a purl, or None when ``text`` is not a purl at all."""
    if not text.startswith("pkg:"):
        return None
    try:
        purl = PackageURL.from_string(text)
    except ValueError:
        return None
    qualifiers = purl.qualifiers if isinstance(purl.qualifiers, dict) else {}
    return ParsedPurl(
        type=purl.type.lower(),
        namespace=unquote(purl.namespace or ""),
        name=unquote(purl.name),
        version=unquote(purl.version or ""),
        qualifiers=tuple(sorted((k.lower(), unquote(v)) for k, v in qualifiers.items())),
    )


def normalize_repository(text: str) -> str:
    """One spelling per repository: no scheme, lower-case host, Docker Hub as
    ``docker.io/library/NAME`` for official images, no tag or digest."""
    value = unquote(text.strip())
    for scheme in ("https://", "http://", "oci://", "docker://"):
        if value.lower().startswith(scheme):
            value = value[len(scheme) :]
    value = value.split("@", 1)[0].rstrip("/")
    head, _, rest = value.partition("/")
    if not rest or ("." not in head and ":" not in head and head != "localhost"):
        host, path = DOCKER_HUB, value  # no registry host: Docker Hub
    else:
        host, path = head.lower(), rest
    last = path.rsplit("/", 1)
    if ":" in last[-1]:
        path = path[: len(path) - len(last[-1])] + last[-1].split(":", 1)[0]
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    return f"{host}/{path.lower()}"


def _oci_repository(purl: ParsedPurl) -> str:
    qualifiers = dict(purl.qualifiers)
    base = qualifiers.get("repository_url")
    if base:
        return normalize_repository(base)
    return normalize_repository("/".join(p for p in (purl.namespace, purl.name) if p))


def names_image(product: str, image: ImageIdentity) -> bool:
    """Whether ``product`` (an OCI purl or a bare ``sha256:`` digest) names the image."""
    bare = unquote(product).strip().lower()
    if bare.startswith("sha256:"):
        return bare in image.digests
    purl = parse_purl(product)
    if purl is None or purl.type != "oci":
        return False
    if purl.version:
        return purl.version.lower() in image.digests
    return _oci_repository(purl) in image.repositories


def is_image_product(product: str) -> bool:
    if unquote(product).strip().lower().startswith("sha256:"):
        return True
    purl = parse_purl(product)
    return purl is not None and purl.type == "oci"


def names_component(product: str, component_purl: str) -> bool:
    """Whether ``product`` (a purl, possibly without version or qualifiers) names the
    component ``component_purl``."""
    wanted = parse_purl(product)
    have = parse_purl(component_purl)
    if wanted is None or have is None:
        return product == component_purl
    if (wanted.type, wanted.namespace.lower(), wanted.name.lower()) != (
        have.type,
        have.namespace.lower(),
        have.name.lower(),
    ):
        return False
    if wanted.version and wanted.version != have.version:
        return False
    qualifiers = dict(have.qualifiers)
    return all(qualifiers.get(k) == v for k, v in wanted.qualifiers)
