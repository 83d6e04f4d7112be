"""The audit package: export, verify with only the package and a key (in an empty directory,
with no network), each tampering case with its message, and the hand check of
docs/auditing.md run as written."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from base64 import b64decode
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance.auditor.errors import AuditorError
from appliance.auditor.package import export_package, read_package, seal, verify_package
from appliance.auditor.trust_policy import TrustPolicy
from appliance.cli import cli
from appliance.home import Home
from appliance.rva.gate import GateResult
from bundles import canonical
from bundles.dsse import pae
from bundles.keys import PrivateKey, PublicKey
from tests.appliance.auditor.tamper import edit_predicate, resign

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "auditing.md"
ALLOW_SKIP = os.environ.get("STELLA_ALLOW_SKIP") == "1"

Files = dict[str, bytes]


@pytest.fixture
def package(home: Home, gated: GateResult) -> bytes:
    return export_package(home, gated.bundle, TrustPolicy.appliance(home.public_key()))


@pytest.fixture
def pub(tmp_path: Path, home: Home) -> Path:
    path = tmp_path / "appliance.pub"
    home.public_key().save(path)
    return path


def _reseal(files: Files) -> bytes:
    manifest = json.loads(files["manifest.json"])
    return seal(files, manifest["subject"], manifest["statement"])


def test_package_holds_every_part(package: bytes, gated: GateResult) -> None:
    files = read_package(package, source="test")
    p = gated.verdict.predicate
    assert files["rva/rva.sigstore.json"] == gated.bundle
    for role in p["evidence"]:
        assert f"evidence/{role}.json" in files
    for name in (
        "SHA256SUMS",
        "manifest.json",
        "rva/rva.dsse.json",
        "rva/statement.json",
        "rva/rva.pae",
        "rva/rva.sig",
        "policy/files.json",
        "policy/files/stella.rego",
        "policy/files/data.json",
        "knowledge/manifest.json",
        "explanation/explanation.html",
        "explanation/explanation.md",
        "keys/appliance.pub",
        "keys/trust-policy.json",
        "keys/sigstore-trusted-root.json",
        "audit/records.jsonl",
        "audit/head.json",
    ):
        assert name in files, name
    report = verify_package(package, PublicKey.from_pem(files["keys/appliance.pub"]))
    assert report.verification.audit is not None
    assert report.verification.audit.seq == gated.audit_seq


def _swap_evidence(files: Files) -> None:
    files["evidence/sbom.json"] = b'{"bomFormat":"CycloneDX","specVersion":"1.6"}'


def _edit_predicate(files: Files) -> None:
    files["rva/rva.sigstore.json"] = edit_predicate(
        files["rva/rva.sigstore.json"], "verdict", "PASS"
    )


def _untrusted_signature(files: Files) -> None:
    files["rva/rva.sigstore.json"] = resign(files["rva/rva.sigstore.json"], PrivateKey.generate())


def _subject_changed(files: Files) -> None:
    manifest = json.loads(files["manifest.json"])
    manifest["subject"] = "sha256:" + "0f" * 32
    files["manifest.json"] = canonical.dumps(manifest)


def _audit_record_edited(files: Files) -> None:
    lines = files["audit/records.jsonl"].splitlines()
    edited = []
    for line in lines:
        doc = json.loads(line)
        if doc["action"] == "gate":
            doc["result"]["verdict"] = "PASS"
        edited.append(canonical.dumps(doc))
    files["audit/records.jsonl"] = b"\n".join(edited) + b"\n"


def _audit_tail_removed(files: Files) -> None:
    lines = files["audit/records.jsonl"].splitlines()
    files["audit/records.jsonl"] = b"\n".join(lines[:-1]) + b"\n"


def _explanation_edited(files: Files) -> None:
    files["explanation/explanation.md"] = files["explanation/explanation.md"].replace(
        b"Verdict: FAIL", b"Verdict: PASS"
    )


def _knowledge_swapped(files: Files) -> None:
    files["knowledge/manifest.json"] = b'{"datasets":[],"sources":[]}'


TAMPERING: list[tuple[str, Callable[[Files], None], str]] = [
    (
        "evidence swapped",
        _swap_evidence,
        r"evidence sbom in the package's evidence/ files has digest sha256:\w+ \(\d+ bytes\), but "
        r"the signed verdict pins sha256:",
    ),
    ("predicate edited", _edit_predicate, "the signature does not verify over the DSSE payload"),
    ("untrusted signer", _untrusted_signature, "which the trust policy does not trust"),
    (
        "subject changed",
        _subject_changed,
        r"manifest.json names subject sha256:(0f){32} .* the signed verdict is about sha256:",
    ),
    (
        "audit record edited",
        _audit_record_edited,
        r"audit record \d+ \(gate\) was edited: its hash sha256:\w+ does not match its content",
    ),
    (
        "audit tail removed",
        _audit_tail_removed,
        r"the audit log ends at record \d+, the signed head says \d+",
    ),
    (
        "explanation edited",
        _explanation_edited,
        "explanation/explanation.md is not the explanation of the verified verdict",
    ),
    (
        "knowledge swapped",
        _knowledge_swapped,
        "knowledge/manifest.json has digest sha256:.*, the verdict pins snapshot",
    ),
]


@pytest.mark.parametrize(
    ("change", "message"), [(c, m) for _, c, m in TAMPERING], ids=[n for n, _, _ in TAMPERING]
)
def test_tampering_fails_with_a_specific_message(
    package: bytes, home: Home, change: Callable[[Files], None], message: str
) -> None:
    files = read_package(package, source="test")
    change(files)
    with pytest.raises(AuditorError, match=message):
        verify_package(_reseal(files), home.public_key())


def test_edit_without_resealing_fails_on_the_listing(package: bytes, home: Home) -> None:
    files = read_package(package, source="test")
    _swap_evidence(files)
    tampered = _reseal(files)
    members = read_package(tampered, source="test")
    members["SHA256SUMS"] = read_package(package, source="test")["SHA256SUMS"]
    members["manifest.json"] = read_package(package, source="test")["manifest.json"]
    with pytest.raises(AuditorError, match=r"evidence/sbom.json has sha256 \w+, manifest.json"):
        verify_package(_zip(members), home.public_key())


def _zip(files: Files) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in sorted(files.items()):
            z.writestr(name, data)
    return buf.getvalue()


def test_wrong_key_is_refused(package: bytes) -> None:
    with pytest.raises(AuditorError, match="which the trust policy does not trust"):
        verify_package(package, PrivateKey.generate().public_key)


def test_export_needs_a_verdict(tmp_path: Path, home: Home) -> None:
    out = tmp_path / "audit.zip"
    runner = CliRunner()
    made = runner.invoke(
        cli, ["--home", str(home.root), "export-audit-package", "app:1", "--out", str(out)]
    )
    assert made.exit_code == 1  # no verdict yet for this fresh home's image
    assert "has no risk verdict attached" in made.output


def test_verify_package_in_an_empty_directory_without_network(
    tmp_path: Path, home: Home, gated: GateResult, pub: Path
) -> None:
    runner = CliRunner()
    out = tmp_path / "audit.zip"
    made = runner.invoke(
        cli, ["--home", str(home.root), "export-audit-package", "app:1", "--out", str(out)]
    )
    assert made.exit_code == 0, made.output
    empty = tmp_path / "auditor"
    empty.mkdir()
    shutil.copy(out, empty / "audit.zip")
    shutil.copy(pub, empty / "appliance.pub")
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-n", "true"], check=False).returncode:
        if ALLOW_SKIP:
            pytest.skip("unshare -n is not available (STELLA_ALLOW_SKIP=1)")
        pytest.fail("unshare -n is needed to block the network: install util-linux, run as root")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(empty),
        "STELLA_HOME": str(empty / "no-home"),
        "PYTHONPATH": str(ROOT),
    }
    code = (
        "import socket\n"
        "def refuse(*a, **k): raise OSError('network blocked')\n"
        "socket.socket.connect = refuse\n"
        "from appliance.cli import main\n"
        "main()\n"
    )
    run = subprocess.run(
        [
            unshare,
            "-n",
            sys.executable,
            "-c",
            code,
            "verify-audit-package",
            "audit.zip",
            "--key",
            "appliance.pub",
        ],
        cwd=empty,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("OK  audit.zip: FAIL for app sha256:")
    assert sorted(p.name for p in empty.iterdir()) == ["appliance.pub", "audit.zip"]


def _hand_check_script() -> str:
    text = DOC.read_text()
    match = re.search(r"<!-- hand-check -->\n```sh\n(.*?)```", text, re.S)
    assert match, "docs/auditing.md has no hand-check block"
    return match.group(1)


def _hand_check(where: Path, package: bytes, pub: Path) -> subprocess.CompletedProcess[str]:
    where.mkdir()
    (where / "audit.zip").write_bytes(package)
    env = {"PATH": os.environ.get("PATH", ""), "PKG": str(where / "audit.zip"), "KEY": str(pub)}
    return subprocess.run(
        ["bash", "-c", _hand_check_script()],
        cwd=where,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_hand_check_as_documented(tmp_path: Path, package: bytes, pub: Path, home: Home) -> None:
    for tool in ("sha256sum", "openssl", "bash", "cmp"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed for the hand check")
    run = _hand_check(tmp_path / "ok", package, pub)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Verified OK" in run.stdout
    keyid = home.public_key().keyid
    assert run.stdout.count(f"{keyid}  -") == 2
    assert run.stdout.rstrip().endswith("1")  # the gate record found once


@pytest.mark.parametrize(
    ("change", "failing"),
    [
        (_swap_evidence, "evidence/sbom.json: FAILED"),
        (_edit_predicate, "Verification failure"),
        (_untrusted_signature, "Verification failure"),
    ],
    ids=["evidence swapped", "predicate edited", "untrusted signer"],
)
def test_hand_check_catches_tampering(
    tmp_path: Path, package: bytes, pub: Path, change: Callable[[Files], None], failing: str
) -> None:
    files = read_package(package, source="test")
    change(files)
    if "rva/rva.sigstore.json" in files and change is not _swap_evidence:
        # a careful forger also rewrites the derived files so that only the signature tells
        bundle = json.loads(files["rva/rva.sigstore.json"])
        envelope = bundle["dsseEnvelope"]
        payload = b64decode(envelope["payload"])
        files["rva/rva.dsse.json"] = canonical.dumps(envelope)
        files["rva/statement.json"] = payload
        files["rva/rva.pae"] = pae(envelope["payloadType"], payload)
        files["rva/rva.sig"] = b64decode(envelope["signatures"][0]["sig"])
    run = _hand_check(tmp_path / "bad", _reseal(files), pub)
    assert run.returncode != 0
    assert failing in run.stdout + run.stderr
