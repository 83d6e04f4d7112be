"""The policy input document, built deterministically and pure (no I/O, no clock).

Everything a policy may read is here: the findings with their merged VEX status, KEV and
EPSS, fix availability and reachability; the image; the knowledge snapshot and its age at the
evaluation time; the attestations attached to the image; what could not be decided; and the
evaluation time itself. Lists are sorted, numbers come from the published decimal strings,
so the same inputs give the same canonical bytes (the document is also stored as evidence).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from appliance.match.model import MatchUnknown, Severity
from appliance.vex.merge import MergedFinding, MergeResult
from appliance.vex.model import VexError, VexStatus, format_time, parse_time

SCHEMA: Final = "https://stella-ops.org/schemas/policy-input/v1"
_DAY: Final = 86400


@dataclass(frozen=True, slots=True)
class KnowledgeInfo:
    """The snapshot findings were matched against; ``created`` as its bundle recorded it."""

    digest: str
    id: str
    created: str


@dataclass(frozen=True, slots=True, order=True)
class AttestationInfo:
    """One attestation attached to the image (a Sigstore bundle referrer)."""

    predicate_type: str
    digest: str
    signer: str  # key hint, or "certificate" for keyless bundles
    tlog_entries: int
    inclusion_proof: bool  # an entry's proof verified (for the appliance's own logs)
    witnesses: int = 0  # trusted witnesses that cosigned the checkpoint of that proof

    def to_dict(self) -> dict[str, Any]:
        return {
            "predicateType": self.predicate_type,
            "digest": self.digest,
            "signer": self.signer,
            "transparency": {
                "entries": self.tlog_entries,
                "inclusionProof": self.inclusion_proof,
                "witnesses": self.witnesses,
            },
        }


@dataclass(frozen=True, slots=True)
class Context:
    """What the input says besides the findings."""

    image_name: str
    image_digest: str
    at: datetime
    platform: str = ""
    knowledge: KnowledgeInfo | None = None
    sbom_digest: str | None = None
    attestations: tuple[AttestationInfo, ...] = ()
    unknowns: tuple[MatchUnknown, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()  # further unknowns: (item, reason)
    scan_limit: Mapping[str, Any] | None = None  # the bound that stopped the image's scan


def _number(text: str) -> float:
    return float(text)


def finding_input(m: MergedFinding) -> dict[str, Any]:
    f = m.finding
    vex = m.vex
    best_cvss = f.score
    return {
        "id": f.id,
        "aliases": sorted(f.aliases),
        "purl": f.component.purl,
        "name": f.component.name,
        "version": f.component.version,
        "type": f.component.type,
        "severity": f.severity.value,
        "severitySource": f.severity_source.value,
        "ratings": [
            {"source": r.source.value, "provider": r.provider, "severity": r.severity.value}
            | ({"score": r.score} if r.score is not None else {})
            for r in f.ratings
        ],
        "cvss": best_cvss,
        "kev": f.kev is not None,
        "epss": _number(f.epss.score) if f.epss else None,
        "epssPercentile": _number(f.epss.percentile) if f.epss else None,
        "fixAvailable": f.fix_available,
        "fixState": f.fix_state.value,
        "reachability": f.reachable.value,
        "status": m.status.value,
        "exception": m.exception,
        "vex": None
        if vex is None
        else {
            "statement": vex.key,
            "origin": vex.origin.value,
            "justification": vex.justification.value if vex.justification else None,
            "expires": format_time(vex.expires) if vex.expires else None,
            "timestamp": format_time(vex.timestamp),
        },
        "expiredExceptions": list(m.expired),
        # how the component sits in its file, when that is not plain (a binary's embedded Go)
        **({"evidenceNote": f.evidence.note} if f.evidence.note else {}),
        # how the reachability state was decided (which vulnerable functions a binary links)
        **(
            {"reachabilityNote": f.evidence.reachability_note}
            if f.evidence.reachability_note
            else {}
        ),
        # entrypoint file -> module -> ... -> function (Python function level)
        **(
            {"reachabilityChain": list(f.evidence.reachability_chain)}
            if f.evidence.reachability_chain
            else {}
        ),
    }


def snapshot_age_days(knowledge: KnowledgeInfo | None, at: datetime) -> int | None:
    """Whole days from the snapshot's creation to ``at`` (None when unknown)."""
    if knowledge is None or not knowledge.created:
        return None
    try:
        created = parse_time(knowledge.created, where="snapshot created")
    except VexError:  # a malformed creation time is an unknown age, not a crash
        return None
    return int((at - created).total_seconds() // _DAY)


def counts(findings: Sequence[MergedFinding]) -> dict[str, Any]:
    by_status = {s.value: 0 for s in VexStatus}
    by_severity = {s.value: 0 for s in Severity}
    exceptions = 0
    for m in findings:
        by_status[m.status.value] += 1
        by_severity[m.finding.severity.value] += 1
        exceptions += m.exception
    return {
        "findings": len(findings),
        "affected": by_status[VexStatus.AFFECTED.value],
        "notAffected": by_status[VexStatus.NOT_AFFECTED.value],
        "fixed": by_status[VexStatus.FIXED.value],
        "underInvestigation": by_status[VexStatus.UNDER_INVESTIGATION.value],
        "exceptions": exceptions,
        "bySeverity": by_severity,
    }


def build_input(merged: MergeResult, ctx: Context) -> dict[str, Any]:
    """The input document for ``data.stella.policy`` (docs/policy.md)."""
    findings = sorted(merged.findings, key=lambda m: m.finding.sort_key())
    unknowns = [u.to_dict() for u in sorted(ctx.unknowns)]
    unknowns += [
        {"purl": "", "kind": "note", "reason": reason, "record": item}
        for item, reason in sorted(ctx.notes)
    ]
    knowledge = ctx.knowledge
    return {
        "schema": SCHEMA,
        "evaluationTime": format_time(ctx.at),
        "image": {"name": ctx.image_name, "digest": ctx.image_digest, "platform": ctx.platform},
        "sbom": {"digest": ctx.sbom_digest} if ctx.sbom_digest else None,
        "knowledge": {
            "snapshot": knowledge.digest if knowledge else None,
            "id": knowledge.id if knowledge else None,
            "created": knowledge.created if knowledge else None,
            "ageDays": snapshot_age_days(knowledge, ctx.at),
        },
        "findings": [finding_input(m) for m in findings],
        "counts": {**counts(findings), "unknowns": len(unknowns)},
        "unknowns": unknowns,
        "attestations": [a.to_dict() for a in sorted(ctx.attestations)],
        "vex": {
            "applied": [s.key for s in merged.used],
            "expired": [s.key for s in merged.expired],
        },
        # only when the scan was stopped, so every other input keeps its bytes
        **({"scanLimit": dict(ctx.scan_limit)} if ctx.scan_limit is not None else {}),
    }
