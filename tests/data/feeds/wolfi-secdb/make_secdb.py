#!/usr/bin/env python3
"""Build ``security.json`` (Wolfi's secdb, the format packages.wolfi.dev/os/security.json is
published in) from the advisory YAML files in ``advisories/``, with the rule Wolfi's own
publisher applies (``wolfictl advisory secdb``): each advisory's latest event decides; a
``fixed`` event lists its CVE under the fixed version, a ``false-positive-determination`` lists it
under version ``0`` (never affected), every other event type (detection, pending-upstream-fix,
...) is left out. The id written is the advisory's first CVE alias, else the advisory id.

Run from this folder: ``python3 make_secdb.py`` (needs PyYAML). The output is deterministic.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent


def package_entry(doc: dict[str, Any]) -> dict[str, Any]:
    secfixes: dict[str, list[str]] = {}
    for adv in doc.get("advisories") or []:
        events = sorted(adv.get("events") or [], key=lambda e: str(e["timestamp"]))
        if not events:
            continue
        last = events[-1]
        cves = [a for a in adv.get("aliases") or [] if a.startswith("CVE-")]
        vuln = cves[0] if cves else adv["id"]
        if last["type"] == "fixed":
            version = str(last["data"]["fixed-version"])
        elif last["type"] == "false-positive-determination":
            version = "0"
        else:
            continue
        secfixes.setdefault(version, []).append(vuln)
    return {
        "pkg": {
            "name": doc["package"]["name"],
            "secfixes": {v: sorted(ids) for v, ids in sorted(secfixes.items())},
        }
    }


def main() -> None:
    files = sorted((HERE / "advisories").glob("*.advisories.yaml"))
    packages = [package_entry(yaml.safe_load(f.read_text(encoding="utf-8"))) for f in files]
    secdb = {
        "apkurl": "{{urlprefix}}/{{reponame}}/{{arch}}/{{pkg.name}}-{{pkg.ver}}.apk",
        "archs": ["x86_64", "aarch64"],
        "reponame": "os",
        "urlprefix": "https://packages.wolfi.dev",
        "packages": packages,
    }
    out = HERE / "security.json"
    out.write_text(json.dumps(secdb, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} ({len(packages)} packages)")


if __name__ == "__main__":
    main()
