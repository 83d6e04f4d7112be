"""Image references (``[REGISTRY/]REPOSITORY[:TAG][@DIGEST]``), parsed and normalized as
docker does."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from bundles.digest import Digest
from bundles.errors import DigestError
from bundles.oci.distribution import REPOSITORY, TAG
from mirror.registry.errors import ImageReferenceError

DOCKER_HUB: Final = "docker.io"
DOCKER_HUB_API: Final = "registry-1.docker.io"

# distribution/reference grammar (reference/regexp.go): the registry part; the repository
# and tag grammar is shared (bundles.oci.distribution).
_DOMAIN_COMPONENT: Final = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN: Final = re.compile(
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
        if not _DOMAIN.fullmatch(registry):
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
