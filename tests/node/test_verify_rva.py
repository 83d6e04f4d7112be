"""The appliance's RVA verifies with sigstore-js (``@sigstore/verify``), an implementation
independent of ours, offline; a tampered one does not.

The npm packages are installed by ``make node-deps`` (``npm ci`` in tests/node). Without them
the test fails naming that target, or is skipped only when STELLA_ALLOW_SKIP=1.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from appliance import tlog
from appliance.cli import cli
from appliance.home import Home
from bundles import canonical
from bundles.digest import Digest
from bundles.keys import KeyType, PrivateKey
from bundles.oci import OCILayout
from bundles.oci.mediatypes import SIGSTORE_BUNDLE_V03
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot, gate_app, make_home

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "verify-rva.js"
# 'make node-deps' installs the pinned packages (package-lock.json here) outside the source tree.
MODULES = HERE.parent.parent / ".cache" / "node" / "node_modules"


def _node() -> str:
    node = shutil.which("node")
    missing = node is None or not (MODULES / "@sigstore" / "verify").is_dir()
    if missing:
        if os.environ.get("STELLA_ALLOW_SKIP") == "1":
            pytest.skip("sigstore-js is not installed (STELLA_ALLOW_SKIP=1)")
        pytest.fail(f"sigstore-js is not installed in {MODULES}: run 'make node-deps'")
    assert node is not None
    return node


def _run(
    node: str, bundle: Path, pub: Path, trusted_root: Path | None = None
) -> tuple[int, dict[str, object]]:
    extra = [str(trusted_root)] if trusted_root else []
    run = subprocess.run(
        [node, str(SCRIPT), str(bundle), str(pub), *extra],
        cwd=HERE, capture_output=True, text=True, check=False, timeout=60,
        env={**os.environ, "NODE_PATH": str(MODULES)},
    )  # fmt: skip
    return run.returncode, json.loads(run.stdout)


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = make_home(tmp_path)
    add_snapshot(h, BASE_RECORDS, 1)
    return h


def test_sigstore_js_verifies_our_rva(tmp_path: Path, home: Home) -> None:
    node = _node()
    result = gate_app(home)
    bundle, pub = tmp_path / "rva.sigstore.json", tmp_path / "appliance.pub"
    bundle.write_bytes(result.bundle)
    home.public_key().save(pub)
    code, out = _run(node, bundle, pub, trusted_root(home, tmp_path))
    assert code == 0, out
    assert out == {
        "ok": True,
        "keyid": home.public_key().keyid,
        "payloadType": "application/vnd.in-toto+json",
        "predicateType": "https://stella-ops.org/attestations/risk-verdict/v1",
    }


def test_sigstore_js_refuses_tampering(tmp_path: Path, home: Home) -> None:
    node = _node()
    result = gate_app(home)
    pub = tmp_path / "appliance.pub"
    home.public_key().save(pub)
    doc = json.loads(result.bundle)
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["predicate"]["verdict"] = "PASS"
    doc["dsseEnvelope"]["payload"] = base64.b64encode(canonical.dumps(statement)).decode()
    edited = tmp_path / "edited.json"
    edited.write_bytes(canonical.dumps(doc))
    code, out = _run(node, edited, pub, trusted_root(home, tmp_path))
    assert code == 1
    assert out["ok"] is False
    other = tmp_path / "other.pub"
    PrivateKey.generate(KeyType.ECDSA_P256).public_key.save(other)
    original = tmp_path / "rva.json"
    original.write_bytes(result.bundle)
    code, out = _run(node, original, other, trusted_root(home, tmp_path))
    assert code == 1
    assert "no trusted key for hint" in str(out["error"])


def test_sigstore_js_verifies_our_openvex_referrer(tmp_path: Path, home: Home) -> None:
    """The OpenVEX attestation ``vex add`` attaches to the image verifies independently."""
    node = _node()
    added = CliRunner().invoke(
        cli,
        ["--home", str(home.root), "vex", "add", "CVE-2018-18074", "--image", "app:1",
         "--status", "not_affected", "--justification", "vulnerable_code_not_present",
         "--at", "2026-11-22T00:00:00Z"],
    )  # fmt: skip
    assert added.exit_code == 0, added.stderr
    layout = OCILayout.open(home.oci)
    (referrer,) = layout.referrers(
        layout.resolve("app:1").digest, artifact_type=SIGSTORE_BUNDLE_V03
    )
    layer = json.loads(layout.read_blob(referrer.digest))["layers"][0]["digest"]
    bundle, pub = tmp_path / "openvex.sigstore.json", tmp_path / "appliance.pub"
    bundle.write_bytes(layout.read_blob(Digest.parse(layer)))
    home.public_key().save(pub)
    code, out = _run(node, bundle, pub)
    assert code == 0, out
    assert out["predicateType"] == "https://openvex.dev/ns/v0.2.0"
    assert out["keyid"] == home.public_key().keyid


def trusted_root(home: Home, where: Path) -> Path:
    """The trusted root naming the appliance's transparency log (``stella log trusted-root``)."""
    path = where / "trusted_root.json"
    path.write_bytes(canonical.dumps(tlog.trusted_root(home)))
    return path


def test_sigstore_js_checks_the_log_entry(tmp_path: Path, home: Home) -> None:
    node = _node()
    result = gate_app(home)
    pub = tmp_path / "appliance.pub"
    home.public_key().save(pub)
    bundle = tmp_path / "rva.json"
    bundle.write_bytes(result.bundle)
    # without the log in the trusted root, the entry's checkpoint has no key to verify with
    code, out = _run(node, bundle, pub)
    assert code == 1
    assert "checkpoint" in str(out["error"])
    # an altered inclusion proof is refused
    doc = json.loads(result.bundle)
    proof = doc["verificationMaterial"]["tlogEntries"][0]["inclusionProof"]
    proof["hashes"] = [base64.b64encode(b"\x03" * 32).decode()]
    bundle.write_bytes(canonical.dumps(doc))
    code, out = _run(node, bundle, pub, trusted_root(home, tmp_path))
    assert code == 1, out
