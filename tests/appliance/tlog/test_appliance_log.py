"""The appliance's transparency log: the gate logs before it attaches, ``stella log …``
proves, checks consistency, cosigns and writes a trusted root; tampering, forks, rollbacks
and missing witnesses are each named."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from sigstore._internal.rekor.checkpoint import SignedCheckpoint as SigstoreCheckpoint
from sigstore.models import TrustedRoot

from appliance import faults, tlog
from appliance.cli import cli
from appliance.home import Home
from appliance.policy.bundle import PolicyBundle
from appliance.policy.engine import evaluate
from appliance.policy.inputs import AttestationInfo
from appliance.rva.gate import GateResult, attestation_info, gate
from appliance.rva.predicate import PREDICATE_TYPE
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.verify import Artifact, verify_with_key
from appliance.store import open_state, record_decision
from appliance.store.audit import AuditAction, AuditLog
from appliance.store.vex import VexStore
from bundles import canonical
from bundles.digest import Digest
from bundles.keys import KeyType, PrivateKey
from bundles.oci import OCILayout
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03
from bundles.tlog.entry import check_entry
from bundles.tlog.note import Checkpoint, NoteSigner, SignedCheckpoint, Verifier
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.rva.factories import AT, t
from tests.appliance.scanner.layouts import build_image, dist_info
from tests.hostile.harness import run

EXAMPLES = Path(__file__).resolve().parents[3] / "appliance" / "policy" / "examples"


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    install_knowledge(h, kev=[KEV], sequence=2)
    return h


@pytest.fixture
def gated(home: Home) -> GateResult:
    return gate(home, "app:1", at=AT, now=lambda: t("2026-11-23T06:30:00Z"))


def stella(home: Home, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(home.root), *args])


def stella_json(home: Home, *args: str) -> dict[str, Any]:
    out = (
        stella(home, "--json", *args)
        if False
        else CliRunner().invoke(cli, ["--home", str(home.root), "--json", *args])
    )
    assert out.exit_code == 0, out.output
    doc: dict[str, Any] = json.loads(out.stdout)
    return doc


def _entry(bundle: bytes) -> dict[str, Any]:
    (entry,) = json.loads(bundle)["verificationMaterial"]["tlogEntries"]
    assert isinstance(entry, dict)
    return entry


def test_the_gate_logs_the_rva_in_rekor_v2_form(home: Home, gated: GateResult) -> None:
    entry = _entry(gated.bundle)
    assert entry["kindVersion"] == {"kind": "dsse", "version": "0.0.2"}
    assert entry["integratedTime"] == "0"
    assert entry["inclusionProof"]["logIndex"] == entry["logIndex"]
    body = json.loads(base64.b64decode(entry["canonicalizedBody"]))
    signed = sigstore.read(gated.bundle).envelope
    digest = body["spec"]["dsseV002"]["payloadHash"]["digest"]
    assert base64.b64decode(digest) == bytes.fromhex(Digest.of_bytes(signed.payload).hex)
    # the RVA and the SBOM attestation are both in the log, the RVA first
    log = tlog.open_home_log(home)
    assert log.size == 2
    assert check_entry(entry, [log.verifier], signed).log_index == 0
    # sigstore-python reads the checkpoint the entry carries
    note = SigstoreCheckpoint.from_text(entry["inclusionProof"]["checkpoint"]["envelope"])
    assert note.checkpoint.origin == tlog.origin_for(home)
    assert note.signed_note.signatures[0].sig_hash == base64.b64decode(entry["logId"]["keyId"])[:4]


def test_sigstore_tooling_checks_the_entry_with_the_trusted_root(
    tmp_path: Path, home: Home, gated: GateResult
) -> None:
    root = tmp_path / "trusted_root.json"
    assert stella(home, "log", "trusted-root", "--out", str(root)).exit_code == 0
    TrustedRoot.from_file(str(root))  # sigstore-python accepts it
    subject = Digest.parse(gated.verdict.predicate["subject"]["digest"])
    result = verify_with_key(
        gated.bundle, home.public_key(), artifact=Artifact(subject), trusted_root=root
    )
    (check,) = result.tlog
    assert (check.log_index, check.inclusion_proof, check.checkpoint) == (0, True, True)
    # another appliance's trusted root does not vouch for this log
    other = Home(tmp_path / "other")
    other.init()
    tlog.log_envelope(
        other, sigstore.read(gated.bundle).envelope, {home.public_key().keyid: home.public_key()}
    )
    stella(other, "log", "trusted-root", "--out", str(tmp_path / "other.json"))
    with pytest.raises(Exception, match="which the trusted root does not list"):
        verify_with_key(
            gated.bundle,
            home.public_key(),
            artifact=Artifact(subject),
            trusted_root=tmp_path / "other.json",
        )


def _policy(attestation: AttestationInfo) -> list[str]:
    policy = PolicyBundle.from_directory(EXAMPLES / "require-inclusion-proof")
    return sorted(r.code for r in evaluate(policy, {"attestations": [attestation.to_dict()]}).deny)


def test_require_inclusion_proof_passes_for_own_rvas_only_when_logged(
    home: Home, gated: GateResult
) -> None:
    logs = tlog.trusted_logs(home)
    bundle = sigstore.read(gated.bundle)
    own = attestation_info("sha256:" + "a" * 64, PREDICATE_TYPE, bundle, logs)
    assert own.inclusion_proof
    assert _policy(own) == []
    unlogged = sigstore.SigstoreBundle(bundle.envelope, bundle.key_hint, 0, False)
    info = attestation_info("sha256:" + "b" * 64, PREDICATE_TYPE, unlogged, logs)
    assert _policy(info) == ["RISK.ATTESTATION.NO_INCLUSION_PROOF"]
    # an entry of this log that does not verify is no proof
    entry = _entry(gated.bundle)
    entry["inclusionProof"]["hashes"] = [base64.b64encode(b"\x00" * 32).decode()]
    forged = sigstore.with_entry(unlogged, entry)
    info = attestation_info("sha256:" + "c" * 64, PREDICATE_TYPE, forged, logs)
    assert not info.inclusion_proof
    assert _policy(info) == ["RISK.ATTESTATION.NO_INCLUSION_PROOF"]


def test_checkpoint_verify_and_prove(tmp_path: Path, home: Home, gated: GateResult) -> None:
    rva = tmp_path / "rva.json"
    rva.write_bytes(gated.bundle)
    cp = tmp_path / "cp"
    doc = stella_json(home, "log", "checkpoint", "--out", str(cp))
    assert doc["size"] == 2
    assert cp.read_text() == doc["checkpoint"]
    assert doc["timestamp"] == "2026-11-23T06:30:00Z"  # the log's signed time: the gate's clock
    signed = SignedCheckpoint.parse(doc["checkpoint"])
    stamp = signed.timestamp(Verifier.from_vkey(doc["logKey"]))
    assert stamp == int(t("2026-11-23T06:30:00Z").timestamp())
    verified = stella_json(home, "log", "verify")
    assert verified["verified"] is True
    assert verified["transparency"] == {"witnesses": 0, "witnessNames": []}
    proved = stella_json(home, "log", "prove", str(rva))
    assert (proved["logIndex"], proved["treeSize"]) == (0, 2)
    assert proved["carried"] == {"logIndex": 0, "treeSize": 2}  # logged with the SBOM's
    # an attestation the log never saw
    key = home.signing_key()
    assert isinstance(key, PrivateKey)
    stranger = sigstore.sign(sigstore.payload_statement(sigstore.read(gated.bundle)), key)
    other = tmp_path / "other.json"
    stranger_doc = json.loads(stranger.to_json())
    stranger_doc["dsseEnvelope"]["payload"] = base64.b64encode(b'{"x":1}').decode()
    other.write_bytes(canonical.dumps(stranger_doc))
    out = stella(home, "log", "prove", str(other))
    assert out.exit_code == 1
    assert f"{other}: not in the log {tlog.origin_for(home)}" in out.stderr


def test_consistency_detects_forks_and_rollbacks(tmp_path: Path, home: Home) -> None:
    gate(home, "app:1", at=AT)
    old = tmp_path / "old"
    stella_json(home, "log", "checkpoint", "--out", str(old))
    saved = tmp_path / "saved-tlog"
    shutil.copytree(tlog.root(home), saved)
    gate(home, "app:1", at=AT)
    doc = stella_json(home, "log", "consistency", str(old))
    assert (doc["oldSize"], doc["newSize"], doc["consistent"]) == (2, 4, True)
    # a fork: a head of size 2 signed by the log key with another root
    signer = NoteSigner(tlog.origin_for(home), PrivateKey.load(tlog.root(home) / "log.key"))
    forked = tmp_path / "forked"
    forked.write_text(
        SignedCheckpoint.sign(Checkpoint(signer.name, 2, b"\x07" * 32), signer).to_text()
    )
    out = stella(home, "log", "consistency", str(forked))
    assert out.exit_code == 1
    assert "two heads of the same size differ, the log forked" in out.stderr
    # a rollback: the log put back to its older state, then shown the newer head
    new = tmp_path / "new"
    stella_json(home, "log", "checkpoint", "--out", str(new))
    shutil.rmtree(tlog.root(home))
    shutil.copytree(saved, tlog.root(home))
    out = stella(home, "log", "consistency", str(new))
    assert out.exit_code == 1
    assert "a head of size 4, but the log has 2 entries: the log was rolled back" in out.stderr


def test_a_tampered_tile_fails_verify(home: Home, gated: GateResult) -> None:
    tile = tlog.root(home) / "tile" / "entries" / "000.p" / "2"
    data = bytearray(tile.read_bytes())
    data[-1] ^= 1
    tile.write_bytes(bytes(data))
    out = stella(home, "log", "verify")
    assert out.exit_code == 1
    assert "tile/0/000.p/2: hash 1 does not match what the entries below it hash to" in out.stderr


def _witness(tmp_path: Path, name: str) -> tuple[Path, Path]:
    key = PrivateKey.generate(KeyType.ED25519)
    path = tmp_path / f"{name}.key"
    key.save(path)
    vkey = tmp_path / f"{name}.vkey"
    vkey.write_text(NoteSigner(name, key, 0x04).verifier.vkey() + "\n")
    return path, vkey


def test_witnesses_cosign_and_missing_ones_are_named(
    tmp_path: Path, home: Home, gated: GateResult
) -> None:
    w1, v1 = _witness(tmp_path, "w1.example")
    _, v2 = _witness(tmp_path, "w2.example")
    head = tmp_path / "head"
    stella_json(home, "log", "checkpoint", "--out", str(head))
    cosigned = tmp_path / "cosigned"
    stella_json(
        home,
        "log",
        "cosign",
        str(head),
        "--key",
        str(w1),
        "--name",
        "w1.example",
        "--out",
        str(cosigned),
    )
    doc = stella_json(
        home, "log", "verify", "--checkpoint", str(cosigned), "--witness", str(v1),
        "--witness", str(v2), "--min-witnesses", "1",
    )  # fmt: skip
    assert doc["transparency"] == {"witnesses": 1, "witnessNames": ["w1.example"]}
    out = stella(
        home, "log", "verify", "--checkpoint", str(cosigned), "--witness", str(v1),
        "--witness", str(v2), "--min-witnesses", "2",
    )  # fmt: skip
    assert out.exit_code == 1
    assert "has 1 of the 2 witness cosignatures required; missing: w2.example" in out.stderr
    # trusted witnesses in tlog/witnesses/ count in the policy input too
    (tlog.root(home) / "witnesses").mkdir()
    shutil.copy(v1, tlog.root(home) / "witnesses" / "w1.vkey")
    assert (
        stella_json(home, "log", "verify", "--checkpoint", str(cosigned))["transparency"][
            "witnesses"
        ]
        == 1
    )
    # the witness refuses an older head once it cosigned a newer one
    gate(home, "app:1", at=AT)
    newer = tmp_path / "newer"
    stella_json(home, "log", "checkpoint", "--out", str(newer))
    stella_json(home, "log", "cosign", str(newer), "--key", str(w1), "--name", "w1.example")
    out = stella(home, "log", "cosign", str(head), "--key", str(w1), "--name", "w1.example")
    assert out.exit_code == 1
    assert "rolled-back checkpoint" in out.stderr


def test_kill_between_logging_and_attaching(tmp_path: Path, home: Home) -> None:
    killed = run(
        "stella", "gate", "app:1", "--at", "2026-12-01T00:00:00Z",
        home=home.root, env={faults.ENV: "gate.after-log"}, as_limit=64 << 30,
    )  # fmt: skip
    assert killed.code == -9, killed.describe()
    # the log verifies and holds the verdict; nothing is attached to the image
    assert stella_json(home, "log", "verify")["size"] == 2  # the RVA and the SBOM attestation
    layout = OCILayout.open(home.oci)
    image = layout.resolve("app:1")
    assert layout.referrers(image.digest, artifact_type=SIGSTORE_BUNDLE_V03) == []
    # the next gate logs and attaches; the log still verifies
    result = gate(home, "app:1", at=AT)
    assert _entry(result.bundle)["logIndex"] == "2"
    assert stella_json(home, "log", "verify")["size"] == 4


def test_vex_statements_are_logged_before_they_are_stored(tmp_path: Path, home: Home) -> None:
    added = stella_json(
        home, "vex", "add", "CVE-2018-18074", "--image", "app:1", "--status", "not_affected",
        "--justification", "vulnerable_code_not_present", "--at", "2026-12-01T00:00:00Z",
    )  # fmt: skip
    assert tlog.open_home_log(home).size == 1
    records = stella_json(home, "audit", "list", "--action", "vex")["records"]
    assert records[-1]["inputs"]["tlog"]["logIndex"] == 0
    envelope = tmp_path / "vex.dsse.json"
    with open_state(home) as db:
        (stored,) = VexStore(db).documents()
    envelope.write_bytes(stored.envelope)
    proved = stella_json(home, "log", "prove", str(envelope))
    assert (proved["logIndex"], proved["carried"]) == (0, None)
    assert added


def test_a_rotated_log_keeps_trusting_its_frozen_shard(tmp_path: Path, home: Home) -> None:
    first = gate(home, "app:1", at=AT)
    shard = tlog.root(home) / "frozen" / "1"
    shard.parent.mkdir()
    kept = tmp_path / "shard"
    shutil.move(tlog.root(home), kept)
    (kept / "log.key").unlink()
    tlog.root(home).mkdir()
    shutil.move(kept, shard)
    (shard / "frozen-at").write_text("2026-12-01T00:00:00Z\n")
    (tlog.root(home) / "origin").write_text(tlog.origin_for(home) + "/2\n")
    second = gate(home, "app:1", at=AT)
    assert _entry(second.bundle)["logIndex"] == "0"
    logs = tlog.trusted_logs(home)
    assert [v.name for v in logs] == [tlog.origin_for(home) + "/2", tlog.origin_for(home)]
    for result in (first, second):
        info = attestation_info(
            "sha256:" + "d" * 64, PREDICATE_TYPE, sigstore.read(result.bundle), logs
        )
        assert info.inclusion_proof
    old_rva = tmp_path / "old.json"
    old_rva.write_bytes(first.bundle)
    proved = stella_json(home, "log", "prove", str(old_rva))
    assert (proved["logIndex"], proved["treeSize"]) == (0, 2)
    assert proved["checkpoint"].startswith(tlog.origin_for(home) + "\n")
    root = tmp_path / "root.json"
    assert stella(home, "log", "trusted-root", "--out", str(root)).exit_code == 0
    tlogs = json.loads(root.read_text())["tlogs"]
    assert [t["publicKey"]["validFor"].get("end") for t in tlogs] == [None, "2026-12-01T00:00:00Z"]


def test_verify_reports_the_log_entry(tmp_path: Path, home: Home, gated: GateResult) -> None:
    rva = tmp_path / "rva.json"
    rva.write_bytes(gated.bundle)
    pub = tmp_path / "appliance.pub"
    home.public_key().save(pub)
    root = tmp_path / "trusted_root.json"
    stella(home, "log", "trusted-root", "--out", str(root))
    # an auditor away from the appliance: the key and the log's trusted root only
    away = ["--home", str(tmp_path / "nohome"), "verify", str(rva), "--key", str(pub)]
    out = CliRunner().invoke(cli, [*away, "--trusted-root", str(root)])
    assert out.exit_code == 0, out.output
    assert "logged: entry 0 of stella." in out.stdout
    assert "inclusion proof and checkpoint (size 2) verified" in out.stdout
    # on the appliance, its own log is trusted
    doc = stella_json(home, "verify", str(rva), "--key", str(pub))
    assert doc["transparency"]["logIndex"] == 0
    # an entry that names the log but does not verify is tampering, not absence
    bundle = json.loads(gated.bundle)
    bundle["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["rootHash"] = (
        base64.b64encode(b"\x02" * 32).decode()
    )
    rva.write_bytes(canonical.dumps(bundle))
    out = CliRunner().invoke(cli, [*away, "--trusted-root", str(root)])
    assert out.exit_code == 1
    assert "transparency-log entry 0: inclusion proof of leaf 0" in out.stderr


def test_explain_shows_the_log_entry(tmp_path: Path, home: Home, gated: GateResult) -> None:
    rva = tmp_path / "rva.json"
    rva.write_bytes(gated.bundle)
    out = stella(home, "explain", str(rva))
    assert out.exit_code == 0, out.output
    assert f"Transparency log: entry 0 of {tlog.origin_for(home)}, proven under the " in out.stdout
    assert stella_json(home, "explain", str(rva))["transparency"]["treeSize"] == 2


def test_a_second_appliance_witnesses_the_log(tmp_path: Path, home: Home) -> None:
    gate(home, "app:1", at=AT)
    witness = Home(tmp_path / "witness")
    witness.init()
    key, vkey = _witness(tmp_path, "witness.example")
    log_key = tmp_path / "log.vkey"
    log_key.write_text(stella_json(home, "log", "checkpoint")["logKey"] + "\n")
    first = tmp_path / "first"
    stella_json(home, "log", "checkpoint", "--out", str(first))
    args = ["--key", str(key), "--name", "witness.example", "--log-key", str(log_key)]
    logdir = ["--log-dir", str(tlog.root(home))]
    stella_json(witness, "log", "cosign", str(first), *args)  # its first head: nothing to prove
    gate(home, "app:1", at=AT)
    second = tmp_path / "second"
    stella_json(home, "log", "checkpoint", "--out", str(second))
    cosigned = tmp_path / "second.cosigned"
    stella_json(witness, "log", "cosign", str(second), *args, *logdir, "--out", str(cosigned))
    doc = stella_json(
        home, "log", "verify", "--checkpoint", str(cosigned), "--witness", str(vkey),
        "--min-witnesses", "1",
    )  # fmt: skip
    assert doc["transparency"]["witnesses"] == 1
    # a head of the same size with another root, signed by the log key: a fork, refused
    signer = NoteSigner(tlog.origin_for(home), PrivateKey.load(tlog.root(home) / "log.key"))
    forked = tmp_path / "forked"
    forked.write_text(
        SignedCheckpoint.sign(Checkpoint(signer.name, 4, b"\x09" * 32), signer).to_text()
    )
    out = stella(witness, "log", "cosign", str(forked), *args, *logdir)
    assert out.exit_code == 1
    assert "two heads of size 4 have different root hashes: the log forked" in out.stderr
    # a head the log's own tiles do not back
    gate(home, "app:1", at=AT)
    stale = tmp_path / "stale-tiles"
    shutil.copytree(tlog.root(home), stale)
    signed = SignedCheckpoint.sign(Checkpoint(signer.name, 6, b"\x0a" * 32), signer)
    bogus = tmp_path / "bogus"
    bogus.write_text(signed.to_text())
    out = stella(witness, "log", "cosign", str(bogus), *args, "--log-dir", str(stale))
    assert out.exit_code == 1
    assert "the head does not match the log's tiles at size 6: the log forked" in out.stderr


def test_doctor_checks_the_log(tmp_path: Path, home: Home) -> None:
    def tlog_check() -> dict[str, Any]:
        doc = CliRunner().invoke(cli, ["--home", str(home.root), "--json", "doctor"])
        (check,) = [c for c in json.loads(doc.stdout)["checks"] if c["name"] == "tlog"]
        assert isinstance(check, dict)
        return check

    assert tlog_check()["status"] == "ok"  # not started yet
    gate(home, "app:1", at=AT)
    assert tlog_check()["detail"].endswith(": 2 entries, checkpoint verified")
    kept = (tlog.root(home) / "checkpoint").read_bytes()
    gate(home, "app:1", at=AT)
    (tlog.root(home) / "checkpoint").write_bytes(kept)  # as if the last append was cut short
    assert tlog_check()["status"] == "warn"
    tile = tlog.root(home) / "tile" / "0" / "000.p" / "2"
    tile.write_bytes(b"\x00" * 64)
    check = tlog_check()
    assert check["status"] == "fail"
    assert "do not hash to the root of the checkpoint of size 2" in check["detail"]


def test_decisions_log_the_signed_audit_head(home: Home) -> None:
    record = record_decision(
        home,
        AuditAction.IMPORT,
        "sha256:" + "e" * 64,
        command="import",
        time=t("2026-11-23T06:30:00Z"),
        inputs={"bundle": "b.stella.tar.zst"},
        result={"snapshot": "sha256:" + "f" * 64},
    )
    log = tlog.open_home_log(home)
    assert log.size == 1
    with open_state(home) as db:
        head = AuditLog(db, public_key=home.public_key()).head()
    assert head is not None
    assert head.seq == record.seq
    body = json.loads(log.entry(0))
    digest = body["spec"]["dsseV002"]["payloadHash"]["digest"]
    assert base64.b64decode(digest) == bytes.fromhex(Digest.of_bytes(head.envelope.payload).hex)


def test_processes_starting_the_log_at_once_make_one_key(tmp_path: Path) -> None:
    """Workers gating their first images together all start the log: one key must win, and
    log.pub must be its public key (a lost race left every later append refused). Each
    process is slowed between a key file's existence check and its rename (failure
    injection), the window two processes starting together would otherwise rarely hit."""
    import os
    import subprocess
    import sys
    import time

    home = Home(tmp_path / "home")
    home.init()
    go = tmp_path / "go"
    code = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from appliance import tlog\n"
        "from appliance.home import Home\n"
        "import bundles.keys\n"
        "_write = bundles.keys.atomic_write\n"
        "def slow(*a, **k):\n"
        "    time.sleep(0.5)\n"
        "    return _write(*a, **k)\n"
        "bundles.keys.atomic_write = slow\n"
        "while not Path(sys.argv[2]).exists(): time.sleep(0.001)\n"
        "log = tlog.open_home_log(Home(Path(sys.argv[1])), write=True)\n"
        "print(log.verifier.vkey())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(home.root), str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    time.sleep(0.5)  # let them all reach the wait; not a timed assertion
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [err for _, err in outs]
    assert len({out for out, _ in outs}) == 1
    (vkey,) = {out.strip() for out, _ in outs}
    assert vkey == tlog.verifier(home).vkey()  # log.pub is the key every process signs with
    assert tlog.open_home_log(home, write=True).verifier == tlog.verifier(home)
