"""``verify``: a verdict made by the real gate verifies; each kind of tampering fails with its
own message; ``stella verify`` on a file and on an image."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.auditor.errors import (
    AuditorError,
    AuditRecordError,
    EvidenceError,
    SubjectBindingError,
    TrustPolicyError,
)
from appliance.auditor.trust_policy import KeyRule, TrustPolicy
from appliance.auditor.verify import verify_in_home, verify_rva
from appliance.cli import cli
from appliance.home import Home
from appliance.rva.gate import CYCLONEDX_PREDICATE, GateResult
from appliance.rva.predicate import PREDICATE_TYPE
from bundles.digest import Digest
from bundles.keys import PrivateKey
from bundles.oci import OCILayout
from tests.appliance.auditor.tamper import edit_predicate, resign, statement_of

OTHER = "sha256:" + "0f" * 32


def test_gated_verdict_verifies_with_evidence_and_audit_record(
    home: Home, gated: GateResult
) -> None:
    result = verify_in_home(home, gated.bundle, TrustPolicy.appliance(home.public_key()))
    assert result.is_verdict
    assert result.signer == "appliance"
    assert result.keyid == home.public_key().keyid
    assert result.statement_digest == gated.statement_digest
    assert {e.role for e in result.evidence} == {
        "sbom",
        "vexBundle",
        "vulnData",
        "reachability",
        "unknowns",
        "policyInput",
    }
    assert all(e.checked for e in result.evidence)
    assert result.audit is not None
    assert result.audit.seq == gated.audit_seq
    assert result.to_dict()["verdict"] == "FAIL"


def test_evidence_file_swapped(home: Home, gated: GateResult) -> None:
    sbom = Digest.parse(gated.verdict.predicate["evidence"]["sbom"]["digest"])
    path = OCILayout.open(home.oci).blob_path(sbom)
    path.chmod(0o644)
    path.write_bytes(b'{"bomFormat":"CycloneDX","specVersion":"1.6","components":[]}')
    with pytest.raises(
        EvidenceError,
        match=r"evidence sbom in OCI store .* has digest sha256:"
        r"[0-9a-f]{64} \(\d+ bytes\), but the signed verdict pins " + str(sbom),
    ):
        verify_in_home(home, gated.bundle, TrustPolicy.appliance(home.public_key()))


def test_evidence_missing(home: Home, gated: GateResult) -> None:
    vex = Digest.parse(gated.verdict.predicate["evidence"]["vexBundle"]["digest"])
    OCILayout.open(home.oci).blob_path(vex).unlink()
    with pytest.raises(EvidenceError, match=f"evidence vexBundle {vex} is not in OCI store"):
        verify_in_home(home, gated.bundle, TrustPolicy.appliance(home.public_key()))


def test_predicate_edited(home: Home, gated: GateResult) -> None:
    edited = edit_predicate(gated.bundle, "verdict", "PASS")
    with pytest.raises(AuditorError, match="the signature does not verify over the DSSE payload"):
        verify_rva(edited, TrustPolicy.appliance(home.public_key()))


def test_signature_from_untrusted_key(home: Home, gated: GateResult) -> None:
    mallory = PrivateKey.generate()
    forged = resign(gated.bundle, mallory)
    with pytest.raises(
        TrustPolicyError,
        match=f"signed by key {mallory.keyid}, which the trust policy does not trust",
    ):
        verify_rva(forged, TrustPolicy.appliance(home.public_key()))


def test_key_trusted_for_another_predicate_type(home: Home, gated: GateResult) -> None:
    sbom_only = TrustPolicy(
        (KeyRule("sbom-signer", home.public_key(), frozenset({CYCLONEDX_PREDICATE})),)
    )
    with pytest.raises(
        TrustPolicyError,
        match="does not allow to sign predicateType " + PREDICATE_TYPE.replace(".", r"\."),
    ):
        verify_rva(gated.bundle, sbom_only)


def test_subject_digest_changed(home: Home, gated: GateResult) -> None:
    key = home.signing_key()
    statement = statement_of(gated.bundle)
    moved = resign(gated.bundle, key, subject=[{"name": "app", "digest": {"sha256": "0f" * 32}}])
    assert statement["subject"] != statement_of(moved)["subject"]
    with pytest.raises(SubjectBindingError, match="predicate subject sha256:.* is not a subject"):
        verify_rva(moved, TrustPolicy.appliance(home.public_key()))


def test_subject_is_not_the_named_artifact(home: Home, gated: GateResult) -> None:
    with pytest.raises(SubjectBindingError, match=f"the statement is about sha256:.*, not {OTHER}"):
        verify_rva(
            gated.bundle, TrustPolicy.appliance(home.public_key()), subject=Digest.parse(OTHER)
        )


def test_audit_record_edited(home: Home, gated: GateResult) -> None:
    conn = sqlite3.connect(home.state_db)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET actor = 'someone else' WHERE action = 'gate'")
    conn.commit()
    conn.close()
    with pytest.raises(AuditRecordError, match="the audit log of .* does not verify"):
        verify_in_home(home, gated.bundle, TrustPolicy.appliance(home.public_key()))


def test_trust_policy_file_round_trip(tmp_path: Path, home: Home, gated: GateResult) -> None:
    policy = TrustPolicy.appliance(home.public_key())
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(policy.to_dict()))
    assert TrustPolicy.load(path) == policy
    path.write_text('{"version": 1, "keys": [{"publicKey": 3}]}')
    with pytest.raises(TrustPolicyError, match=r"keys\[0\]\.publicKey must be a PEM"):
        TrustPolicy.load(path)


# ---------------------------------------------------------------- CLI


def test_cli_verify_file_and_image(home: Home, rva_file: Path, gated: GateResult) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["--home", str(home.root), "verify", str(rva_file)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"OK  {rva_file}\n")
    assert "verdict FAIL at 2026-11-23T06:00:00Z" in out.output
    assert "evidence 6 of 6 checked against the pinned digests" in out.output
    assert f"audit record {gated.audit_seq} at 2026-11-23T06:30:00Z" in out.output
    out = runner.invoke(cli, ["--home", str(home.root), "--json", "verify", "app:1"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["statement"] == str(gated.statement_digest)
    assert doc["subjects"][0]["digest"] == gated.verdict.predicate["subject"]["digest"]


def test_cli_verify_elsewhere_with_key(tmp_path: Path, home: Home, rva_file: Path) -> None:
    pub = tmp_path / "appliance.pub"
    home.public_key().save(pub)
    runner = CliRunner()
    args = ["--home", str(tmp_path / "nohome"), "verify", str(rva_file), "--key", str(pub)]
    out = runner.invoke(cli, args)
    assert out.exit_code == 0, out.output
    assert "(no evidence store here: digests only)" in out.output
    out = runner.invoke(cli, [*args, "--artifact", OTHER])
    assert out.exit_code == 1
    assert "the statement is about sha256:" in out.output
    assert f"not {OTHER}" in out.output


def test_cli_verify_without_any_key(tmp_path: Path, rva_file: Path) -> None:
    out = CliRunner().invoke(cli, ["--home", str(tmp_path / "nohome"), "verify", str(rva_file)])
    assert out.exit_code == 2
    assert "no key to verify with" in out.output
