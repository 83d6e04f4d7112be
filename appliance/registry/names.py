"""Which repository name ``stella serve`` serves each stored image under.

The store tags images with their full name: a mirrored image keeps its registry
(``127.0.0.1:22775/hidden/app:1``, ``registry.example/team/app:2``), a loaded one has none
(``app:1``). A client asks ``APPLIANCE/hidden/app``, so the registry part is dropped by default:
a name whose first component is a host (it holds a ``.`` or a ``:``, or is ``localhost``, the
rule docker and containerd use) is served under the rest of its path. ``--map STORED=SERVED``
replaces a stored prefix (whole components) with another, or with nothing: the longest matching
prefix wins, and a name a map matched keeps its host unless the map dropped it.

Two stored repositories that come out as one served name are not merged (their tags could say
different things): the name is not served, ``/v2/_catalog`` leaves it out, a request for it
answers which repositories collide, and :attr:`ServedNames.collisions` lists them for the
command to report. A repository that a served name is built from can still be asked for by its
stored name when that name is a valid repository name (``registry.example/team/app``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from appliance.registry.errors import ServeConfigError
from bundles.distribution.reference import REPOSITORY


@dataclass(frozen=True, slots=True)
class PrefixMap:
    """``--map STORED=SERVED``: stored names under ``STORED`` are served under ``SERVED``."""

    stored: str
    served: str

    @classmethod
    def parse(cls, text: str) -> PrefixMap:
        stored, sep, served = text.partition("=")
        stored, served = stored.strip().strip("/"), served.strip().strip("/")
        if not sep or not stored:
            raise ServeConfigError(
                f"--map {text!r} is not STORED=SERVED",
                hint="e.g. --map 127.0.0.1:22775=mirror, or --map registry.example/team= to drop "
                "a prefix",
            )
        if served and not REPOSITORY.fullmatch(served):
            raise ServeConfigError(
                f"--map {text!r}: {served!r} is not a repository name",
                hint="lower-case letters and digits separated by '.', '_', '-' or '/'",
            )
        return cls(stored, served)

    def apply(self, repository: str) -> str | None:
        """The served name of ``repository`` under this map, or None when it does not match."""
        if repository == self.stored:
            return self.served or None
        if repository.startswith(self.stored + "/"):
            rest = repository[len(self.stored) + 1 :]
            return f"{self.served}/{rest}" if self.served else rest
        return None


def has_host(repository: str) -> bool:
    """Whether the first component of ``repository`` names a registry host."""
    first, sep, _ = repository.partition("/")
    return bool(sep) and ("." in first or ":" in first or first == "localhost")


def served_name(repository: str, maps: Sequence[PrefixMap] = ()) -> str | None:
    """The name ``repository`` is served under, or None when it cannot be a repository name."""
    for prefix in sorted(maps, key=lambda m: len(m.stored), reverse=True):
        if repository == prefix.stored or repository.startswith(prefix.stored + "/"):
            name = prefix.apply(repository)
            break
    else:
        name = repository.partition("/")[2] if has_host(repository) else repository
    return name if name is not None and REPOSITORY.fullmatch(name) else None


@dataclass(frozen=True, slots=True)
class ServedNames:
    """Served name -> stored repository, and the served names several repositories claim."""

    repositories: Mapping[str, str]
    collisions: Mapping[str, tuple[str, ...]]
    stored: frozenset[str]

    @classmethod
    def build(cls, stored: Iterable[str], maps: Sequence[PrefixMap] = ()) -> ServedNames:
        claims: dict[str, set[str]] = {}
        repositories = frozenset(stored)
        for repository in repositories:
            name = served_name(repository, maps)
            if name is not None:
                claims.setdefault(name, set()).add(repository)
        single = {n: next(iter(r)) for n, r in claims.items() if len(r) == 1}
        several = {n: tuple(sorted(r)) for n, r in claims.items() if len(r) > 1}
        return cls(MappingProxyType(single), MappingProxyType(several), repositories)

    def resolve(self, name: str) -> str | None:
        """The stored repository a request for ``name`` reads; None when there is none.
        Raises :class:`NameCollisionError` for a name several repositories claim."""
        if name in self.repositories:
            return self.repositories[name]
        if name in self.collisions:
            raise NameCollisionError(name, self.collisions[name])
        return name if name in self.stored else None

    def describe_collisions(self) -> list[str]:
        return [
            f"{name} is claimed by {' and '.join(repos)}: not served under that name "
            f"(give --map, e.g. --map {repos[0].partition('/')[0]}=OTHER)"
            for name, repos in sorted(self.collisions.items())
        ]


class NameCollisionError(ServeConfigError):
    """A served name stands for more than one stored repository."""

    def __init__(self, name: str, repositories: tuple[str, ...]) -> None:
        super().__init__(
            f"repository {name} is ambiguous: the store holds {' and '.join(repositories)}",
            hint="start 'stella serve' with --map STORED=SERVED to serve them apart",
        )
        self.name = name
        self.repositories = repositories
