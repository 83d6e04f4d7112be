"""Package-name normalization per ecosystem, shared by the knowledge index and the matcher.

Two spellings of one package must meet in one index key: PyPI names compare per PEP 503
(``Jinja2`` = ``jinja2``, ``zope.interface`` = ``zope-interface``), npm and NuGet and
Packagist names are case-insensitive, crates.io treats ``-`` and ``_`` alike. Distro package
names, Go module paths and Maven ``group:artifact`` coordinates are kept as written (they are
case-sensitive). Ecosystem names with a release suffix (``Debian:12``, ``Alpine:v3.20``) keep it.
"""

from __future__ import annotations

import re

_PEP503 = re.compile(r"[-_.]+")


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
