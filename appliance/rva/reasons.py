"""The registry of stable reason codes (docs/reason-codes.md).

A code is ``RISK.<AREA>.<NAME>``. A registered code never changes meaning; new codes may be
added in any release. Policies from bundles may emit codes of their own, which must follow the
same form; the ones the appliance and its shipped policies emit are listed here.
"""

from __future__ import annotations

from enum import StrEnum


class ReasonCode(StrEnum):
    CVE_KEV = "RISK.CVE.KEV"
    CVE_REACHABLE = "RISK.CVE.REACHABLE"
    CVE_EXPLOITABLE = "RISK.CVE.EXPLOITABLE"
    CVE_CODE_NOT_PRESENT = "RISK.CVE.CODE_NOT_PRESENT"
    POLICY_THRESHOLD_EXCEEDED = "RISK.POLICY.THRESHOLD_EXCEEDED"
    POLICY_UNDEFINED = "RISK.POLICY.UNDEFINED"
    POLICY_EVAL_ERROR = "RISK.POLICY.EVAL_ERROR"
    POLICY_MALFORMED_RESULT = "RISK.POLICY.MALFORMED_RESULT"
    VEX_NOT_AFFECTED = "RISK.VEX.NOT_AFFECTED"
    VEX_FIXED = "RISK.VEX.FIXED"
    VEX_UNDER_INVESTIGATION = "RISK.VEX.UNDER_INVESTIGATION"
    VEX_EXCEPTION_APPLIED = "RISK.VEX.EXCEPTION_APPLIED"
    VEX_EXCEPTION_EXPIRED = "RISK.VEX.EXCEPTION_EXPIRED"
    UNKNOWN_INPUT_MISSING = "RISK.UNKNOWN.INPUT_MISSING"
    UNKNOWN_UNDECIDED = "RISK.UNKNOWN.UNDECIDED"
    UNKNOWN_SCAN_LIMIT = "RISK.UNKNOWN.SCAN_LIMIT"
    KNOWLEDGE_STALE = "RISK.KNOWLEDGE.STALE"
    ATTESTATION_MISSING = "RISK.ATTESTATION.MISSING"
    ATTESTATION_NO_INCLUSION_PROOF = "RISK.ATTESTATION.NO_INCLUSION_PROOF"


DESCRIPTIONS: dict[ReasonCode, str] = {
    ReasonCode.CVE_KEV: "an affected finding is in CISA's Known Exploited Vulnerabilities",
    ReasonCode.CVE_REACHABLE: "an affected critical or high finding is reachable from an "
    "entrypoint of the image",
    ReasonCode.CVE_EXPLOITABLE: "an unwaived critical finding is exploitable (KEV, EPSS at or "
    "above the threshold, or reachable)",
    ReasonCode.CVE_CODE_NOT_PRESENT: "an unwaived finding's vulnerable functions are not linked "
    "into the binary (a not_affected VEX statement can be proposed with 'stella vex suggest')",
    ReasonCode.POLICY_THRESHOLD_EXCEEDED: "more affected findings of a severity than the "
    "policy allows",
    ReasonCode.POLICY_UNDEFINED: "the policy defines no decision (data.stella.policy or its "
    "deny set is undefined)",
    ReasonCode.POLICY_EVAL_ERROR: "the policy raised an error while evaluating",
    ReasonCode.POLICY_MALFORMED_RESULT: "the policy's decision is not in the documented form",
    ReasonCode.VEX_NOT_AFFECTED: "a VEX statement says the image is not affected by a finding",
    ReasonCode.VEX_FIXED: "a VEX statement says a finding is fixed in the image",
    ReasonCode.VEX_UNDER_INVESTIGATION: "a finding is under investigation (counted separately)",
    ReasonCode.VEX_EXCEPTION_APPLIED: "the pass depends on an exception: a VEX statement with "
    "an expiry",
    ReasonCode.VEX_EXCEPTION_EXPIRED: "an exception that would apply has expired; it does "
    "not renew by itself",
    ReasonCode.UNKNOWN_INPUT_MISSING: "an input the decision needs is missing (knowledge "
    "snapshot, SBOM)",
    ReasonCode.UNKNOWN_UNDECIDED: "components or records could not be decided (listed in the "
    "unknowns evidence)",
    ReasonCode.UNKNOWN_SCAN_LIMIT: "the image's scan was stopped by one of its bounds (memory, "
    "CPU time, file size, open files, result size, wall clock): its packages are unknown",
    ReasonCode.KNOWLEDGE_STALE: "the knowledge snapshot is older than the policy allows, or "
    "its age is unknown",
    ReasonCode.ATTESTATION_MISSING: "the image has no attestations",
    ReasonCode.ATTESTATION_NO_INCLUSION_PROOF: "an attestation carries no transparency-log "
    "inclusion proof",
}
