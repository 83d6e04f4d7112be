"""An appliance home holding a small Python image that ``gate`` has judged, so the image has
real referrers (the RVA, the SBOM attestation and the evidence manifest)."""

from __future__ import annotations

from pathlib import Path

from appliance.home import Home
from appliance.rva.gate import GateResult, gate
from appliance.store.knowledge import KnowledgeStore, install_snapshot
from bundles.digest import Digest
from bundles.snapshot import DatasetType, build_dataset
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.homes import SITE
from tests.appliance.rva.factories import AT
from tests.appliance.scanner.layouts import build_image, dist_info


def make_home(root: Path, tag: str = "app:1") -> Home:
    """A home with one image tagged ``tag`` and a knowledge snapshot to gate it against."""
    home = Home(root)
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag=tag)
    store = KnowledgeStore.open(home.knowledge_db)
    try:
        install_snapshot(
            store,
            [build_dataset("osv-pypi", DatasetType.OSV, [OSV])],
            sequence=1,
            channel="stable",
            created="2026-11-20T00:00:00Z",
            bundle=Digest.of_bytes(b"bundle"),
        )
    finally:
        store.close()
    return home


def gated_home(root: Path, tag: str = "app:1") -> tuple[Home, GateResult]:
    home = make_home(root, tag)
    return home, gate(home, tag, at=AT)
