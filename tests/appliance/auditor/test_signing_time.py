"""When a signature was made, as verify decides it (docs/keys.md "Signing time"): the time
the appliance's transparency log proves, against the key ring's windows and revocations,
with an injected clock; the claim alone only where no trusted log proves a time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from appliance import tlog
from appliance.auditor.errors import AuditorError
from appliance.auditor.package import export_package, read_package, seal, verify_package
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import CLOCK_SKEW, RvaVerification, SignedAt, TimeBasis, verify_rva
from appliance.home import Home
from appliance.keyring import load_ring, revoke, rotate
from appliance.rva.gate import GateResult, gate
from appliance.sigstore import bundle as sigstore
from bundles.intoto import Statement
from bundles.keys import PrivateKey, format_instant
from bundles.signer import Signer
from bundles.tlog.note import Note, SignedCheckpoint
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, dist_info

T0 = datetime(2027, 1, 1, tzinfo=UTC)
UNPROVEN = "no transparency-log entry or timestamp trusted here proves when"


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    add_snapshot(h, BASE_RECORDS, 1)
    return h


def _gate(home: Home, at: datetime, now: datetime | None = None) -> GateResult:
    return gate(home, "app:1", at=at, now=lambda: now or at)


def _signed(
    home: Home, like: GateResult, key: Signer, claimed: datetime, logged: datetime | None
) -> bytes:
    """A verdict like ``like`` claiming ``claimed``, signed by ``key`` and, unless ``logged``
    is None, appended to the home's log with the log's clock at ``logged``."""
    statement = sigstore.payload_statement(sigstore.read(like.bundle))
    predicate = {**statement.predicate, "evaluationTime": format_instant(claimed)}
    bundle = sigstore.sign(Statement(statement.subjects, statement.predicate_type, predicate), key)
    if logged is None:
        return bundle.to_json()
    entry = tlog.log_envelope(home, bundle.envelope, {key.keyid: key.public_key}, now=logged)
    return sigstore.with_entry(bundle, entry).to_json()


def _at(checked: RvaVerification) -> SignedAt:
    assert checked.signed_at is not None
    return checked.signed_at


def _verify(home: Home, data: bytes) -> RvaVerification:
    return verify_rva(
        data, TrustPolicy.of_ring(load_ring(home)), source="rva.json", logs=tlog.trusted_logs(home)
    )


def test_a_verdict_pinned_to_an_earlier_evaluation_time_is_proven_by_the_log(home: Home) -> None:
    result = _gate(home, day(1), now=day(3))  # 'gate --at' two days back
    checked = _verify(home, result.bundle)
    signed_at = _at(checked)
    assert signed_at.entry is not None
    entry = json.loads(result.bundle)["verificationMaterial"]["tlogEntries"][0]
    assert signed_at.to_dict() == {
        "basis": "transparency-log",
        "claimed": "2027-01-02T00:00:00Z",
        "proven": "2027-01-04T00:00:00Z",
        "log": {
            "log": tlog.verifier(home).name,
            "logIndex": int(entry["logIndex"]),
            "treeSize": int(entry["inclusionProof"]["treeSize"]),
            "rootHash": signed_at.entry.checkpoint.checkpoint.root.hex(),
            "loggedAt": "2027-01-04T00:00:00Z",
        },
    }
    assert signed_at.describe().startswith("signing time proven: logged by 2027-01-04T00:00:00Z")
    # Without the log, the same verdict rests on its claim, and says so.
    alone = verify_rva(result.bundle, TrustPolicy.of_ring(load_ring(home)))
    assert alone.signed_at is not None
    assert alone.signed_at.basis is TimeBasis.CLAIMED
    assert "unproven" in alone.signed_at.describe()


def test_a_claim_later_than_the_proof_beyond_the_skew_is_refused(home: Home) -> None:
    base = _gate(home, day(1))
    key = home.signing_key(now=day(2))
    within = _signed(home, base, key, day(2) + CLOCK_SKEW, logged=day(2))
    assert _at(_verify(home, within)).proven == day(2)
    beyond = _signed(home, base, key, day(2) + CLOCK_SKEW + timedelta(seconds=1), logged=day(2))
    with pytest.raises(AuditorError) as caught:
        _verify(home, beyond)
    message = caught.value.message
    assert message.startswith(
        "rva.json: claims to be signed at 2027-01-03T00:05:01Z, but it was logged at "
        "2027-01-03T00:00:00Z (entry "
    )
    assert message.endswith("more than 300 s earlier: the claimed time is not credible")


def test_a_retired_key_may_reach_the_log_within_the_skew_after_its_window(home: Home) -> None:
    _gate(home, day(1))
    old = PrivateKey.load(home.appliance_key)
    rotate(home, at=day(90), now=day(80))
    base = _gate(home, day(85))
    end = day(90)
    # Signed in the last second of the window, logged two seconds into the next: accepted.
    edge = _signed(home, base, old, end - timedelta(seconds=1), logged=end + timedelta(seconds=2))
    assert _verify(home, edge).keyid == old.keyid
    # Logged ten minutes after the window ended: refused, by the log's time.
    late = _signed(home, base, old, end - timedelta(seconds=1), logged=end + timedelta(minutes=10))
    with pytest.raises(AuditorError) as caught:
        _verify(home, late)
    assert caught.value.message.startswith("rva.json: logged at 2027-04-01T00:10:00Z (entry ")
    assert caught.value.message.endswith(
        f"signed by key {old.keyid[:16]}, after its validity window "
        "[the beginning, 2027-04-01T00:00:00Z) ended"
    )


def test_a_next_key_logged_before_its_window_is_refused(home: Home) -> None:
    base = _gate(home, day(1))
    rotate(home, at=day(90), now=day(80))
    waiting = PrivateKey.load(home.keys / "next.key")  # copied before it took over
    for claimed in (day(91), day(85)):  # whatever it claims, the log saw it too early
        early = _signed(home, base, waiting, claimed, logged=day(85))
        with pytest.raises(AuditorError) as caught:
            _verify(home, early)
        assert caught.value.message.endswith(
            f"signed by key {waiting.keyid[:16]}, before its validity window "
            "[2027-04-01T00:00:00Z, open) began"
        )


def test_an_entry_of_the_trusted_log_that_does_not_verify_is_tampering(home: Home) -> None:
    result = _gate(home, day(1))
    doc = json.loads(result.bundle)
    entry = doc["verificationMaterial"]["tlogEntries"][0]
    moved = str(int(entry["logIndex"]) + 1)  # the SBOM's place
    entry["inclusionProof"]["logIndex"] = entry["logIndex"] = moved
    with pytest.raises(AuditorError, match="its transparency-log entry does not verify"):
        _verify(home, json.dumps(doc).encode())


def test_a_checkpoint_without_the_logs_timestamp_proves_no_time(home: Home) -> None:
    """Heads written before the log timestamped them (or stripped of the time) leave the
    signature unproven: the claim decides, and a revoked key's signature is refused."""
    result = _gate(home, day(1))
    doc = json.loads(result.bundle)
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    signed = SignedCheckpoint.parse(proof["checkpoint"]["envelope"])
    proof["checkpoint"]["envelope"] = SignedCheckpoint(
        signed.checkpoint, Note(signed.note.text, signed.note.signatures[:1])
    ).to_text()
    stripped = json.dumps(doc).encode()
    checked = _verify(home, stripped)
    assert _at(checked).basis is TimeBasis.CLAIMED
    revoke(home, home.public_key().keyid, at=day(5), reason="token stolen", now=day(6))
    assert _at(_verify(home, result.bundle)).proven == day(1)
    with pytest.raises(AuditorError, match=UNPROVEN):
        _verify(home, stripped)


def test_an_audit_package_proves_the_time_offline(home: Home) -> None:
    """The package carries the entry and its timestamped checkpoint. Its own log key counts
    only when the audit head vouching for it is signed by a key that is not revoked; here the
    revoked key signed the head (no rotation yet), so the auditor must name the log."""
    early = _gate(home, day(10))
    revoke(home, home.public_key().keyid, at=day(20), reason="token stolen", now=day(31))
    policy = TrustPolicy.of_ring(load_ring(home))
    package = export_package(home, early.bundle, policy)
    files = read_package(package, source="audit.zip")
    assert SignedCheckpoint.parse(files["tlog/checkpoint.txt"]).timestamp(
        tlog.verifier(home)
    ) == int(day(10).timestamp())
    with pytest.raises(AuditorError, match=UNPROVEN):
        verify_package(package, policy, source="audit.zip")
    report = verify_package(package, policy, source="audit.zip", logs=tlog.trusted_logs(home))
    assert report.to_dict()["signingTime"]["proven"] == "2027-01-11T00:00:00Z"
    # After the rotation the new key signs the head: the package's log key is vouched for.
    rotate(home, now=day(31))
    _gate(home, day(32))
    policy = TrustPolicy.of_ring(load_ring(home))
    later = export_package(home, early.bundle, policy)
    assert verify_package(later, policy).to_dict()["signingTime"]["basis"] == "transparency-log"
    # The entry file must be the verdict's own.
    files = read_package(later, source="audit.zip")
    entry = json.loads(files["tlog/entry.json"])
    entry["logIndex"] = "7"
    files["tlog/entry.json"] = json.dumps(entry).encode()
    manifest = json.loads(files["manifest.json"])
    forged = seal(files, manifest["subject"], manifest["statement"])
    with pytest.raises(AuditorError, match="tlog/entry.json is not an entry the RVA carries"):
        verify_package(forged, policy, source="audit.zip")
