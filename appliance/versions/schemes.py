"""The explicit table of version schemes and of the OSV ecosystems they serve.

The ecosystems come from the distributions' table (:mod:`appliance.distros`), the language
ecosystems' table (:mod:`appliance.ecosystems`) and a short list of others. One ordered table
each, checked for duplicates when the module loads; no plug-in discovery.
Ecosystems not listed (Packagist, Pub, Hackage, CRAN, GitHub Actions, ...) have no scheme:
their PHP, Dart or Haskell ordering rules are not implemented, and guessing with a similar
scheme would turn unknowns into wrong answers. Callers report such packages as unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeVar

from appliance.distros import ecosystem_schemes
from appliance.ecosystems import LANGUAGES
from appliance.versions.apk import ApkScheme
from appliance.versions.cargo import CargoScheme
from appliance.versions.dpkg import DpkgScheme
from appliance.versions.golang import GoScheme
from appliance.versions.interface import UnknownScheme, VersionScheme
from appliance.versions.maven import MavenScheme
from appliance.versions.npm import NpmScheme
from appliance.versions.nuget import NuGetScheme
from appliance.versions.pep440 import Pep440Scheme
from appliance.versions.rpm import RpmScheme
from appliance.versions.rubygems import RubyGemsScheme
from appliance.versions.semver import SemverScheme

SCHEMES: tuple[VersionScheme, ...] = (
    DpkgScheme(),
    ApkScheme(),
    RpmScheme(),
    Pep440Scheme(),
    SemverScheme(),
    NpmScheme(),
    GoScheme(),
    MavenScheme(),
    RubyGemsScheme(),
    NuGetScheme(),
    CargoScheme(),
)

# OSV ecosystems served here with no distribution or language entry: crates.io and Hex
# records can be read although no analyzer finds their packages yet, and the RPM and apk
# distributions without an entry in appliance.distros still get their ordering right.
_OTHER_ECOSYSTEMS: tuple[tuple[str, str], ...] = (
    ("crates.io", "cargo"),
    ("Hex", "semver"),
    ("Mageia", "rpm"),
    ("MinimOS", "apk"),
    ("openEuler", "rpm"),
    ("openSUSE", "rpm"),
    ("Photon OS", "rpm"),
    ("SUSE", "rpm"),
)

# OSV ecosystem name (the part before any ":") -> scheme name: the distributions' table,
# the language ecosystems' table, and the others above.
ECOSYSTEMS: tuple[tuple[str, str], ...] = tuple(
    sorted(
        (
            *ecosystem_schemes(),
            *((lang.ecosystem, lang.scheme) for lang in LANGUAGES if lang.scheme),
            *_OTHER_ECOSYSTEMS,
        ),
        key=lambda pair: pair[0].lower(),
    )
)

_T = TypeVar("_T")


def _unique(pairs: Iterable[tuple[str, _T]], what: str) -> dict[str, _T]:
    table: dict[str, _T] = {}
    for name, value in pairs:
        if name in table:
            raise ValueError(f"duplicate {what} {name!r} in the version scheme registry")
        table[name] = value
    return table


_BY_NAME = _unique(((s.name, s) for s in SCHEMES), "scheme name")
_BY_ECOSYSTEM = _unique(((eco, _BY_NAME[scheme]) for eco, scheme in ECOSYSTEMS), "OSV ecosystem")


def scheme_for(name: str) -> VersionScheme:
    """The scheme registered under ``name`` (``dpkg``, ``apk``, ``rpm``, ``pep440``,
    ``semver``, ``npm``, ``go``, ``maven``, ``rubygems``, ``nuget``, ``cargo``)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise UnknownScheme(
            f"no version scheme is named {name!r}",
            hint="known schemes: " + ", ".join(_BY_NAME),
        ) from None


def scheme_for_ecosystem(ecosystem: str) -> VersionScheme:
    """The scheme for an OSV ecosystem; a release suffix (``Debian:12``, ``Alpine:v3.20``,
    ``Red Hat:enterprise_linux:9::appstream``) does not change the scheme."""
    base = ecosystem.split(":", 1)[0]
    try:
        return _BY_ECOSYSTEM[base]
    except KeyError:
        raise UnknownScheme(
            f"no version scheme for OSV ecosystem {ecosystem!r}",
            hint="packages of this ecosystem cannot be matched and are reported as unknown; "
            "supported ecosystems: " + ", ".join(_BY_ECOSYSTEM),
        ) from None


def scheme_names() -> tuple[str, ...]:
    return tuple(_BY_NAME)


def supported_ecosystems() -> tuple[str, ...]:
    return tuple(_BY_ECOSYSTEM)
