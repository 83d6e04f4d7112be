"""Wolfi's secdb (``https://packages.wolfi.dev/os/security.json``): Alpine's secdb format with
one ecosystem, ``Wolfi``, for the whole rolling distribution (no ``distroversion``).

Records are ``WOLFI-<id>``; names are origin package names; versions are apk versions; ``0``
(never affected) gives the empty range, as for Alpine.
"""

from __future__ import annotations

from mirror.config import SourceKind
from mirror.sources.alpine import SecdbSource


class WolfiSecdbSource(SecdbSource):
    kind = SourceKind.WOLFI_SECDB
    ecosystem = "Wolfi"
    prefix = "WOLFI-"
