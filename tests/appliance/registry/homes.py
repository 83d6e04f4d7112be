"""An appliance home holding a small Python image that ``gate`` has judged, so the image has
real referrers (the RVA, the SBOM attestation and the evidence manifest)."""

from __future__ import annotations

from pathlib import Path

from appliance.home import Home
from appliance.rva.gate import GateResult, gate
from tests.appliance.homes import OSV_UNRATED as OSV
from tests.appliance.homes import SITE, install_knowledge
from tests.appliance.rva.factories import AT
from tests.appliance.scanner.layouts import build_image, dist_info


def make_home(root: Path, tag: str = "app:1") -> Home:
    """A home with one image tagged ``tag`` and a knowledge snapshot to gate it against."""
    home = Home(root)
    home.init()
    build_image(home.oci, [dist_info("requests", "2.19.0", SITE)], tag=tag)
    install_knowledge(home, osv=(OSV,))
    return home


def gated_home(root: Path, tag: str = "app:1") -> tuple[Home, GateResult]:
    home = make_home(root, tag)
    return home, gate(home, tag, at=AT)
