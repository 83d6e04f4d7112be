"""``gate`` end to end on a real (small) image in the appliance store: scan, match against a
knowledge snapshot, merge VEX, evaluate, sign, attach, index and audit; and ``stella gate``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.cli import cli
from appliance.home import Home
from appliance.rva.evaluate import VerdictKind
from appliance.rva.gate import CYCLONEDX_PREDICATE, gate
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import ANNOTATION_PREDICATE, ANNOTATION_SIGNER, attach_attestation
from appliance.store import open_knowledge, open_state
from appliance.store.audit import AuditLog
from appliance.store.knowledge import install_snapshot
from appliance.store.verdicts import VerdictStore
from bundles import canonical
from bundles.digest import Digest
from bundles.intoto import Statement, Subject
from bundles.keys import PrivateKey
from bundles.oci import ImageManifest, OCILayout
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03
from bundles.snapshot import DatasetType, build_dataset
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.rva.factories import AT, t
from tests.appliance.scanner.layouts import build_image, dist_info


def _snapshot(home: Home, *, kev: bool, created: str = "2026-11-20T00:00:00Z") -> Digest:
    return install_knowledge(home, kev=[KEV] if kev else [], sequence=1 + kev, created=created)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    return h


def test_gate_signs_attaches_indexes_and_audits(home: Home) -> None:
    snap = _snapshot(home, kev=True)
    result = gate(home, "app:1", at=AT, now=lambda: t("2026-11-23T06:30:00Z"))
    p = result.verdict.predicate
    assert result.kind is VerdictKind.FAIL
    assert result.exit_code == 3
    assert "RISK.CVE.KEV" in p["reasonCodes"]
    assert p["knowledgeSnapshot"] == {
        "id": "stable/2",
        "digest": str(snap),
        "created": "2026-11-20T00:00:00Z",
    }
    assert p["summary"]["findings"] == 1
    # the bundle verifies with the appliance key; its subject is the image manifest
    bundle = sigstore.read(result.bundle)
    statement = sigstore.verify(bundle, [home.public_key()], predicate_type=PREDICATE_TYPE)
    layout = OCILayout.open(home.oci)
    image = layout.resolve("app:1")
    assert statement.subjects[0].sha256 == image.digest
    assert p["subject"]["digest"] == str(image.digest)
    # referrers: the RVA and the SBOM attestation, and the evidence
    kinds = {
        r.annotations["dev.sigstore.bundle.predicateType"]
        for r in layout.referrers(image.digest, artifact_type=SIGSTORE_BUNDLE_V03)
    }
    assert kinds == {PREDICATE_TYPE, CYCLONEDX_PREDICATE}
    for role, ref in p["evidence"].items():
        assert layout.has_blob(Digest.parse(ref["digest"])), role
    sbom = layout.read_blob(Digest.parse(p["evidence"]["sbom"]["digest"]))
    assert json.loads(sbom)["bomFormat"] == "CycloneDX"
    with open_state(home) as db:
        (row,) = VerdictStore(db).history(str(image.digest))
        records = AuditLog(db).records()
    assert row.verdict == "FAIL"
    assert row.referrer == str(result.referrer.digest)
    gate_record = records[-1]
    assert gate_record.action == "gate"
    assert gate_record.time == "2026-11-23T06:30:00Z"
    assert gate_record.rule_digest == p["policy"]["digest"]
    assert row.audit_seq == gate_record.seq


def test_same_inputs_same_predicate_and_snapshot_changes_it(home: Home) -> None:
    _snapshot(home, kev=False)
    one = gate(home, "app:1", at=AT)
    two = gate(home, "app:1", at=AT)  # its own earlier verdict is not an input
    assert one.verdict.predicate_bytes == two.verdict.predicate_bytes
    rvas = OCILayout.open(home.oci).referrers(
        Digest.parse(one.verdict.predicate["subject"]["digest"]), artifact_type=SIGSTORE_BUNDLE_V03
    )
    assert {one.referrer.digest, two.referrer.digest} <= {r.digest for r in rvas}
    new_snap = _snapshot(home, kev=True)
    three = gate(home, "app:1", at=AT)
    assert three.verdict.predicate["knowledgeSnapshot"]["digest"] == str(new_snap)
    assert three.verdict.predicate_bytes != one.verdict.predicate_bytes


def test_gating_again_reads_none_of_the_appliances_own_attestations(home: Home) -> None:
    _snapshot(home, kev=False)
    layout = OCILayout.open(home.oci)
    image = layout.resolve("app:1")
    provenance = "https://slsa.dev/provenance/v1"
    other = PrivateKey.generate()  # someone else's attestation: the policy sees it every time
    statement = Statement((Subject.of("app:1", image.digest),), provenance, {"builder": {}})
    theirs = attach_attestation(
        layout, image, sigstore.sign(statement, other).to_json(), provenance, "2026-11-22T00:00:00Z"
    )
    first = gate(home, "app:1", at=AT)
    for _ in range(3):
        gate(home, "app:1", at=AT)
    layout = OCILayout.open(home.oci)
    own = [
        r
        for r in layout.referrers(image.digest, artifact_type=SIGSTORE_BUNDLE_V03)
        if r.annotations.get(ANNOTATION_SIGNER) == home.public_key().keyid
    ]
    sboms = [r for r in own if r.annotations[ANNOTATION_PREDICATE] == CYCLONEDX_PREDICATE]
    # a verdict and an SBOM attestation per gate, each naming the appliance's key
    assert len(own) == 8
    assert len(sboms) == 4
    for referrer in own:  # each bundle gone, verdicts and SBOMs: a gate that read one would fail
        manifest = layout.get_manifest(referrer).manifest
        assert isinstance(manifest, ImageManifest)
        (layer,) = manifest.layers
        layout.blob_path(layer.digest).unlink()
    again = gate(home, "app:1", at=AT)
    assert again.verdict.predicate_bytes == first.verdict.predicate_bytes
    cited = again.verdict.predicate["evidence"]["policyInput"]["digest"]
    policy_input = json.loads(OCILayout.open(home.oci).read_blob(Digest.parse(cited)))
    assert [(a["digest"], a["signer"]) for a in policy_input["attestations"]] == [
        (str(theirs.digest), other.keyid)
    ]


def test_policy_delivered_in_the_snapshot_is_used(home: Home) -> None:
    rego = (
        "package stella.policy\n\n"
        'deny contains {"code": "RISK.POLICY.BUNDLED", "msg": "no"} if true\n'
    )
    records = [
        {
            "id": "bundle/p.rego",
            "content": rego,
            "sha256": Digest.of_bytes(rego.encode()).hex,
            "size": len(rego),
        }
    ]
    store = open_knowledge(home)
    install_snapshot(
        store,
        [build_dataset("policy", DatasetType.POLICY, records)],
        sequence=1,
        channel="stable",
        created="2026-11-20T00:00:00Z",
    )
    store.close()
    result = gate(home, "app:1", at=AT)
    assert result.verdict.predicate["reasonCodes"] == ["RISK.POLICY.BUNDLED"]
    assert result.verdict.predicate["policy"]["digest"] == str(
        canonical.digest([{"path": "bundle/p.rego", "sha256": records[0]["sha256"]}])
    )


def test_without_knowledge_the_verdict_is_indeterminate(home: Home) -> None:
    result = gate(home, "app:1", at=AT)
    assert result.kind is VerdictKind.INDETERMINATE
    assert result.exit_code == 4
    assert result.verdict.predicate["knowledgeSnapshot"] is None
    assert result.verdict.predicate["reasonCodes"] == ["RISK.UNKNOWN.INPUT_MISSING"]


def test_cli_gate_with_an_exception_and_out_file(home: Home, tmp_path: Path) -> None:
    _snapshot(home, kev=True)
    runner = CliRunner()
    base = ["--home", str(home.root)]
    added = runner.invoke(
        cli,
        [
            *base,
            "vex",
            "add",
            "CVE-2018-18074",
            "--image",
            "app:1",
            "--component",
            "pkg:pypi/requests",
            "--status",
            "not_affected",
            "--justification",
            "vulnerable_code_not_in_execute_path",
            "--expires",
            "2027-01-01",
            "--at",
            "2026-11-22T00:00:00Z",
        ],
    )
    assert added.exit_code == 0, added.output
    out = tmp_path / "rva.json"
    result = runner.invoke(
        cli, [*base, "--json", "gate", "app:1", "--at", "2026-11-23T06:00:00Z", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["verdict"] == "PASS_WITH_EXCEPTIONS"
    assert "RISK.VEX.EXCEPTION_APPLIED" in summary["reasonCodes"]
    assert Digest.of_bytes(out.read_bytes()) == Digest.parse(summary["bundle"])
    statement = sigstore.verify(
        sigstore.read(out.read_bytes()), [home.public_key()], predicate_type=PREDICATE_TYPE
    )
    assert statement.predicate["evaluationTime"] == "2026-11-23T06:00:00Z"
    # after the exception expires, the same image fails again
    later = runner.invoke(cli, [*base, "gate", "app:1", "--at", "2027-01-02T00:00:00Z"])
    assert later.exit_code == 3, later.output
    assert later.output.startswith("FAIL  ")


def test_cli_gate_reports_a_v0_policy_as_a_load_error(home: Home, tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    policy.mkdir()
    (policy / "old.rego").write_text("package stella.policy\n\ndeny[msg] { msg := 1 }\n")
    result = CliRunner().invoke(
        cli, ["--home", str(home.root), "gate", "app:1", "--policy", str(policy)]
    )
    assert result.exit_code == 1
    assert f"stella: error: policy bundle {policy} does not load (parse_error): " in result.output
    assert "Rego v0 syntax" in result.output


def test_audit_mode_records_the_verdict_but_exits_zero(home: Home, tmp_path: Path) -> None:
    _snapshot(home, kev=True)
    policy = tmp_path / "audit"
    policy.mkdir()
    (policy / "p.rego").write_text(
        'package stella.policy\n\ndeny contains {"code": "RISK.CVE.KEV", "msg": "kev"} if true\n'
    )
    (policy / "data.json").write_text(
        '{"stella": {"bundle": {"id": "trial", "version": "2", "mode": "audit"}}}'
    )
    result = CliRunner().invoke(
        cli, ["--home", str(home.root), "--json", "gate", "app:1", "--policy", str(policy)]
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["verdict"] == "FAIL"
    assert summary["policy"]["mode"] == "audit"
    assert summary["policy"]["id"] == "trial"


def test_cli_gate_bad_time_is_a_usage_error(home: Home) -> None:
    result = CliRunner().invoke(cli, ["--home", str(home.root), "gate", "app:1", "--at", "noon"])
    assert result.exit_code == 2
    assert "stella: error: --at: 'noon' is not an RFC 3339 time" in result.output
