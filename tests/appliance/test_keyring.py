"""The appliance's key ring: a quarter's rotation with an injected clock (verdicts before,
during and after the overlap verify; a signature outside its key's window is refused with the
reason), the switch on the first signature after its time, the public keys auditors take out,
doctor's rotation warning, and refusals of bad rotations and ring files."""

from __future__ import annotations

import json
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance import tlog
from appliance.auditor.errors import AuditorError
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import TimeBasis, signing_time, verify_rva
from appliance.cli import cli
from appliance.doctor import Doctor, Status
from appliance.home import Home
from appliance.keyring import load_ring, revoke, rotate, rotation_plan
from appliance.rva.gate import GateResult, gate
from appliance.sigstore import bundle as sigstore
from appliance.store import open_state
from appliance.store.audit import AuditLog
from bundles.errors import UsageError
from bundles.intoto import Statement
from bundles.keys import (
    KeyRevokedError,
    KeyRingError,
    KeyWindowError,
    PrivateKey,
    format_instant,
)
from bundles.pkcs11_uri import PIN_ENV
from bundles.signer import Signer
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.softhsm import PIN, SoftHsm, softhsm

T0 = datetime(2027, 1, 1, tzinfo=UTC)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


def stella(home: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["--home", str(home), *args])
    return result.exit_code, result.stdout, result.stderr


def stella_json(home: Path, *args: str) -> dict:  # type: ignore[type-arg]
    code, out, err = stella(home, "--json", *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def gate_cli(home: Path, at: str, out: Path) -> None:
    code, _, err = stella(home, "gate", "app:1", "--at", at, "--out", str(out))
    assert code in (0, 3), err  # PASS or FAIL: a verdict was signed either way


def _home(tmp_path: Path) -> Home:
    home = Home(tmp_path / "home")
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    add_snapshot(home, BASE_RECORDS, 1)
    return home


def _gate(home: Home, when: datetime) -> GateResult:
    return gate(home, "app:1", at=when, now=lambda: when)


def _policy(home: Home) -> TrustPolicy:
    return TrustPolicy.of_ring(load_ring(home))


def _forged(result: GateResult, key: Signer, when: datetime) -> bytes:
    """The verdict of ``result`` claiming evaluation time ``when``, signed by ``key``."""
    statement = sigstore.payload_statement(sigstore.read(result.bundle))
    predicate = {**statement.predicate, "evaluationTime": format_instant(when)}
    forged = Statement(statement.subjects, statement.predicate_type, predicate)
    return sigstore.sign(forged, key).to_json()


def test_a_quarters_rotation_with_overlap(tmp_path: Path) -> None:
    home = _home(tmp_path)
    first = load_ring(home).latest
    old_signer = PrivateKey.load(home.appliance_key)

    before = _gate(home, day(10))
    # Day 80: the next key is published, to take over on day 90 (ten days of overlap).
    done = rotate(home, at=day(90), now=day(80))
    assert not done.switched
    assert (home.keys / "next.key").exists()
    new_id = done.next_key.keyid
    during = _gate(home, day(85))  # still signed by the old key
    assert sigstore.read(during.bundle).key_hint == first.keyid
    after = _gate(home, day(95))  # the first signature after day 90 switches
    assert sigstore.read(after.bundle).key_hint == new_id
    assert home.public_key().keyid == new_id
    assert not (home.keys / "next.key").exists()
    assert PrivateKey.load(home.appliance_key).keyid == new_id  # the old key file is gone

    policy, logs = _policy(home), tlog.trusted_logs(home)
    for result, signer, when in (
        (before, first.keyid, day(10)),
        (during, first.keyid, day(85)),
        (after, new_id, day(95)),
    ):
        assert verify_rva(result.bundle, policy).keyid == signer  # by the time each claims
        checked = verify_rva(result.bundle, policy, logs=logs)  # by the time the log proves
        assert checked.keyid == signer
        assert checked.signed_at is not None
        assert (checked.signed_at.basis, checked.signed_at.proven) == (TimeBasis.LOG, when)
    ring = load_ring(home)
    assert [e.valid_for.to_dict() for e in ring.entries] == [
        {"end": "2027-04-01T00:00:00Z"},
        {"start": "2027-04-01T00:00:00Z"},
    ]

    # A signature by the retired key claiming a time after its window is refused, by name.
    with pytest.raises(AuditorError) as caught:
        verify_rva(_forged(before, old_signer, day(100)), policy, source="late.json")
    assert caught.value.message == (
        f"late.json: signed at 2027-04-11T00:00:00Z by key {first.keyid[:16]}, outside its "
        "validity window [the beginning, 2027-04-01T00:00:00Z)"
    )
    # So is one by the new key claiming a time before it was in service.
    new_signer = home.signing_key(now=day(96))
    with pytest.raises(AuditorError, match=r"by key .* outside its validity window \[2027-04-01"):
        verify_rva(_forged(after, new_signer, day(50)), policy)
    # And the gate refuses to sign an evaluation time outside the signing key's window.
    with pytest.raises(KeyWindowError, match="evaluation time 2027-03-02T00:00:00Z is outside"):
        gate(home, "app:1", at=day(60), now=lambda: day(96))
    # The audit log is whole, its head signed by the new key, and it records the rotation.
    with open_state(home) as db:
        log = AuditLog(db, public_key=home.public_key())
        assert log.verify().ok
        actions = [r.action for r in log.records()]
    assert actions.count("key.rotate") == 1
    assert actions.count("key.switch") == 1


def test_signing_time_is_the_verdicts_evaluation_time(tmp_path: Path) -> None:
    home = _home(tmp_path)
    result = _gate(home, day(3))
    statement = sigstore.payload_statement(sigstore.read(result.bundle))
    assert signing_time(statement) == day(3)
    sbom = Statement(statement.subjects, "https://cyclonedx.org/bom", {"bomFormat": "CycloneDX"})
    assert signing_time(sbom) is None


def test_rotate_now_through_the_cli_and_verify_with_the_exported_keys(tmp_path: Path) -> None:
    home = _home(tmp_path)
    root = home.root
    old_rva, new_rva = tmp_path / "old.json", tmp_path / "new.json"
    gate_cli(root, "2026-11-23T06:00:00Z", old_rva)
    rotated = stella_json(root, "keys", "rotate")
    assert rotated["switched"] is True
    assert rotated["previous"]["state"] == "retired"
    assert rotated["next"]["state"] == "active"
    now = format_instant(datetime.now(UTC) + timedelta(minutes=1))
    gate_cli(root, now, new_rva)
    listed = stella_json(root, "keys", "list")
    assert [k["state"] for k in listed["keys"]] == ["retired", "active"]

    pub, keys = tmp_path / "appliance.pub", tmp_path / "keys.json"
    exported = stella_json(
        root, "keys", "export-public", "--out", str(pub), "--keys-out", str(keys)
    )
    assert exported["keys"] == 2
    doc = json.loads(keys.read_text())
    assert [sorted(k["validFor"]) for k in doc["keys"]] == [["end"], ["start"]]
    assert "signer" not in json.dumps(doc)  # where private keys are is not for auditors
    # An auditor with no home verifies both verdicts with the exported keys.
    elsewhere = tmp_path / "auditor"
    for rva in (old_rva, new_rva):
        checked = stella_json(elsewhere, "verify", str(rva), "--trust-policy", str(keys))
        assert checked["ok"] is True
    # On the appliance itself, both verify against the whole ring.
    for rva in (old_rva, new_rva):
        assert stella_json(root, "verify", str(rva))["ok"] is True
    # The audit package of the old verdict lists every key with its window, and verifies
    # with the exported keys (the RVA by the old key, the audit head by the new one).
    package = tmp_path / "audit.zip"
    stella_json(root, "export-audit-package", str(old_rva), "--out", str(package))
    with zipfile.ZipFile(package) as z:
        listed_keys = json.loads(z.read("keys/trust-policy.json"))["keys"]
    assert [sorted(k["validFor"]) for k in listed_keys] == [["end"], ["start"]]
    report = stella_json(
        elsewhere, "verify-audit-package", str(package), "--trust-policy", str(keys)
    )
    assert report["ok"] is True
    assert report["signer"]["keyid"] == rotated["previous"]["keyid"]
    code, _, err = stella(elsewhere, "verify-audit-package", str(package))
    assert code == 2
    assert "pass exactly one of --key PUB and --trust-policy FILE" in err


def test_doctor_warns_fourteen_days_before_the_planned_rotation(tmp_path: Path) -> None:
    home = _home(tmp_path)
    created = load_ring(home).latest.created

    def keys_check(now: datetime) -> tuple[Status, str]:
        check = Doctor(home, now=now, free_space=lambda _: 1 << 40).check_keys()
        return check.status, check.detail

    assert keys_check(created + timedelta(days=75))[0] is Status.OK
    status, detail = keys_check(created + timedelta(days=77))
    assert status is Status.WARN
    assert "near its planned rotation date" in detail
    assert "past its planned rotation date" in keys_check(created + timedelta(days=91))[1]
    # Configurable: a monthly schedule warns from day 16.
    home.write_settings({**home.settings(), "keyRotationDays": 30})
    assert keys_check(created + timedelta(days=17))[0] is Status.WARN
    # A next key already published: nothing to warn about.
    rotate(home, at=created + timedelta(days=40), now=created + timedelta(days=20))
    status, detail = keys_check(created + timedelta(days=25))
    assert status is Status.OK
    assert "takes over at" in detail
    assert rotation_plan(home, now=created + timedelta(days=25)).next_key is not None


def test_a_bad_keyrotationdays_is_named(tmp_path: Path) -> None:
    home = _home(tmp_path)
    home.write_settings({"keyRotationDays": "quarterly"})
    with pytest.raises(KeyRingError, match="keyRotationDays must be a whole number of days"):
        rotation_plan(home)


def test_bad_rotations_are_refused(tmp_path: Path) -> None:
    home = _home(tmp_path)
    with pytest.raises(UsageError, match=r"--at 2020-01-01T00:00:00Z is in the past"):
        rotate(home, at=datetime(2020, 1, 1, tzinfo=UTC))
    rotate(home, at=day(90), now=day(80))
    with pytest.raises(KeyRingError, match="is already waiting to take over at 2027-04-01"):
        rotate(home, at=day(100), now=day(81))
    code, _, err = stella(home.root, "keys", "rotate", "--at", "next tuesday")
    assert code == 2
    assert "'next tuesday' is not an RFC 3339 time" in err


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d["keys"][0].update(validFor={"start": "2027", "end": None}), "not an RFC 3339"),
        (
            lambda d: d["keys"][0].update(
                validFor={"start": "2027-02-01T00:00:00Z", "end": "2027-01-01T00:00:00Z"}
            ),
            "ends before it starts",
        ),
        (lambda d: d["keys"][0].update(keyid="00" * 32), "is not the keyid of its publicKey"),
        (lambda d: d["keys"].append(dict(d["keys"][0])), "does not start where key"),
        (lambda d: d.update(version=2), "not a key ring"),
    ],
)
def test_a_damaged_key_ring_is_refused_by_field(tmp_path: Path, edit: object, message: str) -> None:
    home = _home(tmp_path)
    doc = json.loads(home.key_ring_file.read_text())
    edit(doc)  # type: ignore[operator]
    home.key_ring_file.write_text(json.dumps(doc))
    with pytest.raises(KeyRingError, match=message):
        load_ring(home)
    code, _, err = stella(home.root, "keys", "list")
    assert code == 1
    assert "keyring.json" in err
    assert len(err.strip().splitlines()) == 1


def test_the_compromise_drill(tmp_path: Path) -> None:
    """A key reported stolen: revoked from the time of the theft; what the log proves it
    signed before stays valid, what it (or a thief) signed after is refused, and so is what
    no log proves; signing stops until the next key takes over, and its verdicts verify."""
    home = _home(tmp_path)
    stolen = load_ring(home).latest
    thief = PrivateKey.load(home.appliance_key)  # what the thief copied
    early = _gate(home, day(10))  # logged on day 10 (the injected clock)
    late = _gate(home, day(30))
    # Day 31: the key is reported stolen on day 20.
    revoked = revoke(home, stolen.keyid[:12], at=day(20), reason="token stolen", now=day(31))
    assert revoked.revoked is not None
    policy, logs = _policy(home), tlog.trusted_logs(home)
    checked = verify_rva(early.bundle, policy, logs=logs)
    assert checked.keyid == stolen.keyid
    assert checked.signed_at is not None
    assert checked.signed_at.basis is TimeBasis.LOG
    assert checked.signed_at.proven == day(10)
    with pytest.raises(AuditorError) as caught:
        verify_rva(late.bundle, policy, source="late.json", logs=logs)
    assert caught.value.message.startswith(
        f"late.json: signed by key {stolen.keyid[:16]}, revoked at 2027-01-21T00:00:00Z "
        "(token stolen), and logged at 2027-01-31T00:00:00Z (entry "
    )
    # Without the log key, even the early verdict's time is only its own word: refused.
    unproven = "no transparency-log entry or timestamp trusted here proves when"
    with pytest.raises(AuditorError, match=unproven):
        verify_rva(early.bundle, policy)
    # The thief's verdict claiming a time before the theft: not in the log, refused.
    forged = _forged(early, thief, day(15))
    with pytest.raises(AuditorError) as caught:
        verify_rva(forged, policy, source="forged.json", logs=logs)
    assert caught.value.message == (
        f"forged.json: signed by key {stolen.keyid[:16]}, revoked at 2027-01-21T00:00:00Z "
        "(token stolen), and no transparency-log entry or timestamp trusted here proves when: "
        "the time it claims (2027-01-16T00:00:00Z) is the signer's word"
    )
    # Logged, but after the theft (day 25): the log's time decides, not the claim.
    bundle = sigstore.read(forged)
    entry = tlog.log_envelope(home, bundle.envelope, {stolen.keyid: stolen.key}, now=day(25))
    logged_late = sigstore.with_entry(bundle, entry).to_json()
    with pytest.raises(AuditorError) as caught:
        verify_rva(logged_late, policy, source="forged.json", logs=logs)
    assert "and logged at 2027-01-26T00:00:00Z" in caught.value.message
    assert caught.value.message.endswith(
        "after the revocation; the earlier time it claims (2027-01-16T00:00:00Z) is the "
        "signer's word"
    )
    # Nothing more is signed with it.
    with pytest.raises(KeyRevokedError, match="was revoked at 2027-01-21T00:00:00Z"):
        _gate(home, day(31))
    # Backdating does not help the appliance either: the key it would sign with is revoked.
    with pytest.raises(KeyRevokedError):
        gate(home, "app:1", at=day(15), now=lambda: day(31))
    # A successor cannot wait, then takes over now.
    with pytest.raises(UsageError, match="its successor cannot wait"):
        rotate(home, at=day(40), now=day(31))
    done = rotate(home, now=day(31))
    assert done.switched
    fresh = _gate(home, day(32))
    assert verify_rva(fresh.bundle, _policy(home), logs=logs).keyid == done.next_key.keyid
    # A revocation can only move earlier, and names the key it is about.
    with pytest.raises(KeyRingError, match="already revoked at 2027-01-21"):
        revoke(home, stolen.keyid, at=day(25), reason="again", now=day(33))
    with pytest.raises(KeyRingError, match="names no key of the ring"):
        revoke(home, "deadbeefdead", at=day(25), reason="unknown", now=day(33))
    with open_state(home) as db:
        log = AuditLog(db, public_key=home.public_key())
        assert log.verify().ok
        rotation = [r for r in log.records() if r.action == "key.rotate"]
    assert rotation[0].result["previousRevoked"] == {
        "at": "2027-01-21T00:00:00Z",
        "reason": "token stolen",
    }


def test_revoke_through_the_cli(tmp_path: Path) -> None:
    home = _home(tmp_path)
    keyid = load_ring(home).latest.keyid
    code, _, err = stella(home.root, "keys", "revoke", keyid[:16], "--at", "2026-01-01T00:00:00Z")
    assert code == 2
    assert "Missing option '--reason'" in err
    out = stella_json(
        home.root, "keys", "revoke", keyid[:16], "--at", "2026-01-01T00:00:00Z",
        "--reason", "key file leaked",
    )  # fmt: skip
    assert out["state"] == "revoked"
    assert out["revoked"] == {"at": "2026-01-01T00:00:00Z", "reason": "key file leaked"}
    code, _, err = stella(home.root, "gate", "app:1")
    assert code == 1
    assert "revoked at 2026-01-01T00:00:00Z (key file leaked)" in err
    assert "stella keys rotate" in err
    status = Doctor(home, now=datetime.now(UTC), free_space=lambda _: 1 << 40).check_keys()
    assert status.status is Status.FAIL
    stella_json(home.root, "keys", "rotate")
    code, _, err = stella(home.root, "gate", "app:1")
    assert code in (0, 3), err


@pytest.fixture(scope="module")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return softhsm(tmp_path_factory)


def test_rotating_from_a_key_file_into_a_token(
    hsm: SoftHsm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, PIN)
    home = _home(tmp_path)
    old = tmp_path / "old.json"
    gate_cli(home.root, "2026-11-23T06:00:00Z", old)
    uri = hsm.uri("rotated-appliance")
    rotated = stella_json(home.root, "keys", "rotate", "--signer", uri)
    assert rotated["switched"] is True
    assert not home.appliance_key.exists()  # the retired key file signs nothing any more
    assert home.signer_reference() == uri
    new = tmp_path / "new.json"
    gate_cli(home.root, format_instant(datetime.now(UTC) + timedelta(minutes=1)), new)
    assert sigstore.read(new.read_bytes()).key_hint == rotated["next"]["keyid"]
    for rva in (old, new):
        assert stella_json(home.root, "verify", str(rva))["ok"] is True
    assert stella_json(home.root, "audit", "verify")["ok"] is True
    code, _, err = stella(home.root, "keys", "rotate", "--signer", "/tmp/x.key")
    assert code == 2
    assert "is not a pkcs11: URI" in err
