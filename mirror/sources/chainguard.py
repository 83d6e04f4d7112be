"""Chainguard's secdb (``https://packages.cgr.dev/chainguard/security.json``): Alpine's secdb
format with one ecosystem, ``Chainguard``.

Records are ``CHAINGUARD-<id>``; names are origin package names; versions are apk versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.alpine import SecdbFlavour, parse_secdb
from mirror.sources.interface import DatasetType, FeedSource, ParseResult


def _chainguard(_doc: dict[str, Any]) -> str:
    return "Chainguard"


CHAINGUARD: Final = SecdbFlavour(_chainguard, "CHAINGUARD-", "chainguard-secdb", "needs packages")


class ChainguardSecdbSource(FeedSource):
    kind = SourceKind.CHAINGUARD_SECDB
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        return parse_secdb(members, CHAINGUARD)
