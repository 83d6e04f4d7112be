"""``replay``: a verdict made ten snapshots ago still MATCHes; a changed input gives a
field-level DIFF; a missing pinned input is an error naming its digest and its source."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.auditor.errors import ReplayInputMissingError
from appliance.auditor.replay import FieldDiff, ReplayOutcome, diff, replay
from appliance.auditor.trust_policy import TrustPolicy
from appliance.cli import cli
from appliance.home import Home
from appliance.policy.bundle import DEFAULT_DIR
from appliance.rva.gate import GateResult
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.attach import attach_attestation
from appliance.store import open_knowledge
from bundles.digest import Digest
from bundles.intoto import Statement, Subject
from bundles.keys import PrivateKey
from bundles.oci import OCILayout
from tests.appliance.auditor.helpers import gate_app, ten_more_snapshots


def _policy(home: Home) -> TrustPolicy:
    return TrustPolicy.appliance(home.public_key())


def test_replay_of_a_verdict_made_ten_snapshots_ago_matches(
    home: Home, gated: GateResult, rva_file: Path
) -> None:
    pinned = gated.verdict.predicate["knowledgeSnapshot"]["digest"]
    ten_more_snapshots(home)
    store = open_knowledge(home)
    try:
        assert len(store.snapshots()) == 11
        assert str(store.active()) != pinned
    finally:
        store.close()
    # gating now gives another verdict: the newer snapshots know more advisories
    assert gate_app(home).verdict.predicate_bytes != gated.verdict.predicate_bytes
    result = replay(home, gated.bundle, _policy(home))
    assert result.outcome is ReplayOutcome.MATCH
    assert result.diffs == ()
    assert result.recorded == Digest.of_bytes(gated.verdict.predicate_bytes)
    assert result.inputs["knowledgeSnapshot"] == pinned
    out = CliRunner().invoke(cli, ["--home", str(home.root), "replay", str(rva_file)])
    assert out.exit_code == 0, out.output
    assert out.output.startswith(f"MATCH  recorded {result.recorded}, replayed {result.recorded}")


def test_changed_unpinned_input_gives_a_field_level_diff(
    home: Home, gated: GateResult, rva_file: Path
) -> None:
    # someone attaches another signed attestation to the image after the verdict
    other = PrivateKey.generate()
    digest = Digest.parse(gated.verdict.predicate["subject"]["digest"])
    layout = OCILayout.open(home.oci)
    descriptor = layout.get_manifest(digest).descriptor
    statement = Statement((Subject.of("app", digest),), "https://slsa.dev/provenance/v1", {})
    bundle = sigstore.sign(statement, other).to_json()
    attach_attestation(layout, descriptor, bundle, statement.predicate_type, "2026-11-24T00:00:00Z")
    result = replay(home, gated.bundle, _policy(home))
    assert result.outcome is ReplayOutcome.DIFF
    paths = [d.path for d in result.diffs]
    assert "/evidence/policyInput/digest" in paths
    out = CliRunner().invoke(cli, ["--home", str(home.root), "replay", str(rva_file)])
    assert out.exit_code == 3
    assert out.output.startswith("DIFF  recorded ")
    assert '  /evidence/policyInput/digest: recorded "sha256:' in out.output


def test_missing_snapshot_names_digest_and_bundle(home: Home, gated: GateResult) -> None:
    snap = gated.verdict.predicate["knowledgeSnapshot"]
    for suffix in ("", "-wal", "-shm"):
        Path(f"{home.knowledge_db}{suffix}").unlink(missing_ok=True)
    bundle = Digest.of_bytes(b"bundle 1")
    with pytest.raises(
        ReplayInputMissingError,
        match=f"knowledge snapshot stable/1 \\({snap['digest']}\\) pinned in the verdict is not "
        "in the knowledge store",
    ) as info:
        replay(home, gated.bundle, _policy(home))
    assert f"import the knowledge bundle {bundle}" in (info.value.hint or "")


def test_missing_evidence_blob_names_digest(home: Home, gated: GateResult) -> None:
    sbom = gated.verdict.predicate["evidence"]["sbom"]["digest"]
    OCILayout.open(home.oci).blob_path(Digest.parse(sbom)).unlink()
    with pytest.raises(ReplayInputMissingError, match=f"the sbom evidence {sbom} pinned"):
        replay(home, gated.bundle, _policy(home))


def test_policy_from_a_directory_must_be_given_again(tmp_path: Path, home: Home) -> None:
    custom = tmp_path / "policy"
    shutil.copytree(DEFAULT_DIR, custom)
    data = json.loads((custom / "data.json").read_text())
    data["stella"]["bundle"]["id"] = "team-policy"
    (custom / "data.json").write_text(json.dumps(data))
    made = gate_app(home, policy_dir=custom)
    digest = made.verdict.predicate["policy"]["digest"]
    with pytest.raises(
        ReplayInputMissingError, match=f"policy team-policy 1.0.0 \\({digest}\\) pinned"
    ):
        replay(home, made.bundle, _policy(home))
    result = replay(home, made.bundle, _policy(home), policy_dir=custom)
    assert result.outcome is ReplayOutcome.MATCH


def test_image_missing(home: Home, gated: GateResult) -> None:
    shutil.rmtree(home.oci)
    OCILayout.init(home.oci)
    with pytest.raises(ReplayInputMissingError, match="image app \\(sha256:.*\\) pinned"):
        replay(home, gated.bundle, _policy(home))


def test_diff_walks_fields() -> None:
    recorded = {"a": 1, "b": [1, 2], "c": {"d": "x"}, "e": 1}
    replayed = {"a": 1, "b": [1, 3, 4], "c": {"d": "y"}, "f": 2}
    assert list(diff(recorded, replayed)) == [
        FieldDiff("/b/1", 2, 3),
        FieldDiff("/b/2", None, 4, "recorded"),
        FieldDiff("/c/d", "x", "y"),
        FieldDiff("/e", 1, None, "replayed"),
        FieldDiff("/f", None, 2, "recorded"),
    ]
    assert list(diff({"n": 1}, {"n": 1.0})) == [FieldDiff("/n", 1, 1.0)]
