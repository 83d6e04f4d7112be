"""The audit package carries the verdict's log entry and the log key; verify-audit-package
and the documented hand check both check the proof, anchored in the signed gate record."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from appliance.auditor.errors import AuditorError
from appliance.auditor.package import CHECKS, export_package, read_package, seal, verify_package
from appliance.auditor.trust_policy import TrustPolicy
from appliance.home import Home
from appliance.rva.gate import GateResult, gate
from bundles.keys import KeyType, PrivateKey
from bundles.tlog.note import NoteSigner
from tests.appliance.homes import KEV, SITE, install_knowledge
from tests.appliance.rva.factories import AT
from tests.appliance.scanner.layouts import build_image, dist_info

DOC = Path(__file__).resolve().parents[3] / "docs" / "auditing.md"
Files = dict[str, bytes]


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    install_knowledge(h, kev=[KEV], sequence=2)
    return h


@pytest.fixture
def gated(home: Home) -> GateResult:
    gate(home, "app:1", at=AT)  # an earlier verdict, so the proof has hashes
    return gate(home, "app:1", at=AT)


@pytest.fixture
def package(home: Home, gated: GateResult) -> bytes:
    return export_package(home, gated.bundle, TrustPolicy.appliance(home.public_key()))


def _reseal(files: Files) -> bytes:
    manifest = json.loads(files["manifest.json"])
    return seal(files, manifest["subject"], manifest["statement"])


def test_the_package_carries_and_checks_the_log_entry(package: bytes, home: Home) -> None:
    files = read_package(package, source="test")
    assert (
        files["keys/tlog.vkey"].decode().startswith(f"stella.{home.public_key().keyid[:16]}/log+")
    )
    report = verify_package(package, home.public_key())
    assert any("transparency-log entry" in c for c in CHECKS)
    assert report.to_dict()["checks"] == list(CHECKS)


def _swap_log_key(files: Files) -> None:
    other = NoteSigner(
        files["keys/tlog.vkey"].decode().split("+")[0], PrivateKey.generate(KeyType.ED25519)
    )
    files["keys/tlog.vkey"] = other.verifier.vkey().encode() + b"\n"


def _alter_proof(files: Files) -> None:
    doc = json.loads(files["rva/rva.sigstore.json"])
    hashes = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]["hashes"]
    hashes[0] = base64.b64encode(b"\x01" * 32).decode()
    files["rva/rva.sigstore.json"] = json.dumps(doc).encode()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_swap_log_key, "keys/tlog.vkey is not the log the signed gate record names"),
        (_alter_proof, "does not lead to the root hash"),
    ],
    ids=["log key swapped", "proof altered"],
)
def test_log_tampering_is_named(package: bytes, home: Home, change: object, message: str) -> None:
    files = read_package(package, source="test")
    assert callable(change)
    change(files)
    with pytest.raises(AuditorError, match=message):
        verify_package(_reseal(files), home.public_key())


def _run_hand_check(where: Path, package: bytes) -> subprocess.CompletedProcess[str]:
    text = DOC.read_text()
    match = re.search(r"<!-- hand-check-tlog -->\n```sh\n(.*?)```", text, re.S)
    assert match, "docs/auditing.md has no log hand-check block"
    where.mkdir()
    (where / "audit.zip").write_bytes(package)
    script = (
        f'set -eu\nmkdir pkg && cd pkg && python3 -m zipfile -e "{where / "audit.zip"}" .\ncd ..\n'
    )
    return subprocess.run(
        ["bash", "-c", script + match.group(1)],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_documented_log_hand_check(tmp_path: Path, package: bytes) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for the hand check")
    run = _run_hand_check(tmp_path / "ok", package)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "log entry 2 of stella." in run.stdout
    assert "Signature Verified Successfully" in run.stdout
    files = read_package(package, source="test")
    _alter_proof(files)
    bad = _run_hand_check(tmp_path / "bad", _reseal(files))
    assert bad.returncode != 0
    assert "the proof does not lead to the root" in bad.stderr


def _run_time_check(where: Path, package: bytes) -> subprocess.CompletedProcess[str]:
    """Steps 8 and 9 of the hand check, in one directory, as the document says to run them."""
    text = DOC.read_text()
    step8 = re.search(r"<!-- hand-check-tlog -->\n```sh\n(.*?)```", text, re.S)
    step9 = re.search(r"<!-- hand-check-time -->\n```sh\n(.*?)```", text, re.S)
    assert step8, "docs/auditing.md has no log hand-check block"
    assert step9, "docs/auditing.md has no signing-time hand-check block"
    where.mkdir()
    (where / "audit.zip").write_bytes(package)
    script = (
        f'set -eu\nmkdir pkg && cd pkg && python3 -m zipfile -e "{where / "audit.zip"}" .\ncd ..\n'
        f"( {step8.group(1)} )\n( {step9.group(1)} )\n"
    )
    return subprocess.run(
        ["bash", "-c", script], cwd=where, capture_output=True, text=True, check=False
    )


def test_the_documented_signing_time_hand_check(tmp_path: Path, package: bytes) -> None:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is needed for the hand check")
    files = read_package(package, source="test")
    assert files["tlog/checkpoint.txt"] == json.loads(files["tlog/entry.json"])["inclusionProof"][
        "checkpoint"
    ]["envelope"].encode("utf-8")
    run = _run_time_check(tmp_path / "ok", package)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "logged at 20" in run.stdout
    assert run.stdout.count("Signature Verified Successfully") == 2
    # A timestamp moved earlier (the checkpoint file and the bundle edited alike, resealed):
    # the log's signature over it fails.
    doc = json.loads(files["rva/rva.sigstore.json"])
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    note, _, sigs = proof["checkpoint"]["envelope"].partition("\n\n")
    lines = sigs.splitlines()
    name, b64 = lines[1].rsplit(" ", 1)
    blob = base64.b64decode(b64)
    earlier = blob[:4] + (1_600_000_000).to_bytes(8, "big") + blob[12:]
    lines[1] = f"{name} {base64.b64encode(earlier).decode()}"
    proof["checkpoint"]["envelope"] = note + "\n\n" + "\n".join(lines) + "\n"
    files["rva/rva.sigstore.json"] = json.dumps(doc).encode()
    files["tlog/checkpoint.txt"] = proof["checkpoint"]["envelope"].encode()
    bad = _run_time_check(tmp_path / "bad", _reseal(files))
    assert bad.returncode != 0
    assert "logged at 2020-09-13" in bad.stdout
    assert "Signature Verified Successfully" in bad.stdout  # step 8: the log's own signature
    assert bad.stdout.count("Signature Verified Successfully") == 1
