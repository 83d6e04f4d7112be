"""CycloneDX VEX (1.4–1.6 ``vulnerabilities[].analysis``) read as an OpenVEX document, so an
imported CycloneDX VEX is validated, signed, stored and merged exactly like OpenVEX.

Mapping (CycloneDX analysis → OpenVEX):

- state ``not_affected`` and ``false_positive`` → ``not_affected``; ``resolved`` and
  ``resolved_with_pedigree`` → ``fixed``; ``exploitable`` → ``affected``; ``in_triage`` →
  ``under_investigation``. A vulnerability without an analysis state is skipped: it is then
  only a finding report and says nothing about exploitability;
- justification ``code_not_present`` → ``vulnerable_code_not_present``;
  ``code_not_reachable`` → ``vulnerable_code_not_in_execute_path``; ``protected_by_*`` and
  ``protected_at_*`` → ``inline_mitigations_already_exist``; the others
  (``requires_configuration``, ``requires_dependency``, ``requires_environment``)
  have no OpenVEX equivalent and become the impact statement, with ``analysis.detail``;
- each ``affects[].ref`` names a product: the purl of the component with that ``bom-ref``
  (or of ``metadata.component``), or the ref itself when it is a purl; ``affects[].versions``
  are not interpreted (a version range is not a product).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from appliance.vex.model import VexError, arr, count_statements, obj, opt_str, shown
from appliance.vex.openvex import CONTEXT
from bundles import canonical
from bundles.canonical import kind_of

STATES: Final = {
    "not_affected": "not_affected",
    "false_positive": "not_affected",
    "resolved": "fixed",
    "resolved_with_pedigree": "fixed",
    "exploitable": "affected",
    "in_triage": "under_investigation",
}
JUSTIFICATIONS: Final = {
    "code_not_present": "vulnerable_code_not_present",
    "code_not_reachable": "vulnerable_code_not_in_execute_path",
    "protected_by_compiler": "inline_mitigations_already_exist",
    "protected_at_runtime": "inline_mitigations_already_exist",
    "protected_at_perimeter": "inline_mitigations_already_exist",
    "protected_by_mitigating_control": "inline_mitigations_already_exist",
}


def is_cyclonedx(doc: Any) -> bool:
    return isinstance(doc, Mapping) and doc.get("bomFormat") == "CycloneDX"


def _purls(doc: Mapping[str, Any], source: str) -> dict[str, str]:
    refs: dict[str, str] = {}
    metadata = obj(doc, "metadata", source)
    stack: list[Any] = [metadata.get("component"), *arr(doc, "components", source)]
    while stack:
        item = stack.pop()
        if not isinstance(item, Mapping):
            continue
        ref, purl = item.get("bom-ref"), item.get("purl")
        if isinstance(ref, str) and isinstance(purl, str):
            refs[ref] = purl
        stack.extend(arr(item, "components", f"{source}: component {shown(ref)}"))
    return refs


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def to_openvex(doc: Mapping[str, Any], *, source: str) -> dict[str, Any]:
    """The OpenVEX v0.2.0 document saying what the CycloneDX VEX ``doc`` says."""
    metadata = obj(doc, "metadata", source)
    stamp = opt_str(metadata, "timestamp", f"{source}: metadata")
    if not stamp:
        raise VexError(
            f"{source}: CycloneDX VEX has no metadata.timestamp",
            hint="a VEX statement needs the time it was made",
        )
    refs = _purls(doc, source)
    statements = []
    for i, vuln in enumerate(arr(doc, "vulnerabilities", source)):
        where = f"{source}: vulnerabilities[{i}]"
        if not isinstance(vuln, Mapping) or not isinstance(vuln.get("id"), str):
            raise VexError(f"{where}: has no id (a string)")
        analysis = obj(vuln, "analysis", where)
        state = analysis.get("state")
        if state is None:
            continue
        if not isinstance(state, str) or state not in STATES:
            raise VexError(f"{where}: analysis.state {shown(state)} is not a CycloneDX state")
        products = []
        for j, affect in enumerate(arr(vuln, "affects", where)):
            ref = affect.get("ref") if isinstance(affect, Mapping) else None
            purl = refs.get(ref, ref) if isinstance(ref, str) else None
            if not isinstance(purl, str) or not purl.startswith("pkg:"):
                raise VexError(
                    f"{where}.affects[{j}]: ref {shown(ref)} names no component with a purl",
                    hint="give the component a purl, or reference it by purl",
                )
            products.append({"@id": purl, "identifiers": {"purl": purl}})
        if not products:
            raise VexError(f"{where}: affects names no product")
        statement: dict[str, Any] = {
            "vulnerability": {"name": vuln["id"]},
            "products": products,
            "status": STATES[state],
        }
        detail = _text(analysis.get("detail"))
        justification = analysis.get("justification")
        if justification is not None and not isinstance(justification, str):
            raise VexError(
                f"{where}: analysis.justification must be a string, not {kind_of(justification)}"
            )
        if STATES[state] == "not_affected":
            if justification in JUSTIFICATIONS:
                statement["justification"] = JUSTIFICATIONS[justification]
                if detail:
                    statement["impact_statement"] = detail
            else:
                statement["impact_statement"] = ": ".join(
                    p for p in (justification or "not affected", detail) if p
                )
        elif STATES[state] == "affected":
            responses = [
                r for r in arr(analysis, "response", f"{where}.analysis") if isinstance(r, str)
            ]
            statement["action_statement"] = detail or ", ".join(responses) or "see vendor"
        elif detail:
            statement["status_notes"] = detail
        statements.append(statement)
        count_statements(len(statements), source)
    if not statements:
        raise VexError(f"{source}: the CycloneDX document has no vulnerability with an analysis")
    supplier = metadata.get("supplier")
    author = supplier.get("name") if isinstance(supplier, Mapping) else None
    body = {
        "@context": CONTEXT,
        "author": author if isinstance(author, str) and author else "CycloneDX VEX",
        "timestamp": stamp,
        "version": 1,
        "tooling": "stella-ops (from CycloneDX VEX)",
        "statements": statements,
    }
    serial = doc.get("serialNumber")
    ident = (
        serial
        if isinstance(serial, str) and serial
        else f"urn:sha256:{canonical.digest(dict(doc)).hex}"
    )
    return {"@id": ident, **body}
