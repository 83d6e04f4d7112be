"""Evaluation by OPA: load errors (Rego v0 included) are clear, and an undefined, failing or
malformed decision is never a pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.policy.bundle import PolicyBundle, PolicyFile, PolicyLoadError
from appliance.policy.engine import CompiledPolicy, Reason, evaluate, read_decision
from bundles.digest import Digest

EXAMPLES = Path(__file__).parents[3] / "appliance/policy/examples"


def bundle(text: str, data: str | None = None) -> PolicyBundle:
    files = [PolicyFile("p.rego", text, Digest.of_bytes(text.encode()).hex)]
    if data is not None:
        files.append(PolicyFile("data.json", data, Digest.of_bytes(data.encode()).hex))
    return PolicyBundle.build(files, source="test-bundle")


def test_rego_v0_is_a_clear_load_error() -> None:
    with pytest.raises(PolicyLoadError) as caught:
        CompiledPolicy(bundle("package stella.policy\n\ndeny[msg] { msg := 1 }\n"))
    text = caught.value.diagnostics()
    assert text.startswith("policy bundle test-bundle does not load (parse_error): ")
    assert "p.rego:3: rego_parse_error" in text
    assert "Rego v0 syntax" in text


def test_other_compile_errors_name_the_file() -> None:
    with pytest.raises(PolicyLoadError, match="p.rego:2"):
        CompiledPolicy(bundle("package stella.policy\ndeny contains x if { x := y }\n"))


def test_undefined_decision_is_indeterminate() -> None:
    outcome = evaluate(bundle("package other\n\nx := 1\n"), {})
    assert outcome.problem is not None
    assert outcome.problem.code == "RISK.POLICY.UNDEFINED"
    no_deny = evaluate(bundle("package stella.policy\n\nallow := true\n"), {})
    assert no_deny.problem is not None
    assert no_deny.problem.code == "RISK.POLICY.UNDEFINED"


def test_evaluation_error_is_indeterminate() -> None:
    outcome = evaluate(
        bundle(
            'package stella.policy\n\ndeny contains x if { x := {"code": to_number(input.v)} }\n'
        ),
        {"v": "zz"},
    )
    assert outcome.problem is not None
    assert outcome.problem.code == "RISK.POLICY.EVAL_ERROR"
    assert "to_number" in outcome.problem.message


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ([], "is not an object"),
        ({"deny": 1}, "deny is not a set"),
        ({"deny": ["x"]}, "not a reason object"),
        ({"deny": [{"code": "DENY"}]}, "reason code 'DENY'"),
        ({"deny": [{"code": "RISK.CVE"}]}, "reason code 'RISK.CVE'"),
        ({"deny": [{"code": "RISK.CVE.X", "msg": 3}]}, "non-string msg"),
        ({"deny": [], "info": "x"}, "info is not a set"),
    ],
)
def test_malformed_decisions_are_indeterminate(document: object, why: str) -> None:
    outcome = read_decision(document, "p")
    assert outcome.problem is not None
    assert outcome.problem.code == "RISK.POLICY.MALFORMED_RESULT"
    assert why in outcome.problem.message


def test_reasons_are_deduplicated_and_sorted() -> None:
    outcome = read_decision(
        {
            "deny": [
                {"code": "RISK.B.X", "msg": "b"},
                {"code": "RISK.A.X", "msg": "a"},
                {"code": "RISK.A.X", "msg": "a"},
            ]
        },
        "p",
    )
    assert outcome.deny == (Reason("RISK.A.X", "a"), Reason("RISK.B.X", "b"))


def _finding(**extra: object) -> dict[str, object]:
    base: dict[str, object] = {
        "id": "CVE-1",
        "purl": "pkg:deb/debian/x@1",
        "severity": "critical",
        "kev": False,
        "epss": None,
        "reachability": "unknown",
        "status": "affected",
    }
    base.update(extra)
    return base


@pytest.mark.parametrize(
    ("finding", "denied"),
    [
        (_finding(), False),  # critical but nothing says exploitable
        (_finding(kev=True), True),
        (_finding(epss=0.5), True),
        (_finding(epss=0.49), False),
        (_finding(reachability="reachable"), True),
        (_finding(kev=True, status="not_affected"), False),  # waived
        (_finding(kev=True, status="fixed"), False),
        (_finding(kev=True, status="under_investigation"), True),  # not a waiver
        (_finding(kev=True, severity="high"), False),
    ],
)
def test_example_deny_unwaived_exploitable_criticals(
    finding: dict[str, object], denied: bool
) -> None:
    policy = PolicyBundle.from_directory(EXAMPLES / "deny-exploitable-criticals")
    outcome = evaluate(policy, {"findings": [finding]})
    assert outcome.problem is None
    assert [r.code for r in outcome.deny] == (["RISK.CVE.EXPLOITABLE"] if denied else [])


@pytest.mark.parametrize(
    ("attestations", "codes"),
    [
        ([], ["RISK.ATTESTATION.MISSING"]),
        (
            [
                {
                    "digest": "sha256:1",
                    "predicateType": "p",
                    "transparency": {"inclusionProof": True},
                }
            ],
            [],
        ),
        (
            [
                {
                    "digest": "sha256:1",
                    "predicateType": "p",
                    "transparency": {"inclusionProof": True},
                },
                {
                    "digest": "sha256:2",
                    "predicateType": "q",
                    "transparency": {"inclusionProof": False},
                },
            ],
            ["RISK.ATTESTATION.NO_INCLUSION_PROOF"],
        ),
    ],
)
def test_example_require_inclusion_proof(attestations: list[object], codes: list[str]) -> None:
    policy = PolicyBundle.from_directory(EXAMPLES / "require-inclusion-proof")
    outcome = evaluate(policy, {"attestations": attestations})
    assert [r.code for r in outcome.deny] == codes
    if codes == ["RISK.ATTESTATION.NO_INCLUSION_PROOF"]:
        assert "sha256:2 (q)" in outcome.deny[0].message
