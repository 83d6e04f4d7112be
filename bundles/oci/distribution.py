"""Pieces of the OCI distribution protocol shared by both sides: the mirror's registry client
and the appliance's push client and ``stella serve``.

Pure functions only; no HTTP client is imported here (``scripts/check_layers.py``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

from bundles.digest import Digest


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
_CHALLENGE_PARAM: Final = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)=(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def fallback_tag(subject: Digest) -> str:
    """The referrers tag schema of distribution-spec v1.1: ``<alg>-<ref>``, the tag whose
    image index lists ``subject``'s referrers on a registry without a referrers API."""
    return f"{subject.algorithm}-{subject.encoded}"


@dataclass(frozen=True, slots=True)
class Challenge:
    """A parsed ``WWW-Authenticate`` header (RFC 7235): scheme and parameters, names
    lower-cased, quoted values unescaped."""

    scheme: str
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, header: str) -> Challenge:
        scheme, _, rest = header.strip().partition(" ")
        params = {
            m.group(1).lower(): (
                re.sub(r"\\(.)", r"\1", m.group(2)) if m.group(2) is not None else m.group(3)
            )
            for m in _CHALLENGE_PARAM.finditer(rest)
        }
        return cls(scheme=scheme.lower(), params=params)
