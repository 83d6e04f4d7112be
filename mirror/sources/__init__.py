"""Feed formats, one module each behind :class:`~mirror.sources.interface.FeedSource`.

The registry is one explicit table keyed by kind; a duplicate registration is a programming
error caught at import.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Final

from mirror.config import SourceKind
from mirror.sources.alpine import AlpineSecdbSource
from mirror.sources.chainguard import ChainguardSecdbSource
from mirror.sources.cve import CVESource
from mirror.sources.debian import DebianTrackerSource
from mirror.sources.epss import EPSSSource
from mirror.sources.ghsa import GHSASource
from mirror.sources.interface import DatasetType, FeedSource, ParseResult, Unknown
from mirror.sources.kev import KEVSource
from mirror.sources.npm_legacy import NpmLegacySource
from mirror.sources.openvex import OpenVEXSource
from mirror.sources.osv import OSVSource
from mirror.sources.policy import PolicySource
from mirror.sources.reachability import ReachabilityCuratedSource
from mirror.sources.redhat import RedHatCSAFSource
from mirror.sources.rpm_osv import AlmaOSVSource, RockyOSVSource
from mirror.sources.rubysec import RubySecSource
from mirror.sources.ubuntu import UbuntuOSVSource
from mirror.sources.wolfi import WolfiSecdbSource


def _table(*sources: FeedSource) -> MappingProxyType[SourceKind, FeedSource]:
    table: dict[SourceKind, FeedSource] = {}
    for src in sources:
        if src.kind in table:
            raise RuntimeError(f"feed source kind {src.kind} registered twice")
        table[src.kind] = src
    missing = set(SourceKind) - set(table)
    if missing:
        raise RuntimeError(f"no feed source for kinds {sorted(missing)}")
    return MappingProxyType(table)


SOURCES: Final = _table(
    OSVSource(),
    DebianTrackerSource(),
    AlpineSecdbSource(),
    KEVSource(),
    EPSSSource(),
    OpenVEXSource(),
    PolicySource(),
    RubySecSource(),
    NpmLegacySource(),
    # distribution feeds
    RedHatCSAFSource(),
    RockyOSVSource(),
    AlmaOSVSource(),
    UbuntuOSVSource(),
    WolfiSecdbSource(),
    ChainguardSecdbSource(),
    # severity feeds
    GHSASource(),
    CVESource(),
    # reachability (issue 25)
    ReachabilityCuratedSource(),
)


def source_for(kind: SourceKind) -> FeedSource:
    return SOURCES[kind]


__all__ = ["SOURCES", "DatasetType", "FeedSource", "ParseResult", "Unknown", "source_for"]
