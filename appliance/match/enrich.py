"""Severity, KEV and EPSS for a finding.

Severity follows one precedence (docs/matching.md, "Severity"), computed by :func:`assess`
and nowhere else:

1. ``distro``: for an OS package, the distribution's own rating in the matched record
   (Debian urgency, Red Hat impact, Ubuntu priority; the vendor's CVSS vector when it gives
   one and no word);
2. ``ghsa``: a GitHub Security Advisory for the same vulnerability, matched or reached through
   its aliases (``database_specific.severity``, else its CVSS vector);
3. ``cvss-v4`` / ``cvss-v3`` / ``database-specific``: the matched advisory's own CVSS vector
   (v4.0 before v3.x) or severity word (PyPA, Go, npm, RustSec records);
4. ``cve-cna``, ``nvd``, ``cve-adp``: the CVE record's CVSS from its CNA, from NVD's own
   analysis, from an ADP container (CISA vulnrichment), v4.0 before v3.x before v2.

Within one source the most severe rating wins (ties broken by provider and vector text).
Vectors are scored by the ``cvss`` library; a CVE record's vector that does not parse but
comes with a published score uses that score and says so in the rating's note. Every rating
seen is kept on the finding, in precedence order. KEV and EPSS are looked up by every CVE
the finding is known by.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from cvss import CVSS2, CVSS3, CVSS4, CVSSError

from appliance.match.model import CvssScore, Epss, Kev, Rating, Severity, SeveritySource

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
#: Distribution words: Debian urgency, Red Hat impact, Ubuntu priority (and CVSS's words).
_DISTRO_WORDS: Final = {
    **_CVSS_WORDS,
    **_DEBIAN_URGENCY,
    "important": Severity.HIGH,
    "negligible": Severity.NEGLIGIBLE,
}
_CVE_SOURCES: Final = {
    "cna": SeveritySource.CVE_CNA,
    "nvd": SeveritySource.NVD,
    "adp": SeveritySource.CVE_ADP,
}
# Within one source: the vendor's word first for distributions and GitHub (their own rating),
# then CVSS v4.0, v3.x, v2; for the other sources vectors before words.
_WORD_FIRST: Final = frozenset({SeveritySource.DISTRO, SeveritySource.GHSA})


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


@lru_cache(maxsize=4096)
def _score_v2(vector: str) -> tuple[str, float, Severity] | None:
    try:
        v2 = CVSS2(vector.strip())
    except CVSSError:
        return None
    return v2.clean_vector(), _score(v2.scores()[0]), _word(v2.severities()[0])


def _score(value: Decimal | float) -> float:
    return float(round(Decimal(str(value)), 1))


def _word(text: str) -> Severity:
    return _CVSS_WORDS.get(text.strip().lower(), Severity.UNKNOWN)


def _from_score(score: float, version: str) -> Severity:
    """CVSS's qualitative rating of a base score (v2 has no ``critical``)."""
    if version.startswith("2"):
        return Severity.HIGH if score >= 7.0 else Severity.MEDIUM if score >= 4.0 else Severity.LOW
    if score >= 9.0:
        return Severity.CRITICAL
    if score >= 7.0:
        return Severity.HIGH
    if score >= 4.0:
        return Severity.MEDIUM
    return Severity.LOW if score > 0.0 else Severity.NONE


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


def database_severity(record: Mapping[str, Any]) -> tuple[Severity, str] | None:
    """The advisory's own severity word and where it was read, or None (a distribution's
    words, Debian's urgency among them, are :func:`_distro_words`')."""
    specific = record.get("database_specific")
    if isinstance(specific, Mapping):
        word = specific.get("severity")
        if isinstance(word, str) and word.strip().lower() in _CVSS_WORDS:
            return _CVSS_WORDS[word.strip().lower()], f"{record['id']} severity {word}"
        npm = specific.get("npm_advisory")
        word = npm.get("severity") if isinstance(npm, Mapping) else None
        if isinstance(word, str) and word.strip().lower() in _CVSS_WORDS:
            return _CVSS_WORDS[word.strip().lower()], f"{record['id']} npm severity {word}"
    return None


def _distro_words(
    record: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]],
    notes: Iterable[tuple[str, str]],
    cves: Iterable[str] = (),
) -> list[tuple[Severity, str]]:
    """The distribution's own words for the matched entries: ``database_specific.severity``
    or ``.urgency`` of each entry (the record's when an entry has none), else the word a
    notice gives each of its CVEs (``cve_priorities``: Ubuntu's USN) for the finding's CVEs,
    else Debian's urgency note; each as (severity, "<record> <field> <word>")."""
    rid = str(record.get("id", ""))
    found: list[tuple[Severity, str]] = []
    wanted = sorted(set(cves))
    specifics = [e.get("database_specific") for e in entries] + [record.get("database_specific")]
    for specific in specifics:
        if not isinstance(specific, Mapping):
            continue
        for key in ("severity", "urgency", "priority"):
            word = specific.get(key)
            if isinstance(word, str):
                level = _DISTRO_WORDS.get(word.strip().rstrip("*").strip().lower())
                if level is not None:
                    found.append((level, f"{rid} {'urgency' if key == 'urgency' else key} {word}"))
        per_cve = specific.get("cve_priorities")
        if not found and isinstance(per_cve, Mapping):
            for cve in wanted:
                word = per_cve.get(cve)
                level = _DISTRO_WORDS.get(word.strip().lower()) if isinstance(word, str) else None
                if level is not None:
                    found.append((level, f"{rid} priority {word} for {cve}"))
        if found:
            break  # the entry's word overrides the record's
    if not found:
        for key, value in notes:
            if key == "urgency":
                level = _DEBIAN_URGENCY.get(value.strip().rstrip("*").strip().lower())
                if level is not None:
                    found.append((level, f"{rid} urgency {value}"))
    return found


def _vector_ratings(
    source: SeveritySource | None, provider: str, vectors: Iterable[str]
) -> list[Rating]:
    """Ratings for OSV-style vectors; ``source`` None names the source by CVSS version."""
    out: list[Rating] = []
    for vector in vectors:
        scored = score_vector(vector, provider)
        if scored is None:
            continue
        src = source or (
            SeveritySource.CVSS_V4 if scored.version == "4.0" else SeveritySource.CVSS_V3
        )
        out.append(
            Rating(src, provider, scored.severity, scored.version, scored.vector, scored.base_score)
        )
    return out


def record_ratings(
    record: Mapping[str, Any],
    entries: Sequence[Mapping[str, Any]] = (),
    notes: Iterable[tuple[str, str]] = (),
    *,
    os_package: bool = False,
    cves: Iterable[str] = (),
) -> list[Rating]:
    """Every rating one advisory gives: as the distribution's (an OS package's record), as
    GitHub's (a ``GHSA-`` record), or as the matched advisory's own. ``notes`` are the
    distribution's annotations of an OS package's match (Debian urgency); ``cves`` are the
    finding's CVEs (a distribution notice may rate each of its CVEs apart)."""
    rid = str(record.get("id", ""))
    vectors = cvss_vectors(record, entries)
    if os_package:
        words = _distro_words(record, entries, notes, cves)
        return [
            Rating(SeveritySource.DISTRO, rid, level, note=text) for level, text in words
        ] + _vector_ratings(SeveritySource.DISTRO, rid, vectors)
    if rid.startswith("GHSA-"):
        out = _vector_ratings(SeveritySource.GHSA, rid, vectors)
        word = database_severity(record)
        if word is not None:
            out.append(Rating(SeveritySource.GHSA, rid, word[0], note=word[1]))
        return out
    out = _vector_ratings(None, rid, vectors)
    word = database_severity(record)
    if word is not None:
        out.append(Rating(SeveritySource.DATABASE, rid, word[0], note=word[1]))
    return out


def cve_ratings(record: Mapping[str, Any]) -> list[Rating]:
    """The ratings of one ``cve`` table record (mirror/sources/cve.py), each named by who gave
    it; a vector that does not parse is rated by its published score, and says so."""
    cve = str(record.get("id", ""))
    out: list[Rating] = []
    for item in record.get("ratings") or ():
        if not isinstance(item, Mapping):
            continue
        source = _CVE_SOURCES.get(str(item.get("origin")))
        vector = item.get("vector")
        if source is None or not isinstance(vector, str):
            continue
        provider = f"{item.get('provider') or item.get('origin')} for {cve}"
        version = str(item.get("version", ""))
        scored: tuple[str, float, Severity] | None = None
        if version.startswith("2"):
            scored = _score_v2(vector)
        else:
            v = score_vector(vector, provider)
            if v is not None:
                scored = (v.vector, v.base_score, v.severity)
                version = v.version
        if scored is not None:
            out.append(Rating(source, provider, scored[2], version, scored[0], scored[1]))
            continue
        published = item.get("score")
        try:
            score = _score(Decimal(str(published))) if published is not None else None
        except InvalidOperation:
            score = None
        if score is None:
            continue
        word = _CVSS_WORDS.get(str(item.get("severity", "")).lower())
        out.append(
            Rating(
                source,
                provider,
                word or _from_score(score, version),
                version,
                vector,
                score,
                "vector does not parse; the published base score is used",
            )
        )
    return out


def _preference(rating: Rating) -> tuple[int, int, int, float, str, str, str, str]:
    """Sort key: source precedence, then kind (word / v4 / v3 / v2), then most severe; the
    rest of the rating breaks ties, so the order never depends on the order seen."""
    if not rating.version:
        kind = 0 if rating.source in _WORD_FIRST else 3
    else:
        kind = {"4": 1, "3": 2}.get(rating.version[:1], 4)
    return (
        rating.source.rank,
        kind,
        -rating.severity.rank,
        -(rating.score or 0.0),
        rating.provider,
        rating.vector,
        rating.version,
        rating.note,
    )


def _statement(rating: Rating) -> str:
    if rating.vector:
        text = f"{rating.vector} ({rating.score}) from {rating.provider}"
        return f"{text}; {rating.note}" if rating.note else text
    return rating.note or f"{rating.provider} {rating.severity.value}"


@dataclass(frozen=True, slots=True)
class Assessment:
    """A finding's severity, its source, a one-line statement, and every rating seen."""

    severity: Severity
    source: SeveritySource
    detail: str
    ratings: tuple[Rating, ...]


RecordsLookup = Callable[[str], Sequence[Mapping[str, Any]]]


def assess(
    matched: Iterable[tuple[Mapping[str, Any], Sequence[Mapping[str, Any]]]],
    notes: Iterable[tuple[str, str]] = (),
    cves: Iterable[str] = (),
    *,
    os_package: bool = False,
    ghsa: RecordsLookup | None = None,
    cve: RecordsLookup | None = None,
) -> Assessment:
    """The finding's severity by the precedence above. ``matched`` holds each matched record
    once with its matched affected entries; ``notes`` the distro annotations of the matches;
    ``cves`` every CVE the finding is known by; ``ghsa`` answers the GitHub advisories that
    alias a CVE and ``cve`` the ``cve`` table records of a CVE (both optional)."""
    notes = tuple(notes)
    ratings: set[Rating] = set()
    seen: set[str] = set()
    wanted = sorted(set(cves))
    for record, entries in matched:
        seen.add(str(record.get("id", "")))
        ratings.update(record_ratings(record, entries, notes, os_package=os_package, cves=wanted))
    if ghsa is not None:
        for cve_id in wanted:
            for record in ghsa(cve_id):
                rid = str(record.get("id", ""))
                if rid not in seen:
                    seen.add(rid)
                    ratings.update(record_ratings(record))
    if cve is not None:
        for cve_id in wanted:
            for record in cve(cve_id):
                ratings.update(cve_ratings(record))
    # the ratings in precedence order, the usable ones first: the first one decides
    ordered = tuple(
        sorted(ratings, key=lambda r: (r.severity is Severity.UNKNOWN, *_preference(r)))
    )
    if not ordered or ordered[0].severity is Severity.UNKNOWN:
        return Assessment(
            Severity.UNKNOWN,
            SeveritySource.NONE,
            "no source rates it (no distribution rating, GHSA, CVSS vector or CVE record)",
            ordered,
        )
    best = ordered[0]
    return Assessment(best.severity, best.source, _statement(best), ordered)


def published_scores(ratings: Iterable[Rating], records: Collection[str]) -> tuple[CvssScore, ...]:
    """The CVSS vectors the matched ``records`` themselves publish, scored (a finding's
    ``cvss``): read off the ratings :func:`assess` already scored, never scored again."""
    return tuple(
        sorted(
            {
                CvssScore(r.version, r.vector, r.score, r.severity, r.provider)
                for r in ratings
                if r.provider in records and r.vector and r.score is not None
            }
        )
    )


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
