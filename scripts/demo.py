#!/usr/bin/env python3
"""The golden path on the embedded sample, offline, through the real command lines.

Connected side: generate keys, sync the sample feeds (real upstream files, read from local
paths), build a snapshot, export a signed bundle and verify it. Appliance: create a home,
trust the mirror, import the bundle, and show what it now knows; then whatever else the
product can do today (scan, gate, ...) on the sample image when it is available.

Everything lands in ``demo-out/`` (or the directory given): ``mirror/`` is the connected
side's home, ``appliance/`` the appliance's. Run ``stella --home demo-out/appliance ...``
afterwards to look around.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class Demo:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.mirror_home = out / "mirror"
        self.appliance_home = out / "appliance"
        self.keys = out / "keys"
        self.step = 0
        self.started = time.perf_counter()

    def run(
        self,
        title: str,
        prog: str,
        *args: str | Path,
        show: Callable[[dict[str, Any]], str] | None = None,
    ) -> dict[str, Any]:
        self.step += 1
        home = self.mirror_home if prog == "stella-mirror" else self.appliance_home
        argv = [str(BIN / prog), "--home", str(home), "--json", *map(str, args)]
        shown = f"{prog} " + " ".join(shlex.quote(str(a)) for a in args)
        print(f"\n[{self.step}] {title}\n    $ {shown}", flush=True)
        done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False)
        if done.returncode not in (0, 3, 4):
            print(done.stderr, file=sys.stderr)
            sys.exit(f"demo: step {self.step} failed ({prog} exited {done.returncode})")
        data = json.loads(done.stdout) if done.stdout.strip() else {}
        if show is not None:
            for line in show(data).splitlines():
                print(f"    {line}")
        return data


def images_part(d: Demo, layout: Path) -> None:
    """Load the sample app image, scan it, gate it, triage, gate again."""
    print("\n== Images: scan, gate, triage ==")
    d.run(
        "Load the sample app image (Debian 12, python3, old pip and npm packages)",
        "stella",
        "images",
        "load",
        f"oci:{layout}:app:latest",
        show=lambda r: f"{r.get('name', 'app:latest')} {str(r.get('digest', ''))[:19]}…",
    )
    d.run(
        "Scan it: packages with their layer and file, matched against the snapshot",
        "stella",
        "scan",
        "app:latest",
        show=lambda r: (
            f"{r['packages']} packages; findings by severity: "
            + ", ".join(f"{k} {v}" for k, v in r["findings"].items() if v)
            + " (rated by the distribution, GHSA, the advisory or the CVE record; see SOURCE)"
        ),
    )
    # Gated at the moment it runs, with an exception that expires 30 days on: the statements
    # made in between are in force for the second gate whatever day the demo runs.
    expires = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%d")
    rva = d.out / "app.rva.json"
    d.run(
        "Gate it with the site policy the snapshot carried: a signed Risk Verdict",
        "stella",
        "gate",
        "app:latest",
        "--out",
        rva,
        show=lambda r: (
            f"{r['verdict']}: {', '.join(r['reasonCodes']) or 'no reasons'} "
            f"({r['summary']['bySeverity']['critical']} critical findings)"
        ),
    )
    d.run(
        "Triage: idna's DoS is not reachable with untrusted input (signed OpenVEX)",
        "stella",
        "vex",
        "add",
        "CVE-2024-3651",
        "--image",
        "app:latest",
        "--component",
        "pkg:pypi/idna@2.7",
        "--status",
        "not_affected",
        "--justification",
        "vulnerable_code_not_in_execute_path",
        "--impact",
        "The app never passes untrusted input to idna.encode.",
        show=lambda r: f"signed statement {r['statements'][0]}, audit record {r['auditSeq']}",
    )
    d.run(
        "Triage: accept urllib3's redirect issue for 30 days (an exception expires)",
        "stella",
        "vex",
        "add",
        "CVE-2023-43804",
        "--image",
        "app:latest",
        "--component",
        "pkg:pypi/urllib3@1.24.1",
        "--status",
        "not_affected",
        "--justification",
        "inline_mitigations_already_exist",
        "--impact",
        "Redirects are disabled in the app's HTTP client.",
        "--expires",
        expires,
        show=lambda r: f"signed exception {r['statements'][0]}, audit record {r['auditSeq']}",
    )
    d.run(
        "Gate again: the triaged findings no longer count; the criticals still fail it",
        "stella",
        "gate",
        "app:latest",
        "--out",
        rva,
        show=lambda r: (
            f"{r['verdict']}: {', '.join(r['reasonCodes'])}; "
            f"{r['summary']['exceptions']} exception, {r['summary']['notAffected']} not affected; "
            f"RVA written to {rva.name}"
        ),
    )
    auditor_part(d, rva)


def auditor_part(d: Demo, rva: Path) -> None:
    """What an auditor does with the verdict, offline."""
    print("\n== The auditor's view ==")
    d.run(
        "Verify the RVA: signature, trust policy, subject, schema and every evidence digest",
        "stella",
        "verify",
        rva,
        show=lambda r: f"verified: {r['verdict']}, {len(r['evidence'])} evidence blobs checked",
    )
    d.run(
        "Replay it from the pinned snapshot, policy, SBOM and VEX",
        "stella",
        "replay",
        rva,
        show=lambda r: f"{r['result']}: the predicate is byte-identical",
    )
    package = d.out / "app-audit.zip"
    d.run(
        "Export an audit package: RVA, policy, snapshot manifest, evidence, explanation, keys",
        "stella",
        "export-audit-package",
        "app:latest",
        "--out",
        package,
        show=lambda r: f"{package.name}: {r['size']:,} bytes, {r['digest'][:19]}…",
    )
    key = d.out / "appliance.pub"
    d.run(
        "Hand the appliance's public key to the auditor",
        "stella",
        "keys",
        "export-public",
        "--out",
        key,
    )
    d.run(
        "The auditor verifies the package with nothing but the package and the key",
        "stella",
        "verify-audit-package",
        package,
        "--key",
        key,
        show=lambda r: f"package verified: {len(r['checks'])} checks",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=REPO / "demo-out")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    d = Demo(out)
    print(f"Stella Ops demo — everything offline, state in {out}")

    print("\n== Connected side (stella-mirror) ==")
    d.run(
        "Generate the signing key, an offline root key and the trust root",
        "stella-mirror",
        "keys",
        "generate",
        "--out",
        d.keys,
        show=lambda r: (
            f"signing key {r['signingKeyid'][:16]}, trust root for channel {r['channel']}"
        ),
    )
    d.run(
        "Sync the sample feeds (OSV, Debian, Alpine, KEV, EPSS, vendor VEX, policy)",
        "stella-mirror",
        "sync",
        "--config",
        REPO / "examples/sample/mirror.toml",
        show=lambda r: "\n".join(
            f"{s['name']:<18} {s['status']:<8} {s.get('records') or 0:>6} records"
            for s in r.get("sources", [])
        ),
    )
    snap = d.run(
        "Build the content-addressed knowledge snapshot",
        "stella-mirror",
        "snapshot",
        "build",
        show=lambda r: f"snapshot {r['digest']}",
    )
    bundle = out / "sample.stella.tar.zst"
    d.run(
        "Export it as one signed, zstd-compressed bundle",
        "stella-mirror",
        "export",
        "--out",
        bundle,
        "--key",
        d.keys / "signing.key",
        show=lambda r: (
            f"{r['kind']} bundle, sequence {r['sequence']}, {r['size']:,} bytes, "
            f"digest {r['digest'][:19]}…"
        ),
    )
    d.run(
        "Verify the bundle before carrying it across the gap",
        "stella-mirror",
        "verify",
        bundle,
        "--trust-root",
        d.keys / "trust-root.json",
        show=lambda r: f"verified: {r['members']} members, signed by {r['keyids'][0][:16]}",
    )

    print("\n== Across the gap: the appliance (stella) ==")
    d.run(
        "Create the appliance home and its signing key",
        "stella",
        "init",
        show=lambda r: f"appliance key {r['keyid'][:16]}",
    )
    d.run(
        "Trust the mirror's trust root (once, deliberately)",
        "stella",
        "trust",
        "add",
        d.keys / "trust-root.json",
        show=lambda r: f"channel {r['channel']} v{r['version']}, expires {r['expires']}",
    )
    imported = d.run(
        "Import the bundle: signature first, then every member hashed as it streams",
        "stella",
        "import",
        bundle,
        show=lambda r: (
            f"snapshot {r['snapshot']} active; {len(r['datasetsLoaded'])} datasets loaded"
        ),
    )
    if imported["snapshot"] != snap["digest"]:
        sys.exit("demo: the appliance must hold the mirror's snapshot")
    d.run(
        "The snapshot is active, its sequence recorded for anti-rollback",
        "stella",
        "snapshot",
        "list",
        show=lambda r: "\n".join(
            f"{'*' if s['active'] else ' '} {s['digest'][:19]}…  sequence {s['sequence']}"
            for s in r["snapshots"]
        ),
    )
    d.step += 1
    print(f"\n[{d.step}] Replaying the same bundle is refused as a rollback, with a reason file")
    refused = subprocess.run(
        [str(BIN / "stella"), "--home", str(d.appliance_home), "import", str(bundle)],
        capture_output=True,
        text=True,
        check=False,
    )
    if refused.returncode != 1:
        sys.exit("demo: a replayed bundle must be refused")
    print(f"    $ stella import {bundle}\n    {refused.stderr.strip()}")
    image = REPO / ".cache/images/app/oci"
    if (image / "index.json").exists():
        images_part(d, image)
    else:
        print("\n(no fixture image: run 'make images' to see the scan and gate steps)")
    d.run(
        "Every decision is in the hash-chained, signed audit log",
        "stella",
        "audit",
        "verify",
        show=lambda r: f"audit log ok: {r['records']} records verified",
    )
    d.run(
        "Check the appliance's health",
        "stella",
        "doctor",
        show=lambda r: "\n".join(f"{c['status']:<5} {c['name']}" for c in r.get("checks", [])),
    )

    elapsed = time.perf_counter() - d.started
    print(f"\nDone in {elapsed:.1f} s. Look around:")
    print(f"    export STELLA_HOME={d.appliance_home}")
    print("    stella tui                # triage the findings, watch imports and verdicts")
    print(f"    stella explain {d.out / 'app.rva.json'} --format html > verdict.html")
    print("    stella snapshot show      # what the appliance knows")
    print("    stella audit list         # every decision, hash-chained and signed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
