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
  with the same value (a statement without ``arch`` covers every architecture);
- the spellings other scanners write for the same package agree (table-tested against syft's
  and trivy's real output): a distro epoch in the version (``@1:2.5.1-4``, syft) or as the
  ``epoch`` qualifier (trivy, this appliance), epoch ``0`` as no epoch; ``upstream`` and
  ``distro`` describe the package rather than name it, so they are compared only when the
  component has them too, ``distro`` by release (``debian-12`` = ``debian-12.15`` = trivy's
  bare ``3.20.3`` for ``alpine-3.20.3``), ``upstream`` by source name (syft's
  ``util-linux@2.38.1-5`` = ``util-linux``); a distro purl without a namespace
  (``pkg:rpm/NAME``, syft without an os-release) names every vendor's package; PyPI names
  and versions compare as PEP 503 and PEP 440 say (``5.3`` = ``5.3.0``), Go versions with or
  without the ``v`` (and ``go`` for the standard library).

Parsing is done by ``packageurl-python``; results are memoized, because one gate compares
the same few product strings against a thousand findings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Final
from urllib.parse import unquote

from packageurl import PackageURL
from packaging.utils import canonicalize_name, canonicalize_version

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "hub.docker.com"})
#: Package types whose versions may carry a distro epoch (``E:V-R``).
_EPOCH_TYPES: Final = frozenset({"deb", "rpm", "alpm"})
#: Distro package types, whose namespace is the vendor.
_DISTRO_TYPES: Final = frozenset({"deb", "rpm", "apk", "alpm"})
#: Qualifiers that describe a package rather than name it: compared only when both sides
#: have them.
_DESCRIPTIVE: Final = frozenset({"upstream", "distro"})
_EPOCH: Final = re.compile(r"(\d+):(.+)")
_DISTRO: Final = re.compile(r"(?:([a-z][a-z0-9_]*?)-)?(\d[0-9a-z_.]*)")
# the same distribution under the names scanners give it
_DISTRO_NAMES: Final = {"redhat": "rhel", "red_hat": "rhel", "centos": "rhel", "ubi": "rhel"}


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


@lru_cache(maxsize=65536)
def canonical_purl(text: str) -> ParsedPurl | None:
    """A purl's parts in the one spelling comparisons use (see the module docstring)."""
    purl = parse_purl(text)
    if purl is None:
        return None
    qualifiers = dict(purl.qualifiers)
    version, name = purl.version, purl.name.lower()
    if purl.type in _EPOCH_TYPES and (m := _EPOCH.fullmatch(version)):
        qualifiers.setdefault("epoch", m.group(1))
        version = m.group(2)
    if qualifiers.get("epoch") == "0":
        del qualifiers["epoch"]
    if purl.type == "pypi":
        name = canonicalize_name(purl.name)
        version = canonicalize_version(version) if version else ""
    elif purl.type == "golang":
        version = version.removeprefix("v")
        if name == "stdlib":
            version = version.removeprefix("go")
    return replace(
        purl,
        namespace=purl.namespace.lower(),
        name=name,
        version=version,
        qualifiers=tuple(sorted(qualifiers.items())),
    )


def _same_distro(wanted: str, have: str) -> bool:
    """``debian-12`` names ``debian-12.15``; a bare release (trivy's ``3.20.3``) names any
    distribution of that release."""
    a, b = _DISTRO.fullmatch(wanted.lower()), _DISTRO.fullmatch(have.lower())
    if a is None or b is None:
        return wanted.lower() == have.lower()
    name_a, name_b = (_DISTRO_NAMES.get(n, n) if n else None for n in (a.group(1), b.group(1)))
    if name_a and name_b and name_a != name_b:
        return False
    short, long = sorted((a.group(2), b.group(2)), key=len)
    return long == short or long.startswith(short + ".")


def _same_qualifier(key: str, wanted: str, have: str) -> bool:
    if key == "distro":
        return _same_distro(wanted, have)
    if key == "upstream":  # syft writes "SOURCE@VERSION" when the versions differ
        return wanted.split("@", 1)[0] == have.split("@", 1)[0]
    return wanted == have


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
    wanted = canonical_purl(product)
    have = canonical_purl(component_purl)
    if wanted is None or have is None:
        return product == component_purl
    if (wanted.type, wanted.name) != (have.type, have.name):
        return False
    if wanted.namespace != have.namespace and not (
        wanted.type in _DISTRO_TYPES and not wanted.namespace
    ):
        return False
    if wanted.version and wanted.version != have.version:
        return False
    qualifiers = dict(have.qualifiers)
    for key, value in wanted.qualifiers:
        if key not in qualifiers:
            if key in _DESCRIPTIVE:
                continue
            return False
        if not _same_qualifier(key, value, qualifiers[key]):
            return False
    # an epoch is part of the version: a statement's version without one names no package
    # that has one (``@2.5.1-4`` is not ``1:2.5.1-4``)
    return not wanted.version or dict(wanted.qualifiers).get("epoch") == qualifiers.get("epoch")
