"""What matching produces: findings, each with the records and ranges that justify it.

Later stages read these values without going back to the knowledge store: the VEX merge keys
on the vulnerability id, its aliases and the component purl; the policy input reads severity,
KEV, EPSS, fix availability and reachability; the signed verdict cites the record digests
(:meth:`FindingsReport.records`, the slice of vulnerability records used). Every value is
frozen, every collection is a sorted tuple, and :meth:`to_dict` gives a canonical form, so the
same inputs give the same bytes.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from appliance.scanner.model import OSInfo, Package
from appliance.scanner.pyreach import PythonProgram

SCHEMA = "https://stella-ops.org/schemas/findings/v1"


class Severity(enum.StrEnum):
    """Qualitative severity, CVSS's words plus Debian's ``negligible`` and ``unknown``."""

    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    NEGLIGIBLE = "negligible"
    NONE = "none"
    UNKNOWN = "unknown"

    @property
    def rank(self) -> int:
        """Higher is worse; ``unknown`` ranks above ``none`` and ``negligible`` (not known to
        be harmless) and below ``low``."""
        return _RANK[self]


_RANK = {
    Severity.CRITICAL: 6,
    Severity.HIGH: 5,
    Severity.MEDIUM: 4,
    Severity.LOW: 3,
    Severity.UNKNOWN: 2,
    Severity.NEGLIGIBLE: 1,
    Severity.NONE: 0,
}


class SeveritySource(enum.StrEnum):
    """Where a finding's severity came from, in the order they are preferred
    (docs/matching.md, "Severity"):

    ``distro``: the distribution's own rating of an OS package (Debian urgency, Red Hat
    impact, Ubuntu priority, or the vendor's CVSS vector); ``ghsa``: a GitHub Security
    Advisory for the same vulnerability (matched, or reached through an alias); ``cvss-v4``,
    ``cvss-v3``, ``database-specific``: the matched advisory's own CVSS vector or severity
    word (PyPA, Go, npm, RustSec records); ``cve-cna``, ``nvd``, ``cve-adp``: the CVE record's
    CVSS from its CNA, from NVD's own analysis, from an ADP container (CISA vulnrichment);
    ``none``: no source rates it."""

    DISTRO = "distro"
    GHSA = "ghsa"
    CVSS_V4 = "cvss-v4"
    CVSS_V3 = "cvss-v3"
    DATABASE = "database-specific"
    CVE_CNA = "cve-cna"
    NVD = "nvd"
    CVE_ADP = "cve-adp"
    NONE = "none"

    @property
    def rank(self) -> int:
        """Lower is preferred."""
        return _SOURCE_ORDER.index(self)


_SOURCE_ORDER: tuple[SeveritySource, ...] = tuple(SeveritySource)


class FixState(enum.StrEnum):
    """``fixed``: a fixed version exists; ``not-fixed``: affected with no fix published yet;
    ``wont-fix``: the distribution decided not to fix it in this release (Debian
    ``<no-dsa>``/``ignored``/``postponed``/``end-of-life``)."""

    FIXED = "fixed"
    NOT_FIXED = "not-fixed"
    WONT_FIX = "wont-fix"


class Reachability(enum.StrEnum):
    """Whether the vulnerable code is there and reached; ``unknown`` until an analysis says
    otherwise (docs/reachability.md).

    ``reachable``: an entrypoint of the image imports the component (Python import graph), a
    chain of calls from ``main`` reaches the vulnerable function (Go call graph), or, where the
    record names them, a static chain from an entrypoint names the vulnerable module or
    function (Python, docs/reachability.md).
    ``present``: the binary links a function the record names as vulnerable (Go function
    table), and only an indirect call could reach it, or the call graph was not read.
    ``present-not-reached``: the vulnerable code is there and an analysis of what the
    entrypoints reach did not reach it.
    ``not-present``: the binary's function table was read and links none of the functions the
    record names.
    """

    REACHABLE = "reachable"
    PRESENT_NOT_REACHED = "present-not-reached"
    PRESENT = "present"
    NOT_PRESENT = "not-present"
    UNKNOWN = "unknown"


class MatchKind(enum.StrEnum):
    """Which rule produced a match (the "matcher" of grype's match details)."""

    OSV_RANGE = "osv-range"  # an ECOSYSTEM or SEMVER range of an OSV record
    OSV_VERSIONS = "osv-versions"  # the version is listed in affected[].versions
    NPM_SEMVER = "npm-semver"  # a legacy npm advisory's vulnerable_versions range
    DISTRO_FIXED = "distro-fixed"  # a distro record with a fixed version above the installed
    DISTRO_UNFIXED = "distro-unfixed"  # a distro record with no fix (open, no-dsa, ...)


class UnknownKind(enum.StrEnum):
    """Why a component, or one record for it, could not be decided."""

    NO_SCHEME = "no-version-scheme"  # the ecosystem's version ordering is not implemented
    BAD_VERSION = "invalid-version"  # the installed version does not parse in the scheme
    BAD_RANGE = "invalid-range"  # a record's range does not parse
    GIT_RANGE = "git-range-only"  # only commit ranges, which need the source history
    NO_DATA = "no-distro-data"  # the OS release has no data in the snapshot
    UNDETERMINED = "undetermined"  # the distribution has not decided the status yet
    UNSUPPORTED = "unsupported-record"  # a record's affected entry has no evaluable form


@dataclass(frozen=True, slots=True, order=True)
class RecordRef:
    """A knowledge record used for a decision: its id and the SHA-256 of its canonical bytes
    (the digest the knowledge store and the snapshot's dataset file know it by)."""

    id: str
    digest: str
    modified: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "digest": self.digest, "modified": self.modified}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RecordRef:
        return cls(data["id"], data["digest"], data.get("modified", ""))


@dataclass(frozen=True, slots=True, order=True)
class CvssScore:
    """One CVSS vector with the base score and severity the ``cvss`` library computes."""

    version: str  # "4.0", "3.1", "3.0"
    vector: str
    base_score: float
    severity: Severity
    source: str  # the record id that published the vector

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "vector": self.vector,
            "base_score": self.base_score,
            "severity": self.severity.value,
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CvssScore:
        return cls(
            data["version"],
            data["vector"],
            float(data["base_score"]),
            Severity(data["severity"]),
            data["source"],
        )


@dataclass(frozen=True, slots=True)
class Rating:
    """One rating of the finding's vulnerability by one source (trivy's ``VendorSeverity``,
    with the vector): the source, who gave it (a record id, a CNA, NVD, an ADP), the severity,
    and for CVSS the version, vector and base score; ``note`` says what was unusual (a vector
    that does not parse, whose published score was used)."""

    source: SeveritySource
    provider: str
    severity: Severity
    version: str = ""  # CVSS version ("4.0", "3.1", "3.0", "2.0"); "" for a severity word
    vector: str = ""
    score: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.value,
            "provider": self.provider,
            "severity": self.severity.value,
            "version": self.version,
            "vector": self.vector,
            "score": self.score,
            "note": self.note,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rating:
        score = data.get("score")
        return cls(
            SeveritySource(data["source"]),
            data["provider"],
            Severity(data["severity"]),
            data.get("version", ""),
            data.get("vector", ""),
            float(score) if score is not None else None,
            data.get("note", ""),
        )


@dataclass(frozen=True, slots=True)
class Kev:
    """The CISA KEV entry for one of the finding's CVEs."""

    cve: str
    date_added: str = ""
    due_date: str = ""
    known_ransomware: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "cve": self.cve,
            "date_added": self.date_added,
            "due_date": self.due_date,
            "known_ransomware": self.known_ransomware,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Kev:
        return cls(
            data["cve"],
            data.get("date_added", ""),
            data.get("due_date", ""),
            data.get("known_ransomware", ""),
        )


@dataclass(frozen=True, slots=True)
class Epss:
    """The EPSS score and percentile for one of the finding's CVEs, as the decimal strings
    the feed published (no float formatting ever changes the bytes)."""

    cve: str
    score: str
    percentile: str

    @property
    def score_value(self) -> float:
        return float(self.score)

    @property
    def percentile_value(self) -> float:
        return float(self.percentile)

    def to_dict(self) -> dict[str, Any]:
        return {"cve": self.cve, "score": self.score, "percentile": self.percentile}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Epss:
        return cls(data["cve"], data["score"], data["percentile"])


@dataclass(frozen=True, slots=True, order=True)
class FileEvidence:
    """A file the component was read from, the layer that supplied it (None when the
    caller did not say), and the purl of the OS package that installed the file, when one did
    and the component is judged apart from it (a Go binary's standard library)."""

    path: str
    layer: str | None = None
    owner: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "layer": self.layer}
        if self.owner:
            out["owner"] = self.owner
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FileEvidence:
        return cls(data["path"], data.get("layer"), data.get("owner", ""))


@dataclass(frozen=True, slots=True)
class Evidence:
    """The chain package -> file -> layer -> entrypoint reachability. ``note`` says how the
    component sits in its file when that is not plain, e.g. "/usr/bin/docker-registry (deb
    docker-registry 2.8.2+ds1-1) embeds go1.19.8". ``reachability_note`` says how the
    reachability state was decided when a symbol-level analysis decided it (which vulnerable
    functions the binary links, or that it links none of them)."""

    purl: str
    files: tuple[FileEvidence, ...] = ()
    reachability: Reachability = Reachability.UNKNOWN
    entrypoints: tuple[str, ...] = ()
    note: str = ""
    reachability_note: str = ""
    reachability_chain: tuple[str, ...] = ()
    """Entrypoint file -> module -> ... -> function, when a function-level analysis found
    the vulnerable code reached (Python; docs/reachability.md)."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "purl": self.purl,
            "files": [f.to_dict() for f in self.files],
            "reachability": self.reachability.value,
            "entrypoints": list(self.entrypoints),
        }
        if self.note:
            out["note"] = self.note
        if self.reachability_note:
            out["reachability_note"] = self.reachability_note
        if self.reachability_chain:
            out["reachability_chain"] = list(self.reachability_chain)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evidence:
        return cls(
            data["purl"],
            tuple(FileEvidence.from_dict(f) for f in data.get("files", ())),
            Reachability(data.get("reachability", "unknown")),
            tuple(data.get("entrypoints", ())),
            data.get("note", ""),
            data.get("reachability_note", ""),
            tuple(data.get("reachability_chain", ())),
        )


@dataclass(frozen=True, slots=True)
class Component:
    """The matched package as the finding names it. ``ecosystem`` and ``lookup_name`` are
    what the knowledge store was asked (``Debian:12`` and the source package for a deb)."""

    purl: str
    type: str
    name: str
    version: str
    ecosystem: str
    lookup_name: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "purl": self.purl,
            "type": self.type,
            "name": self.name,
            "version": self.version,
            "ecosystem": self.ecosystem,
            "lookup_name": self.lookup_name,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Component:
        return cls(
            data["purl"],
            data["type"],
            data["name"],
            data["version"],
            data["ecosystem"],
            data["lookup_name"],
        )


@dataclass(frozen=True, slots=True, order=True)
class MatchDetail:
    """Why one record matched: which record, which affected entry and range, which version
    scheme, against which installed version, in which snapshot (grype's match details)."""

    record: RecordRef
    kind: MatchKind
    scheme: str
    range: str  # the matched range as published, e.g. "introduced 3.2, fixed 3.2.5"
    version: str  # the version compared (the source version for distro packages)
    package: str  # "ecosystem/name" as the record's affected entry wrote it
    snapshot: str | None = None
    fixed: tuple[str, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()  # distro annotations: urgency, nodsa, status

    def explain(self) -> str:
        """One line for people: ``PYSEC-2021-7 PyPI/django: 3.2.0 in [introduced 3.2, ...]
        (pep440, osv-range)``."""
        text = (
            f"{self.record.id} {self.package}: {self.version} in [{self.range}] "
            f"({self.scheme}, {self.kind.value})"
        )
        if self.notes:
            text += "; " + ", ".join(f"{k}={v}" for k, v in self.notes)
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "record": self.record.to_dict(),
            "kind": self.kind.value,
            "scheme": self.scheme,
            "range": self.range,
            "version": self.version,
            "package": self.package,
            "snapshot": self.snapshot,
            "fixed": list(self.fixed),
            "notes": {k: v for k, v in self.notes},
            "explanation": self.explain(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatchDetail:
        return cls(
            RecordRef.from_dict(data["record"]),
            MatchKind(data["kind"]),
            data["scheme"],
            data["range"],
            data["version"],
            data["package"],
            data.get("snapshot"),
            tuple(data.get("fixed", ())),
            tuple(sorted(data.get("notes", {}).items())),
        )


@dataclass(frozen=True, slots=True)
class Finding:
    """One vulnerability in one component, with everything that justifies it."""

    id: str
    aliases: tuple[str, ...]
    component: Component
    fixed_versions: tuple[str, ...]
    fix_state: FixState
    severity: Severity
    severity_source: SeveritySource
    severity_detail: str  # e.g. "CVSS:3.1/... from PYSEC-2021-7" or "urgency high from DSA-1"
    matches: tuple[MatchDetail, ...]
    evidence: Evidence
    cvss: tuple[CvssScore, ...] = ()
    kev: Kev | None = None
    epss: Epss | None = None
    summary: str = ""
    ratings: tuple[Rating, ...] = ()  # every rating seen, in precedence order: first decides

    @property
    def ids(self) -> frozenset[str]:
        """The id and every alias: what a VEX statement may name this vulnerability by."""
        return frozenset((self.id, *self.aliases))

    @property
    def fix_available(self) -> bool:
        return bool(self.fixed_versions)

    @property
    def score(self) -> float | None:
        """The CVSS base score behind the severity: the highest score of the newest CVSS
        version the deciding source gave (v4.0, then v3.x, then v2), else the highest of the
        matched records' vectors, else None."""
        source = self.severity_source
        scored = [r for r in self.ratings if r.source is source and r.score is not None]
        if scored:
            newest = max(r.version[:1] for r in scored)
            return max(r.score for r in scored if r.version[:1] == newest and r.score is not None)
        return max((c.base_score for c in self.cvss), default=None)

    @property
    def reachable(self) -> Reachability:
        return self.evidence.reachability

    @property
    def records(self) -> tuple[RecordRef, ...]:
        return tuple(sorted({m.record for m in self.matches}))

    def sort_key(self) -> tuple[str, str]:
        return (self.component.purl, self.id)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "aliases": list(self.aliases),
            "component": self.component.to_dict(),
            "installed_version": self.component.version,
            "fixed_versions": list(self.fixed_versions),
            "fix_state": self.fix_state.value,
            "fix_available": self.fix_available,
            "severity": self.severity.value,
            "severity_source": self.severity_source.value,
            "severity_detail": self.severity_detail,
            "ratings": [r.to_dict() for r in self.ratings],
            "cvss": [c.to_dict() for c in self.cvss],
            "kev": self.kev.to_dict() if self.kev else None,
            "epss": self.epss.to_dict() if self.epss else None,
            "evidence": self.evidence.to_dict(),
            "matches": [m.to_dict() for m in self.matches],
            "summary": self.summary,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Finding:
        return cls(
            id=data["id"],
            aliases=tuple(data.get("aliases", ())),
            component=Component.from_dict(data["component"]),
            fixed_versions=tuple(data.get("fixed_versions", ())),
            fix_state=FixState(data["fix_state"]),
            severity=Severity(data["severity"]),
            severity_source=SeveritySource(data["severity_source"]),
            severity_detail=data.get("severity_detail", ""),
            matches=tuple(MatchDetail.from_dict(m) for m in data["matches"]),
            evidence=Evidence.from_dict(data["evidence"]),
            cvss=tuple(CvssScore.from_dict(c) for c in data.get("cvss", ())),
            kev=Kev.from_dict(data["kev"]) if data.get("kev") else None,
            epss=Epss.from_dict(data["epss"]) if data.get("epss") else None,
            summary=data.get("summary", ""),
            ratings=tuple(Rating.from_dict(r) for r in data.get("ratings", ())),
        )


@dataclass(frozen=True, slots=True, order=True)
class MatchUnknown:
    """Something matching could not decide, with the reason; never dropped."""

    purl: str
    kind: UnknownKind
    reason: str
    record: str = ""  # the record id, when one record was the problem

    def to_dict(self) -> dict[str, Any]:
        return {
            "purl": self.purl,
            "kind": self.kind.value,
            "reason": self.reason,
            "record": self.record,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MatchUnknown:
        return cls(data["purl"], UnknownKind(data["kind"]), data["reason"], data.get("record", ""))


@dataclass(frozen=True, slots=True, order=True)
class Delegated:
    """A language package installed by the distribution: it is judged by the distribution's
    data through ``owner`` (e.g. Debian's ``python3-requests``), never by language advisories."""

    purl: str
    owner: str  # purl of the owning distro package, or "" when only the path says so
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"purl": self.purl, "owner": self.owner, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Delegated:
        return cls(data["purl"], data["owner"], data["reason"])


@dataclass(frozen=True, slots=True, order=True)
class ReachabilityFact:
    """What a reachability analysis says about one component (by purl)."""

    purl: str
    state: Reachability
    entrypoints: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Inventory:
    """What to match: the packages of one image, its OS, and optional evidence facts.

    ``file_layers`` maps an image-root-relative path to the digest of the layer that supplied
    it; ``reachability`` holds facts by purl. Both default to "not known".
    """

    packages: tuple[Package, ...]
    os: OSInfo | None = None
    file_layers: tuple[tuple[str, str], ...] = ()
    reachability: tuple[ReachabilityFact, ...] = ()
    target: str = ""
    python: PythonProgram | None = None  # for function-level Python reachability

    @classmethod
    def of(
        cls,
        packages: Iterable[Package],
        os: OSInfo | None = None,
        *,
        file_layers: Mapping[str, str] | None = None,
        reachability: Iterable[ReachabilityFact] = (),
        target: str = "",
        python: PythonProgram | None = None,
    ) -> Inventory:
        return cls(
            tuple(sorted(set(packages), key=Package.sort_key)),
            os,
            tuple(sorted((file_layers or {}).items())),
            tuple(sorted(set(reachability))),
            target,
            python,
        )


@dataclass(frozen=True, slots=True)
class FindingsReport:
    """Every finding of one match run, what could not be decided, and what was delegated."""

    findings: tuple[Finding, ...]
    unknowns: tuple[MatchUnknown, ...] = ()
    delegated: tuple[Delegated, ...] = ()
    snapshot: str | None = None
    target: str = ""
    distro: str | None = None  # the OS ecosystem used, e.g. "Debian:12"
    components: int = 0

    @classmethod
    def build(
        cls,
        findings: Iterable[Finding],
        unknowns: Iterable[MatchUnknown] = (),
        delegated: Iterable[Delegated] = (),
        *,
        snapshot: str | None = None,
        target: str = "",
        distro: str | None = None,
        components: int = 0,
    ) -> FindingsReport:
        """A report with every collection in canonical order."""
        return cls(
            tuple(sorted(findings, key=Finding.sort_key)),
            tuple(sorted(set(unknowns))),
            tuple(sorted(set(delegated))),
            snapshot,
            target,
            distro,
            components,
        )

    def records(self) -> tuple[RecordRef, ...]:
        """The slice of vulnerability records the findings rest on, by id and digest."""
        return tuple(sorted({r for f in self.findings for r in f.records}))

    def counts(self) -> dict[str, int]:
        """Findings per severity (every severity present, zeros included)."""
        out = {s.value: 0 for s in Severity}
        for f in self.findings:
            out[f.severity.value] += 1
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "target": self.target,
            "snapshot": self.snapshot,
            "distro": self.distro,
            "components": self.components,
            "counts": self.counts(),
            "findings": [f.to_dict() for f in self.findings],
            "unknowns": [u.to_dict() for u in self.unknowns],
            "delegated": [d.to_dict() for d in self.delegated],
            "records": [r.to_dict() for r in self.records()],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FindingsReport:
        return cls.build(
            (Finding.from_dict(f) for f in data.get("findings", ())),
            (MatchUnknown.from_dict(u) for u in data.get("unknowns", ())),
            (Delegated.from_dict(d) for d in data.get("delegated", ())),
            snapshot=data.get("snapshot"),
            target=data.get("target", ""),
            distro=data.get("distro"),
            components=int(data.get("components", 0)),
        )
