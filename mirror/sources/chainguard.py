"""Chainguard's secdb (``https://packages.cgr.dev/chainguard/security.json``): Alpine's secdb
format with one ecosystem, ``Chainguard``.

Records are ``CHAINGUARD-<id>``; names are origin package names; versions are apk versions.
"""

from __future__ import annotations

from typing import Final

from mirror.config import SourceKind
from mirror.sources.alpine import SecdbSource, one_ecosystem

CHAINGUARD: Final = one_ecosystem("Chainguard", "CHAINGUARD-", "chainguard-secdb")


class ChainguardSecdbSource(SecdbSource):
    kind = SourceKind.CHAINGUARD_SECDB
    flavour = CHAINGUARD
