"""The verdict and its predicate: rules, goldens of the exact bytes, and independence from
hash seed, time zone and locale.

Goldens are rewritten with ``STELLA_UPDATE_GOLDENS=1 pytest tests/appliance/rva`` and
reviewed as diffs.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.match.model import Severity
from appliance.policy.bundle import PolicyBundle, PolicyFile
from appliance.rva.evaluate import VerdictKind, evaluate
from appliance.vex.model import VexStatus
from bundles import canonical, schemas
from bundles.digest import Digest
from tests.appliance.rva.cases import CASES, IMAGE_PURL
from tests.appliance.rva.factories import AT, OPENSSL, finding, inputs, statement, t

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests/golden/rva"
UPDATE = os.environ.get("STELLA_UPDATE_GOLDENS") == "1"


@pytest.mark.parametrize("case", sorted(CASES))
def test_predicate_bytes_match_the_golden(case: str) -> None:
    verdict = evaluate(CASES[case]())
    data = verdict.predicate_bytes
    path = GOLDEN / f"{case}.predicate.json"
    if UPDATE:
        path.write_bytes(data)
    assert data == path.read_bytes(), f"predicate of {case} changed; review and update"
    assert canonical.is_canonical(data)
    schemas.validate(schemas.RVA_V1, canonical.loads(data))


def test_golden_verdicts() -> None:
    assert evaluate(CASES["fail"]()).verdict is VerdictKind.FAIL
    assert evaluate(CASES["pass-with-exceptions"]()).verdict is VerdictKind.PASS_WITH_EXCEPTIONS
    assert evaluate(CASES["indeterminate"]()).verdict is VerdictKind.INDETERMINATE


def test_fail_names_its_reasons_and_counts_under_investigation_apart() -> None:
    verdict = evaluate(CASES["fail"]())
    p = verdict.predicate
    assert p["reasonCodes"] == [
        "RISK.CVE.KEV",
        "RISK.CVE.REACHABLE",
        "RISK.POLICY.THRESHOLD_EXCEEDED",
        "RISK.VEX.NOT_AFFECTED",
        "RISK.VEX.UNDER_INVESTIGATION",
    ]
    assert p["summary"]["underInvestigation"] == 1
    assert p["summary"]["notAffected"] == 1
    assert p["summary"]["affected"] == 2
    assert p["summary"]["findings"] == 4


def test_exceptions_expire_and_are_reported() -> None:
    verdict = evaluate(CASES["pass-with-exceptions"]())
    codes = verdict.predicate["reasonCodes"]
    assert "RISK.VEX.EXCEPTION_APPLIED" in codes
    assert "RISK.VEX.EXCEPTION_EXPIRED" in codes
    later = dataclasses.replace(CASES["pass-with-exceptions"](), at=t("2027-01-02T00:00:00Z"))
    assert evaluate(later).verdict is VerdictKind.FAIL  # the KEV critical is back


def test_plain_pass() -> None:
    verdict = evaluate(inputs(finding(severity=Severity.LOW)))
    assert verdict.verdict is VerdictKind.PASS
    assert verdict.predicate["reasonCodes"] == []


def test_permanent_not_affected_is_a_pass_not_an_exception() -> None:
    verdict = evaluate(
        inputs(
            finding(severity=Severity.CRITICAL, kev=True),
            statements=(statement(product=IMAGE_PURL, subcomponents=(OPENSSL,)),),
        )
    )
    assert verdict.verdict is VerdictKind.PASS
    assert verdict.predicate["reasonCodes"] == ["RISK.VEX.NOT_AFFECTED"]


def test_stale_knowledge_is_indeterminate() -> None:
    verdict = evaluate(inputs(finding(severity=Severity.LOW), created="2026-09-01T00:00:00Z"))
    assert verdict.verdict is VerdictKind.INDETERMINATE
    assert verdict.predicate["reasonCodes"] == ["RISK.KNOWLEDGE.STALE"]


def _policy(text: str) -> PolicyBundle:
    return PolicyBundle.build(
        [PolicyFile("p.rego", text, Digest.of_bytes(text.encode()).hex)], source="t"
    )


@pytest.mark.parametrize(
    ("rego", "code"),
    [
        ("package other\n\nx := 1\n", "RISK.POLICY.UNDEFINED"),
        (
            "package stella.policy\n\n"
            'deny contains {"code": "RISK.X.Y"} if { 1 / count(input.findings) }\n',
            "RISK.POLICY.EVAL_ERROR",
        ),
        ('package stella.policy\n\ndeny := "no"\n', "RISK.POLICY.MALFORMED_RESULT"),
    ],
)
def test_policy_failures_are_never_a_pass(rego: str, code: str) -> None:
    verdict = evaluate(inputs(policy=_policy(rego)))
    assert verdict.verdict is VerdictKind.INDETERMINATE
    assert verdict.predicate["reasonCodes"] == [code]


def test_changed_snapshot_and_policy_change_their_digests() -> None:
    base = evaluate(inputs(finding())).predicate
    other_snapshot = evaluate(inputs(finding(), snapshot="sha256:" + "7" * 64)).predicate
    assert other_snapshot["knowledgeSnapshot"]["digest"] == "sha256:" + "7" * 64
    assert base["knowledgeSnapshot"]["digest"] != other_snapshot["knowledgeSnapshot"]["digest"]
    default = PolicyBundle.default()
    changed = PolicyBundle.build(
        [
            dataclasses.replace(
                f, content=f.content + "\n", sha256=Digest.of_bytes((f.content + "\n").encode()).hex
            )
            if f.path.endswith(".rego")
            else f
            for f in default.files
        ],
        source="changed",
    )
    other_policy = evaluate(inputs(finding(), policy=changed)).predicate
    assert other_policy["policy"]["digest"] != base["policy"]["digest"]
    assert other_policy["verdict"] == base["verdict"]


def test_evaluation_time_is_an_input_recorded_in_the_predicate() -> None:
    one = evaluate(inputs(finding(), at=AT)).predicate_bytes
    again = evaluate(inputs(finding(), at=AT)).predicate_bytes
    later = evaluate(inputs(finding(), at=AT.replace(hour=7))).predicate
    assert one == again
    assert later["evaluationTime"] == "2026-11-23T07:00:00Z"


def test_evidence_is_cited_by_digest() -> None:
    verdict = evaluate(CASES["fail"]())
    cited = verdict.predicate["evidence"]
    for blob in verdict.evidence:
        assert cited[blob.role] == blob.ref()
    vex = canonical.loads(next(b for b in verdict.evidence if b.role == "vexBundle").data)
    assert [s["status"] for s in vex["statements"]] == ["not_affected", "under_investigation"]
    policy_input = canonical.loads(
        next(b for b in verdict.evidence if b.role == "policyInput").data
    )
    assert policy_input == dict(verdict.policy_input)


def test_predicate_is_validated_strictly_when_emitted() -> None:
    predicate = dict(evaluate(CASES["fail"]()).predicate)
    predicate["verdict"] = "MAYBE"
    with pytest.raises(
        schemas.SchemaValidationError, match=r"at \$\.verdict: 'MAYBE' is not one of"
    ):
        schemas.validate(schemas.RVA_V1, predicate)
    predicate = dict(evaluate(CASES["fail"]()).predicate)
    predicate["extra"] = 1
    with pytest.raises(schemas.SchemaValidationError, match="Additional properties"):
        schemas.validate(schemas.RVA_V1, predicate)


SCRIPT = (
    "import hashlib, sys\n"
    "from tests.appliance.rva.cases import CASES\n"
    "from appliance.rva.evaluate import evaluate\n"
    "for name in sorted(CASES):\n"
    "    data = evaluate(CASES[name]()).predicate_bytes\n"
    "    sys.stdout.write(name + ' ' + hashlib.sha256(data).hexdigest() + '\\n')\n"
)


@pytest.mark.slow
def test_same_bytes_under_other_hash_seeds_time_zones_and_locales() -> None:
    outputs = set()
    for seed, tz, lang in [
        ("0", "UTC", "C.UTF-8"),
        ("12345", "Asia/Kolkata", "tr_TR.UTF-8"),
        ("random", "America/St_Johns", "de_DE.UTF-8"),
    ]:
        env = {**os.environ, "PYTHONHASHSEED": seed, "TZ": tz, "LC_ALL": lang, "LANG": lang}
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1
    expected = "".join(
        f"{name} {Digest.of_bytes((GOLDEN / f'{name}.predicate.json').read_bytes()).hex}\n"
        for name in sorted(CASES)
    )
    assert outputs == {expected}


def test_under_investigation_never_waives() -> None:
    verdict = evaluate(
        inputs(
            finding(severity=Severity.CRITICAL, kev=True),
            statements=(statement(status=VexStatus.UNDER_INVESTIGATION),),
        )
    )
    assert verdict.verdict is VerdictKind.FAIL


def test_evaluation_time_is_taken_to_the_second_as_recorded() -> None:
    exception = statement(product=IMAGE_PURL, expires="2026-11-23T06:00:00Z")
    fine = AT.replace(microsecond=999_999)  # records as 06:00:00, where the exception expired
    verdict = evaluate(inputs(finding(severity=Severity.LOW), statements=(exception,), at=fine))
    assert verdict.predicate["evaluationTime"] == "2026-11-23T06:00:00Z"
    assert verdict.merged.expired == (exception,)
