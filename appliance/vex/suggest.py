"""What reachability lets an operator state: the ``not_affected`` suggestion for one finding.

``not-present`` (a Go binary links none of the vulnerable functions) suggests justification
``vulnerable_code_not_present``; ``present-not-reached`` (the Python package is imported but no
entrypoint reaches the vulnerable module or function, docs/reachability.md) suggests
``vulnerable_code_not_in_execute_path``. The evidence note is the impact statement. Only a
suggestion: ``stella vex suggest`` prints it and the TUI's triage form pre-fills it, and an
operator must confirm it to have it signed; nothing here signs or stores anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from appliance.match.model import Finding, Reachability
from appliance.vex.model import Justification, VexStatus

JUSTIFICATIONS: Final = {
    Reachability.NOT_PRESENT: Justification.VULNERABLE_CODE_NOT_PRESENT,
    Reachability.PRESENT_NOT_REACHED: Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH,
}


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A ``not_affected`` statement an operator may make about one finding."""

    vulnerability: str
    component: str  # purl
    justification: Justification
    impact: str
    status: VexStatus = VexStatus.NOT_AFFECTED


def suggestion(finding: Finding) -> Suggestion | None:
    """The suggestion reachability supports for ``finding``, or None."""
    justification = JUSTIFICATIONS.get(finding.reachable)
    if justification is None:
        return None
    evidence = finding.evidence
    impact = evidence.reachability_note or f"reachability: {finding.reachable.value}"
    return Suggestion(finding.id, finding.component.purl, justification, impact)
