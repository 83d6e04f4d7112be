"""Names in the distribution API: registries (``host[:port]``, and which of them are this
machine), repositories and tags (distribution/reference's grammar), image references
(``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``, parsed and normalized as docker does), and the
referrers fallback tag.

Pure functions and values: ``stella serve`` and ``stella push --to`` use them without loading
an HTTP client."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

from bundles.digest import Digest
from bundles.distribution.errors import ImageReferenceError
from bundles.errors import DigestError

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"


def registry_host(registry: str) -> str:
    """The host part of ``host[:port]``: ``[v6]:port`` and ``[v6]`` lose their brackets, a
    bare IPv6 address (``::1``) is kept whole; anything else after ``]`` keeps it all."""
    if registry.startswith("["):
        host, _, rest = registry[1:].partition("]")
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return registry  # "[::1].example": not an address in brackets
        return host
    if registry.count(":") == 1:
        return registry.partition(":")[0]
    return registry


def is_loopback_host(registry: str) -> bool:
    """True when ``registry`` (``host[:port]``) names this machine: ``localhost`` or a
    loopback IP address (127.0.0.0/8, ::1). Names are never matched by prefix, so
    ``localhost.example.com`` or ``127.0.0.1.nip.io`` are not loopback."""
    host = registry_host(registry)
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# distribution/reference grammar (reference/regexp.go): a repository is path components
# separated by "/"; a tag is up to 128 ASCII word characters, "." and "-", not starting with
# "." or "-". (The store's own tag rules, ``check_tag``, are stricter.)
REPOSITORY_COMPONENT: Final = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
REPOSITORY: Final = re.compile(rf"{REPOSITORY_COMPONENT}(?:/{REPOSITORY_COMPONENT})*")
TAG: Final = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")

# distribution/reference grammar (reference/regexp.go): the registry part; the repository
# and tag grammar is above.
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
# a registry's host[:port]: a DNS name or a bracketed IP address
DOMAIN: Final = re.compile(
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?"
)


@dataclass(frozen=True, slots=True)
class ImageReference:
    """A parsed image reference, normalized as docker does (``alpine`` is
    ``docker.io/library/alpine:latest``). ``tag`` and ``digest`` may both be set; the digest
    is then what is fetched and the tag is recorded alongside it."""

    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> ImageReference:
        """Parse ``text``; errors quote it and say which part is wrong."""
        original = text
        if not text or text != text.strip():
            raise ImageReferenceError(
                f"image reference {original!r} is empty or has surrounding spaces",
                hint="write it as REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:HEX",
            )
        digest: Digest | None = None
        if "@" in text:
            text, _, digest_text = text.partition("@")
            try:
                digest = Digest.parse(digest_text)
            except DigestError as e:
                raise ImageReferenceError(
                    f"image reference {original!r}: {e.message}", hint=e.hint
                ) from e
        tag: str | None = None
        last_slash = text.rfind("/")
        colon = text.rfind(":")
        if colon > last_slash:
            text, tag = text[:colon], text[colon + 1 :]
            if not TAG.fullmatch(tag):
                raise ImageReferenceError(
                    f"image reference {original!r}: tag {tag!r} is not valid",
                    hint="a tag is up to 128 letters, digits, '_', '.' or '-', not starting "
                    "with '.' or '-'",
                )
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost" or first != first.lower()):
            registry, repository = first, rest
        else:
            registry, repository = DOCKER_HUB, text
        if registry == DOCKER_HUB and "/" not in repository:
            repository = f"library/{repository}"
        if not DOMAIN.fullmatch(registry):
            raise ImageReferenceError(
                f"image reference {original!r}: registry {registry!r} is not a host[:port]"
            )
        if not REPOSITORY.fullmatch(repository):
            raise ImageReferenceError(
                f"image reference {original!r}: repository {repository!r} is not valid",
                hint="repository names are lowercase letters and digits separated by "
                "'.', '_', '__', '-' or '/'",
            )
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry=registry, repository=repository, tag=tag, digest=digest)

    @property
    def name(self) -> str:
        """``registry/repository``."""
        return f"{self.registry}/{self.repository}"

    def __str__(self) -> str:
        text = self.name
        if self.tag is not None:
            text += f":{self.tag}"
        if self.digest is not None:
            text += f"@{self.digest}"
        return text

    @property
    def fetch_reference(self) -> str:
        """What goes after ``/manifests/``: the digest when known, else the tag."""
        if self.digest is not None:
            return str(self.digest)
        assert self.tag is not None
        return self.tag


def fallback_tag(subject: Digest) -> str:
    """The referrers tag schema of distribution-spec v1.1: ``<alg>-<ref>``, the tag whose
    image index lists ``subject``'s referrers on a registry without a referrers API."""
    return f"{subject.algorithm}-{subject.encoded}"
