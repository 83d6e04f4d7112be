"""Wolfi's secdb (``https://packages.wolfi.dev/os/security.json``): Alpine's secdb format with
one ecosystem, ``Wolfi``, for the whole rolling distribution (no ``distroversion``).

Records are ``WOLFI-<id>``; names are origin package names; versions are apk versions; ``0``
(never affected) gives the empty range, as for Alpine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from mirror.config import SourceKind
from mirror.inputs import Member
from mirror.sources.alpine import SecdbFlavour, parse_secdb
from mirror.sources.interface import DatasetType, FeedSource, ParseResult


def _wolfi(_doc: dict[str, Any]) -> str:
    return "Wolfi"


WOLFI: Final = SecdbFlavour(_wolfi, "WOLFI-", "wolfi-secdb", "needs packages")


class WolfiSecdbSource(FeedSource):
    kind = SourceKind.WOLFI_SECDB
    dataset_type = DatasetType.OSV

    def parse(self, members: Sequence[Member]) -> ParseResult:
        return parse_secdb(members, WOLFI)
