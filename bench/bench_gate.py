"""Benchmark: gate + sign + log + attach for an image with 1,000 findings.

Usage: python bench/bench_gate.py [--findings N] [--rounds R] [--regated G]
                                  [--signer file|pkcs11|notation|both|all]
Builds N synthetic findings (a tenth waived by VEX statements, some KEV, EPSS and reachable),
then times, per round: the VEX merge, policy input, in-process OPA evaluation of the default
policy, predicate validation, DSSE signing, appending the RVA and the SBOM attestation to the
transparency log (each append durable: entry, tiles and checkpoint synced), and attaching them
and the evidence as OCI referrers in a fresh layout. Prints the best and median round and one JSON
line per signer. Target (2 cores): <= 0.5 s for 1,000 findings, with either signer.

With the key file it also times what the next gate of an image gated ``--regated`` times
(50) pays to read the attestations others attached to it: the image holds one verdict and
one SBOM attestation of the appliance per gate, and one of others (another key's), which
alone is read. Target: <= 5 ms, whatever the number of gates before.

Signers: a key file (a key in memory), and a PKCS#11 token: a SoftHSM2 token the benchmark
initializes in a temporary directory (``softhsm2-util``, Debian package softhsm2), holding an
ECDSA P-256 key generated inside it; every signature is made by the token. ``notation`` is
the key file plus a Notary Project signature of the verdict (JWS envelope with a two
certificate chain, attached as a referrer of the verdict), as a home with
``keys notation init`` signs. ``both`` (the default) runs file and pkcs11; ``all`` adds
notation.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from appliance.home import Home  # noqa: E402
from appliance.match.model import (  # noqa: E402
    Component,
    Epss,
    Evidence,
    Finding,
    FindingsReport,
    FixState,
    Kev,
    MatchDetail,
    MatchKind,
    Reachability,
    RecordRef,
    Severity,
    SeveritySource,
)
from appliance.notation import ca as notation_ca  # noqa: E402
from appliance.notation import envelope as notation_envelope  # noqa: E402
from appliance.notation import oci as notation_oci  # noqa: E402
from appliance.policy.bundle import PolicyBundle  # noqa: E402
from appliance.policy.engine import CompiledPolicy  # noqa: E402
from appliance.policy.inputs import KnowledgeInfo  # noqa: E402
from appliance.rva.evaluate import GateInputs, SubjectInfo, Verdict, evaluate  # noqa: E402
from appliance.rva.gate import attached_attestations, sign_and_log  # noqa: E402
from appliance.rva.predicate import PREDICATE_TYPE  # noqa: E402
from appliance.sigstore.attach import attach_attestation, attach_evidence  # noqa: E402
from appliance.vex.model import Justification, Origin, Product, VexStatement, VexStatus  # noqa: E402
from bench import figures  # noqa: E402
from bench.figures import Figure  # noqa: E402
from bundles import canonical  # noqa: E402
from bundles.digest import Digest  # noqa: E402
from bundles.intoto import Statement, Subject  # noqa: E402
from bundles.keys import PrivateKey  # noqa: E402
from bundles.oci import Descriptor, OCILayout  # noqa: E402
from bundles.oci.mediatypes import OCI_CONFIG, OCI_MANIFEST  # noqa: E402
from bundles.pkcs11_uri import PIN_ENV  # noqa: E402
from bundles.signer import Signer, generate_signer  # noqa: E402

AT = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
TARGET = 0.5
REGATE_TARGET = 0.005
SOFTHSM_MODULE = Path("/usr/lib/softhsm/libsofthsm2.so")
BENCH_PIN = "bench-pin-1234"
SEVERITIES = (Severity.LOW, Severity.MEDIUM, Severity.HIGH, Severity.CRITICAL)


def findings(n: int) -> list[Finding]:
    out = []
    for i in range(n):
        purl = f"pkg:deb/debian/lib{i % 300}@1.{i % 7}-1?arch=amd64&distro=debian-12"
        vuln = f"CVE-2025-{i:05d}"
        record = RecordRef(f"DEBIAN-{vuln}", Digest.of_bytes(vuln.encode()).hex)
        out.append(
            Finding(
                id=vuln,
                aliases=(f"DSA-{i}-1",),
                component=Component(purl, "deb", f"lib{i % 300}", "1.0", "Debian:12", "lib"),
                fixed_versions=("1.9",) if i % 3 else (),
                fix_state=FixState.FIXED if i % 3 else FixState.NOT_FIXED,
                severity=SEVERITIES[i % 4],
                severity_source=SeveritySource.DATABASE,
                severity_detail="bench",
                matches=(MatchDetail(record, MatchKind.DISTRO_FIXED, "dpkg", "< 1.9", "1.0", "x"),),
                evidence=Evidence(
                    purl,
                    reachability=Reachability.REACHABLE if i % 11 == 0 else Reachability.UNKNOWN,
                ),
                kev=Kev(vuln) if i % 97 == 0 else None,
                epss=Epss(vuln, f"0.{i % 1000:05d}", "0.50000"),
            )
        )
    return out


def statements(image: str, found: list[Finding]) -> list[VexStatement]:
    return [
        VexStatement(
            key=f"urn:bench:{f.id}#0",
            document=Digest.of_bytes(f.id.encode()).hex,
            origin=Origin.VENDOR if i % 2 else Origin.OPERATOR,
            vulnerability=f.id,
            aliases=(),
            products=(Product(f"pkg:oci/app@{image}", (f.component.purl,)),),
            status=VexStatus.NOT_AFFECTED,
            timestamp=AT.replace(day=1),
            justification=Justification.VULNERABLE_CODE_NOT_IN_EXECUTE_PATH,
        )
        for i, f in enumerate(found)
        if i % 10 == 0
    ]


def image(layout: OCILayout) -> Descriptor:
    config = layout.put_blob(b'{"architecture":"amd64","os":"linux"}', media_type=OCI_CONFIG)
    raw = canonical.dumps(
        {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.to_dict(), "layers": []}
    )
    return layout.put_manifest(raw, OCI_MANIFEST)


@contextmanager
def softhsm_signer(tmp: Path) -> Iterator[Signer]:
    """An ECDSA P-256 key generated in a fresh SoftHSM2 token under ``tmp``."""
    util = shutil.which("softhsm2-util")
    if util is None or not SOFTHSM_MODULE.is_file():
        raise SystemExit("softhsm2 is not installed: run 'make sysdeps'")
    (tmp / "tokens").mkdir()
    conf = tmp / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tmp / 'tokens'}\nobjectstore.backend = file\n")
    os.environ["SOFTHSM2_CONF"] = str(conf)  # read when the module is first initialized
    subprocess.run(
        [util, "--init-token", "--free", "--label", "bench", "--so-pin", "12345678",
         "--pin", BENCH_PIN],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    uri = f"pkcs11:token=bench;object=appliance?module-path={SOFTHSM_MODULE}"
    signer = generate_signer(uri, environ={PIN_ENV: BENCH_PIN})
    try:
        yield signer
    finally:
        signer.close()  # type: ignore[attr-defined]


def notation_chain(key: Signer) -> list[x509.Certificate]:
    """A root and a code-signing leaf for ``key``, as the appliance's small CA issues them."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    attributes = notation_ca.check_subject(notation_ca.DEFAULT_SUBJECT, where="bench")
    root = notation_ca.make_root(root_key, attributes, now=AT)
    public = key.public_key.crypto
    assert isinstance(public, ec.EllipticCurvePublicKey)
    return [notation_ca.make_leaf(root_key, root, public, attributes, now=AT), root]


def stage(root: Path) -> tuple[OCILayout, Descriptor, Home]:
    """A layout holding the image, and a home for its transparency log, which every
    signature goes into."""
    layout = OCILayout.init(root)
    subject = image(layout)
    home = Home(root / "home")
    home.init()
    return layout, subject, home


def gate_statements(
    inputs: GateInputs, policy: CompiledPolicy, subject: Descriptor
) -> tuple[Verdict, Statement, Statement]:
    """The verdict for ``inputs``, its statement and the SBOM's, as the gate makes them."""
    verdict = evaluate(inputs, policy)
    statement = Statement((Subject.of("app", subject.digest),), PREDICATE_TYPE, verdict.predicate)
    sbom = Statement(
        (Subject.of("app", subject.digest),),
        "https://cyclonedx.org/bom",
        canonical.loads(inputs.sbom or b"{}"),
    )
    return verdict, statement, sbom


def one_round(
    inputs: GateInputs,
    policy: CompiledPolicy,
    key: Signer,
    root: Path,
    chain: list[x509.Certificate] | None = None,
) -> float:
    layout, subject, home = stage(root)
    started = time.perf_counter()
    verdict, statement, sbom = gate_statements(inputs, policy, subject)
    bundle, sbom_bundle = sign_and_log(home, [statement, sbom], key)
    created = verdict.predicate["evaluationTime"]
    referrer = attach_attestation(layout, subject, bundle, PREDICATE_TYPE, created, keyid=key.keyid)
    if chain is not None:  # the Notary Project signature of the verdict, as the gate adds it
        payload = notation_envelope.payload_for(notation_oci.target_descriptor(referrer))
        envelope = notation_envelope.sign(payload, chain, key, signing_time=AT)
        notation_oci.attach_signature(layout, referrer, envelope, chain, AT)
    attach_attestation(layout, subject, sbom_bundle, sbom.predicate_type, created, keyid=key.keyid)
    attach_evidence(layout, subject, verdict.evidence, created)
    return time.perf_counter() - started


def regate_read(
    inputs: GateInputs, policy: CompiledPolicy, key: Signer, root: Path, gated: int
) -> float:
    """The median time a gate takes to read the attestations others attached to an image
    the appliance gated ``gated`` times before (each gate's verdict and SBOM attestation,
    signed, logged and attached as :func:`one_round` does) and one other key attested."""
    layout, subject, home = stage(root)
    verdict, statement, sbom = gate_statements(inputs, policy, subject)
    created = verdict.predicate["evaluationTime"]
    for _ in range(gated):
        bundle, sbom_bundle = sign_and_log(home, [statement, sbom], key)
        attach_attestation(layout, subject, bundle, PREDICATE_TYPE, created, keyid=key.keyid)
        attach_attestation(
            layout, subject, sbom_bundle, sbom.predicate_type, created, keyid=key.keyid
        )
    theirs = sign_and_log(home, [sbom], PrivateKey.generate())[0]
    attach_attestation(layout, subject, theirs, sbom.predicate_type, created)
    layout = OCILayout.open(root)
    times = []
    for _ in range(15):
        started = time.perf_counter()
        seen = attached_attestations(layout, subject.digest, key.keyid)
        times.append(time.perf_counter() - started)
        assert len(seen) == 1, seen  # the other key's alone
    return statistics.median(times)


def measure(
    inputs: GateInputs,
    key: Signer,
    rounds: int,
    tmp: Path,
    chain: list[x509.Certificate] | None = None,
) -> tuple[list[float], float]:
    """Round times with one compiled policy, and the policy's compile time (once a process)."""
    with CompiledPolicy(inputs.policy) as policy:
        times = [one_round(inputs, policy, key, tmp / f"r{i}", chain) for i in range(rounds)]
    cold_started = time.perf_counter()
    with CompiledPolicy(inputs.policy) as policy:
        compile_time = time.perf_counter() - cold_started
    return times, compile_time


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--regated", type=int, default=50)
    parser.add_argument(
        "--signer", choices=("file", "pkcs11", "notation", "both", "all"), default="all"
    )
    args = parser.parse_args()
    found = findings(args.findings)
    sbom = canonical.dumps(
        {
            "bomFormat": "CycloneDX",
            "specVersion": "1.6",
            "components": [{"purl": f.component.purl} for f in found],
        }
    )
    signers = {
        "both": ("file", "pkcs11"),
        "all": ("file", "pkcs11", "notation"),
    }.get(args.signer, (args.signer,))
    results: list[Figure] = []
    with tempfile.TemporaryDirectory(prefix="stella-bench-gate-") as tmp:
        probe = OCILayout.init(Path(tmp) / "probe")
        digest = str(image(probe).digest)
        inputs = GateInputs(
            subject=SubjectInfo("app", digest, OCI_MANIFEST, 0),
            at=AT,
            policy=PolicyBundle.default(),
            report=FindingsReport.build(found, snapshot="sha256:" + "5" * 64),
            statements=tuple(statements(digest, found)),
            knowledge=KnowledgeInfo("sha256:" + "5" * 64, "stable/1", "2026-11-20T00:00:00Z"),
            sbom=sbom,
        )
        for name in signers:
            work = Path(tmp) / name
            work.mkdir()
            if name == "file":
                times, compile_time = measure(inputs, PrivateKey.generate(), args.rounds, work)
            elif name == "notation":
                signing = PrivateKey.generate()
                chain = notation_chain(signing)
                times, compile_time = measure(inputs, signing, args.rounds, work, chain)
            else:
                with softhsm_signer(work) as key:
                    times, compile_time = measure(inputs, key, args.rounds, work)
            best, median = min(times), statistics.median(times)
            ok = median + compile_time <= TARGET
            what = {
                "file": "key file",
                "pkcs11": "PKCS#11 token (SoftHSM2)",
                "notation": "key file + Notary Project signature",
            }[name]
            print(
                f"gate+sign+log+attach, {args.findings} findings, {what}: best {best:.3f} s, "
                f"median {median:.3f} s (policy compile {compile_time:.3f} s, once per "
                f"process); target <= {TARGET} s"
            )
            print(
                json.dumps(
                    {
                        "bench": "gate",
                        "signer": name,
                        "findings": args.findings,
                        "best_s": round(best, 4),
                        "median_s": round(median, 4),
                        "compile_s": round(compile_time, 4),
                        "ok": ok,
                    }
                )
            )
            results.append(
                Figure(
                    f"gate + sign + log + attach, {args.findings:,} findings, {what}",
                    f"{median + compile_time:.2f} s",
                    f"≤ {TARGET} s",
                    ok,
                )
            )
        if "file" in signers:
            with CompiledPolicy(inputs.policy) as policy:
                read = regate_read(
                    inputs, policy, PrivateKey.generate(), Path(tmp) / "regated", args.regated
                )
            ok = read <= REGATE_TARGET
            print(
                f"attestations read by a gate of an image gated {args.regated} times: median "
                f"{read * 1000:.2f} ms; target <= {REGATE_TARGET * 1000:.0f} ms"
            )
            regated = {"bench": "gate", "gated": args.regated, "median_s": round(read, 5)}
            print(json.dumps(regated | {"ok": ok}))
            results.append(
                Figure(
                    f"reading the attestations others attached, image gated {args.regated} times",
                    f"{read * 1000:.1f} ms",
                    f"≤ {REGATE_TARGET * 1000:.0f} ms",
                    ok,
                )
            )
    figures.record("gate", results)
    return 0 if all(f.met for f in results) else 1


if __name__ == "__main__":
    sys.exit(main())
