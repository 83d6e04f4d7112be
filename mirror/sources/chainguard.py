"""Chainguard's secdb (``https://packages.cgr.dev/chainguard/security.json``): Alpine's secdb
format with one ecosystem, ``Chainguard``.

Records are ``CHAINGUARD-<id>``; names are origin package names; versions are apk versions.
"""

from __future__ import annotations

from mirror.config import SourceKind
from mirror.sources.alpine import SecdbSource


class ChainguardSecdbSource(SecdbSource):
    kind = SourceKind.CHAINGUARD_SECDB
    ecosystem = "Chainguard"
    prefix = "CHAINGUARD-"
