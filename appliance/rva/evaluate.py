"""From fixed inputs to a verdict and its RVA predicate, with no I/O and no clock.

:func:`evaluate` merges VEX into the findings, builds the policy input, evaluates the policy
in-process, decides the verdict, renders the evidence blobs and the predicate, and validates
the predicate against ``bundles/schemas/rva-v1.json``. The same :class:`GateInputs` always give
the same predicate bytes (docs/rva.md): the evaluation time is an input, every list is sorted,
every document is canonical JSON.

Verdict rules: a policy that cannot decide (undefined, error, malformed) gives INDETERMINATE;
any deny reason gives FAIL; any indeterminate reason gives INDETERMINATE; a pass that relies
on an exception (a VEX statement with an expiry) gives PASS_WITH_EXCEPTIONS; otherwise PASS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

from appliance.match.model import FindingsReport, Reachability
from appliance.policy.bundle import PolicyBundle
from appliance.policy.engine import CompiledPolicy, Outcome, Reason, engine_version
from appliance.policy.inputs import AttestationInfo, Context, KnowledgeInfo, build_input
from appliance.rva.reasons import ReasonCode
from appliance.sigstore.attach import Blob
from appliance.vex.merge import MergeResult, merge
from appliance.vex.model import VexStatement, format_time
from appliance.vex.products import ImageIdentity
from bundles import __version__, canonical, schemas
from bundles.digest import Digest

ENGINE_NAME: Final = "stella-ops"

SBOM_MEDIA_TYPE: Final = "application/vnd.cyclonedx+json"
VEX_MEDIA_TYPE: Final = "application/vnd.stella-ops.vex-bundle.v1+json"
VULN_MEDIA_TYPE: Final = "application/vnd.stella-ops.vuln-records.v1+json"
REACH_MEDIA_TYPE: Final = "application/vnd.stella-ops.reachability.v1+json"
#: Most exposed first: a component's reachability evidence shows its most exposed finding.
_EXPOSURE: Final = (
    Reachability.REACHABLE,
    Reachability.PRESENT,
    Reachability.UNKNOWN,
    Reachability.PRESENT_NOT_REACHED,
    Reachability.NOT_PRESENT,
)
UNKNOWNS_MEDIA_TYPE: Final = "application/vnd.stella-ops.unknowns.v1+json"
INPUT_MEDIA_TYPE: Final = "application/vnd.stella-ops.policy-input.v1+json"


class VerdictKind(StrEnum):
    PASS = "PASS"  # noqa: S105 (a verdict, not a password)
    FAIL = "FAIL"
    PASS_WITH_EXCEPTIONS = "PASS_WITH_EXCEPTIONS"  # noqa: S105
    INDETERMINATE = "INDETERMINATE"

    @property
    def exit_code(self) -> int:
        """``stella gate``'s exit code (shared/DESIGN.md §3)."""
        return {"PASS": 0, "PASS_WITH_EXCEPTIONS": 0, "FAIL": 3, "INDETERMINATE": 4}[self.value]


@dataclass(frozen=True, slots=True)
class SubjectInfo:
    """The image the verdict binds to: the name given, its manifest digest and media type."""

    name: str
    digest: str
    media_type: str
    size: int
    platform: str = ""
    index_digest: str | None = None


@dataclass(frozen=True, slots=True)
class GateInputs:
    """Everything a verdict depends on. ``report`` is None when there was no knowledge
    snapshot to match against; ``sbom`` is None when no SBOM could be produced."""

    subject: SubjectInfo
    at: datetime
    policy: PolicyBundle
    report: FindingsReport | None
    statements: tuple[VexStatement, ...] = ()
    knowledge: KnowledgeInfo | None = None
    sbom: bytes | None = None
    attestations: tuple[AttestationInfo, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()
    image_names: tuple[str, ...] = ()
    scan_limit: Mapping[str, Any] | None = None
    """Set when the image's scan was stopped by a bound (``bound``, ``cap``, ``limit``,
    ``message``): the verdict is never a pass (see :func:`decide`)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    verdict: VerdictKind
    reasons: tuple[Reason, ...]
    predicate: Mapping[str, Any]
    evidence: tuple[Blob, ...]
    merged: MergeResult
    policy_input: Mapping[str, Any] = field(repr=False)

    @property
    def predicate_bytes(self) -> bytes:
        return canonical.dumps(dict(self.predicate))


def decide(
    outcome: Outcome, merged: MergeResult, scan_limit: Mapping[str, Any] | None = None
) -> tuple[VerdictKind, tuple[Reason, ...]]:
    """The verdict and every reason behind it (see the module docstring). A scan stopped by
    its bound is never a pass, whatever the policy says: its ``RISK.UNKNOWN.SCAN_LIMIT``
    reason is added when the policy did not give it, and the verdict is INDETERMINATE unless
    the policy denies the image on what it could see."""
    kind, reasons = _decide(outcome, merged)
    if scan_limit is None:
        return kind, reasons
    if not any(r.code == ReasonCode.UNKNOWN_SCAN_LIMIT.value for r in reasons):
        limit = Reason(ReasonCode.UNKNOWN_SCAN_LIMIT.value, str(scan_limit["message"]))
        reasons = tuple(sorted({*reasons, limit}))
    if kind is not VerdictKind.FAIL:
        kind = VerdictKind.INDETERMINATE
    return kind, reasons


def _decide(outcome: Outcome, merged: MergeResult) -> tuple[VerdictKind, tuple[Reason, ...]]:
    extra = [
        Reason(
            ReasonCode.VEX_EXCEPTION_EXPIRED.value,
            f"exception {s.key} for {s.vulnerability} expired at {format_time(s.expires)}"
            if s.expires
            else f"exception {s.key} expired",
            s.vulnerability,
        )
        for s in merged.expired
    ]
    if outcome.problem is not None:
        return VerdictKind.INDETERMINATE, tuple(sorted({outcome.problem, *extra}))
    reasons = {*outcome.deny, *outcome.indeterminate, *outcome.info, *extra}
    if outcome.deny:
        kind = VerdictKind.FAIL
    elif outcome.indeterminate:
        kind = VerdictKind.INDETERMINATE
    else:
        exceptions = [m for m in merged.findings if m.exception]
        for m in exceptions:
            assert m.vex is not None
            reasons.add(
                Reason(
                    ReasonCode.VEX_EXCEPTION_APPLIED.value,
                    f"{m.finding.id}: waived by exception {m.vex.key} until "
                    f"{format_time(m.vex.expires) if m.vex.expires else '?'}",
                    m.finding.id,
                    m.finding.component.purl,
                )
            )
        kind = VerdictKind.PASS_WITH_EXCEPTIONS if exceptions else VerdictKind.PASS
    return kind, tuple(sorted(reasons))


def _explanation(
    kind: VerdictKind,
    reasons: tuple[Reason, ...],
    counts: Mapping[str, Any],
    stopped: bool = False,
) -> str:
    codes = sorted({r.code for r in reasons})
    head = {
        VerdictKind.PASS: "PASS: the policy found no risk that blocks this image",
        VerdictKind.FAIL: "FAIL: the policy denies this image",
        VerdictKind.PASS_WITH_EXCEPTIONS: "PASS_WITH_EXCEPTIONS: the image passes only "
        "because of time-limited exceptions",
        VerdictKind.INDETERMINATE: "INDETERMINATE: the policy could not decide",
    }[kind]
    if stopped and kind is VerdictKind.INDETERMINATE:
        head = "INDETERMINATE: the image's scan was stopped by its bound; its packages are unknown"
    body = (
        f"{counts['findings']} findings: {counts['affected']} affected, "
        f"{counts['notAffected']} not_affected, {counts['fixed']} fixed, "
        f"{counts['underInvestigation']} under_investigation; "
        f"{counts['exceptions']} exceptions; {counts['unknowns']} unknowns"
    )
    shown = ", ".join(codes[:8]) + (f" and {len(codes) - 8} more" if len(codes) > 8 else "")
    return f"{head}. {body}." + (f" Reasons: {shown}." if codes else "")


def _evidence(
    inputs: GateInputs, merged: MergeResult, policy_input: Mapping[str, Any]
) -> dict[str, Blob]:
    report = inputs.report
    considered: dict[str, VexStatement] = {s.key: s for s in (*merged.used, *merged.expired)}
    by_key = {s.key: s for s in inputs.statements}
    for m in merged.findings:
        for key in m.superseded:
            if key in by_key:
                considered[key] = by_key[key]
    reach: dict[str, dict[str, Any]] = {}
    symbol_level: list[dict[str, Any]] = []
    for m in merged.findings:
        ev = m.finding.evidence
        known = reach.get(ev.purl)
        # a component's findings may differ (symbol level): it shows its most exposed one
        if known is None or _EXPOSURE.index(ev.reachability) < _EXPOSURE.index(
            Reachability(known["reachability"])
        ):
            reach[ev.purl] = {
                "purl": ev.purl,
                "reachability": ev.reachability.value,
                "entrypoints": sorted(ev.entrypoints),
            }
        if ev.reachability_note:
            symbol_level.append(
                {
                    "vulnerability": m.finding.id,
                    "purl": ev.purl,
                    "reachability": ev.reachability.value,
                    "note": ev.reachability_note,
                }
                | ({"chain": list(ev.reachability_chain)} if ev.reachability_chain else {})
            )
    reach_doc: dict[str, Any] = {"components": [reach[p] for p in sorted(reach)]}
    if symbol_level:
        reach_doc["findings"] = sorted(symbol_level, key=lambda r: (r["purl"], r["vulnerability"]))
    blobs = {
        "vexBundle": Blob(
            "vexBundle",
            VEX_MEDIA_TYPE,
            canonical.dumps({"statements": [considered[k].to_dict() for k in sorted(considered)]}),
        ),
        "vulnData": Blob(
            "vulnData",
            VULN_MEDIA_TYPE,
            canonical.dumps(
                {
                    "snapshot": report.snapshot if report else None,
                    "records": [r.to_dict() for r in report.records()] if report else [],
                }
            ),
        ),
        "reachability": Blob(
            "reachability",
            REACH_MEDIA_TYPE,
            canonical.dumps(reach_doc),
        ),
        "unknowns": Blob(
            "unknowns",
            UNKNOWNS_MEDIA_TYPE,
            canonical.dumps({"unknowns": list(policy_input["unknowns"])}),
        ),
        "policyInput": Blob("policyInput", INPUT_MEDIA_TYPE, canonical.dumps(dict(policy_input))),
    }
    if inputs.sbom is not None:
        blobs["sbom"] = Blob("sbom", SBOM_MEDIA_TYPE, inputs.sbom)
    return blobs


def evaluate(inputs: GateInputs, policy: CompiledPolicy | None = None) -> Verdict:
    """Decide the verdict for ``inputs`` (see the module docstring). ``policy`` is a compiled
    form of ``inputs.policy`` to reuse across calls; by default it is compiled here."""
    # The predicate records the time to the second; evaluating at exactly that time makes a
    # replay from the recorded evaluationTime decide the same way.
    at = inputs.at.astimezone(UTC).replace(microsecond=0)
    inputs = dataclasses.replace(inputs, at=at)
    subject = inputs.subject
    image = ImageIdentity.of(
        subject.digest,
        index_digest=subject.index_digest,
        names=(subject.name, *inputs.image_names),
    )
    findings = inputs.report.findings if inputs.report else ()
    merged = merge(findings, inputs.statements, image, inputs.at)
    context = Context(
        image_name=subject.name,
        image_digest=subject.digest,
        at=inputs.at,
        platform=subject.platform,
        knowledge=inputs.knowledge if inputs.report is not None else None,
        sbom_digest=str(Digest.of_bytes(inputs.sbom)) if inputs.sbom else None,
        attestations=inputs.attestations,
        unknowns=inputs.report.unknowns if inputs.report else (),
        notes=inputs.notes,
        scan_limit=inputs.scan_limit,
    )
    policy_input = build_input(merged, context)
    if policy is None:
        with CompiledPolicy(inputs.policy) as compiled:
            outcome = compiled.evaluate(policy_input)
    else:
        outcome = policy.evaluate(policy_input)
    kind, reasons = decide(outcome, merged, inputs.scan_limit)
    blobs = _evidence(inputs, merged, policy_input)
    counts = dict(policy_input["counts"])
    knowledge = context.knowledge
    predicate: dict[str, Any] = {
        "subject": {
            "name": subject.name,
            "digest": subject.digest,
            "mediaType": subject.media_type,
            **({"platform": subject.platform} if subject.platform else {}),
        },
        "verdict": kind.value,
        "policy": {
            "id": inputs.policy.id,
            "digest": str(inputs.policy.digest),
            "version": inputs.policy.version,
            "mode": inputs.policy.mode.value,
        },
        "knowledgeSnapshot": None
        if knowledge is None
        else {"id": knowledge.id, "digest": knowledge.digest, "created": knowledge.created},
        "evidence": {
            role: blobs[role].ref() if role in blobs else None
            for role in ("sbom", "vexBundle", "vulnData", "reachability", "unknowns", "policyInput")
        },
        "reasonCodes": sorted({r.code for r in reasons}),
        "reasons": [r.to_dict() for r in reasons],
        "summary": {
            "findings": counts["findings"],
            "affected": counts["affected"],
            "notAffected": counts["notAffected"],
            "fixed": counts["fixed"],
            "underInvestigation": counts["underInvestigation"],
            "exceptions": counts["exceptions"],
            "unknowns": counts["unknowns"],
            "bySeverity": dict(counts["bySeverity"]),
        },
        "engine": {"name": ENGINE_NAME, "version": __version__, "policyEngine": engine_version()},
        "evaluationTime": format_time(inputs.at),
        "explanation": _explanation(kind, reasons, counts, inputs.scan_limit is not None),
    }
    schemas.validate(schemas.RVA_V1, predicate, source="RVA predicate")
    return Verdict(
        verdict=kind,
        reasons=reasons,
        predicate=predicate,
        evidence=tuple(blobs[k] for k in sorted(blobs)),
        merged=merged,
        policy_input=policy_input,
    )
