"""Ecosystems: the language ecosystems' table, and package-name normalization per ecosystem.

Distributions have their own table (:mod:`appliance.distros`); language packages have this
one: the OSV ecosystem each package type's records carry and the version scheme they compare
in. :mod:`appliance.versions.schemes` and the matcher read both tables, so a new language
ecosystem is one entry here.

Two spellings of one package must meet in one index key: PyPI names compare per PEP 503
(``Jinja2`` = ``jinja2``, ``zope.interface`` = ``zope-interface``), npm and NuGet and
Packagist names are case-insensitive, crates.io treats ``-`` and ``_`` alike. Distro package
names, Go module paths and Maven ``group:artifact`` coordinates are kept as written (they are
case-sensitive). Ecosystem names with a release suffix (``Debian:12``, ``Alpine:v3.20``) keep it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from appliance.scanner.model import PackageType

_PEP503 = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class Language:
    """One language ecosystem: the scanner's package type, the OSV ecosystem of its records
    and the version scheme they compare in (empty: none is implemented, so its packages are
    unknowns rather than guesses)."""

    package_type: PackageType
    ecosystem: str
    scheme: str


LANGUAGES: Final[tuple[Language, ...]] = (
    Language(PackageType.PYPI, "PyPI", "pep440"),
    Language(PackageType.NPM, "npm", "npm"),
    Language(PackageType.GOLANG, "Go", "go"),
    Language(PackageType.MAVEN, "Maven", "maven"),
    Language(PackageType.GEM, "RubyGems", "rubygems"),
    Language(PackageType.NUGET, "NuGet", "nuget"),
    Language(PackageType.COMPOSER, "Packagist", ""),  # PHP's version ordering: not implemented
)

#: Package type -> OSV ecosystem of language packages.
LANGUAGE_ECOSYSTEMS: Final = {lang.package_type: lang.ecosystem for lang in LANGUAGES}


def base_ecosystem(ecosystem: str) -> str:
    """``Debian:12`` → ``Debian``; ``PyPI`` → ``PyPI``."""
    return ecosystem.split(":", 1)[0]


def normalize_name(ecosystem: str, name: str) -> str:
    match base_ecosystem(ecosystem):
        case "PyPI":
            return _PEP503.sub("-", name).lower()
        case "npm" | "NuGet" | "Packagist" | "Hex" | "Pub":
            return name.lower()
        case "crates.io":
            return name.lower().replace("_", "-")
        case _:
            return name
