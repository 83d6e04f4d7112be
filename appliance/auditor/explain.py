"""Explain a verified verdict to a person: what was decided, under which policy and knowledge,
on what evidence (by digest), the top reasons with their stable codes, the chain package ->
file -> layer -> entrypoint of each blocking finding, the VEX statements and exceptions that
applied, and the unknowns and assumptions.

:func:`build` gathers an :class:`Explanation` from the signed predicate and the evidence
blobs it cites (read through a :class:`~appliance.auditor.verify.BlobSource` and checked
against the pinned digests); the renderers are pure functions of that value.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from appliance.auditor.verify import BlobSource, RvaVerification
from appliance.rva.reasons import DESCRIPTIONS, ReasonCode
from bundles import canonical
from bundles.digest import Digest

TOP_REASONS: Final = 10
_PROP = "stella:"


class Format(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    HTML = "html"
    JSON = "json"


@dataclass(frozen=True, slots=True)
class Chain:
    """Why one finding blocks: the package, where its files are, the layer that added them,
    and the entrypoint that reaches it (when traced). ``note`` says how the package sits in its
    file when that is not plain: the binary, its owning OS package and the Go release it
    embeds, for a Go binary's standard library."""

    vulnerability: str
    severity: str
    purl: str
    files: tuple[str, ...]
    layer: str
    reachability: str
    entrypoints: tuple[str, ...]
    note: str = ""
    # entrypoint file -> module -> ... -> function, when a function-level analysis found it
    chain: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "vulnerability": self.vulnerability,
            "severity": self.severity,
            "purl": self.purl,
            "files": list(self.files),
            "layer": self.layer,
            "reachability": self.reachability,
            "entrypoints": list(self.entrypoints),
        }
        if self.note:
            out["note"] = self.note
        if self.chain:
            out["chain"] = list(self.chain)
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    verification: Mapping[str, Any]
    predicate: Mapping[str, Any]
    reasons: tuple[Mapping[str, Any], ...]
    blocking: tuple[Chain, ...]
    vex: tuple[Mapping[str, Any], ...]
    unknowns: tuple[Mapping[str, Any], ...]
    assumptions: tuple[str, ...]
    evidence_available: bool

    def to_dict(self) -> dict[str, Any]:
        p = self.predicate
        return {
            "verdict": p["verdict"],
            "subject": dict(p["subject"]),
            "evaluationTime": p["evaluationTime"],
            "explanation": p["explanation"],
            "summary": dict(p["summary"]),
            "policy": dict(p["policy"]),
            "knowledgeSnapshot": p["knowledgeSnapshot"],
            "engine": dict(p["engine"]),
            "signature": dict(self.verification),
            "evidence": {k: v for k, v in p["evidence"].items()},
            "evidenceAvailable": self.evidence_available,
            "reasons": [dict(r) for r in self.reasons],
            "blockingFindings": [c.to_dict() for c in self.blocking],
            "vex": [dict(v) for v in self.vex],
            "unknowns": [dict(u) for u in self.unknowns],
            "assumptions": list(self.assumptions),
        }


def _blob(blobs: BlobSource | None, role: str, ref: Mapping[str, Any] | None) -> Any:
    """The parsed evidence blob, or None when it is not available. Bytes that do not match
    the pinned digest are never used (verification reports them)."""
    if blobs is None or ref is None:
        return None
    digest = Digest.parse(ref["digest"])
    data = blobs.read(role, digest)
    if data is None or Digest.of_bytes(data) != digest:
        return None
    return canonical.loads(data, source=f"evidence {digest}")


def _props(component: Mapping[str, Any]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for prop in component.get("properties", []):
        name = str(prop.get("name", ""))
        if name.startswith(_PROP):
            out.setdefault(name[len(_PROP) :], []).append(str(prop.get("value", "")))
    return out


def _chains(findings: Sequence[Mapping[str, Any]], sbom: Any, reach: Any) -> tuple[Chain, ...]:
    components: dict[str, Mapping[str, Any]] = {}
    for c in (sbom or {}).get("components", []):
        components.setdefault(str(c.get("purl", "")), c)
    reach_by = {str(r["purl"]): r for r in (reach or {}).get("components", [])}
    chains = []
    for f in findings:
        purl = str(f["purl"])
        component = components.get(purl, {})
        props = _props(component)
        files = tuple(
            str(o.get("location", "")) for o in component.get("evidence", {}).get("occurrences", [])
        ) or tuple(props.get("package:location", []))
        layer = props.get("layer:digest", [""])[0]
        index = props.get("layer:index", [""])[0]
        r = reach_by.get(purl, {})
        entry = tuple(r.get("entrypoints", ())) or tuple(props.get("entrytrace:chain", []))
        chains.append(
            Chain(
                vulnerability=str(f["id"]),
                severity=str(f["severity"]),
                purl=purl,
                files=files,
                layer=f"layer {index} {layer}" if layer else "",
                # the finding's own state first: a binary's findings differ by symbol
                reachability=str(f.get("reachability") or r.get("reachability", "unknown")),
                entrypoints=entry,
                note="; ".join(str(f[k]) for k in ("evidenceNote", "reachabilityNote") if f.get(k)),
                chain=tuple(str(c) for c in f.get("reachabilityChain", ())),
            )
        )
    return tuple(chains)


def _assumptions(p: Mapping[str, Any], policy_input: Any) -> tuple[str, ...]:
    out = [
        f"Decided as of the recorded evaluation time {p['evaluationTime']}; exceptions and "
        "knowledge age are judged at that time, not now.",
    ]
    snap = p["knowledgeSnapshot"]
    if snap is None:
        out.append("No knowledge snapshot was available: no vulnerability could be matched.")
    else:
        age = (policy_input or {}).get("knowledge", {}).get("ageDays")
        aged = f" ({age} days old at evaluation)" if age is not None else ""
        out.append(
            f"Vulnerability knowledge is snapshot {snap['id']} created {snap['created']}"
            f"{aged}; anything published later is not considered."
        )
    if p["evidence"].get("sbom") is None:
        out.append("No SBOM could be produced for the image.")
    out.append(
        "Reachability 'unknown' means the entrypoint trace did not reach the package; it is "
        "never read as 'unreachable'."
    )
    return tuple(out)


def build(checked: RvaVerification, blobs: BlobSource | None) -> Explanation:
    p = checked.predicate
    ev = p["evidence"]
    policy_input = _blob(blobs, "policyInput", ev.get("policyInput"))
    sbom, reach = (
        _blob(blobs, "sbom", ev.get("sbom")),
        _blob(blobs, "reachability", ev.get("reachability")),
    )
    vex_doc = _blob(blobs, "vexBundle", ev.get("vexBundle"))
    unknown_doc = _blob(blobs, "unknowns", ev.get("unknowns"))
    findings = (policy_input or {}).get("findings", [])
    blocking_findings = (
        [f for f in findings if f["status"] == "affected" and not f["exception"]]
        if p["verdict"] in ("FAIL", "INDETERMINATE")
        else []
    )
    known = {c.value for c in ReasonCode}
    reasons = tuple(
        {
            **r,
            "description": DESCRIPTIONS[ReasonCode(r["code"])] if r["code"] in known else "",
        }
        for r in p["reasons"][:TOP_REASONS]
    )
    applied = set((policy_input or {}).get("vex", {}).get("applied", []))
    expired = set((policy_input or {}).get("vex", {}).get("expired", []))
    vex = tuple(
        {
            "statement": s.get("key", ""),
            "vulnerability": s.get("vulnerability", ""),
            "status": s.get("status", ""),
            "origin": s.get("origin", ""),
            "justification": s.get("justification"),
            "expires": s.get("expires"),
            "use": "applied"
            if s.get("key") in applied
            else "expired"
            if s.get("key") in expired
            else "superseded",
        }
        for s in (vex_doc or {}).get("statements", [])
    )
    verification = {
        "signer": checked.signer,
        "keyid": checked.keyid,
        "statement": str(checked.statement_digest),
        "bundle": str(checked.bundle_digest),
        "auditSeq": checked.audit.seq if checked.audit else None,
    }
    return Explanation(
        verification=verification,
        predicate=p,
        reasons=reasons,
        blocking=_chains(blocking_findings, sbom, reach),
        vex=vex,
        unknowns=tuple((unknown_doc or {}).get("unknowns", [])),
        assumptions=_assumptions(p, policy_input),
        evidence_available=policy_input is not None,
    )


# ---------------------------------------------------------------- renderers


def _sections(e: Explanation) -> list[tuple[str, list[str]]]:
    """Each section's title and lines, shared by the text and Markdown renderers."""
    p = e.predicate
    s = p["summary"]
    subject = p["subject"]
    decision = [
        f"Verdict: {p['verdict']}",
        f"Image: {subject['name']} {subject['digest']}"
        + (f" ({subject['platform']})" if subject.get("platform") else ""),
        f"Evaluated at: {p['evaluationTime']}",
        f"Findings: {s['findings']} (affected {s['affected']}, not_affected {s['notAffected']}, "
        f"fixed {s['fixed']}, under_investigation {s['underInvestigation']}, exceptions "
        f"{s['exceptions']}, unknowns {s['unknowns']})",
        p["explanation"],
        f"Signed by {e.verification['signer']} key {e.verification['keyid']}; statement "
        f"{e.verification['statement']}"
        + (
            f"; audit record {e.verification['auditSeq']}"
            if e.verification["auditSeq"] is not None
            else ""
        ),
    ]
    pol, snap, eng = p["policy"], p["knowledgeSnapshot"], p["engine"]
    policy = [
        f"Policy: {pol['id']} {pol['version']} ({pol['mode']}) {pol['digest']}",
        "Knowledge snapshot: "
        + (f"{snap['id']} {snap['digest']} created {snap['created']}" if snap else "none"),
        f"Engine: {eng['name']} {eng['version']}, {eng['policyEngine']}",
    ]
    evidence = [
        f"{role}: {ref['digest']} {ref['mediaType']} {ref['size']} bytes"
        if ref
        else f"{role}: none"
        for role, ref in p["evidence"].items()
    ]
    if not e.evidence_available:
        evidence.append("(evidence blobs are not available here: only their digests are shown)")
    reasons = [
        f"{r['code']}: {r['message']}" + (f" [{r['description']}]" if r["description"] else "")
        for r in e.reasons
    ] or ["none"]
    if len(p["reasons"]) > len(e.reasons):
        reasons.append(f"… and {len(p['reasons']) - len(e.reasons)} more (see JSON)")
    blocking = [
        f"{c.vulnerability} ({c.severity}): {c.purl} -> "
        f"{', '.join(c.files) or 'file unknown'} -> {c.layer or 'layer unknown'} -> "
        + (
            f"entrypoint {' -> '.join(c.entrypoints)}"
            if c.entrypoints
            else f"entrypoint: reachability {c.reachability}"
        )
        + (f" [{c.note}]" if c.note else "")
        + (f"\n    reached: {' -> '.join(c.chain)}" if c.chain else "")
        for c in e.blocking
    ] or ["none"]
    vex = [
        f"{v['vulnerability']}: {v['status']} ({v['origin']}"
        + (f", {v['justification']}" if v["justification"] else "")
        + (f", exception until {v['expires']}" if v["expires"] else "")
        + f") {v['use']}: {v['statement']}"
        for v in e.vex
    ] or ["none"]
    unknowns = [
        f"{u.get('purl') or u.get('record', '')}: {u.get('kind', '')} {u.get('reason', '')}".strip()
        for u in e.unknowns
    ] or ["none"]
    return [
        ("Decision", decision),
        ("Policy and knowledge", policy),
        ("Evidence", evidence),
        ("Top reasons", reasons),
        ("Blocking findings (package -> file -> layer -> entrypoint)", blocking),
        ("VEX and exceptions", vex),
        ("Unknowns", unknowns),
        ("Assumptions", list(e.assumptions)),
    ]


def render_text(e: Explanation) -> str:
    out = []
    for title, lines in _sections(e):
        out.append(title)
        out.extend(f"  {line}" for line in lines)
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_markdown(e: Explanation) -> str:
    p = e.predicate
    out = [f"# Risk verdict: {p['verdict']} for {p['subject']['name']}", ""]
    for title, lines in _sections(e):
        out += [f"## {title}", ""]
        out += [f"- {line}" for line in lines]
        out.append("")
    return "\n".join(out).rstrip() + "\n"


def render_html(e: Explanation) -> str:
    p = e.predicate
    title = html.escape(f"Risk verdict: {p['verdict']} for {p['subject']['name']}")
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "code{word-break:break-all}</style>",
        f"</head><body><h1>{title}</h1>",
    ]
    for section, lines in _sections(e):
        parts.append(f"<h2>{html.escape(section)}</h2><ul>")
        parts += [f"<li>{html.escape(line)}</li>" for line in lines]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def render_json(e: Explanation) -> str:
    return canonical.dumps(e.to_dict()).decode("utf-8") + "\n"


RENDERERS: Final[dict[Format, Callable[[Explanation], str]]] = {
    Format.TEXT: render_text,
    Format.MARKDOWN: render_markdown,
    Format.HTML: render_html,
    Format.JSON: render_json,
}


def render(e: Explanation, fmt: Format) -> str:
    return RENDERERS[fmt](e)
