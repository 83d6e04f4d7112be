"""Release evidence for the appliance's own image: the appliance scans and gates itself.

Usage: ``.venv/bin/python images/release_evidence.py --home DIR --out DIR [--image REF]
[--at TIME]``. The home is an appliance home prepared like any other (``stella init``,
``stella trust add``, ``stella import`` of the current knowledge bundle); it is created with a
new appliance key when missing, and then has no knowledge, which the verdict says
(INDETERMINATE). ``--image`` defaults to the image ``make appliance-image`` built.

The image is loaded into the home's store as ``stella-appliance:<version>`` and gated there
exactly as ``stella gate`` does (signed RVA attached as an OCI referrer, ``gate`` audit
record). ``OUT`` receives:

- ``appliance.rva.json``: the signed RVA (Sigstore bundle), checked against the home's key
  before anything else is written;
- ``appliance.cdx.json``: the CycloneDX SBOM the verdict references by digest;
- ``appliance.pub``: the public key the RVA verifies with (``stella verify
  appliance.rva.json --key appliance.pub``);
- ``release-evidence.json``: image digest, verdict, reason codes, snapshot, policy,
  evaluation time, and the SHA-256 of each file above.

Exit code: the gate's (0 PASS or PASS_WITH_EXCEPTIONS, 3 FAIL, 4 INDETERMINATE), so a release
pipeline can stop on it; 1 when no verdict could be made. See docs/release-evidence.md.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from appliance.home import Home
from appliance.imagestore.catalog import load
from appliance.rva.gate import GateResult, gate
from appliance.rva.reader import read_verdict
from appliance.vex.model import VexError, parse_time
from bundles import __version__
from bundles.digest import Digest
from bundles.errors import StellaError, UsageError
from bundles.oci import OCILayout
from images.build import DEFAULT_OUT, require_image

IMAGE_NAME: Final = "stella-appliance"
RVA_FILE: Final = "appliance.rva.json"
SBOM_FILE: Final = "appliance.cdx.json"
KEY_FILE: Final = "appliance.pub"
EVIDENCE_FILE: Final = "release-evidence.json"


@dataclass(frozen=True, slots=True)
class Evidence:
    """What one run produced: the gate's result and the files written."""

    result: GateResult
    summary: dict[str, Any]
    out: Path


def _file_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "sha256": Digest.of_file(path)[0].hex, "size": path.stat().st_size}


def release_evidence(home: Home, image_ref: str, out: Path, *, at: datetime) -> Evidence:
    """Load ``image_ref`` into ``home``, gate it at ``at`` and write the evidence to ``out``."""
    if not home.initialized:
        home.init()
    tag = f"{IMAGE_NAME}:{__version__}"
    loaded = load(home, image_ref, tag=tag)
    result = gate(home, tag, at=at)
    # what an auditor's 'stella verify' checks first: signature, schema, subject binding
    read_verdict(result.bundle, [home.public_key()], source="the RVA just made")
    predicate = result.verdict.predicate
    sbom_ref = predicate["evidence"]["sbom"]
    out.mkdir(parents=True, exist_ok=True)
    files = {RVA_FILE: result.bundle, KEY_FILE: home.appliance_pub.read_bytes()}
    if sbom_ref is not None:
        files[SBOM_FILE] = OCILayout.open(home.oci).read_blob(Digest.parse(sbom_ref["digest"]))
    for name, data in files.items():
        (out / name).write_bytes(data)
    summary = {
        **result.summary(),
        "image": {"ref": image_ref, "name": tag, "digest": str(loaded.descriptor.digest)},
        "engine": predicate["engine"],
        "keyid": home.public_key().keyid,
        "files": [_file_entry(out / name) for name in sorted(files)],
    }
    (out / EVIDENCE_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return Evidence(result, summary, out)


def _parse(argv: Iterable[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="images/release_evidence.py",
        description="Scan and gate the appliance's own image; write the release evidence.",
    )
    parser.add_argument("--home", type=Path, required=True, help="appliance home to gate in")
    parser.add_argument("--out", type=Path, required=True, help="directory for the evidence")
    parser.add_argument(
        "--image", default=None, help="image reference [default: the built appliance image]"
    )
    parser.add_argument(
        "--images-out", type=Path, default=DEFAULT_OUT, help="where images/build.py put it"
    )
    parser.add_argument("--at", default=None, help="evaluation time, RFC 3339 [default: now]")
    return parser.parse_args(list(argv) if argv is not None else None)


def main(argv: Iterable[str] | None = None) -> int:
    args = _parse(argv)
    try:
        try:
            at = parse_time(args.at, where="--at") if args.at else datetime.now(UTC)
        except VexError as e:
            raise UsageError(e.message, hint=e.hint) from e
        image = args.image or require_image("appliance", args.images_out.resolve()).ref
        evidence = release_evidence(Home(args.home.resolve()), image, args.out, at=at)
    except StellaError as e:
        print(f"images/release_evidence.py: error: {e.diagnostics()}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"images/release_evidence.py: error: {e}", file=sys.stderr)
        return 1
    s = evidence.summary
    print(f"{s['verdict']}\t{s['image']['digest']}\t{evidence.out / EVIDENCE_FILE}")
    return evidence.result.exit_code


if __name__ == "__main__":
    sys.exit(main())
