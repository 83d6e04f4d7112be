"""A real appliance home for the auditor's tests: an image in the OCI store, knowledge
snapshots in the knowledge store, and verdicts made by the real gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from appliance.home import Home
from appliance.rva.gate import GateResult, gate
from appliance.store import record_decision
from appliance.store.audit import AuditAction
from bundles.digest import Digest
from tests.appliance.homes import SITE, install_knowledge
from tests.appliance.rva.factories import AT, t
from tests.appliance.scanner.layouts import build_image, dist_info


def osv(
    vid: str, package: str, fixed: str, modified: str = "2026-01-01T00:00:00Z"
) -> dict[str, Any]:
    return {
        "id": vid,
        "aliases": [vid.replace("PYSEC", "CVE")],
        "modified": modified,
        "summary": f"{package} problem {vid}",
        "affected": [
            {
                "package": {"ecosystem": "PyPI", "name": package},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": fixed}]}
                ],
            }
        ],
        "severity": [{"type": "CVSS_V3", "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
    }


BASE_RECORDS = [osv("PYSEC-2018-0001", "requests", "2.20.0")]


def add_snapshot(
    home: Home,
    records: list[dict[str, Any]],
    sequence: int,
    *,
    created: str = "2026-11-20T00:00:00Z",
) -> Digest:
    """One knowledge snapshot of ``records`` (an OSV dataset), imported and activated, as the
    importer does, with its import audit record's fields."""
    bundle = Digest.of_bytes(b"bundle %d" % sequence)
    snap = install_knowledge(
        home,
        osv=records,
        sequence=sequence,
        created=created,
        imported=f"2026-11-{10 + sequence:02d}T00:00:00Z",
        bundle=bundle,
    )
    record_decision(
        home,
        AuditAction.IMPORT,
        str(bundle),
        command="import",
        time=t("2026-11-20T01:00:00Z"),
        inputs={"bundle": str(bundle), "snapshot": str(snap), "base": None},
        result={"sequence": sequence, "channel": "stable"},
    )
    return snap


def make_home(root: Path) -> Home:
    home = Home(root / "home")
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag="app:1")
    return home


def gate_app(home: Home, policy_dir: Path | None = None) -> GateResult:
    return gate(home, "app:1", at=AT, policy_dir=policy_dir, now=lambda: t("2026-11-23T06:30:00Z"))


def ten_more_snapshots(home: Home) -> None:
    """Ten newer snapshots, each with one more advisory, the last one active."""
    for i in range(10):
        extra = [osv(f"PYSEC-2026-{n:04d}", "requests", "3.0.0") for n in range(i + 1)]
        add_snapshot(home, BASE_RECORDS + extra, 2 + i, created=f"2026-11-{21 + i % 2}T00:00:00Z")
