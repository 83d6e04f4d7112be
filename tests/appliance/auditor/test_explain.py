"""``explain``: the four formats of a verified verdict, with the blocking chain, VEX and
unknowns; without evidence only the signed predicate is shown."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.auditor import explain
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import LayoutBlobs, verify_in_home, verify_rva
from appliance.cli import cli
from appliance.home import Home
from appliance.rva.gate import GateResult
from appliance.vex import service as vex_service
from appliance.vex.model import Justification, VexStatus
from bundles.digest import Digest
from bundles.oci import OCILayout
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot, gate_app, osv
from tests.appliance.rva.factories import t

METADATA = "/usr/local/lib/python3.11/site-packages/requests-2.19.0.dist-info/METADATA"


def _explanation(home: Home, bundle: bytes) -> explain.Explanation:
    checked = verify_in_home(home, bundle, TrustPolicy.appliance(home.public_key()))
    return explain.build(checked, LayoutBlobs(OCILayout.open(home.oci)))


def test_blocking_chain_package_file_layer_entrypoint(home: Home, gated: GateResult) -> None:
    e = _explanation(home, gated.bundle)
    (chain,) = e.blocking
    assert chain.purl == "pkg:pypi/requests@2.19.0"
    assert chain.files == (METADATA,)
    assert chain.layer.startswith("layer 0 sha256:")
    assert chain.reachability == "unknown"
    text = explain.render_text(e)
    assert (
        f"CVE-2018-0001 (critical): pkg:pypi/requests@2.19.0 -> {METADATA} -> {chain.layer} -> "
        "entrypoint: reachability unknown"
    ) in text
    assert (
        "RISK.POLICY.THRESHOLD_EXCEEDED: 1 unwaived critical findings exceed the limit of 0 "
        "[more affected findings of a severity than the policy allows]" in text
    )
    policy = gated.verdict.predicate["policy"]
    assert f"Policy: stella-default 1.0.0 (enforce) {policy['digest']}" in text
    sbom = gated.verdict.predicate["evidence"]["sbom"]
    assert f"sbom: {sbom['digest']} application/vnd.cyclonedx+json {sbom['size']} bytes" in text
    assert f"audit record {gated.audit_seq}" in text


def test_vex_and_exceptions_are_listed(home: Home) -> None:
    add_snapshot(home, [*BASE_RECORDS, osv("PYSEC-2019-0002", "requests", "2.30.0")], 2)
    digest = OCILayout.open(home.oci).resolve("app:1").digest
    for vuln, expires in (("CVE-2018-0001", t("2027-01-01T00:00:00Z")), ("CVE-2019-0002", None)):
        vex_service.add(
            home,
            vulnerability=vuln,
            image=vex_service.ImageTarget(digest, "app:1"),
            components=["pkg:pypi/requests@2.19.0"],
            status=VexStatus.NOT_AFFECTED,
            justification=Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH,
            impact="not called",
            action="",
            expires=expires,
            at=t("2026-11-22T00:00:00Z"),
        )
    made = gate_app(home)
    e = _explanation(home, made.bundle)
    assert made.kind.value == "PASS_WITH_EXCEPTIONS"
    assert {(v["vulnerability"], v["use"]) for v in e.vex} == {
        ("CVE-2018-0001", "applied"),
        ("CVE-2019-0002", "applied"),
    }
    text = explain.render_text(e)
    assert (
        "CVE-2018-0001: not_affected (operator, vulnerable_code_not_in_execute_path, "
        "exception until 2027-01-01T00:00:00Z) applied" in text
    )
    assert "Blocking findings (package -> file -> layer -> entrypoint)\n  none" in text


@pytest.mark.parametrize("fmt", list(explain.Format))
def test_every_format_through_the_cli(home: Home, rva_file: Path, fmt: explain.Format) -> None:
    out = CliRunner().invoke(
        cli, ["--home", str(home.root), "explain", str(rva_file), "--format", fmt.value]
    )
    assert out.exit_code == 0, out.output
    if fmt is explain.Format.TEXT:
        assert out.output.startswith("Decision\n  Verdict: FAIL\n")
    elif fmt is explain.Format.MARKDOWN:
        assert out.output.startswith("# Risk verdict: FAIL for app\n\n## Decision\n\n- Verdict:")
        assert "\n## Blocking findings (package -> file -> layer -> entrypoint)\n" in out.output
    elif fmt is explain.Format.HTML:
        assert out.output.startswith("<!DOCTYPE html>")
        parser = HTMLParser()
        parser.feed(out.output)
        assert "<h2>Unknowns</h2>" in out.output
        assert "pkg:pypi/requests@2.19.0 -&gt; " in out.output
    else:
        doc = json.loads(out.output)
        assert doc["verdict"] == "FAIL"
        assert doc["blockingFindings"][0]["files"] == [METADATA]
        assert doc["evidenceAvailable"] is True


def test_html_escapes_what_the_image_says(home: Home, gated: GateResult) -> None:
    e = _explanation(home, gated.bundle)
    hostile = dict(e.predicate)
    hostile["explanation"] = "<script>alert(1)</script>"
    page = explain.render_html(
        explain.Explanation(
            e.verification,
            hostile,
            e.reasons,
            e.blocking,
            e.vex,
            e.unknowns,
            e.assumptions,
            e.evidence_available,
        )
    )
    assert "<script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_without_evidence_only_digests(home: Home, gated: GateResult) -> None:
    checked = verify_rva(gated.bundle, TrustPolicy.appliance(home.public_key()))
    e = explain.build(checked, None)
    assert e.blocking == ()
    assert not e.evidence_available
    text = explain.render_text(e)
    assert "(evidence blobs are not available here: only their digests are shown)" in text
    sbom = Digest.parse(gated.verdict.predicate["evidence"]["sbom"]["digest"])
    assert str(sbom) in text
