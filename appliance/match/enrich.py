"""Severity, KEV and EPSS for a finding.

Severity comes from CVSS when a record publishes a vector (v4 preferred over v3.x; among
several, the highest base score, ties broken by the vector text), scored by the ``cvss``
library; else from the advisory's own words (``database_specific.severity`` of GHSA-style
records, the legacy npm advisory's ``severity``, Debian's ``urgency``); else ``unknown``.
The finding records which of these it used. KEV and EPSS are looked up by every CVE the
finding is known by.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from functools import lru_cache
from typing import Any, Final

from cvss import CVSS3, CVSS4, CVSSError

from appliance.match.model import CvssScore, Epss, Kev, Severity, SeveritySource

_CVSS_WORDS: Final = {
    "critical": Severity.CRITICAL,
    "high": Severity.HIGH,
    "medium": Severity.MEDIUM,
    "moderate": Severity.MEDIUM,
    "low": Severity.LOW,
    "none": Severity.NONE,
}
_DEBIAN_URGENCY: Final = {
    "unimportant": Severity.NEGLIGIBLE,
    "low": Severity.LOW,
    "medium": Severity.MEDIUM,
    "high": Severity.HIGH,
}


@lru_cache(maxsize=16384)
def score_vector(vector: str, source: str) -> CvssScore | None:
    """A CVSS v3.x or v4.0 vector scored; None for other versions or malformed vectors
    (a malformed vector cannot give a trustworthy severity)."""
    text = vector.strip()
    try:
        if text.startswith("CVSS:4.0/"):
            v4 = CVSS4(text)
            return CvssScore(
                "4.0", v4.clean_vector(), _score(v4.base_score), _word(v4.severity), source
            )
        if text.startswith(("CVSS:3.1/", "CVSS:3.0/")):
            v3 = CVSS3(text)
            return CvssScore(
                text[5:8],
                v3.clean_vector(),
                _score(v3.scores()[0]),
                _word(v3.severities()[0]),
                source,
            )
    except CVSSError:
        return None
    return None


def _score(value: Decimal | float) -> float:
    return float(round(Decimal(str(value)), 1))


def _word(text: str) -> Severity:
    return _CVSS_WORDS.get(text.strip().lower(), Severity.UNKNOWN)


def cvss_vectors(record: Mapping[str, Any], entries: Iterable[Mapping[str, Any]] = ()) -> list[str]:
    """The CVSS vectors a record publishes for the matched package: top-level ``severity``,
    the matched ``entries``' own ``severity``, and a legacy npm advisory's ``cvss_vector``."""
    vectors: list[str] = []
    lists = [record.get("severity")] + [e.get("severity") for e in entries]
    for items in lists:
        for item in items or ():
            if (
                isinstance(item, Mapping)
                and item.get("type") in ("CVSS_V3", "CVSS_V4")
                and isinstance(item.get("score"), str)
            ):
                vectors.append(item["score"])
    specific = record.get("database_specific")
    npm = specific.get("npm_advisory") if isinstance(specific, Mapping) else None
    if isinstance(npm, Mapping) and isinstance(npm.get("cvss_vector"), str):
        vectors.append(npm["cvss_vector"])
    return vectors


def database_severity(
    record: Mapping[str, Any], notes: Iterable[tuple[str, str]] = ()
) -> tuple[Severity, str] | None:
    """The advisory's own severity word and where it was read, or None."""
    specific = record.get("database_specific")
    if isinstance(specific, Mapping):
        word = specific.get("severity")
        if isinstance(word, str) and word.strip().lower() in _CVSS_WORDS:
            return _CVSS_WORDS[word.strip().lower()], f"{record['id']} severity {word}"
        npm = specific.get("npm_advisory")
        word = npm.get("severity") if isinstance(npm, Mapping) else None
        if isinstance(word, str) and word.strip().lower() in _CVSS_WORDS:
            return _CVSS_WORDS[word.strip().lower()], f"{record['id']} npm severity {word}"
    for key, value in notes:
        if key == "urgency":
            level = _DEBIAN_URGENCY.get(value.strip().rstrip("*").strip().lower())
            if level is not None:
                return level, f"{record['id']} urgency {value}"
    return None


def severity(
    scores: Iterable[CvssScore], words: Iterable[tuple[Severity, str]]
) -> tuple[Severity, SeveritySource, str]:
    """The finding's severity, where it came from, and a short statement of it."""
    scores = list(scores)
    for version, source in (("4.0", SeveritySource.CVSS_V4), ("3", SeveritySource.CVSS_V3)):
        chosen = [s for s in scores if s.version.startswith(version)]
        if chosen:
            best = min(chosen, key=lambda s: (-s.base_score, s.vector, s.source))
            return best.severity, source, f"{best.vector} ({best.base_score}) from {best.source}"
    ranked = sorted(words, key=lambda w: (-w[0].rank, w[1]))
    if ranked:
        return ranked[0][0], SeveritySource.DATABASE, ranked[0][1]
    return Severity.UNKNOWN, SeveritySource.NONE, "no CVSS vector or severity in the records"


Lookup = Callable[[str], Mapping[str, Any] | None]


def kev(cves: Iterable[str], find: Lookup) -> Kev | None:
    """The KEV entry of the first listed CVE (in sorted order) that has one."""
    for cve in sorted(cves):
        entry = find(cve)
        if entry is not None:
            return Kev(
                cve,
                str(entry.get("dateAdded", "")),
                str(entry.get("dueDate", "")),
                str(entry.get("knownRansomwareCampaignUse", "")),
            )
    return None


def epss(cves: Iterable[str], find: Lookup) -> Epss | None:
    """The highest EPSS score among the CVEs (ties: the lower CVE id)."""
    best: Epss | None = None
    for cve in sorted(cves):
        entry = find(cve)
        if entry is None:
            continue
        score, percentile = entry.get("epss"), entry.get("percentile")
        if not isinstance(score, str) or not isinstance(percentile, str):
            continue
        candidate = Epss(cve, score, percentile)
        if best is None or Decimal(candidate.score) > Decimal(best.score):
            best = candidate
    return best
