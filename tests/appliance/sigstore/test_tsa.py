"""RFC 3161 timestamps over a verdict's signature (Sigstore ``timestampVerificationData``)
from a time-stamping authority the trusted root lists: a real TSA (``openssl ts -reply``)
under a test CA made here; the token proves the signing time when no log does."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from appliance.auditor.errors import AuditorError
from appliance.auditor.trust_policy import TrustPolicy
from appliance.auditor.verify import TimeBasis, verify_rva
from appliance.cli import cli
from appliance.home import Home
from appliance.keyring import load_ring, revoke
from appliance.rva.gate import gate
from appliance.sigstore import bundle as sigstore
from appliance.sigstore.tsa import TimestampAuthority, authorities_from_doc
from bundles.keys import format_instant
from tests.appliance.auditor.helpers import BASE_RECORDS, add_snapshot
from tests.appliance.homes import SITE
from tests.appliance.scanner.layouts import build_image, dist_info

UNPROVEN = "no transparency-log entry or timestamp trusted here proves when"
TS_CONFIG = """\
[ tsa ]
default_tsa = stella_test_tsa
[ stella_test_tsa ]
dir = {dir}
serial = {dir}/serial
crypto_device = builtin
signer_cert = {dir}/tsa.pem
signer_key = {dir}/tsa.key
signer_digest = sha256
default_policy = 1.3.6.1.4.1.57264.99.1
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


class Tsa:
    """A time-stamping authority: a root CA and a TSA certificate (critical timeStamping
    EKU) made with cryptography, answering requests with ``openssl ts -reply``. The reply
    carries the TSA's certificate only (``-cert``): openssl writes a longer chain's SET OF
    certificates unsorted, which strict DER readers (rfc3161-client) refuse."""

    def __init__(self, where: Path, name: str) -> None:
        if shutil.which("openssl") is None:
            pytest.fail("openssl is needed for a real time-stamping authority")
        where.mkdir()
        self.dir, self.name = where, name
        start = datetime(2020, 1, 1, tzinfo=UTC)
        root_key, tsa_key = (
            ec.generate_private_key(ec.SECP256R1()),
            ec.generate_private_key(ec.SECP256R1()),
        )
        self.root = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} root"))
            .issuer_name(_name(f"{name} root"))
            .public_key(root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=365 * 30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .sign(root_key, hashes.SHA256())
        )
        self.leaf = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(self.root.subject)
            .public_key(tsa_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=365 * 30))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
            )
            .add_extension(
                x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                critical=True,
            )
            .sign(root_key, hashes.SHA256())
        )
        pem = serialization.Encoding.PEM
        (where / "ca.pem").write_bytes(self.root.public_bytes(pem))
        (where / "tsa.pem").write_bytes(self.leaf.public_bytes(pem))
        (where / "tsa.key").write_bytes(
            tsa_key.private_bytes(
                pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        (where / "serial").write_text("01\n")
        (where / "ts.cnf").write_text(TS_CONFIG.format(dir=where))

    def reply(self, data: bytes) -> bytes:
        """A TimeStampResp (DER) over SHA-256(``data``), as a TSA answers a request."""
        (self.dir / "data.bin").write_bytes(data)
        for args in (
            ["ts", "-query", "-data", "data.bin", "-sha256", "-cert", "-out", "req.tsq"],
            ["ts", "-reply", "-config", "ts.cnf", "-queryfile", "req.tsq", "-out", "resp.tsr"],
        ):
            subprocess.run(["openssl", *args], cwd=self.dir, check=True, capture_output=True)
        return (self.dir / "resp.tsr").read_bytes()

    def authority(self, start: str = "2020-01-01T00:00:00Z") -> dict[str, object]:
        der = serialization.Encoding.DER
        return {
            "subject": {"organization": "stella tests", "commonName": self.name},
            "uri": f"https://{self.name}",
            "certChain": {
                "certificates": [
                    {"rawBytes": base64.b64encode(c.public_bytes(der)).decode()}
                    for c in (self.leaf, self.root)
                ]
            },
            "validFor": {"start": start},
        }


def _trusted_root(*authorities: dict[str, object]) -> dict[str, object]:
    return {
        "mediaType": "application/vnd.dev.sigstore.trustedroot+json;version=0.1",
        "tlogs": [],
        "certificateAuthorities": [],
        "ctlogs": [],
        "timestampAuthorities": list(authorities),
    }


@pytest.fixture
def home(tmp_path: Path) -> Home:
    h = Home(tmp_path / "home")
    h.init()
    build_image(h.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    add_snapshot(h, BASE_RECORDS, 1)
    return h


@pytest.fixture
def tsa(tmp_path: Path) -> Tsa:
    return Tsa(tmp_path / "tsa", "tsa.stella.test")


def _stamped(home: Home, tsa: Tsa, now: datetime) -> tuple[bytes, bytes]:
    """A verdict signed at ``now`` (the injected clock), with the TSA's token over its
    signature; and the signature."""
    result = gate(home, "app:1", at=now, now=lambda: now)
    bundle = sigstore.read(result.bundle)
    signature = bundle.envelope.signatures[0].sig
    return sigstore.with_timestamp(bundle, tsa.reply(signature)).to_json(), signature


def _stolen(home: Home, at: datetime, now: datetime) -> TrustPolicy:
    """Revoke the home's key from ``at`` ("token stolen", reported at ``now``); the trust
    policy of its key ring then."""
    revoke(home, home.public_key().keyid, at=at, reason="token stolen", now=now)
    return TrustPolicy.of_ring(load_ring(home))


def _authorities(*docs: dict[str, object]) -> list[TimestampAuthority]:
    return authorities_from_doc(_trusted_root(*docs), source="trusted_root.json")


def test_a_token_from_a_listed_authority_proves_the_signing_time(
    home: Home, tsa: Tsa, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # the TSA's clock is the wall clock
    data, signature = _stamped(home, tsa, now)
    # The bundle keeps the token as read, in the Sigstore form.
    doc = json.loads(data)
    (item,) = doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    assert sigstore.read(data).to_json() == data
    # openssl, independently: the token is over the signature, by the TSA, under its CA.
    (tmp_path / "resp.tsr").write_bytes(base64.b64decode(item["signedTimestamp"]))
    (tmp_path / "sig.bin").write_bytes(signature)
    trust = ["-CAfile", str(tsa.dir / "ca.pem"), "-untrusted", str(tsa.dir / "tsa.pem")]
    check = subprocess.run(
        ["openssl", "ts", "-verify", "-in", "resp.tsr", "-data", "sig.bin", *trust],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert "Verification: OK" in check.stdout, check.stdout + check.stderr

    # The key is reported stolen an hour from now (the report comes later still).
    policy = _stolen(home, now + timedelta(hours=1), now + timedelta(hours=2))
    with pytest.raises(AuditorError, match=UNPROVEN):
        verify_rva(data, policy)  # the authority is not trusted: the token proves nothing
    checked = verify_rva(data, policy, authorities=_authorities(tsa.authority()))
    assert checked.signed_at is not None
    assert checked.signed_at.basis is TimeBasis.TSA
    assert checked.signed_at.proven is not None
    assert now <= checked.signed_at.proven < now + timedelta(hours=1)
    assert checked.signed_at.to_dict()["timestamp"]["authority"] == "tsa.stella.test"
    assert "RFC 3161, time-stamping authority tsa.stella.test" in checked.signed_at.describe()
    # The revocation moved before the token's time: the token now proves it was too late.
    policy = _stolen(home, now - timedelta(hours=1), now + timedelta(hours=2))
    with pytest.raises(AuditorError) as caught:
        verify_rva(data, policy, source="rva.json", authorities=_authorities(tsa.authority()))
    assert (
        f"revoked at {format_instant(now - timedelta(hours=1))} (token stolen), and timestamped "
        "at " in caught.value.message
    )
    assert re.search(
        r"\(RFC 3161, time-stamping authority tsa.stella.test, serial \d+\), after the "
        r"revocation$",
        caught.value.message,
    )


def test_tokens_that_prove_nothing_or_lie_are_named(home: Home, tsa: Tsa, tmp_path: Path) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    data, _ = _stamped(home, tsa, now)
    policy = _stolen(home, now + timedelta(hours=1), now + timedelta(hours=2))
    # Another authority's token: not evidence, left aside.
    other = Tsa(tmp_path / "other", "other.tsa.test")
    with pytest.raises(AuditorError, match=UNPROVEN):
        verify_rva(data, policy, authorities=_authorities(other.authority()))
    # The listed authority's token over another signature: tampering, named.
    bundle = sigstore.read(data)
    unstamped = replace(bundle, timestamps=())
    moved = sigstore.with_timestamp(unstamped, tsa.reply(b"another signature")).to_json()
    with pytest.raises(AuditorError) as caught:
        verify_rva(moved, policy, source="rva.json", authorities=_authorities(tsa.authority()))
    assert caught.value.message.startswith(
        "rva.json: RFC 3161 timestamp 0 is signed by the time-stamping authority "
        "tsa.stella.test but does not verify over this signature"
    )
    # A token from before the period the trusted root trusts the authority for.
    later = tsa.authority(start=format_instant(now + timedelta(days=1)))
    with pytest.raises(AuditorError, match="outside the period the trusted root trusts it for"):
        verify_rva(data, policy, authorities=_authorities(later))
    # Garbage where a token should be.
    doc = json.loads(data)
    stamps = doc["verificationMaterial"]["timestampVerificationData"]["rfc3161Timestamps"]
    stamps[0]["signedTimestamp"] = base64.b64encode(b"not DER").decode()
    with pytest.raises(AuditorError, match="RFC 3161 timestamp 0 is not a DER TimeStampResp"):
        verify_rva(json.dumps(doc).encode(), policy, authorities=_authorities(tsa.authority()))


def test_verify_takes_the_authorities_from_the_trusted_root(
    home: Home, tsa: Tsa, tmp_path: Path
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    data, _ = _stamped(home, tsa, now)
    rva = tmp_path / "rva.json"
    rva.write_bytes(data)
    _stolen(home, now + timedelta(hours=1), now + timedelta(hours=2))
    runner = CliRunner()
    keys = tmp_path / "appliance-keys.json"
    exported = runner.invoke(
        cli,
        [
            "--home",
            str(home.root),
            "keys",
            "export-public",
            "--out",
            str(tmp_path / "a.pub"),
            "--keys-out",
            str(keys),
        ],
    )
    assert exported.exit_code == 0, exported.output
    root = tmp_path / "trusted_root.json"
    root.write_text(json.dumps(_trusted_root(tsa.authority())))
    auditor = ["--home", str(tmp_path / "auditor"), "--json", "verify", str(rva)]
    result = runner.invoke(
        cli, [*auditor, "--trust-policy", str(keys), "--trusted-root", str(root)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["signingTime"]["basis"] == "timestamp-authority"
    refused = runner.invoke(cli, [*auditor, "--trust-policy", str(keys)])
    assert refused.exit_code == 1
    assert UNPROVEN in refused.stderr
