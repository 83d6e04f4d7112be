"""Vulnerability matching: inventory + knowledge snapshot -> explained findings.

``match(inventory, source)`` is pure; ``service.match_inventory(store, inventory)`` reads
``knowledge.db``. See docs/matching.md for the semantics.
"""

from appliance.match.matcher import LANGUAGE_ECOSYSTEMS, Matcher, match
from appliance.match.model import (
    Component,
    CvssScore,
    Delegated,
    Epss,
    Evidence,
    FileEvidence,
    Finding,
    FindingsReport,
    FixState,
    Inventory,
    Kev,
    MatchDetail,
    MatchKind,
    MatchUnknown,
    Rating,
    Reachability,
    ReachabilityFact,
    RecordRef,
    Severity,
    SeveritySource,
    UnknownKind,
)
from appliance.match.source import (
    Advisory,
    AdvisorySource,
    MemoryAdvisories,
    Prefetching,
    Rated,
    record_digest,
)

__all__ = [
    "LANGUAGE_ECOSYSTEMS",
    "Advisory",
    "AdvisorySource",
    "Component",
    "CvssScore",
    "Delegated",
    "Epss",
    "Evidence",
    "FileEvidence",
    "Finding",
    "FindingsReport",
    "FixState",
    "Inventory",
    "Kev",
    "MatchDetail",
    "MatchKind",
    "MatchUnknown",
    "Matcher",
    "MemoryAdvisories",
    "Prefetching",
    "Rated",
    "Rating",
    "Reachability",
    "ReachabilityFact",
    "RecordRef",
    "Severity",
    "SeveritySource",
    "UnknownKind",
    "match",
    "record_digest",
]
